//! One agent connection: read a request head, judge it, then forward it (keeping
//! both sides alive for the next request) or hand the socket to a tunnel.
//!
//! Every check runs before any byte goes upstream: kill switch, host
//! normalization, DLP over the head, then the allowlist. Refusals all go
//! through [`block`] and end the connection, because after a refusal the
//! rest of the client's stream (an unread body) cannot be trusted to frame.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::block::{self, Blocked, rules};
use super::body::{BodyError, Relay, Scan};
use super::readbuf::ReadBuf;
use super::tunnel;
use crate::egress::pump::{self, Activity, Pipe};
use crate::egress::{self, DialError};
use crate::http::{
    BodyFraming, HeadError, Header, RequestHead, Target, Version, is_hop_by_hop, listed_in_connection, parse_request,
    parse_response,
};
use crate::policy::{Host, Verdict, rules as policy_rules};
use crate::state::Bundle;

/// First size of a connection's read buffer; it grows only for large heads or bodies.
const INITIAL_READ_BUF: usize = 4096;
/// Largest piece of a body moved at once.
pub(super) const BODY_PIECE: usize = 64 * 1024;
/// Response bodies from this size on are spliced; below it a pipe costs more than it saves.
const SPLICE_BODY_MIN: u64 = BODY_PIECE as u64;

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub(super) struct Session {
    pub(super) bundle: Arc<Bundle>,
    pub(super) peer: SocketAddr,
    pub(super) client: TcpStream,
    pub(super) inbuf: ReadBuf,
    /// Scratch for rendering heads; reused across requests.
    out: Vec<u8>,
    /// The last origin connection, kept for the next request to the same host:port.
    upstream: Option<Upstream>,
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
    connect_timeout: Duration,
    max_head: usize,
}

struct Upstream {
    host: Host,
    port: u16,
    stream: TcpStream,
    buf: ReadBuf,
}

/// What the proxy keeps of a request head once the read buffer moves on.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) connect: bool,
    pub(super) host: Host,
    pub(super) port: u16,
    framing: BodyFraming,
    version: Version,
    keep_alive: bool,
    expect_continue: bool,
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
    pub(super) fn new(bundle: Arc<Bundle>, peer: SocketAddr, client: TcpStream) -> Self {
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
            return Some((rules::KILL_SWITCH.to_string(), false));
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

    async fn upstream_for(&mut self, req: &Request) -> io::Result<Option<(Upstream, bool)>> {
        match self.upstream.take() {
            Some(u) if u.host == req.host && u.port == req.port => Ok(Some((u, true))),
            _ => Ok(self.dial(req).await?.map(|stream| {
                let buf = ReadBuf::new(BODY_PIECE, read_limit(self.max_head));
                (Upstream { host: req.host.clone(), port: req.port, stream, buf }, false)
            })),
        }
    }

    /// Forwards one absolute-URI request and its response; returns whether the
    /// client connection stays open for another request.
    async fn forward(&mut self, req: &Request) -> io::Result<bool> {
        let max_body = self.bundle.config.limits.max_body_scan_bytes;
        if matches!(req.framing, BodyFraming::Length(n) if n > max_body) {
            self.refuse(block::TOO_LARGE_BODY, &req.method, &req.target(), rules::BODY_TOO_LARGE).await?;
            return Ok(false);
        }
        let Some((mut up, mut reused)) = self.upstream_for(req).await? else { return Ok(false) };
        // A kept connection may have been closed by the origin meanwhile: retry once on a
        // fresh one, but only while nothing of the request body has been sent.
        while let Err(e) = up.stream.write_all(&self.out).await {
            if !reused {
                tracing::debug!(target = %req.target(), "proxy: upstream write: {e}");
                self.client.write_all(BAD_GATEWAY).await?;
                return Ok(false);
            }
            let Some((fresh, _)) = self.upstream_for(req).await? else { return Ok(false) };
            (up, reused) = (fresh, false);
        }
        self.inbuf.consume(req.head_len);
        if req.framing != BodyFraming::None {
            if req.expect_continue {
                self.client.write_all(CONTINUE).await?;
            }
            let bundle = self.bundle.clone();
            let mut scan = Scan::new(&bundle.dlp, max_body);
            let relay = Relay { framing: req.framing, idle: self.idle_timeout, dechunk: false, scan: Some(&mut scan) };
            if let Err(e) = relay.run(&mut self.inbuf, &mut self.client, &mut up.stream).await {
                // The origin got a truncated request and the connection is dropped with `up`.
                return self.body_failed(req, e).await;
            }
        }
        self.response(req, up, reused).await
    }

    async fn body_failed(&mut self, req: &Request, e: BodyError) -> io::Result<bool> {
        let (status, rule) = match e {
            BodyError::Dlp(rule) => (block::FORBIDDEN, rule),
            BodyError::TooLarge => (block::TOO_LARGE_BODY, rules::BODY_TOO_LARGE.to_string()),
            BodyError::Framing => (block::BAD_REQUEST, rules::BAD_BODY.to_string()),
            other => {
                tracing::debug!(target = %req.target(), "proxy: request {other}");
                return Ok(false);
            }
        };
        self.refuse(status, &req.method, &req.target(), &rule).await?;
        Ok(false)
    }

    async fn response(&mut self, req: &Request, mut up: Upstream, reused: bool) -> io::Result<bool> {
        let (mut framing, keep, dechunk, reusable) = loop {
            match parse_response(up.buf.data(), self.max_head) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    // Interim responses are dropped: Expect was answered by the proxy itself.
                    let len = head.len;
                    up.buf.consume(len);
                    continue;
                }
                // 101 would switch protocols, but Upgrade is never forwarded, so it is a broken origin.
                Ok(Some(head)) if head.status != 101 => {
                    let framing = head.framing(req.method == "HEAD");
                    let dechunk = req.version == Version::Http10 && framing == BodyFraming::Chunked;
                    let keep = req.keep_alive && framing != BodyFraming::UntilClose && !dechunk;
                    let drop_length = framing == BodyFraming::Chunked;
                    render_response_head(
                        head.status_line,
                        &head.headers,
                        keep,
                        req.version,
                        (dechunk, drop_length),
                        &mut self.out,
                    );
                    let (len, reusable) = (head.len, head.reusable());
                    up.buf.consume(len);
                    break (framing, keep, dechunk, reusable);
                }
                Ok(Some(_)) | Err(_) => {
                    self.client.write_all(BAD_GATEWAY).await?;
                    return Ok(false);
                }
                Ok(None) => {}
            }
            match timeout(self.idle_timeout, up.buf.fill(&mut up.stream)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) if reused && up.buf.is_empty() && req.framing == BodyFraming::None => {
                    // The kept connection was closed before answering: resend once on a fresh one.
                    let Some((fresh, _)) = self.upstream_for(req).await? else { return Ok(false) };
                    up = fresh;
                    if up.stream.write_all(&self.out).await.is_err() {
                        self.client.write_all(BAD_GATEWAY).await?;
                        return Ok(false);
                    }
                    return Box::pin(self.response(req, up, false)).await;
                }
                _ => {
                    self.client.write_all(BAD_GATEWAY).await?;
                    return Ok(false);
                }
            }
        };
        // Send the head and whatever of a sized body is already here in one write.
        if let BodyFraming::Length(n) = framing {
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(up.buf.data().len());
            self.out.extend_from_slice(&up.buf.data()[..take]);
            up.buf.consume(take);
            framing = if take as u64 == n { BodyFraming::None } else { BodyFraming::Length(n - take as u64) };
        }
        self.client.write_all(&self.out).await?;
        if let Err(e) = self.response_body(&mut up, framing, dechunk).await {
            tracing::debug!(target = %req.target(), "proxy: response {e}");
            return Ok(false);
        }
        if reusable && framing != BodyFraming::UntilClose && up.buf.is_empty() {
            self.upstream = Some(up);
        }
        Ok(keep && !self.bundle.kill.engaged())
    }

    /// Moves the rest of a response body to the agent. A large body of known
    /// size is spliced socket to socket (responses are not scanned); anything
    /// else is relayed through `up`'s buffer.
    async fn response_body(&mut self, up: &mut Upstream, framing: BodyFraming, dechunk: bool) -> Result<(), BodyError> {
        if let BodyFraming::Length(len) = framing
            && len >= SPLICE_BODY_MIN
            && up.buf.is_empty()
            && let Ok(pipe) = Pipe::new()
        {
            let activity = Activity::new();
            let moved = pump::splice_len(&up.stream, &self.client, &pipe, len, &activity);
            return match pump::until_idle(moved, &activity, self.idle_timeout).await {
                None => Err(BodyError::Timeout),
                Some(Ok(n)) if n == len => Ok(()),
                Some(Ok(_)) => Err(BodyError::Eof),
                Some(Err(e)) => Err(BodyError::Io(e)),
            };
        }
        let relay = Relay { framing, idle: self.idle_timeout, dechunk, scan: None };
        relay.run(&mut up.buf, &mut up.stream, &mut self.client).await
    }
}

