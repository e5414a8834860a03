//! When the app notifies, and what the notification says.
//!
//! Decided here so the rule is tested once and every front end says the same
//! thing: the app posts exactly the [`BottleNotification`]s this policy returns. Three
//! things notify: a blocked egress request, an access request from the agent (with
//! Approve and Deny actions), and an agent that needs input. Each is coalesced to
//! one notification per destination per bottle per [`COALESCE_WINDOW`], so an agent
//! retrying a blocked host in a loop raises one banner a minute, not hundreds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bottle_protocol::display::escape_controls;
use bottle_protocol::event::{AgentState, Event, EventKind};

/// At most one notification per (bottle, destination) within this window.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(60);
/// Bound on remembered (bottle, destination) pairs; older ones are dropped first.
pub const MAX_TRACKED: usize = 4096;
/// The coalescing key of "the agent needs input" (it has no network destination).
const NEEDS_INPUT_KEY: &str = "agent:needs-input";
/// The notification category that carries Approve and Deny; the app registers it under this id.
pub const ACCESS_REQUEST_CATEGORY: &str = "dev.bottle.access-request";

/// What the app posts, word for word.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BottleNotification {
    /// Stable per bottle and destination, so a newer banner replaces an older one.
    pub id: String,
    pub bottle: String,
    pub title: String,
    pub body: String,
    /// [`ACCESS_REQUEST_CATEGORY`] when the banner offers Approve and Deny; `None` otherwise.
    pub category: Option<String>,
    /// The access request those actions decide.
    pub request_id: Option<String>,
}

/// The category id the app registers its Approve/Deny actions under.
#[uniffi::export]
pub fn access_request_category() -> String {
    ACCESS_REQUEST_CATEGORY.to_string()
}

#[derive(Debug, Default)]
pub struct NotificationPolicy {
    last: Mutex<HashMap<(String, String), Instant>>,
}

/// What one notable event says, before coalescing.
struct Draft {
    key: String,
    title: String,
    body: String,
    request_id: Option<String>,
}

impl NotificationPolicy {
    /// The notification `event` calls for at `now`, or `None` (not notable, or coalesced).
    pub fn decide(&self, event: &Event, now: Instant) -> Option<BottleNotification> {
        let draft = draft(event)?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let key = (event.bottle.clone(), draft.key);
        if last.get(&key).is_some_and(|t| now.saturating_duration_since(*t) < COALESCE_WINDOW) {
            return None;
        }
        if last.len() >= MAX_TRACKED {
            last.retain(|_, t| now.saturating_duration_since(*t) < COALESCE_WINDOW);
            if last.len() >= MAX_TRACKED
                && let Some(oldest) = last.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                last.remove(&oldest);
            }
        }
        let id = escape_controls(&format!("{}/{}", key.0, key.1));
        last.insert(key, now);
        Some(BottleNotification {
            id,
            bottle: escape_controls(&event.bottle),
            title: draft.title,
            body: draft.body,
            category: draft.request_id.as_ref().map(|_| ACCESS_REQUEST_CATEGORY.to_string()),
            request_id: draft.request_id,
        })
    }
}

/// The wording of a notable event. Hosts, reasons and messages are partly the agent's, so
/// they are escaped; a command is suggested only for a host that is safe to paste into a shell.
fn draft(event: &Event) -> Option<Draft> {
    let e = |s: &str| escape_controls(s);
    let bottle = e(&event.bottle);
    Some(match &event.kind {
        EventKind::EgressBlocked { method, target, rule, .. } => {
            let todo = if is_plain_host(target) && is_plain_host(&event.bottle) {
                format!(
                    "To let it through, approve its request in the bottle menu, or run: bottle-core allow {bottle} {target}"
                )
            } else {
                "To let it through, approve its request in the bottle menu.".to_string()
            };
            Draft {
                key: target.clone(),
                title: format!("{bottle}: connection blocked"),
                body: format!("{} {} was refused ({}). {todo}", e(method), e(target), e(rule)),
                request_id: None,
            }
        }
        EventKind::AccessRequested { request_id, host, port, reason } => {
            let dest = port.map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
            let why = if reason.is_empty() { "No reason given.".to_string() } else { e(reason) };
            Draft {
                key: format!("access:{dest}"),
                title: format!("{bottle}: the agent asks to reach {}", e(&dest)),
                body: format!("{why}\nApprove or Deny here, or in the bottle menu."),
                request_id: Some(e(request_id)),
            }
        }
        EventKind::AgentState { state: AgentState::NeedsInput, message } => Draft {
            key: NEEDS_INPUT_KEY.to_string(),
            title: format!("{bottle}: the agent needs you"),
            body: if message.is_empty() { "The agent is waiting for your input.".to_string() } else { e(message) },
            request_id: None,
        },
        _ => return None,
    })
}

