//! `allow`, `revoke`, `policy` and `policy check`: the host's hand on a bottle's live
//! allowlist, through its control plane.
//!
//! Every decision comes from the bundle: `policy check` asks the bundle's own policy
//! code (with the kill switch ahead of it, as in the proxy) rather than matching
//! entries here, so what it says is what the proxy does.

use bottle_protocol::control::{GrantAdd, GrantRevoke, GrantSource, GrantView, PolicyCheck, PolicyView};
use bottle_protocol::display::escape_controls;
use bottle_protocol::rule;

use super::commands::{out, say};
use super::exit::Failure;
use super::render;
use crate::control_client::ControlClient;

/// The port `policy check` asks about when none is given.
pub const DEFAULT_CHECK_PORT: u16 = 443;

/// `HOST[:PORT]` from the command line; `[v6]:port` for an IPv6 address with a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    pub fn parse(s: &str) -> Result<Self, String> {
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{s:?}: port {p:?} is not a port (1-65535)")),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(|| format!("{s:?}: unclosed `[`"))?;
            match after {
                "" => (inner, None),
                p => (inner, port(p.strip_prefix(':').ok_or_else(|| format!("{s:?}: junk after `]`"))?)?),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, port(p)?),
                _ => (s, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?}: the host is empty; give HOST or HOST:PORT"));
        }
        Ok(Self { host: host.to_string(), port })
    }
}

pub async fn allow(
    client: &ControlClient,
    name: &str,
    target: Target,
    ttl: Option<u64>,
    json: bool,
) -> Result<u8, Failure> {
    let grant = client.allow(&GrantAdd { host: target.host, port: target.port, ttl_secs: ttl }).await?;
    say(&format!("{name}: allowed {}\n", grant_line(&grant)), json, &grant)?;
    Ok(0)
}

pub async fn revoke(client: &ControlClient, name: &str, target: Target, json: bool) -> Result<u8, Failure> {
    let removed = client.revoke(&GrantRevoke { host: target.host.clone(), port: target.port }).await?;
    let lines: String = removed.iter().map(|g| format!("{name}: revoked {}\n", grant_line(g))).collect();
    say(&lines, json, &removed)?;
    Ok(0)
}

pub async fn show(client: &ControlClient, json: bool) -> Result<u8, Failure> {
    let view = client.policy().await?;
    out(&if json { render::json(&view) } else { table(&view) })?;
    Ok(0)
}

/// Exit 0 when the proxy would let the destination through now, 1 when it would refuse it.
pub async fn check(client: &ControlClient, target: Target, json: bool) -> Result<u8, Failure> {
    let port = target.port.unwrap_or(DEFAULT_CHECK_PORT);
    let c = client.check(&target.host, port).await?;
    out(&if json { render::json(&c) } else { verdict(&c) })?;
    Ok(if c.allowed { 0 } else { 1 })
}

pub fn table(v: &PolicyView) -> String {
    let mut s = format!("bottle {}: kill switch {}\n", v.bottle, if v.kill_switch { "ENGAGED" } else { "off" });
    let rows = v.allow.iter().map(|e| ("allow", e.clone(), String::new()));
    let rows = rows.chain(v.deny.iter().map(|e| ("deny", e.clone(), String::new())));
    let rows: Vec<_> = rows.chain(v.grants.iter().map(|g| ("grant", g.entry.clone(), grant_detail(g)))).collect();
    if rows.is_empty() {
        s.push_str("(no entries: every destination is refused)\n");
    }
    let width = rows.iter().map(|(_, e, _)| e.len()).max().unwrap_or(0);
    for (kind, entry, detail) in rows {
        let line = format!("{kind:<5}  {:<width$}  {detail}", escape_controls(&entry));
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

pub fn verdict(c: &PolicyCheck) -> String {
    let dest = if c.host.contains(':') { format!("[{}]:{}", c.host, c.port) } else { format!("{}:{}", c.host, c.port) };
    let why = match (c.rule.as_str(), &c.entry, &c.grant) {
        (_, _, Some(g)) => format!("grant {} ({})", escape_controls(&g.id), grant_detail(g)),
        (rule::ALLOW, Some(e), _) => format!("allow entry {e:?}"),
        (rule::DENIED, Some(e), _) => format!("deny entry {e:?}"),
        (rule::KILL_SWITCH, ..) => "the kill switch is engaged".into(),
        (rule::NOT_ALLOWED, ..) => "no allow entry or live grant matches".into(),
        (rule::IP_LITERAL, ..) => "an IP address needs a CIDR allow entry".into(),
        (rule::ODD_HOST, ..) => "not a host name or IP address the proxy accepts".into(),
        (_, Some(e), _) => format!("entry {e:?}"),
        _ => String::new(),
    };
    let verb = if c.allowed { "allowed" } else { "refused" };
    format!("{verb}: {} (rule {}: {why})\n", escape_controls(&dest), c.rule)
}

fn grant_line(g: &GrantView) -> String {
    format!("{} ({}; id {})", escape_controls(&g.entry), grant_detail(g), escape_controls(&g.id))
}

fn grant_detail(g: &GrantView) -> String {
    let from = match g.source {
        GrantSource::Host => "host grant",
        GrantSource::AccessRequest => "approved access request",
    };
    match (&g.expires_at, g.expires_in_secs) {
        (Some(at), Some(left)) => format!("{from}, ends {at}, in {left}s"),
        _ => format!("{from}, until revoked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: Option<u16>) -> Target {
        Target { host: host.into(), port }
    }

    #[test]
    fn targets_parse_with_and_without_ports() {
        assert_eq!(Target::parse("api.test"), Ok(t("api.test", None)));
        assert_eq!(Target::parse("api.test:8443"), Ok(t("api.test", Some(8443))));
        assert_eq!(Target::parse("*.pypi.org"), Ok(t("*.pypi.org", None)));
        assert_eq!(Target::parse("::1"), Ok(t("::1", None)));
        assert_eq!(Target::parse("[::1]:80"), Ok(t("::1", Some(80))));
        assert_eq!(Target::parse("10.0.0.0/8"), Ok(t("10.0.0.0/8", None)));
        for bad in ["", ":443", "a.test:0", "a.test:http", "a.test:70000", "[::1", "[::1]x"] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
