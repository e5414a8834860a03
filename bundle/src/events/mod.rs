//! The bundle's event bus: every block, git operation and agent message is
//! recorded here once and fanned out to control-plane subscribers.
//!
//! A bounded ring keeps recent events so a host that reconnects (or a
//! restarted `bottle-core`) can replay from the last id it saw. An id is the
//! bundle's start epoch (see [`crate::persist`]) in its high 32 bits and a
//! count in its low 32, so ids keep rising across a restart of the bundle and
//! a host's `since` cursor stays valid: nothing a restarted bundle says can
//! hide behind an id the host has already seen. Refusals go
//! through [`coalesce`] first, so repeating one blocked request cannot flood it.

pub mod coalesce;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bottle_protocol::{Event, EventKind};
use tokio::sync::broadcast;

/// How many recent events are kept for replay.
pub const RING_CAPACITY: usize = 4096;
/// Per-subscriber backlog before a slow subscriber starts missing events.
pub const CHANNEL_CAPACITY: usize = 1024;
/// How often ended coalescing windows are closed (and suppressed log lines reported).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Destination and rule of an overflow follow-up, which counts refusals of many.
pub const OVERFLOW: &str = "*";

/// What makes two refusals repeats of each other: source address, rule, destination.
pub type BlockKey = (IpAddr, String, String);

pub struct EventBus {
    bottle: String,
    epoch: u32,
    next_id: AtomicU64,
    ring: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
    blocks: Mutex<coalesce::Coalescer<BlockKey, EventKind>>,
}

impl EventBus {
    /// The bus of the start with `epoch`.
    pub fn new(bottle: &str, epoch: u32) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            bottle: bottle.to_string(),
            epoch,
            next_id: AtomicU64::new((u64::from(epoch) << 32) + 1),
            ring: Mutex::new(VecDeque::new()),
            tx,
            blocks: Mutex::new(coalesce::Coalescer::new(coalesce::WINDOW, coalesce::MAX_KEYS)),
        }
    }

    /// The epoch this bus's ids carry.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Records a refusal (an `EgressBlocked` kind), coalesced with its repeats.
    pub fn block(&self, key: BlockKey, kind: EventKind) {
        let now = Instant::now();
        let (closed, fresh) = {
            let mut blocks = self.blocks.lock().expect("block windows poisoned");
            let closed = blocks.close_due(now);
            (closed, blocks.admit(key, kind.clone(), now))
        };
        self.follow_ups(closed);
        if fresh {
            self.emit(kind);
        }
    }

    /// Emits the follow-ups of every coalescing window that has ended.
    pub fn close_windows(&self) {
        let closed = self.blocks.lock().expect("block windows poisoned").close_due(Instant::now());
        self.follow_ups(closed);
    }

    fn follow_ups(&self, closed: Vec<coalesce::Closed<EventKind>>) {
        for c in closed {
            let mut kind = c.last;
            if let EventKind::EgressBlocked { count, target, rule, method, .. } = &mut kind {
                *count = c.count;
                if c.overflow {
                    (*target, *rule, *method) = (OVERFLOW.into(), OVERFLOW.into(), "-".into());
                }
            }
            self.emit(kind);
        }
    }

    /// Records an event and hands it to every live subscriber.
    pub fn emit(&self, kind: EventKind) -> Event {
        let mut ring = self.ring.lock().expect("event ring poisoned");
        // The id is taken under the ring lock so the ring and the channel see one order.
        let event = Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            bottle: self.bottle.clone(),
            kind,
        };
        if ring.len() == RING_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        let _ = self.tx.send(event.clone());
        drop(ring);
        tracing::info!(target: "bottle::event", event = %serde_json::to_string(&event).unwrap_or_default());
        event
    }

    /// Buffered events with an id above `since`, plus a receiver for everything after them.
    pub fn subscribe_since(&self, since: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let ring = self.ring.lock().expect("event ring poisoned");
        let rx = self.tx.subscribe();
        let backlog = ring.iter().filter(|e| e.id > since).cloned().collect();
        (backlog, rx)
    }

    /// Recent events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.ring.lock().expect("event ring poisoned").iter().cloned().collect()
    }
}

/// Closes ended windows and reports suppressed log lines, forever (a bundle service).
pub async fn sweep(bundle: std::sync::Arc<crate::state::Bundle>) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        bundle.events.close_windows();
        crate::logging::report_suppressed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replay_then_live_in_order_without_gaps() {
        let bus = EventBus::new("b", 0);
        bus.emit(EventKind::KillSwitch { engaged: true });
        let first = bus.emit(EventKind::KillSwitch { engaged: false });
        let (backlog, mut rx) = bus.subscribe_since(first.id - 1);
        assert_eq!(backlog.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first.id]);
        let live = bus.emit(EventKind::PolicyReloaded { allow: 1, deny: 0 });
        assert_eq!(rx.recv().await.unwrap().id, live.id);
        assert_eq!(live.bottle, "b");
    }

    #[test]
    fn a_later_epoch_s_ids_are_above_every_earlier_one() {
        let before = EventBus::new("b", 0);
        for _ in 0..10 {
            before.emit(EventKind::KillSwitch { engaged: true });
        }
        let last = before.emit(EventKind::KillSwitch { engaged: true });
        let after = EventBus::new("b", 1);
        let first = after.emit(EventKind::KillSwitch { engaged: true });
        assert!(first.id > last.id, "{} after {}", first.id, last.id);
        assert_eq!(after.epoch(), 1);
    }

    #[test]
    fn a_flood_of_one_refusal_is_one_event_until_its_window_ends() {
        let bus = EventBus::new("b", 0);
        let block = |i: u64| EventKind::EgressBlocked {
            client: format!("10.0.0.2:{i}"),
            method: "GET".into(),
            target: "blocked.test:80".into(),
            rule: "not-allowed".into(),
            request_id: i.to_string(),
            access_request: None,
            count: 1,
        };
        let key = || ("10.0.0.2".parse().unwrap(), "not-allowed".to_string(), "blocked.test:80".to_string());
        for i in 0..1000 {
            bus.block(key(), block(i));
        }
        bus.close_windows();
        assert_eq!(bus.recent().iter().map(|e| e.kind.clone()).collect::<Vec<_>>(), vec![block(0)]);
    }
}
