//! The forwarding path of a plain-HTTP request: its head and (DLP-scanned)
//! body to the origin, the origin's response back, and the origin connection
//! kept for the next request to the same host:port.

use std::io::{self, Write};
use std::net::IpAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use bottle_protocol::rule::proxy as rules;

use super::block;
use super::body::{BodyError, Relay, Scan};
use super::readbuf::ReadBuf;
use super::session::{BAD_GATEWAY, BODY_PIECE, Request, Session, read_limit};
use crate::egress::pump::{self, Activity, Pipe};
use crate::http::{BodyFraming, Header, RequestHead, Version, is_hop_by_hop, listed_in_connection, parse_response};
use crate::policy::Host;

/// Response bodies from this size on are spliced; below it a pipe costs more than it saves.
const SPLICE_BODY_MIN: u64 = BODY_PIECE as u64;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub(super) struct Upstream {
    host: Host,
    port: u16,
    stream: TcpStream,
    buf: ReadBuf,
}

impl Session {
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
    pub(super) async fn forward(&mut self, req: &Request) -> io::Result<bool> {
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

/// Whether a header is forwarded: not hop-by-hop, not named by `Connection`.
fn end_to_end(h: &Header<'_>, all: &[Header<'_>]) -> bool {
    !is_hop_by_hop(h.name) && !listed_in_connection(all, h.name)
}

/// The origin-form request sent upstream. `Host` is rewritten from the URI so a
/// client cannot ask an allowed address for a different virtual host.
pub(super) fn render_request_head(head: &RequestHead<'_>, host: &Host, port: u16, path: &str, out: &mut Vec<u8>) {
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
