//! Event subscriptions: a bottle's one event stream (`bottles::follow`: the bundle's
//! events with the backend's own merged in), plus the state changes this process makes
//! itself (up, down), delivered to a foreign listener.
//!
//! Callbacks arrive on a Rust (tokio) thread, never the caller's; the app hops
//! to its main actor itself. The returned [`Subscription`] is the cancel handle:
//! after `cancel()` returns no callback starts and none is still running, and
//! dropping the handle (Swift releasing it) cancels too, so a forgotten
//! subscription cannot keep a connection open.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bottle_core::bottles::Events;
use bottle_protocol::Event;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::notify::{BottleNotification, NotificationPolicy};
use crate::types::BottleEvent;

/// Implemented in Swift (or Python in the binding tests).
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: BottleEvent);
    /// A notification to post, exactly as worded; already coalesced.
    fn on_notification(&self, notification: BottleNotification);
    /// The stream ended (the bottle went away) or broke; no call follows this one.
    fn on_closed(&self, reason: String);
}

/// Open while deliveries may happen; delivering holds the lock, so closing it waits
/// for a callback in flight. A listener must therefore not cancel from inside a callback.
struct Gate(Mutex<bool>);

impl Gate {
    fn open() -> Self {
        Self(Mutex::new(true))
    }

    /// Runs `f` only while open; returns whether it ran.
    fn deliver(&self, f: impl FnOnce()) -> bool {
        let open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *open {
            f();
        }
        *open
    }

    fn close(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }

    fn is_open(&self) -> bool {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(uniffi::Object)]
pub struct Subscription {
    gate: Arc<Gate>,
    task: Mutex<Option<AbortHandle>>,
}

#[uniffi::export]
impl Subscription {
    /// Stops deliveries now and closes the stream; calling it again does nothing.
    pub fn cancel(&self) {
        self.gate.close();
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// False once cancelled or once the stream has closed.
    pub fn is_active(&self) -> bool {
        self.gate.is_open()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Starts delivering `stream` and this process's changes to bottle `name` to `listener`.
pub(crate) fn spawn(
    name: String,
    stream: Events,
    local: broadcast::Receiver<Event>,
    listener: Arc<dyn EventListener>,
    policy: Arc<NotificationPolicy>,
) -> Arc<Subscription> {
    let gate = Arc::new(Gate::open());
    let task = tokio::spawn(pump(name, stream, local, listener, policy, gate.clone()));
    Arc::new(Subscription { gate, task: Mutex::new(Some(task.abort_handle())) })
}

async fn pump(
    name: String,
    mut stream: Events,
    mut local: broadcast::Receiver<Event>,
    listener: Arc<dyn EventListener>,
    policy: Arc<NotificationPolicy>,
    gate: Arc<Gate>,
) {
    let reason = loop {
        let event = tokio::select! {
            next = stream.next() => match next {
                Ok(Some(ev)) => ev,
                Ok(None) => break "the bottle's event stream ended".to_string(),
                Err(e) => break format!("event stream of bottle {name}: {e:#}"),
            },
            change = local.recv() => match change {
                Ok(ev) if ev.bottle == name => ev,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break "the manager was released".to_string(),
            },
        };
        let delivered = gate.deliver(|| {
            let notification = policy.decide(&event, Instant::now());
            listener.on_event(event.into());
            if let Some(n) = notification {
                listener.on_notification(n);
            }
        });
        if !delivered {
            return;
        }
    };
    tracing::debug!(bottle = %name, "subscription closed: {reason}");
    // The error can quote what the bundle sent, which the agent may have shaped.
    let reason = bottle_protocol::display::escape_controls(&reason);
    gate.deliver(|| listener.on_closed(reason));
    gate.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscription over a task that would run forever, as a real stream does.
    fn pending_subscription() -> (Arc<Subscription>, tokio::task::JoinHandle<()>) {
        let task = tokio::spawn(std::future::pending::<()>());
        let sub = Arc::new(Subscription { gate: Arc::new(Gate::open()), task: Mutex::new(Some(task.abort_handle())) });
        (sub, task)
    }

    #[tokio::test]
    async fn cancel_closes_the_gate_and_ends_the_task() {
        let (sub, task) = pending_subscription();
        assert!(sub.is_active());
        sub.cancel();
        sub.cancel();
        assert!(!sub.is_active());
        assert!(!sub.gate.deliver(|| panic!("delivered after cancel")));
        assert!(task.await.unwrap_err().is_cancelled());
    }

    #[tokio::test]
    async fn dropping_the_handle_cancels() {
        let (sub, task) = pending_subscription();
        let gate = sub.gate.clone();
        drop(sub);
        assert!(!gate.is_open());
        assert!(task.await.unwrap_err().is_cancelled());
    }
}
