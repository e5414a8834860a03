//! The host side of a bundle's control plane: health, events, access decisions, kill switch.
//!
//! The CLI (and later the FFI) reach a bottle's bundle only through this client,
//! so the bearer token is attached in exactly one place and never printed: errors
//! name the method, path and status, and quote only the bundle's error reply.
//! Paths and bodies come from [`bottle_protocol::control`], so client and server
//! cannot drift apart.

use std::time::Duration;

use anyhow::{Context, bail};
use bottle_protocol::Event;
use bottle_protocol::control::{
    self, AccessRequest, AgentStatus, Approve, ErrorReply, GrantAdd, GrantRevoke, GrantView, Health, PolicyCheck,
    PolicyQuery, PolicyUpdate, PolicyView,
};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::backend::{BottleBackend, ControlEndpoint};

/// How long to wait for the TCP connection to the control plane.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a non-streaming call may take from request to full reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest reply body read for a non-streaming call.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// Longest single event line; a longer one means the stream is not what we expect.
pub const MAX_EVENT_LINE_BYTES: usize = 256 * 1024;

pub struct ControlClient {
    /// `host:port` to dial and to send as `Host`.
    authority: String,
    token: String,
}

impl ControlClient {
    /// A client of bottle `name`'s control plane, wherever `backend` put it.
    pub async fn of_bottle(backend: &dyn BottleBackend, name: &str) -> crate::backend::Result<Self> {
        Ok(Self::new(&backend.control_endpoint(name).await?)?)
    }

    /// Accepts only `http://host:port[/]`: the control plane is plain HTTP on a host-only address.
    pub fn new(endpoint: &ControlEndpoint) -> anyhow::Result<Self> {
        let authority = endpoint
            .url
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/') && !a.contains('@'))
            .with_context(|| format!("control endpoint {:?}: expected http://host:port", endpoint.url))?;
        Ok(Self { authority: authority.to_string(), token: endpoint.token.clone() })
    }

    pub async fn health(&self) -> anyhow::Result<Health> {
        self.call_json(Method::GET, control::HEALTH, None).await
    }

    pub async fn agent(&self) -> anyhow::Result<AgentStatus> {
        self.call_json(Method::GET, control::AGENT, None).await
    }

    /// The live grants of approved access requests, with their ends.
    pub async fn grants(&self) -> anyhow::Result<Vec<GrantView>> {
        self.call_json(Method::GET, control::GRANTS, None).await
    }

    /// Pending access requests, oldest first as the bundle lists them.
    pub async fn pending(&self) -> anyhow::Result<Vec<AccessRequest>> {
        self.call_json(Method::GET, control::ACCESS, None).await
    }

