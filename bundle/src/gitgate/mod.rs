//! git-gate: the agent's git smart-HTTP endpoint.
//!
//! The agent clones and pushes `http://<gate>/<alias>.git`; the gate relays to
//! the real upstream through `egress`, adding the credential only the bundle
//! holds, and refuses pushes the repository's rules forbid before the upstream
//! sees a byte of them. Rules and their exact semantics: [`rules`].

pub mod body;
pub mod config;
pub mod handler;
pub mod pack;
pub mod pktline;
pub mod report;
pub mod rules;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use config::Repos;

use crate::state::Bundle;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("git-gate listen {addr}: {e}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let limits = &bundle.config.limits;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let header_timeout = Duration::from_millis(limits.header_timeout_ms);
        loop {
            let (stream, peer) = crate::accept::next(&self.listener, "git-gate").await;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "git-gate: connection limit reached, dropping");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let bundle = bundle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let bundle = bundle.clone();
                    async move { Ok::<_, Infallible>(handler::handle(bundle, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "git-gate connection: {e}");
                }
                drop(permit);
            });
        }
    }
}
