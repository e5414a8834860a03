//! The bundle's event stream as the suite reads it: a refusal counts only with its event.

use std::time::Duration;

use bottle_protocol::{Event, EventKind};

use super::probing::{probe, seen};
use crate::verify::{Category, Finding, Suite};

/// How long the suite waits for the bundle's event after a refused request: a refusal that
/// repeats an earlier probe's (same rule and destination) is reported when the bundle's
/// coalescing window closes, at its once-a-second sweep, so the wait outlasts both.
pub(super) const EVENT_WAIT: Duration =
    Duration::from_secs(bottle_protocol::event::BLOCK_COALESCE_WINDOW.as_secs() + 3);

/// Every event after `since`.
pub(super) async fn events_since(s: &Suite, since: Option<u64>) -> anyhow::Result<Vec<Event>> {
    let mut stream = s.control.events(since, false).await?;
    let mut all = Vec::new();
    while let Some(e) = stream.next().await? {
        all.push(e);
    }
    Ok(all)
}

pub(super) async fn last_event_id(s: &Suite) -> Option<u64> {
    events_since(s, None).await.ok().and_then(|e| e.last().map(|e| e.id))
}

/// The first event after `since` that `pick` describes, polled for up to [`EVENT_WAIT`]:
/// the bundle emits an event just after it answers, so it may trail the refusal a little.
pub(super) async fn event_after(
    s: &Suite,
    since: Option<u64>,
    pick: impl Fn(EventKind) -> Option<String>,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let found = events_since(s, since).await.ok().and_then(|all| all.into_iter().find_map(|e| pick(e.kind)));
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs one request probe that must be refused and must raise an `EgressBlocked` event.
pub(super) async fn refused_with_event(s: &Suite, category: Category, name: &str, a: &[&str]) -> Finding {
    let expect = "refused, with an egress-blocked event";
    let since = last_event_id(s).await;
    let r = probe(s, a).await;
    let refused = r.as_ref().is_ok_and(|r| {
        r.http_status().is_some_and(|c| (400..500).contains(&c)) || r.outcome == "tunnel-cut" || r.outcome == "closed"
    });
    let blocked = |kind| match kind {
        EventKind::EgressBlocked { rule, target, .. } => Some(format!("event {rule} {target}")),
        _ => None,
    };
    let event = if refused { event_after(s, since, blocked).await } else { None };
    let obs = format!("{}; {}", seen(&r), event.clone().unwrap_or_else(|| "no event".into()));
    Finding::new(category, name, expect, obs, refused && event.is_some())
}
