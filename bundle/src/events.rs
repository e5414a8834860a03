//! The bundle's event bus: every block, git operation and agent message is
//! recorded here once and fanned out to control-plane subscribers.
//!
//! A bounded ring keeps recent events so a host that reconnects (or a
//! restarted `bottle-core`) can replay from the last id it saw.

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
    next_id: AtomicU64,
    ring: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(bottle: &str) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { bottle: bottle.to_string(), next_id: AtomicU64::new(1), ring: Mutex::new(VecDeque::new()), tx }
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
        let bus = EventBus::new("b");
        bus.emit(EventKind::KillSwitch { engaged: true });
        let first = bus.emit(EventKind::KillSwitch { engaged: false });
        let (backlog, mut rx) = bus.subscribe_since(first.id - 1);
        assert_eq!(backlog.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first.id]);
        let live = bus.emit(EventKind::PolicyReloaded { allow: 1, deny: 0 });
        assert_eq!(rx.recv().await.unwrap().id, live.id);
        assert_eq!(live.bottle, "b");
    }
}
