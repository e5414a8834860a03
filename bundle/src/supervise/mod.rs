//! STUB (to be replaced by the supervise owner): the agent's channel to a human.

use std::net::SocketAddr;
use std::sync::Arc;

use bottle_protocol::config::SuperviseConfig;
use tokio::net::TcpListener;

use crate::state::Bundle;

/// Pending access requests and the agent's last state, shared with the control plane.
pub struct Desk;

impl Desk {
    pub fn new(_cfg: &SuperviseConfig) -> Self {
        Self
    }
}

/// Host-side routes under `/v1/access` and `/v1/agent`, called by the control plane
/// after it has checked the token. Returns `None` when the path is not one of them.
pub async fn control(
    _bundle: &Arc<Bundle>,
    _method: &hyper::Method,
    _path: &str,
    _body: bytes::Bytes,
) -> Option<(hyper::StatusCode, serde_json::Value)> {
    None
}

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("supervise listen {addr}: {e}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, _bundle: Arc<Bundle>) -> anyhow::Result<()> {
        loop {
            let _ = self.listener.accept().await?;
        }
    }
}
