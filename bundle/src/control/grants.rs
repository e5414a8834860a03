//! The host's view and edits of the live allowlist: `GET /v1/policy`, the decision
//! query and host-given grants.
//!
//! A host grant is an allow entry with an optional end, kept beside the grants of
//! approved access requests and saved with them, so it survives a bundle restart.
//! Its id is [`HOST_GRANT_PREFIX`] + its entry, so allowing the same entry again
//! replaces the grant (and its end) instead of stacking a second one. Decisions are
//! the policy store's own (`PolicyStore::explain`), with the kill switch ahead of
//! them as in the proxy, so `policy check` answers what the proxy would do now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bottle_protocol::EventKind;
use bottle_protocol::control::{
    GrantAdd, GrantRevoke, GrantView, HOST_GRANT_PREFIX, PolicyCheck, PolicyQuery, PolicyView,
};
use bottle_protocol::policy::Entry;
use bottle_protocol::rule;
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;

use super::reply::{self, Body};
use crate::policy::Verdict;
use crate::state::Bundle;

pub fn view(bundle: &Bundle) -> Response<Body> {
    let (allow, deny) = bundle.policy.lists();
    let view = PolicyView {
        bottle: bundle.config.bottle.clone(),
        allow,
        deny,
        grants: bundle.policy.grants(),
        kill_switch: bundle.kill.engaged(),
    };
    reply::json(StatusCode::OK, &view)
}

pub fn list(bundle: &Bundle) -> Response<Body> {
    reply::json(StatusCode::OK, &bundle.policy.grants())
}

pub fn check(bundle: &Bundle, body: &[u8]) -> Response<Body> {
    let q: PolicyQuery = match parse("policy check", body) {
        Ok(q) => q,
        Err(m) => return reply::error(StatusCode::BAD_REQUEST, m),
    };
    let reply = if bundle.kill.engaged() {
        PolicyCheck {
            host: q.host,
            port: q.port,
            allowed: false,
            rule: rule::KILL_SWITCH.into(),
            entry: None,
            grant: None,
        }
    } else {
        let d = bundle.policy.explain(&q.host, q.port);
        let rule = match (&d.verdict, &d.grant) {
            (Verdict::Allow, Some(_)) => rule::GRANT.to_string(),
            (Verdict::Allow, None) => rule::ALLOW.to_string(),
            (Verdict::Deny { rule }, _) => rule.clone(),
        };
        PolicyCheck {
            host: q.host,
            port: q.port,
            allowed: d.verdict == Verdict::Allow,
            rule,
            entry: d.entry,
            grant: d.grant,
        }
    };
    reply::json(StatusCode::OK, &reply)
}

pub fn add(bundle: &Arc<Bundle>, body: &[u8]) -> Response<Body> {
    let parsed = parse("grant", body)
        .and_then(|a: GrantAdd| Ok((destination("grant", &a.host, a.port)?, a)))
        .and_then(|(d, a)| Ok((d, crate::supervise::checked_ttl("grant", a.ttl_secs)?, a)));
    let ((host, entry), ttl, add) = match parsed {
        Ok(p) => p,
        Err(m) => return reply::error(StatusCode::BAD_REQUEST, m),
    };
    let id = format!("{HOST_GRANT_PREFIX}{}", entry.text);
    let deadline = ttl.map(|t| Instant::now() + Duration::from_secs(t));
    let view = bundle.policy.add_grant(&id, entry, deadline);
    bundle.events.emit(EventKind::AccessDecided {
        request_id: id.clone(),
        host,
        port: add.port,
        approved: true,
        ttl_secs: ttl,
    });
    if let Err(e) = bundle.save_state() {
        return not_saved(&format!("grant {}", view.entry), &e);
    }
    if let Some(deadline) = deadline {
        end_at(bundle, id, deadline);
    }
    reply::json(StatusCode::OK, &view)
}

pub fn revoke(bundle: &Bundle, body: &[u8]) -> Response<Body> {
    let parsed = parse("revoke", body).and_then(|r: GrantRevoke| Ok((destination("revoke", &r.host, r.port)?, r)));
    let ((_, target), r) = match parsed {
        Ok(p) => p,
        Err(m) => return reply::error(StatusCode::BAD_REQUEST, m),
    };
    let removed = bundle.policy.revoke_matching(&target, r.port.is_none());
    if removed.is_empty() {
        let (allow, _) = bundle.policy.lists();
        let why = if allow.iter().any(|a| Entry::parse(a).is_ok_and(|e| e.same_host(&target))) {
            "it is in the policy's allow list, not a grant; change the policy to remove it"
        } else {
            "see `bottle-core policy` for the live grants"
        };
        return reply::error(StatusCode::NOT_FOUND, format!("revoke: no live grant for {}: {why}", target.text));
    }
    for g in &removed {
        ended(bundle, g);
    }
    if let Err(e) = bundle.save_state() {
        return not_saved(&format!("revoke {}", target.text), &e);
    }
    reply::json(StatusCode::OK, &removed)
}

/// Marks a grant's end: an access request's grant ends through the desk (so the agent
/// reads `expired`); either way the host's stream gets `AccessExpired`.
fn ended(bundle: &Bundle, g: &GrantView) {
    let from_desk = !g.id.starts_with(HOST_GRANT_PREFIX) && bundle.desk.expire(&bundle.events, &bundle.policy, &g.id);
    if !from_desk {
        let (host, port) = split_entry(&g.entry);
        bundle.events.emit(EventKind::AccessExpired { request_id: g.id.clone(), host, port });
    }
}

/// A grant entry's host and port, as `AccessExpired` names them.
fn split_entry(entry: &str) -> (String, Option<u16>) {
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse() {
            Ok(port) => (h.trim_matches(['[', ']']).to_string(), Some(port)),
            Err(_) => (entry.to_string(), None),
        },
        _ => (entry.to_string(), None),
    }
}

/// Ends a host grant at its deadline. A later `allow` of the same entry replaces the
/// grant; the timer then finds it still live and leaves it to that grant's own timer.
fn end_at(bundle: &Arc<Bundle>, id: String, deadline: Instant) {
    let bundle = bundle.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        if let Some(g) = bundle.policy.remove_if_ended(&id) {
            ended(&bundle, &g);
            // Not saving only leaves an ended grant on file, which a restart drops by its deadline.
            if let Err(e) = bundle.save_state() {
                tracing::warn!(grant = %id, "control: grant expiry not saved: {e:#}");
            }
        }
    });
}

/// The host, lowercased, and the entry a grant of it (with `port`) is.
fn destination(verb: &str, raw: &str, port: Option<u16>) -> Result<(String, Entry), String> {
    let host = raw.trim().to_ascii_lowercase();
    let entry = Entry::with_port(&host, port).map_err(|m| format!("{verb}: host {raw:?}: {m}"))?;
    Ok((host, entry))
}

fn parse<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("{what}: body is not valid: {e}"))
}

fn not_saved(change: &str, e: &anyhow::Error) -> Response<Body> {
    reply::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("control: {change} made in this process but not saved, so a restart would undo it: {e:#}"),
    )
}

#[cfg(test)]
mod tests {
    use super::split_entry;

    #[test]
    fn grant_entries_split_into_host_and_port() {
        assert_eq!(split_entry("a.test:443"), ("a.test".into(), Some(443)));
        assert_eq!(split_entry("a.test"), ("a.test".into(), None));
        assert_eq!(split_entry("[2001:db8::1]:443"), ("2001:db8::1".into(), Some(443)));
        assert_eq!(split_entry("2001:db8::1"), ("2001:db8::1".into(), None));
    }
}
