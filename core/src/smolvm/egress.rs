//! smolvm's record of blocked egress, turned into bottle events.
//!
//! `machine egress-events` (smolvm 1.8.1+) returns the newest N denials every
//! time it is asked, and a guest retrying a blocked connection produces a line
//! per retry. A poller therefore sees the same denial many times; the tracker
//! reports each (operation, destination) once per [`RETRY_WINDOW`], so the event
//! stream shows what was blocked rather than how often a TCP stack retried.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use bottle_protocol::{Event, EventKind};
use serde::Deserialize;

/// The rule id every VMM-level denial carries (the proxy's rules have their own).
pub const VMM_EGRESS_RULE: &str = "vmm:egress-policy";
/// The `id` of every VMM-level event (bundle event ids start at 1).
pub const VMM_EVENT_ID: u64 = 0;
/// Denials of the same destination closer together than this are one attempt.
pub const RETRY_WINDOW: Duration = Duration::from_secs(30);

/// One line of smolvm's egress-denial log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct EgressDenial {
    /// RFC 3339 UTC, second resolution.
    pub timestamp: String,
    /// `connect` (TCP), `sendto` (UDP) or `resolve` (a DNS name).
    pub operation: String,
    /// `ip:port`, or a hostname for `resolve`.
    pub dest: String,
}

impl EgressDenial {
    /// As an event of `bottle`'s stream. Its `id` is [`VMM_EVENT_ID`]: the bundle numbers
    /// its own events, and a VMM denial has no place in that sequence.
    pub fn to_event(&self, bottle: &str, machine: &str) -> Event {
        Event {
            id: VMM_EVENT_ID,
            time: self.timestamp.clone(),
            bottle: bottle.to_owned(),
            kind: self.to_event_kind(machine),
        }
    }

    pub fn to_event_kind(&self, machine: &str) -> EventKind {
        EventKind::EgressBlocked {
            client: format!("smolvm:{machine}"),
            // Not an HTTP method: the VMM saw a raw socket call, and says which.
            method: self.operation.clone(),
            target: self.dest.clone(),
            rule: VMM_EGRESS_RULE.to_owned(),
            request_id: format!("vmm-{}-{}-{}", self.timestamp, self.operation, self.dest),
            access_request: None,
            count: 1,
        }
    }
}

pub fn parse_events(json: &str) -> Result<Vec<EgressDenial>, String> {
    serde_json::from_str(json).map_err(|e| format!("smolvm machine egress-events --json: unexpected output: {e}"))
}

/// Remembers what earlier polls already reported.
#[derive(Debug, Default)]
pub struct EgressTracker {
    /// Exact lines of the previous poll; a poll only ever returns the newest N,
    /// so nothing older can come back and this stays bounded by N.
    seen: HashSet<EgressDenial>,
    /// When each (operation, dest) was last reported.
    last_reported: HashMap<(String, String), SystemTime>,
}

impl EgressTracker {
    /// The denials in `poll` (oldest first, as smolvm lists them) not reported before.
    pub fn fresh(&mut self, poll: Vec<EgressDenial>) -> Vec<EgressDenial> {
        let mut out = Vec::new();
        for d in &poll {
            if self.seen.contains(d) {
                continue;
            }
            let key = (d.operation.clone(), d.dest.clone());
            let at = humantime::parse_rfc3339(&d.timestamp).ok();
            let retry = match (at, self.last_reported.get(&key)) {
                (Some(at), Some(prev)) => at.duration_since(*prev).is_ok_and(|gap| gap < RETRY_WINDOW),
                _ => false,
            };
            if !retry {
                if let Some(at) = at {
                    self.last_reported.insert(key, at);
                }
                out.push(d.clone());
            }
        }
        self.seen = poll.into_iter().collect();
        let horizon = self.last_reported.values().max().copied();
        if let Some(newest) = horizon {
            self.last_reported.retain(|_, at| newest.duration_since(*at).is_ok_and(|gap| gap < RETRY_WINDOW));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ts: &str, op: &str, dest: &str) -> EgressDenial {
        EgressDenial { timestamp: ts.into(), operation: op.into(), dest: dest.into() }
    }

    #[test]
    fn parses_the_1_8_1_shape() {
        let json = r#"[{"timestamp":"2026-08-13T02:31:05Z","operation":"connect","dest":"1.2.3.4:443"}]"#;
        assert_eq!(parse_events(json).unwrap(), vec![d("2026-08-13T02:31:05Z", "connect", "1.2.3.4:443")]);
        assert!(parse_events("No egress denials recorded for 'a'.").is_err());
    }

    #[test]
    fn repeats_across_polls_and_retries_are_reported_once() {
        let mut t = EgressTracker::default();
        let a = d("2026-08-13T02:31:05Z", "connect", "1.2.3.4:443");
        let a_retry = d("2026-08-13T02:31:07Z", "connect", "1.2.3.4:443");
        let b = d("2026-08-13T02:31:08Z", "sendto", "9.9.9.9:123");
        assert_eq!(t.fresh(vec![a.clone()]), vec![a.clone()]);
        assert_eq!(t.fresh(vec![a.clone(), a_retry.clone(), b.clone()]), vec![b.clone()]);
        assert!(t.fresh(vec![a.clone(), a_retry, b.clone()]).is_empty());
        let later = d("2026-08-13T02:40:00Z", "connect", "1.2.3.4:443");
        assert_eq!(t.fresh(vec![b, later.clone()]), vec![later]);
    }

    #[test]
    fn maps_to_an_egress_blocked_event() {
        let k = d("2026-08-13T02:31:05Z", "connect", "1.2.3.4:443").to_event_kind("bottle-x");
        match k {
            EventKind::EgressBlocked { rule, target, method, client, .. } => {
                assert_eq!(rule, "vmm:egress-policy");
                assert_eq!(target, "1.2.3.4:443");
                assert_eq!(method, "connect");
                assert_eq!(client, "smolvm:bottle-x");
            }
            other => panic!("{other:?}"),
        }
    }
}
