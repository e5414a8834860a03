//! The dialer: turns `host:port` into a connected socket or a refusal.
//!
//! Names are resolved here, once per dial, by a pure-Rust resolver that talks
//! only to the configured nameservers (static `egress.hosts` overrides win).
//! EVERY address a name resolves to is classified, and the socket is opened to
//! exactly the checked `IpAddr`, never to the name again: a DNS answer that
//! changes between check and connect (rebinding) cannot slip past.
//!
//! A name with any refused answer is refused as a whole. Dialling only its
//! allowed answers would make the outcome depend on answer order and let a
//! hostile zone probe which internal addresses are refused; a name that points
//! inside is either misconfigured or an attack, and both deserve a refusal.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bottle_protocol::config::{ConfigError, EgressConfig, Limits, Position};
use bottle_protocol::rule;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use ipnet::IpNet;
use tokio::net::TcpStream;
use toml::Spanned;

use super::class;

/// How long one DNS query may take before the resolver retries or gives up.
pub const DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries per query across the nameservers.
pub const DNS_ATTEMPTS: usize = 2;
/// Cached answers; the cache is per process, shared by every service.
pub const DNS_CACHE_ENTRIES: usize = 1024;
/// Longest time an answer is reused, whatever its TTL says.
pub const DNS_MAX_TTL: Duration = Duration::from_secs(300);
/// Port used for a nameserver written without one (and for resolv.conf entries).
pub const DNS_PORT: u16 = 53;
/// Read only when `egress.nameservers` is empty.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Resolves names and decides which addresses may be dialled.
pub struct Dialer {
    resolver: TokioResolver,
    hosts: HashMap<String, Vec<IpAddr>>,
    allow: Vec<IpNet>,
    connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The destination is refused; the rule goes into `X-Bottle-Block`.
    #[error("refused ({0})")]
    Refused(&'static str),
    #[error("unreachable: {0}")]
    Unreachable(std::io::Error),
    #[error("connect timed out")]
    Timeout,
}

impl Dialer {
    /// Builds the dialer; `file` and `text` let config errors name their position.
    pub fn from_config(file: &Path, text: &str, cfg: &EgressConfig, limits: &Limits) -> Result<Self, ConfigError> {
        let allow = cfg
            .allow_cidrs
            .iter()
            .map(|v| parse_cidr(v.get_ref()).map_err(|m| ConfigError::at(file, text, "egress.allow_cidrs", v, m)))
            .collect::<Result<Vec<_>, _>>()?;
        let nameservers = if cfg.nameservers.is_empty() {
            system_nameservers()
        } else {
            cfg.nameservers
                .iter()
                .map(|v| parse_nameserver(v).map_err(|m| ConfigError::at(file, text, "egress.nameservers", v, m)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut hosts = HashMap::new();
        for (name, ips) in &cfg.hosts {
            let key = format!("egress.hosts.{name}");
            let normal = normalize(name);
            if normal.is_empty() || normal.parse::<IpAddr>().is_ok() {
                return Err(key_error(file, text, &key, name, "the key must be a DNS name, not an IP address"));
            }
            let ips = ips
                .iter()
                .map(|v| parse_ip(v).map_err(|m| ConfigError::at(file, text, &key, v, m)))
                .collect::<Result<Vec<_>, _>>()?;
            hosts.insert(normal, ips);
        }
        Ok(Self {
            resolver: build_resolver(&nameservers),
            hosts,
            allow,
            connect_timeout: Duration::from_millis(limits.connect_timeout_ms),
        })
    }

    /// Whether `ip` may be dialled; `Err` carries the rule of the refusing class.
    /// `allow_cidrs` is matched against the address and against the IPv4 address it embeds.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let embedded = match ip {
            IpAddr::V6(v6) => class::embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if self.allow.iter().any(|net| net.contains(&ip) || embedded.is_some_and(|e| net.contains(&e))) {
            return Ok(());
        }
        class::classify(ip).rule().map_or(Ok(()), Err)
    }

    /// Every address `host` stands for, all of them checked. `host` is an IP
    /// literal (IPv6 without brackets) or a DNS name.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, &'static str> {
        let host = normalize(host);
        let ips = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![ip]
        } else if let Some(ips) = self.hosts.get(&host) {
            ips.clone()
        } else {
            // The trailing dot makes the name absolute: no search-domain guesses.
            match self.resolver.lookup_ip(format!("{host}.")).await {
                Ok(lookup) => lookup.iter().collect(),
                Err(e) => {
                    tracing::debug!(host = %host, "egress: resolve failed: {e}");
                    Vec::new()
                }
            }
        };
        if ips.is_empty() {
            return Err(rule::egress::UNRESOLVABLE);
        }
        for ip in &ips {
            self.check(*ip)?;
        }
        Ok(ips)
    }

