//! One agent connection: read a request head, judge it, then forward it
//! ([`super::forward`], keeping both sides alive for the next request) or hand
//! the socket to a tunnel.
//!
//! Every check runs before any byte goes upstream: kill switch, host
//! normalization, DLP over the head, then the allowlist. Refusals all go
//! through [`block`] and end the connection, because after a refusal the
//! rest of the client's stream (an unread body) cannot be trusted to frame.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bottle_protocol::rule;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::block::{self, Blocked};
use super::forward::{Upstream, render_request_head};
use super::readbuf::ReadBuf;
use super::tunnel;
use crate::cap::Headed;
use crate::egress::{self, DialError};
use crate::http::{BodyFraming, HeadError, RequestHead, Target, Version, parse_request};
use crate::policy::{Host, Verdict};
use crate::state::Bundle;

/// First size of a connection's read buffer; it grows only for large heads or bodies.
const INITIAL_READ_BUF: usize = 4096;
/// Largest piece of a body moved at once.
pub(super) const BODY_PIECE: usize = 64 * 1024;

pub(super) const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

pub(super) struct Session {
    pub(super) bundle: Arc<Bundle>,
    pub(super) peer: SocketAddr,
    pub(super) client: TcpStream,
    pub(super) inbuf: ReadBuf,
    /// Scratch for rendering heads; reused across requests.
    pub(super) out: Vec<u8>,
    /// The last origin connection, kept for the next request to the same host:port.
    pub(super) upstream: Option<Upstream>,
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
    connect_timeout: Duration,
    pub(super) max_head: usize,
    /// Marked at the first request head, so the connection cap no longer sheds this connection.
    headed: Headed,
}

/// What the proxy keeps of a request head once the read buffer moves on.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) connect: bool,
    pub(super) host: Host,
    pub(super) port: u16,
    pub(super) framing: BodyFraming,
    pub(super) version: Version,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) head_len: usize,
}

impl Request {
    /// `host:port` for events; never the path or query.
    pub(super) fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

enum Next {
    Request(Request),
    Refuse { status: &'static str, method: String, rule: &'static str },
    Close,
}

impl Session {
    pub(super) fn new(bundle: Arc<Bundle>, peer: SocketAddr, client: TcpStream, headed: Headed) -> Self {
        let l = &bundle.config.limits;
        let ms = Duration::from_millis;
        Self {
            peer,
            client,
            inbuf: ReadBuf::new(INITIAL_READ_BUF, read_limit(l.max_header_bytes)),
            out: Vec::with_capacity(512),
            upstream: None,
            header_timeout: ms(l.header_timeout_ms),
            idle_timeout: ms(l.idle_timeout_ms),
            connect_timeout: ms(l.connect_timeout_ms),
            max_head: l.max_header_bytes,
            headed,
            bundle,
        }
    }

    pub(super) async fn run(mut self) -> io::Result<()> {
        let mut first = true;
        loop {
            let req = match self.next_request(first).await? {
                Next::Close => return Ok(()),
                Next::Refuse { status, method, rule } => {
                    return self.refuse(status, &method, "-", rule).await;
                }
                Next::Request(r) => r,
            };
            self.headed.mark();
            first = false;
            if let Some((rule, redact)) = self.judge(&req) {
                let target = if redact { block::REDACTED.to_string() } else { req.target() };
                return self.refuse(block::FORBIDDEN, &req.method, &target, &rule).await;
            }
            if req.connect {
                return tunnel::run(self, req).await;
            }
            if !self.forward(&req).await? {
                return Ok(());
            }
        }
    }

    /// The checks every request passes before anything leaves. `Some((rule, redact))`
    /// refuses; `redact` is set for DLP hits, whose target may be the secret's carrier.
    fn judge(&self, req: &Request) -> Option<(String, bool)> {
        if self.bundle.kill.engaged() {
            return Some((rule::KILL_SWITCH.to_string(), false));
        }
        if let Some(f) = self.bundle.dlp.scan(&self.inbuf.data()[..req.head_len]) {
            return Some((f.rule, true));
        }
        match self.bundle.policy.decide_host(&req.host, req.port) {
            Verdict::Allow => None,
            Verdict::Deny { rule } => Some((rule, false)),
        }
    }

    pub(super) async fn refuse(&mut self, status: &str, method: &str, target: &str, rule: &str) -> io::Result<()> {
        let b = Blocked { method, target, rule };
        block::refuse(&self.bundle, self.peer, &mut self.client, status, &b).await
    }

    /// Reads the next head. The first waits `header_timeout` for its first byte, later ones
    /// `idle_timeout`; once a head has started it must finish within `header_timeout`.
    async fn next_request(&mut self, first: bool) -> io::Result<Next> {
        let started = !self.inbuf.is_empty();
        let wait = if first || started { self.header_timeout } else { self.idle_timeout };
        let mut deadline = Instant::now() + wait;
        let mut started = started;
        loop {
            match parse_request(self.inbuf.data(), self.max_head) {
                Ok(Some(head)) => return Ok(prepare(&head, &mut self.out)),
                Ok(None) => {}
                Err(e) => {
                    let status = if e == HeadError::TooLarge { block::TOO_LARGE_HEAD } else { block::BAD_REQUEST };
                    return Ok(Next::Refuse { status, method: "-".into(), rule: e.rule() });
                }
            }
            match timeout_at(deadline, self.inbuf.fill(&mut self.client)).await {
                Err(_) | Ok(Ok(0)) => return Ok(Next::Close),
                Ok(Ok(_)) if !started => {
                    started = true;
                    deadline = Instant::now() + self.header_timeout;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Opens a connection to the request's destination with egress's dialer (in
    /// this process, no loopback hop); on failure the client has already been answered.
    pub(super) async fn dial(&mut self, req: &Request) -> io::Result<Option<TcpStream>> {
        let host = req.host.to_string();
        let failed = match timeout(self.connect_timeout, egress::open(&self.bundle, &host, req.port)).await {
            Ok(Ok(s)) => return Ok(Some(s)),
            Ok(Err(DialError::Refused(rule))) => {
                self.refuse(block::FORBIDDEN, &req.method, &req.target(), rule).await?;
                return Ok(None);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        tracing::debug!(target = %req.target(), "proxy: {failed}");
        self.client.write_all(BAD_GATEWAY).await?;
        Ok(None)
    }
}

/// The read buffer must hold a whole head, a ClientHello, and a body piece.
pub(super) fn read_limit(max_head: usize) -> usize {
    max_head.max(BODY_PIECE).max(super::sni::MAX_HELLO_BYTES)
}

/// Extracts what outlives the buffer borrow and renders the upstream head into `out`.
fn prepare(head: &RequestHead<'_>, out: &mut Vec<u8>) -> Next {
    let method = head.method.to_string();
    let Ok(host) = Host::parse(head.target.host()) else {
        return Next::Refuse { status: block::FORBIDDEN, method, rule: rule::ODD_HOST };
    };
    let port = head.target.port();
    if let Target::Absolute { path, .. } = head.target {
        render_request_head(head, &host, port, path, out);
    }
    let expect_continue = head.headers.iter().any(|h| h.is("expect") && h.value.eq_ignore_ascii_case(b"100-continue"));
    Next::Request(Request {
        connect: matches!(head.target, Target::Authority { .. }),
        method,
        host,
        port,
        framing: head.framing,
        version: head.version,
        keep_alive: head.keep_alive(),
        expect_continue,
        head_len: head.len,
    })
}
