//! The egress allowlist entry grammar, checked when the bottle.toml is read.
//!
//! An entry the bundle would later refuse must fail here, at the line the user
//! wrote, not when the bottle starts. Entries are `host`, `*.suffix`, either
//! with an optional `:port`, or a CIDR for IP-literal destinations.

use bottle_protocol::policy::Entry;
use ipnet::IpNet;

/// Checks one allow/deny entry; returns it normalised (lowercase) or why it is refused.
///
/// The grammar is the bundle's own ([`Entry`]); on top of it the spec refuses
/// spellings that are legal but easy to get wrong: URLs and paths, bare IPs
/// (write a CIDR), bracketed IPv6, and CIDRs with host bits set.
pub fn check_entry(entry: &str) -> Result<String, String> {
    let entry = entry.trim().to_ascii_lowercase();
    let cidr = looks_like_cidr(&entry);
    if entry.contains("://") || (entry.contains('/') && !cidr) {
        return Err("expected a host, `*.suffix`, `host:port` or a CIDR, not a URL or path".into());
    }
    if cidr {
        let net: IpNet = entry.parse().map_err(|_| "not a valid CIDR (`10.0.0.0/8`, `2001:db8::/32`)".to_string())?;
        if net.trunc() != net {
            return Err(format!("host bits are set; did you mean `{}`?", net.trunc()));
        }
    } else if entry.starts_with('[') || entry.matches(':').count() > 1 {
        return Err("IPv6 destinations are written as a CIDR, e.g. `2001:db8::1/128`".into());
    } else {
        let host = entry.rsplit_once(':').map_or(entry.as_str(), |(h, _)| h);
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(format!("IP destinations are written as a CIDR, e.g. `{host}/32`"));
        }
        if host == "*" {
            return Err("`*` alone would allow every destination; name the hosts instead".into());
        }
    }
    Entry::parse(&entry).map(|e| e.text)
}

fn looks_like_cidr(entry: &str) -> bool {
    entry.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::IpAddr>().is_ok() && !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::check_entry;

    #[test]
    fn accepts_and_normalises_the_grammar() {
        for (given, want) in [
            ("Example.COM", "example.com"),
            ("*.github.com", "*.github.com"),
            ("api.example.com:443", "api.example.com:443"),
            ("*.example.com:8443", "*.example.com:8443"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("allowed.test", "allowed.test"),
        ] {
            assert_eq!(check_entry(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn refuses_what_the_bundle_would_refuse() {
        for bad in [
            "",
            "*",
            "*:443",
            "https://example.com",
            "example.com/path",
            "exa mple.com",
            "-bad.com",
            "a..b",
            "host:0",
            "host:99999",
            "host:http",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "1.2.3.4",
            "[::1]:443",
            "*.*.com",
            "ex*ample.com",
            "1.2.3",
        ] {
            assert!(check_entry(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
