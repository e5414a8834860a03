//! The connection cap every listener of the bundle holds to, and what it does
//! when the cap is reached.
//!
//! An agent that opens connections until a service runs out must not be able
//! to lock a normal client out, nor make the bundle queue work it cannot
//! bound. So every service behaves the same at its cap: the oldest connection
//! that has not yet sent one complete request head (a slow-loris, an endless
//! head) is shed to make room, and when every connection has sent one, the
//! newcomer is answered [`BUSY`] (503, `Retry-After: 1`) and closed at once.
//! Nothing waits in a queue the agent can fill.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The answer to a connection over the cap; written without a task, so the overload costs nothing more.
pub const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// One open connection, as the shedder sees it.
#[derive(Default)]
struct Conn {
    /// Set once the connection has sent a whole request head.
    headed: AtomicBool,
    shed: Notify,
}

/// Open connections by arrival order, oldest first.
#[derive(Default)]
struct Open {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Open {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        self.conns.lock().expect("open table poisoned").insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().expect("open table poisoned").remove(&id);
    }

    /// Closes the oldest connection still without a request head; false when there is none.
    fn shed_oldest_headless(&self) -> bool {
        let mut conns = self.conns.lock().expect("open table poisoned");
        let Some(id) = conns.iter().find(|(_, c)| !c.headed.load(Ordering::Relaxed)).map(|(id, _)| *id) else {
            return false;
        };
        if let Some(c) = conns.remove(&id) {
            c.shed.notify_one();
        }
        true
    }
}

/// At most `max` connections of one service.
pub struct Cap {
    service: &'static str,
    max: usize,
    slots: Arc<Semaphore>,
    open: Arc<Open>,
}

impl Cap {
    pub fn new(service: &'static str, max: usize) -> Self {
        Self { service, max, slots: Arc::new(Semaphore::new(max)), open: Arc::default() }
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// A slot for a new connection from `peer`, shedding the oldest headless one if the cap
    /// is reached; `None` when every slot holds a connection that has sent a request.
    pub async fn admit(&self, peer: SocketAddr) -> Option<Slot> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.open.shed_oldest_headless() => {
                tracing::debug!(%peer, "{}: at {} connections, shed the oldest without a request", self.service, self.max);
                // The shed connection's task ends at its next poll and frees its slot.
                self.slots.clone().acquire_owned().await.ok()?
            }
            Err(_) => {
                tracing::warn!(%peer, "{}: {} connections all mid-request; this one is refused", self.service, self.max);
                return None;
            }
        };
        let (id, conn) = self.open.add();
        Some(Slot { _permit: permit, id, conn, open: self.open.clone() })
    }
}

/// A connection's place under the cap, given back when it is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    id: u64,
    conn: Arc<Conn>,
    open: Arc<Open>,
}

impl Slot {
    /// The marker the connection's server sets once a whole request head has arrived.
    pub fn headed(&self) -> Headed {
        Headed(self.conn.clone())
    }

    /// Completes when the cap has shed this connection.
    pub async fn shed(&self) {
        self.conn.shed.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.remove(self.id);
    }
}

/// Set by a server when its connection has sent a whole request head; it is then never shed.
#[derive(Clone)]
pub struct Headed(Arc<Conn>);

impl Headed {
    pub fn mark(&self) {
        self.0.headed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn is_shed(slot: &Slot) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(slot.shed()).as_mut().poll(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_headless_is_shed_and_then_the_newcomer_is_refused() {
        let cap = Cap::new("test", 3);
        let first = cap.admit(peer()).await.unwrap();
        let second = cap.admit(peer()).await.unwrap();
        let third = cap.admit(peer()).await.unwrap();
        first.headed().mark();
        // The shed connection's task would drop its slot; this one does it by hand.
        let fourth = tokio::spawn(async move { cap.admit(peer()).await.map(|s| (cap, s)) });
        tokio::task::yield_now().await;
        assert!(is_shed(&second), "the oldest connection without a head is shed");
        assert!(!is_shed(&third), "the third is newer and stays");
        drop(second);
        let (cap, fourth) = fourth.await.unwrap().expect("the newcomer gets the freed slot");
        third.headed().mark();
        fourth.headed().mark();
        assert!(cap.admit(peer()).await.is_none(), "every connection has sent a request: refused, not queued");
        drop(first);
        assert!(cap.admit(peer()).await.is_some(), "a slot given back is a slot again");
    }
}
