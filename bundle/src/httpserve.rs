//! The accept loop every hyper server of the bundle shares: git-gate,
//! supervise, the API gate and the control plane.
//!
//! An agent that floods a service must not be able to make the bundle grow
//! until the engine kills it: a restarted bundle is a moment in which the
//! boundary is not running. So one place bounds what a connection can hold
//! (its read buffer is at most the bundle's header size, and a head has at
//! most [`MAX_HEADERS`] fields and [`Limits::header_timeout_ms`] to arrive)
//! and how many connections a service holds, which together bound its memory.
//!
//! At the cap the flood is shed, not queued behind: the oldest connection
//! that has not yet sent one complete request head (a slow-loris, an endless
//! head) is closed to make room, so a normal client that connects afterwards
//! is still served. Only when every connection has sent a request does a new
//! one wait for a slot.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use bottle_protocol::config::Limits;

/// hyper's smallest allowed read buffer.
const MIN_BUF_SIZE: usize = 8192;
/// Header fields in one request head (hyper's own default, named so it cannot drift up).
pub const MAX_HEADERS: usize = 100;

/// One open connection, as the shedder sees it.
#[derive(Default)]
struct Conn {
    /// Set once hyper has parsed a whole request head on this connection.
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

/// Serves HTTP/1.1 on `listener` until accepting fails, with at most `max_connections` open.
pub async fn serve<H, Fut, B>(
    listener: &TcpListener,
    service: &'static str,
    max_connections: usize,
    limits: &Limits,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let open = Arc::new(Open::default());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE))
        .max_header_size(limits.max_header_bytes)
        .max_headers(MAX_HEADERS);
    let http = Arc::new(http);
    loop {
        let (stream, peer) = crate::accept::next(listener, service).await;
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if open.shed_oldest_headless() {
                    tracing::debug!(%peer, "{service}: at {max_connections} connections, shed the oldest without a request");
                } else {
                    tracing::warn!(%peer, "{service}: {max_connections} connections all mid-request; this one waits");
                }
                slots.clone().acquire_owned().await?
            }
        };
        // Streamed replies (server-sent events) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (http, handle, open) = (http.clone(), handle.clone(), open.clone());
        let (id, conn) = open.add();
        tokio::spawn(async move {
            let headed = conn.clone();
            let svc = service_fn(move |req| {
                headed.headed.store(true, Ordering::Relaxed);
                let reply = handle(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            tokio::select! {
                served = http.serve_connection(TokioIo::new(stream), svc) => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, "{service} connection: {e}");
                    }
                }
                () = conn.shed.notified() => {}
            }
            open.remove(id);
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_the_oldest_connection_without_a_head() {
        let open = Open::default();
        let (_, first) = open.add();
        let (_, second) = open.add();
        let (_, third) = open.add();
        first.headed.store(true, Ordering::Relaxed);
        assert!(open.shed_oldest_headless());
        assert_eq!(open.conns.lock().unwrap().len(), 2);
        // The second was notified; a stored permit makes its next wait return at once.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut n = std::pin::pin!(second.shed.notified());
        assert!(n.as_mut().poll(&mut cx).is_ready());
        let mut n = std::pin::pin!(third.shed.notified());
        assert!(n.as_mut().poll(&mut cx).is_pending(), "the third is newer and stays");
        third.headed.store(true, Ordering::Relaxed);
        assert!(!open.shed_oldest_headless(), "every connection left has sent a request");
    }
}