    pub async fn approve(&self, request_id: &str, ttl_secs: Option<u64>) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&Approve { ttl_secs })?;
        self.call(Method::POST, &control::approve_path(checked_id(request_id)?), Some(body)).await.map(drop)
    }

    pub async fn deny(&self, request_id: &str) -> anyhow::Result<()> {
        self.call(Method::POST, &control::deny_path(checked_id(request_id)?), None).await.map(drop)
    }

    /// Engages (`true`) or releases the kill switch that cuts all egress.
    pub async fn kill(&self, engage: bool) -> anyhow::Result<()> {
        let method = if engage { Method::POST } else { Method::DELETE };
        self.call(method, control::KILL, None).await.map(drop)
    }

    /// Replaces the bottle's allowlist (and deny list) atomically.
    pub async fn replace_policy(&self, update: &PolicyUpdate) -> anyhow::Result<()> {
        self.call(Method::PUT, control::POLICY, Some(serde_json::to_vec(update)?)).await.map(drop)
    }

    /// The allowlist the proxy applies now: the policy's lists and the live grants.
    pub async fn policy(&self) -> anyhow::Result<PolicyView> {
        self.call_json(Method::GET, control::POLICY, None).await
    }

    /// The proxy's decision for one destination, and what decided it.
    pub async fn check(&self, host: &str, port: u16) -> anyhow::Result<PolicyCheck> {
        let body = serde_json::to_vec(&PolicyQuery { host: host.into(), port })?;
        self.call_json(Method::POST, control::POLICY_CHECK, Some(body)).await
    }

    /// Adds (or renews) a host grant; the reply is the grant as listed.
    pub async fn allow(&self, grant: &GrantAdd) -> anyhow::Result<GrantView> {
        self.call_json(Method::POST, control::GRANTS, Some(serde_json::to_vec(grant)?)).await
    }

    /// Removes grants (host-given or approved) for a destination; the reply lists them.
    pub async fn revoke(&self, target: &GrantRevoke) -> anyhow::Result<Vec<GrantView>> {
        self.call_json(Method::DELETE, control::GRANTS, Some(serde_json::to_vec(target)?)).await
    }

    /// Opens the event stream: events after `since` (all buffered ones if `None`),
    /// then, with `follow`, new ones as they happen until the bundle closes it.
    pub async fn events(&self, since: Option<u64>, follow: bool) -> anyhow::Result<EventStream> {
        let mut query = Vec::new();
        if let Some(id) = since {
            query.push(format!("since={id}"));
        }
        if follow {
            query.push("follow=1".to_string());
        }
        let path = if query.is_empty() {
            control::EVENTS.to_string()
        } else {
            format!("{}?{}", control::EVENTS, query.join("&"))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.send(Method::GET, &path, None))
            .await
            .map_err(|_| anyhow::anyhow!("control GET {}: no reply within {REQUEST_TIMEOUT:?}", control::EVENTS))??;
        let response = self.check_status(Method::GET, control::EVENTS, response).await?;
        Ok(EventStream { body: response.into_body(), buf: BytesMut::new(), done: false })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let bytes = self.call(method.clone(), path, body).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("control {method} {path}: unexpected reply"))
    }

    /// One request/reply, bounded in time and size; non-2xx becomes an error.
    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Bytes> {
        let work = async {
            let response = self.send(method.clone(), path, body).await?;
            let response = self.check_status(method.clone(), path, response).await?;
            read_limited(response.into_body()).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| anyhow::anyhow!("control {method} {path}: no reply within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("control {method} {path}"))
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Response<Incoming>> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| {
                anyhow::anyhow!("connecting to control plane {}: timed out after {CONNECT_TIMEOUT:?}", self.authority)
            })?
            .with_context(|| format!("connecting to control plane {}", self.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("control plane {}: HTTP handshake", self.authority))?;
        // The connection task ends when the response body is dropped or the peer closes.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("control connection ended: {e}");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(control::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok(sender.send_request(req).await?)
    }

    async fn check_status(
        &self,
        method: Method,
        path: &str,
        response: Response<Incoming>,
    ) -> anyhow::Result<Response<Incoming>> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_limited(response.into_body()).await.unwrap_or_default();
        let reason = serde_json::from_slice::<ErrorReply>(&body)
            .map(|r| r.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string());
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (the control token was refused)",
            _ => "",
        };
        bail!("control {method} {path}: {status}{hint}: {reason}")
    }
}

/// Request ids become a path segment; anything else would change the route.
fn checked_id(id: &str) -> anyhow::Result<&str> {
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || id.starts_with('.')
    {
        bail!("request id {id:?}: expected letters, digits, `-`, `_` or `.`");
    }
    Ok(id)
}

async fn read_limited(body: Incoming) -> anyhow::Result<Bytes> {
    Limited::new(body, MAX_REPLY_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| anyhow::anyhow!("reading reply: {e}"))
}

/// Newline-delimited [`Event`]s from `GET /v1/events`.
pub struct EventStream {
    body: Incoming,
    buf: BytesMut,
    done: bool,
}

impl EventStream {
    /// The next event, or `None` when the bundle ends the stream. Event kinds
    /// this build does not know are skipped, as the protocol allows.
    pub async fn next(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(line) = self.take_line() {
                match parse_event(&line)? {
                    Some(ev) => return Ok(Some(ev)),
                    None => continue,
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(frame) => {
                    if let Ok(data) = frame.context("reading event stream")?.into_data() {
                        self.buf.extend_from_slice(data.chunk());
                        if self.buf.len() > MAX_EVENT_LINE_BYTES && !self.buf.contains(&b'\n') {
                            bail!("event stream: a line is longer than {MAX_EVENT_LINE_BYTES} bytes");
                        }
                    }
                }
            }
        }
    }

    /// The next complete line; at the end of the stream, whatever is left.
    fn take_line(&mut self) -> Option<Bytes> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = self.buf.split_to(i + 1).freeze();
                Some(line.slice(..i))
            }
            None if self.done && !self.buf.is_empty() => Some(self.buf.split().freeze()),
            None => None,
        }
    }
}

/// `Ok(None)` for a blank line or an event of a kind this build does not know.
fn parse_event(line: &[u8]) -> anyhow::Result<Option<Event>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Event>(line) {
        Ok(ev) => Ok(Some(ev)),
        Err(e) => {
            let value: serde_json::Value = serde_json::from_slice(line).context("event stream: a line is not JSON")?;
            if value.get("kind").and_then(|k| k.as_str()).is_some() && value.get("id").is_some() {
                tracing::debug!("skipping event of unknown shape: {e}");
                Ok(None)
            } else {
                Err(e).context("event stream: a line is not an event")
            }
        }
    }
}
