//! The host-only control plane: health, the event stream, the live allowlist
//! (replace, grants, decision queries) and the kill switch, over HTTP/1.1 + JSON with a bearer token.
//!
//! The agent controls every byte it sends to the bundle's agent-facing
//! address, so the control plane must never listen there: binding an
//! unspecified address (0.0.0.0 or ::) would put it on every interface,
//! including the one the agent reaches, and is refused. The token is a second,
//! independent lock: it is checked on every request before anything else, so a
//! misconfigured listen address still does not hand the agent the controls.

mod events;
mod grants;
mod reply;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use events::FOLLOW_BUFFER_LINES;
pub use routes::MAX_BODY_BYTES;

use crate::state::Bundle;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !addr.ip().is_unspecified(),
            "control listen {addr}: must be a host-only address, not every interface (the agent would reach it)"
        );
        let listener = crate::accept::bind("control", addr)?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let limits = bundle.config.limits.clone();
        crate::httpserve::serve(&self.listener, "control", limits.max_control_connections, &limits, move |req| {
            routes::handle(bundle.clone(), req)
        })
        .await
    }
}
