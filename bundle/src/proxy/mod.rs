//! The agent-facing forward proxy: HTTP/1.1 CONNECT tunnels and absolute-URI
//! requests, judged by the live allowlist and DLP, leaving only through egress.
//!
//! Each connection is bounded (a semaphore caps how many there are, each has a
//! header, idle and total timeout) so a slow or greedy client cannot starve the
//! others, and each is dropped the moment the kill switch is engaged.

mod block;
mod body;
mod forward;
mod guidance;
mod readbuf;
mod session;
pub mod sni;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub use block::{BLOCK_ID_PREFIX, REQUEST_ID_HEADER};
pub use guidance::ASK_HEADER;
pub use tunnel::{CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF};

use crate::cap::{Cap, Headed};
use crate::state::{Bundle, Stats};

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self { listener: crate::accept::bind("proxy", addr)? })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let cap = Cap::new("proxy", bundle.config.limits.max_connections);
        crate::accept::each(&self.listener, cap, move |stream, peer, headed| {
            serve(stream, peer, headed, bundle.clone())
        })
        .await
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard<'a>(&'a Stats);

impl<'a> OpenGuard<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.open_connections.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, headed: Headed, bundle: Arc<Bundle>) {
    let _open = OpenGuard::new(&bundle.stats);
    let _ = stream.set_nodelay(true);
    let total = Duration::from_millis(bundle.config.limits.total_timeout_ms);
    let session = session::Session::new(bundle.clone(), peer, stream, headed);
    let result = if bundle.kill.engaged() {
        // Already cut: still read the request so it gets its `kill-switch` refusal.
        tokio::time::timeout(total, session.run()).await
    } else {
        tokio::select! {
            r = tokio::time::timeout(total, session.run()) => r,
            () = bundle.kill.cut() => return,
        }
    };
    match result {
        Ok(Err(e)) => tracing::debug!(%peer, "proxy: {e}"),
        Err(_) => tracing::debug!(%peer, "proxy: connection reached the total timeout"),
        Ok(Ok(())) => {}
    }
}