    /// Resolves, checks and connects, trying each allowed address in answer order
    /// within one connect timeout.
    pub async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        let ips = self.resolve(host).await.map_err(DialError::Refused)?;
        tokio::time::timeout(self.connect_timeout, connect_first(&ips, port)).await.map_err(|_| DialError::Timeout)?
    }
}

async fn connect_first(ips: &[IpAddr], port: u16) -> Result<TcpStream, DialError> {
    let mut last = std::io::Error::other("no address to dial");
    for ip in ips {
        match TcpStream::connect(SocketAddr::new(*ip, port)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(DialError::Unreachable(last))
}

fn build_resolver(nameservers: &[SocketAddr]) -> TokioResolver {
    let mut config = ResolverConfig::new();
    for addr in nameservers {
        // UDP first, TCP for truncated answers.
        config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
        config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = DNS_QUERY_TIMEOUT;
    opts.attempts = DNS_ATTEMPTS;
    opts.cache_size = DNS_CACHE_ENTRIES;
    opts.positive_max_ttl = Some(DNS_MAX_TTL);
    opts.negative_max_ttl = Some(DNS_MAX_TTL);
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // egress.hosts is the only override; the bundle's /etc/hosts is not the agent's business.
    opts.use_hosts_file = ResolveHosts::Never;
    TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).with_options(opts).build()
}

/// `nameserver` lines of resolv.conf; unreadable or empty means no DNS at all (fail closed).
fn system_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect()
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| "not a CIDR (like 10.0.0.0/8) or an IP address")?,
    };
    if net.trunc() != net {
        return Err(format!("host bits are set; the network is {}", net.trunc()));
    }
    Ok(net)
}

fn parse_nameserver(v: &Spanned<String>) -> Result<SocketAddr, String> {
    let s = v.get_ref().trim();
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DNS_PORT)))
        .map_err(|_| "not an ip:port address (IPv6 as [addr]:port)".to_string())
}

fn parse_ip(v: &Spanned<String>) -> Result<IpAddr, String> {
    v.get_ref().trim().parse::<IpAddr>().map_err(|_| "not an IP address".to_string())
}

