//! Refusals, in one place: every block is counted, recorded as an
//! `EgressBlocked` event (repeats coalesced, see `events::coalesce`), and (when the client can still read a reply)
//! answered with the same 403-style response carrying the rule, the block's id and
//! what the agent can do about it (see [`super::guidance`]).
//!
//! Nothing here echoes the URL, headers or body; a target that itself trips
//! DLP (a secret smuggled in a subdomain) is recorded as `[redacted]`, and so is
//! the target of any DLP refusal.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bottle_protocol::EventKind;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::guidance::{self, ASK_HEADER, Guidance, Refusal};
use crate::egress::client::BLOCK_HEADER;
use crate::state::Bundle;

pub const REQUEST_ID_HEADER: &str = "X-Bottle-Request-Id";
/// Starts every block id, so it cannot be taken for an access request's id (which is
/// what `approve` takes) and an approve given one can say what it is.
pub const BLOCK_ID_PREFIX: &str = "blk-";
/// The event target for a request DLP refused: its host may be what carried the secret.
pub(super) const REDACTED: &str = "[redacted]";

/// Methods named in events as they are; anything else is `OTHER`, so a
/// made-up method cannot carry data into the event log.
const KNOWN_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

/// What was refused: enough to describe it, never its content.
pub(super) struct Blocked<'a> {
    pub method: &'a str,
    /// `host:port`, or `-` when the request never got that far.
    pub target: &'a str,
    pub rule: &'a str,
}

/// What [`record`] made of a block.
pub(super) struct Recorded {
    /// The block's id (named by an event, or by the follow-up of its window when it was the last repeat).
    pub id: String,
    /// The target as the event names it (redacted when it carried a secret).
    pub target: String,
    /// The agent's open access request for the destination.
    pub access_request: Option<String>,
}

/// Counts and records a block.
pub(super) fn record(bundle: &Bundle, client: SocketAddr, b: &Blocked<'_>) -> Recorded {
    let request_id = format!("{BLOCK_ID_PREFIX}{:016x}", rand::random::<u64>());
    let method =
        KNOWN_METHODS.iter().find(|m| **m == b.method).copied().unwrap_or(if b.method == "-" { "-" } else { "OTHER" });
    let target = if bundle.dlp.scan(b.target.as_bytes()).is_some() { REDACTED } else { b.target };
    let access_request =
        target.rsplit_once(':').and_then(|(host, port)| bundle.desk.open_request_for(host, port.parse().ok()?));
    bundle.stats.blocked_total.fetch_add(1, Ordering::Relaxed);
    let key = (client.ip(), b.rule.to_string(), target.to_string());
    bundle.events.block(
        key,
        EventKind::EgressBlocked {
            client: client.to_string(),
            method: method.to_string(),
            target: target.to_string(),
            rule: b.rule.to_string(),
            request_id: request_id.clone(),
            access_request: access_request.clone(),
            count: 1,
        },
    );
    Recorded { id: request_id, target: target.to_string(), access_request }
}

/// Records a block and answers it with `status`; the connection is then closed by the caller.
pub(super) async fn refuse(
    bundle: &Bundle,
    client: SocketAddr,
    stream: &mut TcpStream,
    status: &str,
    b: &Blocked<'_>,
) -> std::io::Result<()> {
    let rec = record(bundle, client, b);
    let refusal =
        Refusal { rule: b.rule, id: &rec.id, target: &rec.target, access_request: rec.access_request.as_deref() };
    let supervise = guidance::supervise_url(bundle.config.listen.supervise, stream.local_addr().ok().map(|a| a.ip()));
    let Guidance { ask, body } = guidance::for_refusal(&refusal, supervise.as_deref());
    let ask = ask.map(|url| format!("{ASK_HEADER}: {url}\r\n")).unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 {status}\r\n{BLOCK_HEADER}: {}\r\n{REQUEST_ID_HEADER}: {}\r\n{ask}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        b.rule,
        rec.id,
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

pub(super) const FORBIDDEN: &str = "403 Forbidden";
pub(super) const BAD_REQUEST: &str = "400 Bad Request";
pub(super) const TOO_LARGE_HEAD: &str = "431 Request Header Fields Too Large";
pub(super) const TOO_LARGE_BODY: &str = "413 Content Too Large";
