//! When the app notifies, and what the notification says.
//!
//! Decided here so the rule is tested once and every front end says the same
//! thing: the app posts exactly the [`BottleNotification`]s this policy returns. Two
//! things notify, a blocked egress request and an agent that needs input, and
//! each is coalesced to one notification per destination per bottle per
//! [`COALESCE_WINDOW`], so an agent retrying a blocked host in a loop raises one
//! banner a minute, not hundreds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bottle_protocol::event::{AgentState, Event, EventKind};

/// At most one notification per (bottle, destination) within this window.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(60);
/// Bound on remembered (bottle, destination) pairs; older ones are dropped first.
pub const MAX_TRACKED: usize = 4096;
/// The coalescing key of "the agent needs input" (it has no network destination).
const NEEDS_INPUT_KEY: &str = "agent:needs-input";

/// What the app posts, word for word.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BottleNotification {
    /// Stable per bottle and destination, so a newer banner replaces an older one.
    pub id: String,
    pub bottle: String,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct NotificationPolicy {
    last: Mutex<HashMap<(String, String), Instant>>,
}

impl NotificationPolicy {
    /// The notification `event` calls for at `now`, or `None` (not notable, or coalesced).
    pub fn decide(&self, event: &Event, now: Instant) -> Option<BottleNotification> {
        let (dest, title, body) = match &event.kind {
            EventKind::EgressBlocked { method, target, rule, .. } => (
                target.clone(),
                format!("{}: connection blocked", event.bottle),
                format!("{method} {target} was refused ({rule}). Approve it from the menu if the agent needs it."),
            ),
            EventKind::AgentState { state: AgentState::NeedsInput, message } => (
                NEEDS_INPUT_KEY.to_string(),
                format!("{}: the agent needs you", event.bottle),
                if message.is_empty() { "The agent is waiting for your input.".to_string() } else { message.clone() },
            ),
            _ => return None,
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let key = (event.bottle.clone(), dest);
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
        let id = format!("{}/{}", key.0, key.1);
        last.insert(key, now);
        Some(BottleNotification { id, bottle: event.bottle.clone(), title, body })
    }
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
            "CONNECT evil.test:443 was refused (not-allowlisted). Approve it from the menu if the agent needs it."
        );
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
