//! The client side of egress: how the proxy and git-gate open a connection to
//! the outside. There is no other way out of the bundle.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Header egress uses to say which rule refused a destination.
pub const BLOCK_HEADER: &str = "X-Bottle-Block";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// egress refused the destination; `rule` is machine-readable.
    #[error("egress refused the destination ({rule})")]
    Refused { rule: String },
    /// egress accepted the destination but could not reach it.
    #[error("egress could not reach the destination: {0}")]
    Unreachable(String),
    #[error("egress connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The reply egress sends for a refused destination.
pub fn refusal(rule: &str) -> String {
    format!("HTTP/1.1 403 Forbidden\r\n{BLOCK_HEADER}: {rule}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// Opens a tunnel to `host:port` through egress at `egress`.
pub async fn connect(egress: SocketAddr, host: &str, port: u16) -> Result<TcpStream, EgressError> {
    let mut s = TcpStream::connect(egress).await?;
    s.set_nodelay(true)?;
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes()).await?;
    // Read the reply head byte by byte so no tunnel bytes are consumed past it.
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 4096 {
            return Err(EgressError::Unreachable("egress reply head too long".into()));
        }
        if s.read(&mut byte).await? == 0 {
            return Err(EgressError::Unreachable("egress closed the connection".into()));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.split(' ').nth(1).unwrap_or("");
    match status {
        "200" => Ok(s),
        "403" => {
            let rule = text
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(BLOCK_HEADER)))
                .map_or_else(|| "egress".to_string(), |(_, v)| v.trim().to_string());
            Err(EgressError::Refused { rule })
        }
        other => Err(EgressError::Unreachable(format!("egress answered {other}"))),
    }
}
