//! The bundle's event bus: every block, git operation and agent message is
//! recorded here once and fanned out to control-plane subscribers.
//!
//! A bounded ring keeps recent events so a host that reconnects (or a
//! restarted `bottle-core`) can replay from the last id it saw. An id is the
//! bundle's start epoch (see [`crate::persist`]) in its high 32 bits and a
//! count in its low 32, so ids keep rising across a restart of the bundle and
//! a host's `since` cursor stays valid: nothing a restarted bundle says can
//! hide behind an id the host has already seen.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bottle_protocol::{Event, EventKind};
use tokio::sync::broadcast;

/// How many recent events are kept for replay.
pub const RING_CAPACITY: usize = 4096;
/// Per-subscriber backlog before a slow subscriber starts missing events.
pub const CHANNEL_CAPACITY: usize = 1024;

pub struct EventBus {
    bottle: String,
    epoch: u32,
    next_id: AtomicU64,
    ring: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// The bus of the start with `epoch`.
    pub fn new(bottle: &str, epoch: u32) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let first = (u64::from(epoch) << 32) + 1;
        Self { bottle: bottle.to_string(), epoch, next_id: AtomicU64::new(first), ring: Mutex::new(VecDeque::new()), tx }
    }

    /// The epoch this bus's ids carry.
    pub fn epoch(&self) -> u32 {
        self.epoch
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
}
