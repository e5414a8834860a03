//! The egress listener: one `CONNECT host:port` per connection, then the tunnel pump.
//!
//! The protocol is deliberately tiny (one request line, one status line) so
//! that the only parser between bundle services and the outside is easy to
//! read. The reply status says what happened: 200 tunnel, 403 refused (rule in
//! `X-Bottle-Block`), 502 unreachable, 504 connect timeout, 503 at the
//! connection cap (see [`crate::cap`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::refusal;
use super::dialer::DialError;
use super::pump::{self, Activity, CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF};
use crate::cap::{Cap, Headed};
use crate::state::Bundle;

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

pub struct Server {
    listener: TcpListener,
}

impl Server {
    /// Binds egress; anything but a loopback address is refused, because the
    /// agent shares the bundle's network address and must never reach the dialer.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(addr.ip().is_loopback(), "egress listen {addr}: must be a loopback address");
        let listener = crate::accept::bind("egress", addr)?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let cap = Cap::new("egress", bundle.config.limits.max_connections);
        crate::accept::each(&self.listener, cap, move |stream, _, headed| {
            let bundle = bundle.clone();
            async move {
                if let Err(e) = serve(stream, &bundle, headed).await {
                    tracing::debug!("egress: {e:#}");
                }
            }
        })
        .await
    }
}

/// A parsed CONNECT target; `host` is a lowercase name or a bare IP literal.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
}

async fn serve(mut stream: TcpStream, bundle: &Bundle, headed: Headed) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let limits = &bundle.config.limits;
    let head = tokio::time::timeout(
        Duration::from_millis(limits.header_timeout_ms),
        read_head(&mut stream, limits.max_header_bytes),
    )
    .await;
    let (head, early) = match head {
        Err(_) => return reply(&mut stream, "408 Request Timeout").await,
        Ok(Err(status)) => return reply(&mut stream, status).await,
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(parts))) => parts,
    };
    headed.mark();
    let target = match parse_connect(&head) {
        Ok(t) => t,
        Err(status) => return reply(&mut stream, status).await,
    };
    let mut upstream = match super::open(bundle, &target.host, target.port).await {
        Ok(s) => s,
        Err(DialError::Refused(rule)) => return refuse(&mut stream, &target, rule).await,
        Err(DialError::Unreachable(e)) => {
            tracing::debug!(host = %target.host, port = target.port, "egress: unreachable: {e}");
            return reply(&mut stream, "502 Bad Gateway").await;
        }
        Err(DialError::Timeout) => return reply(&mut stream, "504 Gateway Timeout").await,
    };
    stream.write_all(ESTABLISHED).await?;
    // Bytes the client sent right behind its request head belong to the tunnel.
    upstream.write_all(&early).await?;
    let _open = OpenTunnel::count(&bundle.stats.egress_tunnels);
    splice(stream, upstream, bundle).await
}

async fn refuse(stream: &mut TcpStream, target: &Target, rule: &str) -> anyhow::Result<()> {
    tracing::debug!(host = %target.host, port = target.port, rule, "egress: refused");
    stream.write_all(refusal(rule).as_bytes()).await?;
    Ok(())
}

async fn reply(stream: &mut TcpStream, status: &str) -> anyhow::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    Ok(())
}

/// Reads up to the blank line ending the request head. Returns the head and any
/// bytes read past it, `None` if the client left first, or the error status.
async fn read_head(stream: &mut TcpStream, max: usize) -> Result<Option<(Vec<u8>, Vec<u8>)>, &'static str> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| "400 Bad Request")?;
        if n == 0 {
            return Ok(None);
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[scan_from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = scan_from + i + 4;
            let early = buf.split_off(end);
            return Ok(Some((buf, early)));
        }
        if buf.len() > max {
            return Err("431 Request Header Fields Too Large");
        }
    }
}

/// `CONNECT host:port HTTP/1.x` (IPv6 literal in brackets), else the error status.
fn parse_connect(head: &[u8]) -> Result<Target, &'static str> {
    const BAD: &str = "400 Bad Request";
    let text = std::str::from_utf8(head).map_err(|_| BAD)?;
    let line = text.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, authority, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("CONNECT") {
        return Err("405 Method Not Allowed");
    }
    let (Some(authority), Some(version), None) = (authority, version, parts.next()) else { return Err(BAD) };
    if !version.starts_with("HTTP/1.") {
        return Err(BAD);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:").ok_or(BAD)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| BAD)?;
        (ip, port)
    } else {
        authority.rsplit_once(':').ok_or(BAD)?
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or(BAD)?;
    let name_ok = |h: &str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !authority.starts_with('[') && !name_ok(host) {
        return Err(BAD);
    }
    Ok(Target { host: host.trim_end_matches('.').to_ascii_lowercase(), port })
}

/// Copies both ways until both sides close, the tunnel idles or outlives its
/// limits, or the kill switch is engaged; dropping the sockets then closes both.
async fn splice(mut client: TcpStream, mut upstream: TcpStream, bundle: &Bundle) -> anyhow::Result<()> {
    let limits = &bundle.config.limits;
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let activity = Activity::new();
    let pump = pump::both_ways(&mut client, &mut upstream, (CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF), &activity);
    let total = tokio::time::sleep(Duration::from_millis(limits.total_timeout_ms));
    tokio::pin!(pump, total);
    loop {
        let wait = activity.remaining(idle);
        if wait.is_zero() {
            return Ok(());
        }
        tokio::select! {
            r = &mut pump => return Ok(r?),
            () = tokio::time::sleep(wait) => {}
            () = &mut total => return Ok(()),
            () = bundle.kill.cut() => {
                tracing::debug!("egress: tunnel cut by the kill switch");
                return Ok(());
            }
        }
    }
}

/// Counts a tunnel as open for as long as it lives.
struct OpenTunnel<'a>(&'a AtomicU64);

impl<'a> OpenTunnel<'a> {
    fn count(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for OpenTunnel<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Target, &'static str> {
        parse_connect(format!("{line}\r\nHost: x\r\n\r\n").as_bytes())
    }

    fn target(host: &str, port: u16) -> Result<Target, &'static str> {
        Ok(Target { host: host.into(), port })
    }

    #[test]
    fn parses_names_and_literals() {
        assert_eq!(parse("CONNECT Example.COM.:443 HTTP/1.1"), target("example.com", 443));
        assert_eq!(parse("CONNECT 10.0.0.1:80 HTTP/1.0"), target("10.0.0.1", 80));
        assert_eq!(parse("CONNECT [::ffff:127.0.0.1]:22 HTTP/1.1"), target("::ffff:127.0.0.1", 22));
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(parse("GET http://a/ HTTP/1.1"), Err("405 Method Not Allowed"));
        assert_eq!(parse("connect a:1 HTTP/1.1"), Err("405 Method Not Allowed"));
        for bad in [
            "CONNECT a HTTP/1.1",
            "CONNECT a:0 HTTP/1.1",
            "CONNECT a:65536 HTTP/1.1",
            "CONNECT :80 HTTP/1.1",
            "CONNECT ::1:80 HTTP/1.1",
            "CONNECT [a.b]:80 HTTP/1.1",
            "CONNECT [::1]80 HTTP/1.1",
            "CONNECT a/b:80 HTTP/1.1",
            "CONNECT a:80 HTTP/2",
            "CONNECT a:80",
            "CONNECT a:80 HTTP/1.1 x",
        ] {
            assert_eq!(parse(bad), Err("400 Bad Request"), "{bad}");
        }
    }
}
