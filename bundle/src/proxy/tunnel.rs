//! CONNECT tunnels, which must carry TLS to the host that was allowed.
//!
//! A tunnel's content is opaque to DLP, so it may carry only what the bundle
//! cannot read anyway: a TLS session with the allowed host. Anything else
//! (plaintext, a server-speaks-first protocol whose client stays silent) would
//! be a way around the DLP that plain HTTP gets, so before any byte after the
//! ClientHello moves the tunnel must show, in order:
//!
//! 1. a ClientHello in one record, scanned by DLP (its fields are the agent's
//!    to fill), whose SNI names the CONNECT host; for a name target a missing
//!    SNI is refused, an IP-literal target may send none;
//! 2. an origin that answers as a TLS server (a handshake or alert record).
//!    The client's bytes after its ClientHello are held until then, so a
//!    plaintext service on an allowed host never sees them.
//!
//! Every refusal cuts the tunnel and raises a block event; the 200 is already
//! sent by then. What this leaves open (ECH, domain fronting, what the
//! ClientHello itself can carry) is in docs/THREAT-MODEL.md.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use bottle_protocol::rule::proxy as rules;

use super::block::{self, Blocked};
use super::readbuf::ReadBuf;
use super::session::{Request, Session};
use super::sni::{self, Hello};
use crate::egress::pump::{self, Activity};
use crate::policy::{Host, Verdict};

pub use crate::egress::pump::{CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// Most of the origin's first flight read before the pump takes over.
const ORIGIN_FIRST_READ: usize = 16 * 1024;

pub(super) async fn run(mut s: Session, req: Request) -> io::Result<()> {
    let Some(mut up) = s.dial(&req).await? else { return Ok(()) };
    s.client.write_all(ESTABLISHED).await?;
    s.inbuf.consume(req.head_len);
    let deadline = Instant::now() + s.header_timeout;
    let judged = loop {
        match sni::inspect(s.inbuf.data()) {
            Hello::Incomplete => {}
            Hello::NotTls => break Err(rules::TUNNEL_NOT_TLS.to_string()),
            Hello::Malformed => break Err(rules::TLS_HELLO_MALFORMED.to_string()),
            Hello::Parsed(name) => break judge_hello(&s, &req, name).map(|()| sni::record_len(s.inbuf.data())),
        }
        match timeout_at(deadline, s.inbuf.fill(&mut s.client)).await {
            Ok(Ok(n)) if n > 0 => {}
            Err(_) => break Err(rules::TUNNEL_NOT_TLS.to_string()),
            _ => return Ok(()),
        }
    };
    let hello_len = match judged {
        Ok(n) => n,
        Err(rule) => return cut(&s, &req, &rule),
    };
    up.write_all(&s.inbuf.data()[..hello_len]).await?;
    s.inbuf.consume(hello_len);
    let first = match origin_first_flight(&mut up, deadline).await? {
        Origin::Tls(bytes) => bytes,
        Origin::NotTls => return cut(&s, &req, rules::ORIGIN_NOT_TLS),
        Origin::Gone => return Ok(()),
    };
    s.client.write_all(&first).await?;
    up.write_all(s.inbuf.data()).await?;
    s.inbuf = ReadBuf::new(0, 0);
    let activity = Activity::new();
    let copy = pump::both_ways(&mut s.client, &mut up, (CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF), &activity);
    pump::until_idle(copy, &activity, s.idle_timeout).await.unwrap_or_else(|| {
        tracing::debug!(target = %req.target(), "proxy: tunnel idle timeout");
        Ok(())
    })
}

/// Records the refusal; dropping the sockets then cuts the tunnel.
fn cut(s: &Session, req: &Request, rule: &str) -> io::Result<()> {
    block::record(&s.bundle, s.peer, &Blocked { method: &req.method, target: &req.target(), rule });
    Ok(())
}

/// `Err(rule)` when the ClientHello must cut the tunnel.
fn judge_hello(s: &Session, req: &Request, name: Option<&str>) -> Result<(), String> {
    if let Some(f) = s.bundle.dlp.scan(&s.inbuf.data()[..sni::record_len(s.inbuf.data())]) {
        return Err(f.rule);
    }
    let name = match (name, &req.host) {
        (None, Host::Ip(_)) => return Ok(()),
        (None, Host::Name(_)) => return Err(rules::SNI_MISSING.to_string()),
        (Some(n), _) => Host::parse(n).ok(),
    };
    match name {
        Some(h) if h == req.host => match s.bundle.policy.decide_host(&h, req.port) {
            Verdict::Allow => Ok(()),
            Verdict::Deny { rule } => Err(rule),
        },
        _ => Err(rules::SNI_MISMATCH.to_string()),
    }
}

enum Origin {
    /// The origin's first bytes, which begin a TLS handshake or alert record.
    Tls(Vec<u8>),
    NotTls,
    /// Closed or silent before it said anything: nothing to judge, nothing sent.
    Gone,
}

/// Reads the origin's answer to the ClientHello, up to its first record header.
async fn origin_first_flight(up: &mut TcpStream, deadline: Instant) -> io::Result<Origin> {
    let mut buf = vec![0u8; ORIGIN_FIRST_READ];
    let mut n = 0;
    while n < sni::RECORD_HEADER {
        match timeout_at(deadline, up.read(&mut buf[n..])).await {
            Ok(Ok(0)) | Err(_) => return Ok(Origin::Gone),
            Ok(Ok(k)) => n += k,
            Ok(Err(e)) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(if sni::is_server_record(&buf) { Origin::Tls(buf) } else { Origin::NotTls })
}
