//! One allow or deny entry: `host`, `*.suffix` or a CIDR, optionally with `:port`.
//!
//! `*.example.com` matches every name under `example.com` at any depth, but
//! NOT `example.com` itself: allowing a parent is a separate decision, so list
//! both when both are meant. A bare IP is a one-address CIDR.

use ipnet::IpNet;

use super::host::{Host, canonical};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    Suffix(String),
    Net(IpNet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As written, for `entries()` and the health report.
    pub text: String,
    pattern: Pattern,
    port: Option<u16>,
}

impl Entry {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = split_port(text.trim())?;
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            match Host::parse(suffix).map_err(|e| format!("invalid wildcard suffix: {e}"))? {
                Host::Name(n) => Pattern::Suffix(format!(".{n}")),
                Host::Ip(_) => return Err("a wildcard suffix must be a name, not an IP".into()),
            }
        } else if host.contains('/') {
            let net: IpNet = host.parse().map_err(|_| "invalid CIDR".to_string())?;
            Pattern::Net(net.trunc())
        } else if host.contains('*') {
            return Err("`*` is only allowed as a leading `*.` label".into());
        } else {
            match Host::parse(host).map_err(|e| format!("invalid host: {e}"))? {
                Host::Name(n) => Pattern::Exact(n),
                Host::Ip(ip) => Pattern::Net(IpNet::from(ip)),
            }
        };
        Ok(Self { text: text.trim().to_string(), pattern, port })
    }

    /// An entry for a grant: a host (or pattern) plus an optional port given separately.
    pub fn with_port(host: &str, port: Option<u16>) -> Result<Self, String> {
        let mut e = Self::parse(host)?;
        if e.port.is_some() && port.is_some() {
            return Err("port given twice".into());
        }
        if let Some(p) = port {
            e.port = Some(p);
            e.text = match &e.pattern {
                Pattern::Net(_) if host.contains(':') => format!("[{host}]:{p}"),
                _ => format!("{host}:{p}"),
            };
        }
        Ok(e)
    }

    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.pattern, host) {
            (Pattern::Exact(n), Host::Name(h)) => n == h,
            (Pattern::Suffix(s), Host::Name(h)) => h.len() > s.len() && h.ends_with(s.as_str()),
            (Pattern::Net(net), Host::Ip(ip)) => net.contains(&canonical(*ip)),
            _ => false,
        }
    }
}

/// Splits an optional `:port`: `host:443`, `[2001:db8::/32]:443`, or a bare IPv6 (no port).
fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    if s.is_empty() {
        return Err("empty entry".into());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or("unclosed `[`")?;
        return match after {
            "" => Ok((inner, None)),
            p => Ok((inner, Some(port(p.strip_prefix(':').ok_or("junk after `]`")?)?))),
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').ok_or("unreachable")?;
            Ok((h, Some(port(p)?)))
        }
        // Several colons: an IPv6 address or network; a port needs brackets.
        _ => Ok((s, None)),
    }
}

fn port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("invalid port {p:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entry: &str, host: &str, port: u16) -> bool {
        Entry::parse(entry).unwrap().matches(&Host::parse(host).unwrap(), port)
    }

    #[test]
    fn matching() {
        assert!(m("example.com", "EXAMPLE.com.", 443));
        assert!(!m("example.com", "www.example.com", 443));
        assert!(m("*.example.com", "a.b.example.com", 443));
        assert!(!m("*.example.com", "example.com", 443), "wildcard does not cover its parent");
        assert!(!m("*.example.com", "badexample.com", 443));
        assert!(m("example.com:443", "example.com", 443));
        assert!(!m("example.com:443", "example.com", 80));
        assert!(m("10.0.0.0/8", "10.1.2.3", 80));
        assert!(m("10.0.0.0/8", "::ffff:10.1.2.3", 80));
        assert!(!m("10.0.0.0/8", "11.0.0.1", 80));
        assert!(m("[2001:db8::/32]:443", "2001:db8::1", 443));
        assert!(m("2001:db8::/32", "2001:db8::1", 1));
        assert!(m("127.0.0.1", "127.0.0.1", 1));
        assert!(!m("10.0.0.0/8", "ten.example", 80), "CIDRs never match names");
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in ["", "a:b", "a:0", "*", "a.*.com", "*.10.0.0.1", "10.0.0.0/33", "[::1", "u@h.com", "h:70000"] {
            assert!(Entry::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