/// An error about a table key, which has no span of its own: it points at the key's first mention.
fn key_error(file: &Path, text: &str, key: &str, name: &str, message: &str) -> ConfigError {
    ConfigError {
        position: Position::at(file, text, text.find(name).unwrap_or(0)),
        key: key.to_string(),
        value: name.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer(egress_toml: &str) -> Result<Dialer, ConfigError> {
        let text = format!("[egress]\n{egress_toml}");
        #[derive(serde::Deserialize)]
        struct Doc {
            egress: EgressConfig,
        }
        let doc: Doc = toml::from_str(&text).unwrap();
        Dialer::from_config(Path::new("b.toml"), &text, &doc.egress, &Limits::default())
    }

    #[test]
    fn config_errors_name_key_value_and_position() {
        let e = dialer("nameservers = [\"127.0.0.1:53\", \"dns.example:53\"]\n").err().unwrap();
        assert_eq!((e.key.as_str(), e.value.as_str()), ("egress.nameservers", "dns.example:53"));
        assert_eq!((e.position.line, e.position.col), (2, 32));

        let e = dialer("allow_cidrs = [\"10.0.0.1/8\"]\n").err().unwrap();
        assert_eq!(e.key, "egress.allow_cidrs");
        assert!(e.message.contains("10.0.0.0/8"), "{e}");
        let e = dialer("allow_cidrs = [\"10.0.0.0/33\"]\n").err().unwrap();
        assert_eq!(e.value, "10.0.0.0/33");

        let e = dialer("[egress.hosts]\n\"a.test\" = [\"1.2.3.4\", \"nope\"]\n").err().unwrap();
        assert_eq!((e.key.as_str(), e.value.as_str()), ("egress.hosts.a.test", "nope"));
        assert_eq!(e.position.line, 3);
        assert!(e.to_string().starts_with("b.toml:3:"), "{e}");

        let e = dialer("[egress.hosts]\n\"10.0.0.1\" = [\"1.2.3.4\"]\n").err().unwrap();
        assert_eq!((e.position.line, e.value.as_str()), (3, "10.0.0.1"));
    }

    #[test]
    fn allow_cidrs_exempt_exactly_their_range() {
        let d = dialer("nameservers = [\"127.0.0.1:1\"]\nallow_cidrs = [\"127.0.0.1\", \"10.1.0.0/16\"]\n").unwrap();
        assert_eq!(d.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(d.check("::ffff:127.0.0.1".parse().unwrap()), Ok(()), "mapped form of an allowed address");
        assert_eq!(d.check("127.0.0.2".parse().unwrap()), Err("egress:loopback"));
        assert_eq!(d.check("10.1.255.1".parse().unwrap()), Ok(()));
        assert_eq!(d.check("10.2.0.1".parse().unwrap()), Err("egress:private"));
        assert_eq!(d.check("::1".parse().unwrap()), Err("egress:loopback"));
    }

    #[test]
    fn public_addresses_pass_and_every_refused_class_is_refused() {
        let d = dialer("nameservers = [\"127.0.0.1:1\"]\n").unwrap();
        for ip in ["1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert_eq!(d.check(ip.parse().unwrap()), Ok(()), "{ip}");
        }
        for (ip, rule) in [
            ("127.0.0.1", "egress:loopback"),
            ("::1", "egress:loopback"),
            ("0.0.0.0", "egress:unspecified"),
            ("::", "egress:unspecified"),
            ("10.0.0.1", "egress:private"),
            ("172.16.0.1", "egress:private"),
            ("192.168.0.1", "egress:private"),
            ("100.64.0.1", "egress:private"),
            ("fd00::1", "egress:private"),
            ("169.254.169.254", "egress:metadata"),
            ("fd00:ec2::254", "egress:metadata"),
            ("169.254.3.4", "egress:link-local"),
            ("fe80::1", "egress:link-local"),
            ("224.0.0.251", "egress:multicast"),
            ("ff02::fb", "egress:multicast"),
            ("255.255.255.255", "egress:broadcast"),
            ("192.0.2.1", "egress:reserved"),
            ("::ffff:10.0.0.1", "egress:private"),
            ("::ffff:169.254.169.254", "egress:metadata"),
            ("64:ff9b::7f00:1", "egress:loopback"),
            ("2002:a9fe:a9fe::", "egress:metadata"),
        ] {
            assert_eq!(d.check(ip.parse().unwrap()), Err(rule), "{ip}");
        }
    }

    #[tokio::test]
    async fn literals_and_overrides_resolve_without_dns() {
        // The nameserver is a closed loopback port: any DNS query would fail as unresolvable.
        let d = dialer("nameservers = [\"127.0.0.1:1\"]\nallow_cidrs = [\"127.0.0.0/8\"]\n[egress.hosts]\n\"Pinned.Test\" = [\"127.0.0.9\"]\n").unwrap();
        assert_eq!(d.resolve("127.0.0.3").await, Ok(vec!["127.0.0.3".parse().unwrap()]));
        assert_eq!(d.resolve("pinned.test.").await, Ok(vec!["127.0.0.9".parse().unwrap()]));
        assert_eq!(d.resolve("PINNED.test").await, Ok(vec!["127.0.0.9".parse().unwrap()]));
        assert_eq!(d.resolve("::1").await, Err("egress:loopback"));
    }
}
