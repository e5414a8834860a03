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
use std::time::{Instant, SystemTime};

use bottle_protocol::config::{ConfigError, PolicyConfig};
use bottle_protocol::control::{GrantSource, GrantView, HOST_GRANT_PREFIX, PolicyUpdate};
use bottle_protocol::rule;

use crate::persist::SavedGrant;

pub use bottle_protocol::policy::{Entry, Host};

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

    fn view(&self, now: Instant) -> GrantView {
        let left = self.expires.map(|e| e.saturating_duration_since(now));
        GrantView {
            id: self.id.clone(),
            entry: self.entry.text.clone(),
            source: if self.id.starts_with(HOST_GRANT_PREFIX) { GrantSource::Host } else { GrantSource::AccessRequest },
            expires_at: left.map(|l| humantime::format_rfc3339_seconds(SystemTime::now() + l).to_string()),
            expires_in_secs: left.map(|l| l.as_millis().div_ceil(1000) as u64),
        }
    }
}

/// What matched a destination, in the order the lists are consulted: deny wins, then
/// the allow list, then live grants.
enum Matched<'a> {
    Deny(&'a Entry),
    Allow(&'a Entry),
    Grant(&'a Grant),
    Nothing,
}

impl Lists {
    fn matched(&self, host: &Host, port: u16, now: Instant) -> Matched<'_> {
        if let Some(e) = self.deny.iter().find(|e| e.denies(host, port)) {
            return Matched::Deny(e);
        }
        if let Some(e) = self.allow.iter().find(|e| e.allows(host, port)) {
            return Matched::Allow(e);
        }
        match self.grants.iter().find(|g| g.live(now) && g.entry.allows(host, port)) {
            Some(g) => Matched::Grant(g),
            None => Matched::Nothing,
        }
    }
}

impl Matched<'_> {
    fn verdict(&self, host: &Host) -> Verdict {
        match (self, host) {
            (Matched::Deny(_), _) => deny(rule::DENIED),
            (Matched::Allow(_) | Matched::Grant(_), _) => Verdict::Allow,
            (Matched::Nothing, Host::Ip(_)) => deny(rule::IP_LITERAL),
            (Matched::Nothing, Host::Name(_)) => deny(rule::NOT_ALLOWED),
        }
    }
}

