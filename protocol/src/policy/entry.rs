//! One allow or deny entry: `host`, `*.suffix` or a CIDR, optionally with `:port`.
//!
//! `*.example.com` matches every name under `example.com` at any depth, but
//! NOT `example.com` itself: allowing a parent is a separate decision, so list
//! both when both are meant. A bare IP is a one-address CIDR.
//!
//! A name entry without a port allows the web ports only ([`WEB_PORTS`]):
//! allowing a name is a decision about its HTTP(S) service, and every other
//! port of that host (ssh, a database, a debug listener) would otherwise be a
//! raw TCP channel nobody meant to open. Other ports are named one by one. A
//! deny entry without a port denies every port, and a CIDR entry without a
//! port covers every port of that network (an address range is written by
//! someone who means the network, and names are what an agent can steer).

use ipnet::IpNet;

use super::host::{Host, canonical};

/// The ports a name allow entry without `:port` covers.
pub const WEB_PORTS: [u16; 2] = [443, 80];

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

    /// The one port it covers, when it names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether both name the same host, pattern or network, whatever their ports.
    pub fn same_host(&self, other: &Entry) -> bool {
        self.pattern == other.pattern
    }

    /// As an allow entry: a name without a port covers [`WEB_PORTS`] only.
    pub fn allows(&self, host: &Host, port: u16) -> bool {
        let port_ok = match (self.port, &self.pattern) {
            (Some(p), _) => p == port,
            (None, Pattern::Net(_)) => true,
            (None, _) => WEB_PORTS.contains(&port),
        };
        port_ok && self.covers(host)
    }

    /// As a deny entry: without a port it covers every port.
    pub fn denies(&self, host: &Host, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.covers(host)
    }

    fn covers(&self, host: &Host) -> bool {
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
        Entry::parse(entry).unwrap().allows(&Host::parse(host).unwrap(), port)
    }

    fn d(entry: &str, host: &str, port: u16) -> bool {
        Entry::parse(entry).unwrap().denies(&Host::parse(host).unwrap(), port)
    }

    #[test]
    fn a_bare_name_allows_the_web_ports_only_and_denies_every_port() {
        for entry in ["example.com", "*.example.com"] {
            let host = if entry.starts_with('*') { "a.example.com" } else { "example.com" };
            assert!(m(entry, host, 443) && m(entry, host, 80), "{entry}");
            for port in [22, 25, 5432, 8080, 8443, 9418] {
                assert!(!m(entry, host, port), "{entry} allowed port {port}");
                assert!(d(entry, host, port), "{entry} did not deny port {port}");
            }
        }
        assert!(m("example.com:8443", "example.com", 8443));
        assert!(!m("example.com:8443", "example.com", 443), "a named port is the only one");
        assert!(!d("example.com:22", "example.com", 443));
        assert!(m("10.0.0.0/8", "10.0.0.1", 5432), "a CIDR covers its network's every port");
        let grant = Entry::with_port("example.com", None).unwrap();
        assert!(!grant.allows(&Host::parse("example.com").unwrap(), 22), "a grant without a port is a bare entry");
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
        assert!(d("127.0.0.1", "127.0.0.1", 1));
        assert!(!m("10.0.0.0/8", "ten.example", 80), "CIDRs never match names");
    }

    #[test]
    fn same_host_ignores_ports_and_spelling() {
        let e = |t: &str| Entry::parse(t).unwrap();
        assert!(e("Example.com:443").same_host(&e("example.com")));
        assert!(e("10.0.0.1").same_host(&e("10.0.0.1/32")));
        assert!(!e("*.example.com").same_host(&e("example.com")));
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in ["", "a:b", "a:0", "*", "a.*.com", "*.10.0.0.1", "10.0.0.0/33", "[::1", "u@h.com", "h:70000"] {
            assert!(Entry::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
