//! CONNECT tunnels, with the SNI check that keeps a tunnel to an allowed host
//! from carrying TLS for a different one.
//!
//! Non-TLS tunnels are refused (`tunnel-not-tls`): a plaintext protocol inside
//! CONNECT would bypass the DLP that plain HTTP gets, so the agent must speak
//! plain HTTP in absolute form instead. The same rule covers server-speaks-first
//! protocols, whose client sends nothing within the header timeout. A
//! ClientHello without SNI is let through: the TCP destination is the checked
//! CONNECT target either way, and IP-literal targets have no name to send.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

use super::block::{self, Blocked, rules};
use super::readbuf::ReadBuf;
use super::session::{Request, Session};
use super::sni::{self, Hello};
use crate::egress::pump::{self, Activity};
use crate::policy::{Host, Verdict};

pub use crate::egress::pump::{CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

pub(super) async fn run(mut s: Session, req: Request) -> io::Result<()> {
    let Some(mut up) = s.dial(&req).await? else { return Ok(()) };
    s.client.write_all(ESTABLISHED).await?;
    s.inbuf.consume(req.head_len);
    let deadline = Instant::now() + s.header_timeout;
    let verdict = loop {
        match sni::inspect(s.inbuf.data()) {
            Hello::Incomplete => {}
            Hello::NotTls => break Some(rules::TUNNEL_NOT_TLS.to_string()),
            Hello::Malformed => break Some(rules::TLS_HELLO_MALFORMED.to_string()),
            Hello::Parsed(name) => break judge_sni(&s, &req, name),
        }
        match timeout_at(deadline, s.inbuf.fill(&mut s.client)).await {
            Ok(Ok(n)) if n > 0 => {}
            Err(_) => break Some(rules::TUNNEL_NOT_TLS.to_string()),
            _ => return Ok(()),
        }
    };
    if let Some(rule) = verdict {
        // The 200 is already sent, so the only answer left is cutting the tunnel.
        block::record(&s.bundle, s.peer, &Blocked { method: &req.method, target: &req.target(), rule: &rule });
        return Ok(());
    }
    up.write_all(s.inbuf.data()).await?;
    s.inbuf = ReadBuf::new(0, 0);
    let activity = Activity::new();
    let copy = pump::both_ways(&mut s.client, &mut up, (CLIENT_TO_ORIGIN_BUF, ORIGIN_TO_CLIENT_BUF), &activity);
    tokio::pin!(copy);
    loop {
        let wait = activity.remaining(s.idle_timeout);
        if wait.is_zero() {
            tracing::debug!(target = %req.target(), "proxy: tunnel idle timeout");
            return Ok(());
        }
        tokio::select! {
            r = &mut copy => return r,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// `Some(rule)` when the ClientHello's server name must cut the tunnel.
fn judge_sni(s: &Session, req: &Request, name: Option<&str>) -> Option<String> {
    let name = Host::parse(name?).ok();
    match name {
        Some(h) if h == req.host => match s.bundle.policy.decide_host(&h, req.port) {
            Verdict::Allow => None,
            Verdict::Deny { rule } => Some(rule),
        },
        _ => Some(rules::SNI_MISMATCH.to_string()),
    }
}
