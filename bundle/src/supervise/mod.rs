//! STUB (to be replaced by the supervise owner).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::state::Bundle;

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
