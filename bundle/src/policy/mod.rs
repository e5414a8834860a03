//! The live egress allowlist: what the proxy may reach, changeable at runtime.
//!
//! Entries are exact hosts, `*.suffix` wildcards (see [`Entry`] for why a
//! wildcard does not cover its parent), optional `:port` (a name allowed
//! without one means ports 443 and 80 only), and CIDRs for IP-literal
//! targets. Deny wins over allow. An IP literal is refused unless a
//! CIDR allows it, because a name allowlist says nothing about addresses.
//! Grants from approved access requests are extra allow entries, keyed by
//! request id and optionally expiring. The control plane swaps the lists
//! atomically with [`PolicyStore::replace`]; grants survive a replace.

use std::path::Path;
use std::sync::RwLock;
use std::time::Instant;

use bottle_protocol::config::{ConfigError, PolicyConfig};
use bottle_protocol::control::PolicyUpdate;

use crate::persist::SavedGrant;

pub use bottle_protocol::policy::{Entry, Host};

/// Rule ids sent in `X-Bottle-Block`.
pub mod rules {
    pub const DENIED: &str = "denied";
    pub const NOT_ALLOWED: &str = "not-allowed";
    pub const IP_LITERAL: &str = "ip-literal";
    pub const ODD_HOST: &str = "odd-host";
}

pub struct PolicyStore {
    lists: RwLock<Lists>,
}

#[derive(Default)]
struct Lists {
    allow: Vec<Entry>,
    deny: Vec<Entry>,
    grants: Vec<Grant>,
    /// The host's last replacement, kept to be saved (see [`crate::persist`]).
    replaced: Option<PolicyUpdate>,
}

struct Grant {
    id: String,
    entry: Entry,
    expires: Option<Instant>,
}

impl Grant {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// The proxy's decision for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `rule` is the machine-readable reason, sent in `X-Bottle-Block`.
    Deny {
        rule: String,
    },
}

fn deny(rule: &str) -> Verdict {
    Verdict::Deny { rule: rule.to_string() }
}

impl PolicyStore {
    pub fn from_config(file: &Path, text: &str, cfg: &PolicyConfig) -> Result<Self, ConfigError> {
        let parse = |key: &str, list: &[toml::Spanned<String>]| {
            list.iter()
                .map(|v| Entry::parse(v.get_ref()).map_err(|m| ConfigError::at(file, text, key, v, m)))
                .collect::<Result<Vec<_>, _>>()
        };
        let lists = Lists {
            allow: parse("policy.allow", &cfg.allow)?,
            deny: parse("policy.deny", &cfg.deny)?,
            grants: Vec::new(),
            replaced: None,
        };
        Ok(Self { lists: RwLock::new(lists) })
    }

    /// `host` is a DNS name or an IP literal; it is normalized here, and a host
    /// that does not normalize is refused as `odd-host`.
    pub fn decide(&self, host: &str, port: u16) -> Verdict {
        match Host::parse(host) {
            Ok(h) => self.decide_host(&h, port),
            Err(_) => deny(rules::ODD_HOST),
        }
    }

    /// [`Self::decide`] for a host the caller has already normalized.
    pub fn decide_host(&self, host: &Host, port: u16) -> Verdict {
        let lists = self.lists.read().expect("policy lock poisoned");
        if lists.deny.iter().any(|e| e.denies(host, port)) {
            return deny(rules::DENIED);
        }
        let now = Instant::now();
        let allowed = lists.allow.iter().any(|e| e.allows(host, port))
            || lists.grants.iter().any(|g| g.live(now) && g.entry.allows(host, port));
        match (allowed, host) {
            (true, _) => Verdict::Allow,
            (false, Host::Ip(_)) => deny(rules::IP_LITERAL),
            (false, Host::Name(_)) => deny(rules::NOT_ALLOWED),
        }
    }

