//! The egress allowlist entry grammar, checked when the bottle.toml is read.
//!
//! An entry the bundle would later refuse must fail here, at the line the user
//! wrote, not when the bottle starts. Entries are `host`, `*.suffix`, either
//! with an optional `:port`, or a CIDR for IP-literal destinations.

use ipnet::IpNet;

/// Longest DNS name (RFC 1035) and label.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Checks one allow/deny entry; returns it normalised (lowercase) or why it is refused.
pub fn check_entry(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("empty entry".into());
    }
    if entry.contains("://") || (entry.contains('/') && !looks_like_cidr(entry)) {
        return Err("expected a host, `*.suffix`, `host:port` or a CIDR, not a URL or path".into());
    }
    if entry.contains('/') {
        return check_cidr(entry);
    }
    if entry.starts_with('[') || entry.matches(':').count() > 1 {
        return Err("IPv6 destinations are written as a CIDR, e.g. `2001:db8::1/128`".into());
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(check_port(port)?)),
        None => (entry, None),
    };
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Err("`*` alone would allow every destination; name the hosts instead".into());
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("IP destinations are written as a CIDR, e.g. `{host}/32`"));
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    check_dns_name(name)?;
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

fn looks_like_cidr(entry: &str) -> bool {
    entry.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::IpAddr>().is_ok() && !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit())
    })
}

fn check_cidr(entry: &str) -> Result<String, String> {
    let net: IpNet = entry.parse().map_err(|_| "not a valid CIDR (`10.0.0.0/8`, `2001:db8::/32`)".to_string())?;
    if net.trunc() != net {
        return Err(format!("host bits are set; did you mean `{}`?", net.trunc()));
    }
    Ok(net.to_string())
}

fn check_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port `{port}` is not a number from 1 to 65535")),
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!("host name longer than {MAX_NAME_LEN} characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{name}` is not a host name (labels of 1-{MAX_LABEL_LEN} letters, digits, `-`; `*` only as a leading `*.`)"
            ));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("`{name}` is neither a host name nor an IPv4 address"));
    }
    Ok(())
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