/// A verdict with what decided it (see [`PolicyStore::explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The deny, allow or grant entry that matched, as written.
    pub entry: Option<String>,
    pub grant: Option<GrantView>,
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
            Err(_) => deny(rule::ODD_HOST),
        }
    }

    /// [`Self::decide`] for a host the caller has already normalized.
    pub fn decide_host(&self, host: &Host, port: u16) -> Verdict {
        let lists = self.lists.read().expect("policy lock poisoned");
        lists.matched(host, port, Instant::now()).verdict(host)
    }

    /// The verdict [`Self::decide`] gives, with the entry or grant that decided it: the
    /// same matching, so `policy check` cannot disagree with the proxy.
    pub fn explain(&self, host: &str, port: u16) -> Decision {
        let Ok(host) = Host::parse(host) else {
            return Decision { verdict: deny(rule::ODD_HOST), entry: None, grant: None };
        };
        let lists = self.lists.read().expect("policy lock poisoned");
        let now = Instant::now();
        let matched = lists.matched(&host, port, now);
        let verdict = matched.verdict(&host);
        match matched {
            Matched::Deny(e) | Matched::Allow(e) => Decision { verdict, entry: Some(e.text.clone()), grant: None },
            Matched::Grant(g) => Decision { verdict, entry: Some(g.entry.text.clone()), grant: Some(g.view(now)) },
            Matched::Nothing => Decision { verdict, entry: None, grant: None },
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
        self.add_grant(id, entry, expires);
        Ok(())
    }

    /// [`Self::grant`] for an entry already parsed; returns the grant as listed.
    pub fn add_grant(&self, id: &str, entry: Entry, expires: Option<Instant>) -> GrantView {
        let mut lists = self.lists.write().expect("policy lock poisoned");
        let now = Instant::now();
        lists.grants.retain(|g| g.id != id && g.live(now));
        let grant = Grant { id: id.to_string(), entry, expires };
        let view = grant.view(now);
        lists.grants.push(grant);
        view
    }

    /// Removes the live grants for `target`: for exactly its entry, or with `any_port`
    /// for its host whatever their ports. Returns what was removed.
    pub fn revoke_matching(&self, target: &Entry, any_port: bool) -> Vec<GrantView> {
        let mut lists = self.lists.write().expect("policy lock poisoned");
        let now = Instant::now();
        let hit = |g: &Grant| g.entry.same_host(target) && (any_port || g.entry.port() == target.port());
        let removed = lists.grants.iter().filter(|g| g.live(now) && hit(g)).map(|g| g.view(now)).collect();
        lists.grants.retain(|g| g.live(now) && !hit(g));
        removed
    }

    /// Removes grant `id` if it has ended (a later grant under the same id may have
    /// replaced it, and stays); returns what was removed.
    pub fn remove_if_ended(&self, id: &str) -> Option<GrantView> {
        let mut lists = self.lists.write().expect("policy lock poisoned");
        let now = Instant::now();
        let i = lists.grants.iter().position(|g| g.id == id && !g.live(now))?;
        Some(lists.grants.remove(i).view(now))
    }

    /// The live grants, oldest first.
    pub fn grants(&self) -> Vec<GrantView> {
        let lists = self.lists.read().expect("policy lock poisoned");
        let now = Instant::now();
        lists.grants.iter().filter(|g| g.live(now)).map(|g| g.view(now)).collect()
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

    /// The policy's own (allow, deny) entries as written, without grants.
    pub fn lists(&self) -> (Vec<String>, Vec<String>) {
        let lists = self.lists.read().expect("policy lock poisoned");
        let text = |l: &[Entry]| l.iter().map(|e| e.text.clone()).collect();
        (text(&lists.allow), text(&lists.deny))
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
        assert_eq!(s.decide("Evil.Example.com.", 443), deny(rule::DENIED));
        assert_eq!(s.decide("example.com", 443), deny(rule::NOT_ALLOWED));
        assert_eq!(s.decide("10.1.1.1", 80), Verdict::Allow);
        assert_eq!(s.decide("10.9.1.1", 80), deny(rule::DENIED));
        assert_eq!(s.decide("192.168.1.1", 80), deny(rule::IP_LITERAL));
        assert_eq!(s.decide("2130706433", 80), deny(rule::ODD_HOST));
    }

    #[test]
    fn grants_add_expire_and_revoke() {
        let s = store(&[], &["blocked.test"]);
        s.grant("r1", "new.test", Some(443), None).unwrap();
        assert_eq!(s.decide("new.test", 443), Verdict::Allow);
        assert_eq!(s.decide("new.test", 80), deny(rule::NOT_ALLOWED));
        s.grant("r2", "blocked.test", None, None).unwrap();
        assert_eq!(s.decide("blocked.test", 1), deny(rule::DENIED), "deny beats grants too");
        s.grant("r3", "old.test", None, Some(Instant::now() - Duration::from_secs(1))).unwrap();
        assert_eq!(s.decide("old.test", 1), deny(rule::NOT_ALLOWED));
        assert_eq!(s.entries().0, vec!["new.test:443", "blocked.test"]);
        // A replace keeps grants.
        s.replace(&PolicyUpdate { allow: vec!["a.test".into()], deny: vec![] }).unwrap();
        assert_eq!(s.decide("new.test", 443), Verdict::Allow);
        assert!(s.revoke("r1"));
        assert!(!s.revoke("r1"));
        assert_eq!(s.decide("new.test", 443), deny(rule::NOT_ALLOWED));
    }

    #[test]
    fn explain_names_what_decided_and_agrees_with_decide() {
        let s = store(&["*.ok.test"], &["bad.ok.test"]);
        s.add_grant("allow:g.test:8080", Entry::parse("g.test:8080").unwrap(), None);
        let e = s.explain("a.ok.test", 443);
        assert_eq!((e.verdict, e.entry.as_deref(), e.grant), (Verdict::Allow, Some("*.ok.test"), None));
        assert_eq!(s.explain("bad.ok.test", 443).entry.as_deref(), Some("bad.ok.test"));
        let g = s.explain("g.test", 8080).grant.unwrap();
        assert_eq!((g.id.as_str(), g.source, g.expires_at), ("allow:g.test:8080", GrantSource::Host, None));
        for (host, port) in
            [("a.ok.test", 443), ("bad.ok.test", 1), ("g.test", 8080), ("g.test", 443), ("10.0.0.1", 80), ("1e", 1)]
        {
            assert_eq!(s.explain(host, port).verdict, s.decide(host, port), "{host}:{port}");
        }
    }

    #[test]
    fn revoking_by_destination_takes_one_port_or_every_port() {
        let s = store(&[], &[]);
        for (id, entry) in [("r1", "a.test:443"), ("r2", "a.test:8080"), ("allow:a.test", "a.test"), ("r3", "b.test")] {
            s.add_grant(id, Entry::parse(entry).unwrap(), None);
        }
        let ids = |v: Vec<GrantView>| v.into_iter().map(|g| g.id).collect::<Vec<_>>();
        assert_eq!(ids(s.revoke_matching(&Entry::parse("A.test:8080").unwrap(), false)), ["r2"]);
        assert_eq!(ids(s.revoke_matching(&Entry::parse("a.test").unwrap(), true)), ["r1", "allow:a.test"]);
        assert_eq!(ids(s.grants()), ["r3"]);
    }

    #[test]
    fn an_ended_grant_is_removed_but_its_renewal_stays() {
        let s = store(&[], &[]);
        let past = Some(Instant::now() - Duration::from_secs(1));
        s.add_grant("allow:a.test", Entry::parse("a.test").unwrap(), past);
        assert_eq!(s.remove_if_ended("allow:a.test").unwrap().entry, "a.test");
        s.add_grant("allow:a.test", Entry::parse("a.test").unwrap(), Some(Instant::now() + Duration::from_secs(60)));
        assert!(s.remove_if_ended("allow:a.test").is_none(), "a renewed grant outlives the first one's timer");
        assert_eq!(s.grants()[0].expires_in_secs, Some(60));
    }

    #[test]
    fn a_bare_name_allows_the_web_ports_only() {
        let s = store(&["a.test", "b.test:2222"], &[]);
        assert_eq!(s.decide("a.test", 443), Verdict::Allow);
        assert_eq!(s.decide("a.test", 80), Verdict::Allow);
        assert_eq!(s.decide("a.test", 22), deny(rule::NOT_ALLOWED));
        assert_eq!(s.decide("b.test", 2222), Verdict::Allow);
        assert_eq!(s.decide("b.test", 443), deny(rule::NOT_ALLOWED));
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
