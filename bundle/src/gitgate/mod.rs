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
mod push;
pub mod report;
pub mod rules;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Repos;

use crate::state::Bundle;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = crate::accept::bind("git-gate", addr)?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let limits = bundle.config.limits.clone();
        crate::httpserve::serve(&self.listener, "git-gate", limits.max_git_gate_connections, &limits, move |req| {
            handler::handle(bundle.clone(), req)
        })
        .await
    }
}