/// `host[:port]` made only of letters, digits, `.`, `-`, `_` and `:` (the characters of a
/// DNS name, an IPv4 address and a port).
fn is_plain_host(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(bottle: &str, target: &str) -> Event {
        Event {
            id: 1,
            time: "2026-01-01T00:00:00Z".into(),
            bottle: bottle.into(),
            kind: EventKind::EgressBlocked {
                client: "10.0.0.2:5555".into(),
                method: "CONNECT".into(),
                target: target.into(),
                rule: "not-allowlisted".into(),
                request_id: "r1".into(),
                access_request: None,
                count: 1,
            },
        }
    }

    fn agent(bottle: &str, state: AgentState, message: &str) -> Event {
        Event {
            id: 2,
            time: "2026-01-01T00:00:00Z".into(),
            bottle: bottle.into(),
            kind: EventKind::AgentState { state, message: message.into() },
        }
    }

    #[test]
    fn blocked_egress_is_worded_by_rust() {
        let n = NotificationPolicy::default().decide(&blocked("demo", "evil.test:443"), Instant::now()).unwrap();
        assert_eq!(n.id, "demo/evil.test:443");
        assert_eq!(n.title, "demo: connection blocked");
        assert_eq!(
            n.body,
            "CONNECT evil.test:443 was refused (not-allowlisted). To let it through, approve its request \
             in the bottle menu, or run: bottle-core allow demo evil.test:443"
        );
        assert_eq!((n.category, n.request_id), (None, None), "a block has no request to decide");
    }

    #[test]
    fn a_host_that_is_not_plain_is_not_offered_as_a_command() {
        let n = NotificationPolicy::default().decide(&blocked("demo", "x.test;rm -rf ~:443"), Instant::now()).unwrap();
        assert!(!n.body.contains("bottle-core"), "{}", n.body);
        assert!(n.body.ends_with("approve its request in the bottle menu."), "{}", n.body);
    }

    fn requested(bottle: &str, id: &str, host: &str, reason: &str) -> Event {
        Event {
            id: 3,
            time: "2026-01-01T00:00:00Z".into(),
            bottle: bottle.into(),
            kind: EventKind::AccessRequested {
                request_id: id.into(),
                host: host.into(),
                port: Some(443),
                reason: reason.into(),
            },
        }
    }

    #[test]
    fn an_access_request_carries_approve_and_deny_for_its_id() {
        let p = NotificationPolicy::default();
        let t0 = Instant::now();
        let n = p.decide(&requested("demo", "req-1", "pypi.org", "pip install needs it"), t0).unwrap();
        assert_eq!(n.title, "demo: the agent asks to reach pypi.org:443");
        assert_eq!(n.body, "pip install needs it\nApprove or Deny here, or in the bottle menu.");
        assert_eq!(n.category.as_deref(), Some(ACCESS_REQUEST_CATEGORY));
        assert_eq!(n.request_id.as_deref(), Some("req-1"));
        assert_eq!(n.id, "demo/access:pypi.org:443");
        assert!(p.decide(&requested("demo", "req-2", "pypi.org", ""), t0 + Duration::from_secs(5)).is_none());
        let other = p.decide(&requested("demo", "req-3", "crates.io", ""), t0).unwrap();
        assert!(other.body.starts_with("No reason given."), "{}", other.body);
    }

    #[test]
    fn an_agents_reason_reaches_the_banner_escaped() {
        let n = NotificationPolicy::default()
            .decide(&requested("demo", "r\x1b1", "h.test", "line1\n#2 forged\x1b[2K"), Instant::now())
            .unwrap();
        assert!(!n.body.starts_with("line1\n"), "{}", n.body);
        assert!(!n.body.contains('\x1b') && !n.request_id.unwrap().contains('\x1b'));
    }

    #[test]
    fn one_per_destination_per_bottle_per_minute() {
        let p = NotificationPolicy::default();
        let t0 = Instant::now();
        assert!(p.decide(&blocked("a", "x.test:443"), t0).is_some());
        assert!(p.decide(&blocked("a", "x.test:443"), t0 + Duration::from_secs(59)).is_none());
        assert!(p.decide(&blocked("a", "y.test:443"), t0 + Duration::from_secs(1)).is_some(), "other destination");
        assert!(p.decide(&blocked("b", "x.test:443"), t0 + Duration::from_secs(1)).is_some(), "other bottle");
        assert!(p.decide(&blocked("a", "x.test:443"), t0 + COALESCE_WINDOW).is_some(), "window over");
    }

    #[test]
    fn needs_input_notifies_and_coalesces_but_other_states_do_not() {
        let p = NotificationPolicy::default();
        let t0 = Instant::now();
        assert!(p.decide(&agent("a", AgentState::Working, ""), t0).is_none());
        assert!(p.decide(&agent("a", AgentState::Done, ""), t0).is_none());
        let n = p.decide(&agent("a", AgentState::NeedsInput, "which branch?"), t0).unwrap();
        assert_eq!((n.title.as_str(), n.body.as_str()), ("a: the agent needs you", "which branch?"));
        assert!(p.decide(&agent("a", AgentState::NeedsInput, "again"), t0 + Duration::from_secs(30)).is_none());
        let n = p.decide(&agent("b", AgentState::NeedsInput, ""), t0).unwrap();
        assert_eq!(n.body, "The agent is waiting for your input.");
    }

    #[test]
    fn other_events_never_notify() {
        let p = NotificationPolicy::default();
        let ev = Event { kind: EventKind::KillSwitch { engaged: true }, ..blocked("a", "x.test:1") };
        assert!(p.decide(&ev, Instant::now()).is_none());
    }

    #[test]
    fn memory_stays_bounded() {
        let p = NotificationPolicy::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            assert!(p.decide(&blocked("a", &format!("h{i}.test:443")), t0).is_some());
        }
        assert!(p.last.lock().unwrap().len() <= MAX_TRACKED);
    }
}
