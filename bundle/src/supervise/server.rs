//! The agent-facing supervise server: HTTP/1.1 + JSON on `listen.supervise`.
//!
//! Everything here is reachable by the agent, so every input is bounded:
//! header size and read time (the bundle's `limits`), body size
//! (`supervise.max_body_bytes`), body read time, long-poll length and the
//! number of open connections. Routes are only the ones in [`super::api`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::api::{self, AccessAsk, MAX_WAIT_SECS, StateReport};
use super::error::{self, ApiError, Reply};
use super::names;
use crate::state::Bundle;

/// Time allowed for a request body to arrive once its headers have.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = crate::accept::bind("supervise", addr)?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, bundle: Arc<Bundle>) -> anyhow::Result<()> {
        let limits = bundle.config.limits.clone();
        crate::httpserve::serve(&self.listener, "supervise", limits.max_supervise_connections, &limits, move |req| {
            let bundle = bundle.clone();
            async move { respond(route(&bundle, req).await) }
        })
        .await
    }
}

fn respond(reply: Reply) -> Response<Full<Bytes>> {
    let (allow, (status, body)) = match reply {
        Ok(pair) => (None, pair),
        Err(e) => (e.allow, e.into_pair()),
    };
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(allow) = allow {
        res.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    res
}

async fn route(bundle: &Bundle, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let id = path.strip_prefix(api::REQUESTS).and_then(|r| r.strip_prefix('/')).filter(|id| !id.contains('/'));
    match (path.as_str(), id) {
        (api::STATE, _) => {
            require(&req, &path, "POST")?;
            let report: StateReport = error::parse("state", &body(bundle, req).await?)?;
            let message =
                names::text("message", &report.message, names::MAX_MESSAGE_CHARS).map_err(ApiError::bad_request)?;
            error::ok(StatusCode::OK, &bundle.desk.report_state(&bundle.events, report.state, message)?)
        }
        (api::REQUESTS, _) => {
            require(&req, &path, "POST")?;
            let ask: AccessAsk = error::parse("access request", &body(bundle, req).await?)?;
            let ask = validate(ask)?;
            let (view, new) = bundle.desk.ask(&bundle.events, ask)?;
            error::ok(if new { StatusCode::ACCEPTED } else { StatusCode::OK }, &view)
        }
        (_, Some(id)) => {
            require(&req, &path, "GET")?;
            let wait = wait_param(req.uri().query())?;
            let view = bundle.desk.status(id, wait).await;
            let view = view.ok_or_else(|| ApiError::not_found(format!("access request {id}: no such request")))?;
            error::ok(StatusCode::OK, &view)
        }
        _ => Err(ApiError::not_found(format!("{path}: no such route"))),
    }
}

fn require(req: &Request<Incoming>, path: &str, method: &'static str) -> Result<(), ApiError> {
    if req.method().as_str() == method { Ok(()) } else { Err(ApiError::method(path, method)) }
}

/// Reads the body within `max_body_bytes` and [`BODY_TIMEOUT`]; a declared length over the cap is refused unread.
async fn body(bundle: &Bundle, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = bundle.config.supervise.max_body_bytes;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::too_large(max));
    }
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::too_large(max)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("request body: {e}"))),
        Err(_) => Err(ApiError::timeout(format!("request body: not received within {}s", BODY_TIMEOUT.as_secs()))),
    }
}

fn validate(ask: AccessAsk) -> Result<AccessAsk, ApiError> {
    let host = names::host(&ask.host).map_err(|e| ApiError::bad_request(format!("access request: {e}")))?;
    if ask.port == Some(0) {
        return Err(ApiError::bad_request("access request: port 0 is not a port; omit port to ask for every port"));
    }
    let reason = names::text("reason", &ask.reason, names::MAX_REASON_CHARS)
        .map_err(|e| ApiError::bad_request(format!("access request: {e}")))?;
    if reason.is_empty() {
        return Err(ApiError::bad_request("access request: reason is empty; tell the human why you need access"));
    }
    Ok(AccessAsk { host, port: ask.port, reason })
}

/// `wait=<secs>` from the query, capped at [`MAX_WAIT_SECS`]; absent means answer now.
fn wait_param(query: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = query.unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("wait=")) else {
        return Ok(Duration::ZERO);
    };
    let secs: u64 = raw.parse().map_err(|_| ApiError::bad_request(format!("wait={raw:?}: expected whole seconds")))?;
    Ok(Duration::from_secs(secs.min(MAX_WAIT_SECS)))
}
