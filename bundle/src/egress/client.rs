//! The client side of egress's listener: how git-gate and the API gate open a
//! connection to the outside (the proxy calls the same dialer in-process,
//! [`super::open`]). There is no other way out of the bundle.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest reply head egress may send.
const MAX_REPLY_HEAD: usize = 4096;

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
    let head = read_reply_head(&mut s).await?;
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

/// Reads egress's reply head and nothing past it: the bytes behind it belong to
/// the tunnel and must stay in the socket for the caller. Peeking first lets the
/// whole head (normally one segment) come out in two syscalls instead of one
/// read per byte.
async fn read_reply_head(s: &mut TcpStream) -> Result<Vec<u8>, EgressError> {
    let mut head = Vec::with_capacity(128);
    let mut peeked = [0u8; MAX_REPLY_HEAD];
    loop {
        let room = MAX_REPLY_HEAD - head.len();
        if room == 0 {
            return Err(EgressError::Unreachable("egress reply head too long".into()));
        }
        let n = s.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(EgressError::Unreachable("egress closed the connection".into()));
        }
        // The blank line may straddle what was taken before and what is peeked now.
        let kept = head.len().min(3);
        let mut window = head[head.len() - kept..].to_vec();
        window.extend_from_slice(&peeked[..n]);
        let take = window.windows(4).position(|w| w == b"\r\n\r\n").map_or(n, |i| i + 4 - kept);
        let start = head.len();
        head.resize(start + take, 0);
        s.read_exact(&mut head[start..]).await?;
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake egress that sends `chunks` with a pause between each, after reading the request.
    async fn fake_egress(chunks: &'static [&'static [u8]]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 512];
            let _ = s.read(&mut req).await.unwrap();
            for c in chunks {
                s.write_all(c).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        addr
    }

    async fn rest(mut s: TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn keeps_tunnel_bytes_sent_with_the_reply() {
        let addr = fake_egress(&[b"HTTP/1.1 200 Connection Established\r\n\r\nserver speaks first"]).await;
        let s = connect(addr, "a.test", 443).await.unwrap();
        assert_eq!(rest(s).await, b"server speaks first");
    }

    #[tokio::test]
    async fn finds_a_blank_line_split_across_segments() {
        let addr = fake_egress(&[b"HTTP/1.1 200 OK\r\n", b"X: y\r\n\r", b"\ntunnel", b" bytes"]).await;
        let s = connect(addr, "a.test", 443).await.unwrap();
        assert_eq!(rest(s).await, b"tunnel bytes");
    }

    #[tokio::test]
    async fn reads_the_refusal_rule() {
        let addr = fake_egress(&[b"HTTP/1.1 403 Forbidden\r\nx-bottle-block: private-address\r\n\r\n"]).await;
        match connect(addr, "a.test", 443).await {
            Err(EgressError::Refused { rule }) => assert_eq!(rule, "private-address"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_an_endless_head() {
        static LONG: [u8; 5000] = [b'a'; 5000];
        static CHUNKS: [&[u8]; 2] = [b"HTTP/1.1 200 OK\r\nX: ", &LONG];
        let addr = fake_egress(&CHUNKS).await;
        assert!(matches!(connect(addr, "a.test", 443).await, Err(EgressError::Unreachable(_))));
    }
}