/// The read buffer must hold a whole head, a ClientHello, and a body piece.
fn read_limit(max_head: usize) -> usize {
    max_head.max(BODY_PIECE).max(super::sni::MAX_HELLO_BYTES)
}

/// Extracts what outlives the buffer borrow and renders the upstream head into `out`.
fn prepare(head: &RequestHead<'_>, out: &mut Vec<u8>) -> Next {
    let method = head.method.to_string();
    let Ok(host) = Host::parse(head.target.host()) else {
        return Next::Refuse { status: block::FORBIDDEN, method, rule: policy_rules::ODD_HOST };
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

/// Whether a header is forwarded: not hop-by-hop, not named by `Connection`.
fn end_to_end(h: &Header<'_>, all: &[Header<'_>]) -> bool {
    !is_hop_by_hop(h.name) && !listed_in_connection(all, h.name)
}

/// The origin-form request sent upstream. `Host` is rewritten from the URI so a
/// client cannot ask an allowed address for a different virtual host.
fn render_request_head(head: &RequestHead<'_>, host: &Host, port: u16, path: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    // Writing into a Vec cannot fail.
    let _ = match host {
        Host::Ip(IpAddr::V6(ip)) => write!(out, "[{ip}]"),
        h => write!(out, "{h}"),
    };
    if port != 80 {
        let _ = write!(out, ":{port}");
    }
    out.extend_from_slice(b"\r\n");
    for h in head.headers.iter().filter(|h| !h.is("host") && end_to_end(h, &head.headers)) {
        push_header(out, h);
    }
    out.extend_from_slice(b"\r\n");
}

/// The head sent to the agent. `drop` = (drop Transfer-Encoding, drop Content-Length):
/// the first when the body is de-chunked for HTTP/1.0, the second whenever the body
/// is chunked, so the agent never sees both framings at once.
fn render_response_head(
    status_line: &[u8],
    headers: &[Header<'_>],
    keep: bool,
    version: Version,
    drop: (bool, bool),
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\n");
    let (drop_te, drop_cl) = drop;
    let framing_dropped =
        |h: &Header<'_>| (drop_te && h.is("transfer-encoding")) || (drop_cl && h.is("content-length"));
    for h in headers.iter().filter(|h| end_to_end(h, headers) && !framing_dropped(h)) {
        push_header(out, h);
    }
    match (keep, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, h: &Header<'_>) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value);
    out.extend_from_slice(b"\r\n");
}
