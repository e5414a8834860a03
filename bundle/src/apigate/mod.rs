//! The model-API gate: how the agent reaches a model API without ever holding
//! its credential.
//!
//! It works like git-gate does for git. The agent calls
//! `http://<gate>/<api name>/<path>` in plain HTTP, presenting a placeholder
//! that is random per bottle; the gate refuses any other credential, runs DLP
//! over the whole request, swaps in the real credential (which only the bundle
//! holds) and calls the upstream over verified TLS through `egress`. Replies
//! stream back as they arrive. One event per call. The proxy does not allow
//! the upstream's host unless the user lists it, so the gate is the one way
//! there and a swapped credential cannot be replayed through a tunnel.

pub mod config;
pub mod handler;
pub mod metered;
pub mod pool;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Apis;

use crate::state::Bundle;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = crate::accept::bind("api-gate", addr)?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let limits = bundle.config.limits.clone();
        crate::httpserve::serve(&self.listener, "api-gate", limits.max_api_gate_connections, &limits, move |req| {
            handler::handle(bundle.clone(), req)
        })
        .await
    }
}