    /// Replaces the allow and deny lists atomically; returns (allow, deny) counts.
    /// On any bad entry nothing changes and the error names that entry.
    pub fn replace(&self, update: &PolicyUpdate) -> Result<(usize, usize), String> {
        let parse = |key: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(i, s)| Entry::parse(s).map_err(|m| format!("{key}[{i}] = {s:?}: {m}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let allow = parse("allow", &update.allow)?;
        let deny = parse("deny", &update.deny)?;
        let counts = (allow.len(), deny.len());
        let mut lists = self.lists.write().expect("policy lock poisoned");
        lists.allow = allow;
        lists.deny = deny;
        lists.replaced = Some(update.clone());
        Ok(counts)
    }

    /// Adds a temporary allow entry for an approved access request; a second
    /// grant with the same id replaces the first. Deny entries still win.
    pub fn grant(&self, id: &str, host: &str, port: Option<u16>, expires: Option<Instant>) -> Result<(), String> {
        let entry = Entry::with_port(host, port).map_err(|m| format!("grant {id}: {host:?}: {m}"))?;
        let mut lists = self.lists.write().expect("policy lock poisoned");
        let now = Instant::now();
        lists.grants.retain(|g| g.id != id && g.live(now));
        lists.grants.push(Grant { id: id.to_string(), entry, expires });
        Ok(())
    }

    /// Removes a grant; returns whether it existed.
    pub fn revoke(&self, id: &str) -> bool {
        let mut lists = self.lists.write().expect("policy lock poisoned");
        let before = lists.grants.len();
        lists.grants.retain(|g| g.id != id);
        lists.grants.len() != before
    }

    /// What a restart must get back: the host's lists (if it replaced them) and the live grants.
    pub fn saved(&self) -> (Option<PolicyUpdate>, Vec<SavedGrant>) {
        let lists = self.lists.read().expect("policy lock poisoned");
        let now = Instant::now();
        let grants = lists
            .grants
            .iter()
            .filter(|g| g.live(now))
            .map(|g| SavedGrant::new(&g.id, &g.entry.text, g.expires))
            .collect();
        (lists.replaced.clone(), grants)
    }

    /// Puts back a grant a previous start saved; an expired one stays gone.
    pub fn restore_grant(&self, g: &SavedGrant) -> Result<(), String> {
        let Some(expires) = g.expires() else { return Ok(()) };
        let entry = Entry::parse(&g.entry).map_err(|m| format!("grant {}: {:?}: {m}", g.id, g.entry))?;
        self.lists.write().expect("policy lock poisoned").grants.push(Grant { id: g.id.clone(), entry, expires });
        Ok(())
    }

    /// The current (allow, deny) entries as written, live grants included in allow.
    pub fn entries(&self) -> (Vec<String>, Vec<String>) {
        let lists = self.lists.read().expect("policy lock poisoned");
        let now = Instant::now();
        let allow = lists
            .allow
            .iter()
            .chain(lists.grants.iter().filter(|g| g.live(now)).map(|g| &g.entry))
            .map(|e| e.text.clone())
            .collect();
        (allow, lists.deny.iter().map(|e| e.text.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HEAD: &str = "bottle = \"b\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\n[control]\ntoken_file = \"/t\"\n";

    fn store(allow: &[&str], deny: &[&str]) -> PolicyStore {
        let s = PolicyStore::from_config(Path::new("b.toml"), "", &PolicyConfig::default()).unwrap();
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        s.replace(&PolicyUpdate { allow: owned(allow), deny: owned(deny) }).unwrap();
        s
    }

    #[test]
    fn deny_wins_and_ip_literals_need_a_cidr() {
        let s = store(&["*.example.com", "api.example.com", "10.0.0.0/8"], &["evil.example.com", "10.9.0.0/16"]);
        assert_eq!(s.decide("api.example.com", 443), Verdict::Allow);
        assert_eq!(s.decide("Evil.Example.com.", 443), deny(rules::DENIED));
        assert_eq!(s.decide("example.com", 443), deny(rules::NOT_ALLOWED));
        assert_eq!(s.decide("10.1.1.1", 80), Verdict::Allow);
        assert_eq!(s.decide("10.9.1.1", 80), deny(rules::DENIED));
        assert_eq!(s.decide("192.168.1.1", 80), deny(rules::IP_LITERAL));
        assert_eq!(s.decide("2130706433", 80), deny(rules::ODD_HOST));
    }

    #[test]
    fn grants_add_expire_and_revoke() {
        let s = store(&[], &["blocked.test"]);
        s.grant("r1", "new.test", Some(443), None).unwrap();
        assert_eq!(s.decide("new.test", 443), Verdict::Allow);
        assert_eq!(s.decide("new.test", 80), deny(rules::NOT_ALLOWED));
        s.grant("r2", "blocked.test", None, None).unwrap();
        assert_eq!(s.decide("blocked.test", 1), deny(rules::DENIED), "deny beats grants too");
        s.grant("r3", "old.test", None, Some(Instant::now() - Duration::from_secs(1))).unwrap();
        assert_eq!(s.decide("old.test", 1), deny(rules::NOT_ALLOWED));
        assert_eq!(s.entries().0, vec!["new.test:443", "blocked.test"]);
        // A replace keeps grants.
        s.replace(&PolicyUpdate { allow: vec!["a.test".into()], deny: vec![] }).unwrap();
        assert_eq!(s.decide("new.test", 443), Verdict::Allow);
        assert!(s.revoke("r1"));
        assert!(!s.revoke("r1"));
        assert_eq!(s.decide("new.test", 443), deny(rules::NOT_ALLOWED));
    }

    #[test]
    fn a_bare_name_allows_the_web_ports_only() {
        let s = store(&["a.test", "b.test:2222"], &[]);
        assert_eq!(s.decide("a.test", 443), Verdict::Allow);
        assert_eq!(s.decide("a.test", 80), Verdict::Allow);
        assert_eq!(s.decide("a.test", 22), deny(rules::NOT_ALLOWED));
        assert_eq!(s.decide("b.test", 2222), Verdict::Allow);
        assert_eq!(s.decide("b.test", 443), deny(rules::NOT_ALLOWED));
    }

    #[test]
    fn bad_replace_changes_nothing() {
        let s = store(&["a.test"], &[]);
        let e = s.replace(&PolicyUpdate { allow: vec!["b.test".into(), "x:0".into()], deny: vec![] }).unwrap_err();
        assert!(e.starts_with("allow[1] = \"x:0\""), "{e}");
        assert_eq!(s.decide("a.test", 443), Verdict::Allow);
    }

    #[test]
    fn config_errors_name_key_value_and_position() {
        let text = format!("{HEAD}[policy]\nallow = [\"ok.test\", \"*bad\"]\n");
        let cfg = bottle_protocol::BundleConfig::parse(Path::new("b.toml"), &text).unwrap();
        let e = PolicyStore::from_config(Path::new("b.toml"), &text, &cfg.policy).err().unwrap();
        assert_eq!((e.key.as_str(), e.value.as_str()), ("policy.allow", "*bad"));
        assert_eq!((e.position.line, e.position.col), (8, 21));
    }
}
