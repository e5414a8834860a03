//! `egress`: the only component that opens connections to the outside.
//!
//! It listens on 127.0.0.1 only, inside the bundle, and speaks one verb:
//! `CONNECT host:port`. Every other service (proxy, git-gate) reaches the
//! world through [`connect`], so the destination checks live in one place.
//!
//! MINIMAL VERSION: resolution and destination checks are to be added by the egress owner.

pub mod client;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bottle_protocol::config::{ConfigError, EgressConfig, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use client::{EgressError, connect};

use crate::state::Bundle;

/// Resolves names and decides which IPs may be dialled.
pub struct Dialer;

impl Dialer {
    pub fn from_config(_file: &Path, _text: &str, _cfg: &EgressConfig, _limits: &Limits) -> Result<Self, ConfigError> {
        Ok(Self)
    }
}

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(addr.ip().is_loopback(), "egress must listen on loopback, not {addr}");
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("egress listen {addr}: {e}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let bundle = bundle.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, bundle).await {
                    tracing::debug!("egress: {e:#}");
                }
            });
        }
    }
}

async fn serve(mut stream: TcpStream, bundle: Arc<Bundle>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 4096, "egress request head too long");
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let line = std::str::from_utf8(&head)?.lines().next().unwrap_or("");
    let target = line.strip_prefix("CONNECT ").and_then(|r| r.split(' ').next()).unwrap_or("");
    if bundle.kill.engaged() {
        stream.write_all(client::refusal("kill-switch").as_bytes()).await?;
        return Ok(());
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await?;
            anyhow::bail!("dial {target}: {e}");
        }
    };
    upstream.set_nodelay(true)?;
    stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => { r?; }
        () = bundle.kill.cut() => {}
    }
    Ok(())
}
