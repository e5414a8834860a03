//! The host-only control plane: health, the event stream, live allowlist
//! reload and the kill switch, over HTTP/1.1 + JSON with a bearer token.
//!
//! The agent controls every byte it sends to the bundle's agent-facing
//! address, so the control plane must never listen there: binding an
//! unspecified address (0.0.0.0 or ::) would put it on every interface,
//! including the one the agent reaches, and is refused. The token is a second,
//! independent lock: it is checked on every request before anything else, so a
//! misconfigured listen address still does not hand the agent the controls.

mod events;
mod reply;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use events::FOLLOW_BUFFER_LINES;
pub use routes::MAX_BODY_BYTES;

use crate::state::Bundle;

/// Concurrent control connections; the host needs a handful (an event follower, a CLI call).
pub const MAX_CONNECTIONS: usize = 64;

/// The smallest read buffer hyper accepts.
const HYPER_MIN_BUF: usize = 8192;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !addr.ip().is_unspecified(),
            "control listen {addr}: must be a host-only address, not every interface (the agent would reach it)"
        );
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("control listen {addr}: {e}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let header_timeout = Duration::from_millis(bundle.config.limits.header_timeout_ms);
        // hyper's read buffer bounds the request head; it refuses anything under 8 KiB.
        let max_head = bundle.config.limits.max_header_bytes.max(HYPER_MIN_BUF);
        loop {
            let permit = permits.clone().acquire_owned().await?;
            let (stream, peer) = crate::accept::next(&self.listener, "control").await;
            let bundle = bundle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let bundle = bundle.clone();
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(bundle, req).await) }
                });
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(max_head)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(%peer, "control: {e}");
                }
                drop(permit);
            });
        }
    }
}
