//! Destination host normalization: one canonical spelling per host, so the
//! allowlist cannot be sidestepped by writing the same host differently.
//!
//! Lowercases, drops one trailing dot and IPv6 brackets, and refuses shapes
//! that are tricks rather than hosts: userinfo (`a@b`), percent-encoding,
//! IPv6 zone ids, and numeric spellings of IPv4 (`2130706433`, `0x7f.1`,
//! `127.1`, `0177.0.0.1`) that some resolvers would turn into an address the
//! CIDR rules never saw.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest DNS name (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A normalized destination host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Lowercase, no trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Normalizes a host as found in a request; the error is the reason, never the input.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
        if raw.contains('%') {
            return Err("percent-encoded or zoned host");
        }
        if raw.contains('@') {
            return Err("userinfo in host");
        }
        if raw.contains(':') {
            return raw
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(canonical(IpAddr::V6(ip))))
                .map_err(|_| "invalid IPv6 literal");
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        let name = name.to_ascii_lowercase();
        check_name(&name)?;
        Ok(Host::Name(name))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err("empty or overlong host");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err("empty or overlong label");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("invalid character in host");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with a hyphen");
        }
    }
    // No real TLD is numeric; a numeric last label means an IPv4 spelled oddly.
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err("numeric host that is not a dotted-quad IPv4");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_spellings() {
        assert_eq!(Host::parse("Example.COM."), Ok(Host::Name("example.com".into())));
        assert_eq!(Host::parse("[::1]"), Ok(Host::Ip("::1".parse().unwrap())));
        assert_eq!(Host::parse("::ffff:10.0.0.1"), Ok(Host::Ip("10.0.0.1".parse().unwrap())));
        assert_eq!(Host::parse("10.0.0.1."), Ok(Host::Ip("10.0.0.1".parse().unwrap())));
    }

    #[test]
    fn refuses_tricks() {
        for trick in [
            "user@example.com",
            "exa%6dple.com",
            "fe80::1%eth0",
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "a..b",
            "",
            ".",
            "-a.com",
            "a b.com",
            "ex\u{e4}mple.com",
        ] {
            assert!(Host::parse(trick).is_err(), "{trick:?} accepted");
        }
    }
}
