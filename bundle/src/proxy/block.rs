//! Refusals, in one place: every block is counted, recorded as an
//! `EgressBlocked` event (repeats coalesced, see `events::coalesce`), and (when the client can still read a reply)
//! answered with the same 403-style response carrying the rule and request id.
//!
//! Nothing here echoes the URL, headers or body; a target that itself trips
//! DLP (a secret smuggled in a subdomain) is recorded as `[redacted]`, and so is
//! the target of any DLP refusal.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bottle_protocol::EventKind;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::egress::client::BLOCK_HEADER;
use crate::state::Bundle;

pub const REQUEST_ID_HEADER: &str = "X-Bottle-Request-Id";
/// The event target for a request DLP refused: its host may be what carried the secret.
pub(super) const REDACTED: &str = "[redacted]";

/// Rule ids the proxy itself raises (policy and DLP bring their own).
pub(super) mod rules {
    pub const KILL_SWITCH: &str = "kill-switch";
    pub const SNI_MISMATCH: &str = "sni-mismatch";
    pub const SNI_MISSING: &str = "sni-missing";
    pub const ORIGIN_NOT_TLS: &str = "tunnel-origin-not-tls";
    pub const TUNNEL_NOT_TLS: &str = "tunnel-not-tls";
    pub const TLS_HELLO_MALFORMED: &str = "tls-hello-malformed";
    pub const BODY_TOO_LARGE: &str = "body-too-large";
    pub const BAD_BODY: &str = "malformed-body";
}

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

/// Counts and records a block; returns its request id (named by an event, or by the
/// follow-up of its window when it was the last repeat).
pub(super) fn record(bundle: &Bundle, client: SocketAddr, b: &Blocked<'_>) -> String {
    let request_id = format!("{:016x}", rand::random::<u64>());
    let method =
        KNOWN_METHODS.iter().find(|m| **m == b.method).copied().unwrap_or(if b.method == "-" { "-" } else { "OTHER" });
    let target = if bundle.dlp.scan(b.target.as_bytes()).is_some() { REDACTED } else { b.target };
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
            count: 1,
        },
    );
    request_id
}

/// Records a block and answers it with `status`; the connection is then closed by the caller.
pub(super) async fn refuse(
    bundle: &Bundle,
    client: SocketAddr,
    stream: &mut TcpStream,
    status: &str,
    b: &Blocked<'_>,
) -> std::io::Result<()> {
    let id = record(bundle, client, b);
    let body = format!("bottle blocked this request: {}\n", b.rule);
    let reply = format!(
        "HTTP/1.1 {status}\r\n{BLOCK_HEADER}: {}\r\n{REQUEST_ID_HEADER}: {id}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        b.rule,
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

pub(super) const FORBIDDEN: &str = "403 Forbidden";
pub(super) const BAD_REQUEST: &str = "400 Bad Request";
pub(super) const TOO_LARGE_HEAD: &str = "431 Request Header Fields Too Large";
pub(super) const TOO_LARGE_BODY: &str = "413 Content Too Large";
