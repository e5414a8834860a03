//! One agent call: find its API, check the placeholder, hold and scan the
//! request body, swap in the real credential, and relay the answer as it
//! streams. Every refusal and every failure becomes an HTTP answer here, in
//! the Messages API's own error shape so the agent shows its message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bottle_protocol::EventKind;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::config::Api;
use super::metered::{BoxError, Metered};
use super::pool::Sender;
use crate::gitgate::upstream::{UpstreamError, dial};
use crate::state::Bundle;

pub type ApiBody = BoxBody<Bytes, BoxError>;

/// Longest path kept in an event; the rest is cut.
pub const MAX_EVENT_PATH: usize = 256;

/// Request headers never passed upstream: the agent's own credentials (whatever they hold, the
/// gate sets the one credential header itself), cookies, and what hyper frames itself.
const DROP_REQUEST: &[&str] = &["host", "content-length", "authorization", "x-api-key", "cookie", "expect"];
/// Response headers never passed back, besides hop-by-hop ones.
const DROP_RESPONSE: &[&str] = &["set-cookie", "transfer-encoding"];

/// What the event of one call says, gathered as the call goes.
pub struct Call {
    bundle: Arc<Bundle>,
    api: String,
    method: String,
    path: String,
    start: Instant,
}

impl Call {
    pub fn event(&self, status: u16, allowed: bool, bytes_up: u64, bytes_down: u64, reason: &str) {
        self.bundle.events.emit(EventKind::ApiCall {
            api: self.api.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            status,
            allowed,
            bytes_up,
            bytes_down,
            duration_ms: self.start.elapsed().as_millis() as u64,
            reason: reason.to_string(),
        });
    }

    /// The gate's own answer (a refusal or a failure), recorded.
    fn answer(&self, status: StatusCode, allowed: bool, error_type: &str, reason: &str) -> Response<ApiBody> {
        tracing::info!(api = %self.api, path = %self.path, status = status.as_u16(), "api-gate: {reason}");
        self.event(status.as_u16(), allowed, 0, 0, reason);
        error_reply(status, error_type, reason)
    }

    fn refuse(&self, status: StatusCode, error_type: &str, reason: &str) -> Response<ApiBody> {
        self.answer(status, false, error_type, reason)
    }
}

pub async fn handle(bundle: Arc<Bundle>, req: Request<Incoming>) -> Response<ApiBody> {
    let start = Instant::now();
    let raw_path = req.uri().path();
    let (name, rest) = raw_path.strip_prefix('/').unwrap_or(raw_path).split_once('/').unwrap_or((raw_path, ""));
    let rest = format!("/{rest}");
    let call = Call {
        bundle: bundle.clone(),
        api: printable(name, 64),
        method: printable(req.method().as_str(), 16),
        path: printable(&rest, MAX_EVENT_PATH),
        start,
    };
    let Some(api) = bundle.apis.get(name) else {
        let msg = format!("bottle: no API {:?} is configured; call http://<gate>/<api name>/...", call.api);
        return call.refuse(StatusCode::NOT_FOUND, "not_found_error", &msg);
    };
    if !clean_path(&rest) {
        return call.refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "bottle: path has dot segments or escapes",
        );
    }
    if bundle.kill.engaged() {
        return call.refuse(StatusCode::SERVICE_UNAVAILABLE, "api_error", "bottle: the kill switch is engaged");
    }
    if let Err(reason) = check_placeholder(&bundle, &api, req.headers()) {
        return call.refuse(StatusCode::UNAUTHORIZED, "authentication_error", &reason);
    }
    if req.headers().get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity") {
        let msg = "bottle: compressed request bodies are refused (DLP must read them)";
        return call.refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", msg);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(&bundle, body).await {
        Ok(b) => b,
        Err((status, msg)) => return call.refuse(status, "invalid_request_error", &msg),
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}{rest}?{q}", api.upstream.path),
        None => format!("{}{rest}", api.upstream.path),
    };
    let headers = forward_headers(&parts.headers);
    let scanned = std::iter::once(path_and_query.as_bytes())
        .chain(headers.values().map(HeaderValue::as_bytes))
        .chain(std::iter::once(&body[..]));
    if let Some(f) = scanned.into_iter().find_map(|d| bundle.dlp.scan(d)) {
        let msg = format!("bottle: request refused by DLP ({})", f.rule);
        return call.refuse(StatusCode::FORBIDDEN, "permission_error", &msg);
    }
    let bytes_up = body.len() as u64;
    let request = Outgoing { method: parts.method, path_and_query, headers, body };
    let resp = match send(&bundle, &api, &request).await {
        Ok(r) => r,
        Err(UpstreamError::Timeout(t)) => {
            let msg = format!("bottle: upstream of {} did not answer within {t:?}", api.name);
            return call.answer(StatusCode::GATEWAY_TIMEOUT, true, "api_error", &msg);
        }
        Err(e) => {
            let msg = format!("bottle: {e} ({})", api.name);
            return call.answer(StatusCode::BAD_GATEWAY, true, "api_error", &msg);
        }
    };
    let (head, body) = resp.into_parts();
    let status = head.status;
    let mut out = Response::new(());
    *out.status_mut() = status;
    for (name, value) in &head.headers {
        let n = name.as_str();
        if !crate::http::is_hop_by_hop(n) && !DROP_RESPONSE.contains(&n) {
            out.headers_mut().append(name, value.clone());
        }
    }
    let idle = Duration::from_millis(bundle.config.api_gate.idle_timeout_ms);
    out.map(|()| Metered::new(body, idle, call, status.as_u16(), bytes_up).boxed())
}

/// The agent must present exactly this API's placeholder, in this API's header.
fn check_placeholder(bundle: &Bundle, api: &Api, headers: &HeaderMap) -> Result<(), String> {
    match api.header.presented(headers) {
        Some(p) if p == api.placeholder.as_bytes() => Ok(()),
        Some(p) => Err(match bundle.apis.owner_of(p) {
            Some(other) => format!("bottle: that is the placeholder of API {other:?}, not of {:?}", api.name),
            None => {
                format!("bottle: wrong credential for API {:?}; use the placeholder bottle gave the agent", api.name)
            }
        }),
        None => {
            Err(format!("bottle: no credential for API {:?}; send the placeholder bottle gave the agent", api.name))
        }
    }
}

/// Reads the whole request body, bounded in size and time. It is held, not streamed, so DLP has
/// seen every byte before the upstream sees any.
async fn read_body(bundle: &Bundle, body: Incoming) -> Result<Bytes, (StatusCode, String)> {
    let cfg = &bundle.config.api_gate;
    let too_big =
        || (StatusCode::PAYLOAD_TOO_LARGE, format!("bottle: request body exceeds {} bytes", cfg.max_body_bytes));
    if hyper::body::Body::size_hint(&body).lower() > cfg.max_body_bytes {
        return Err(too_big());
    }
    let limit = usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX);
    let timeout = Duration::from_millis(cfg.body_timeout_ms);
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_big()),
        Ok(Err(e)) => Err((StatusCode::BAD_REQUEST, format!("bottle: reading the request body: {e}"))),
        Err(_) => Err((StatusCode::REQUEST_TIMEOUT, format!("bottle: request body did not arrive within {timeout:?}"))),
    }
}

/// A path the upstream cannot read as anything but what the gate checked: no `.`/`..`
/// segments, no empty segments, no escaped separators or dots.
fn clean_path(p: &str) -> bool {
    let lower = p.to_ascii_lowercase();
    !p.contains("//")
        && !p.contains('\\')
        && !["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
        && p.split('/').all(|seg| seg != "." && seg != "..")
}

fn forward_headers(agent: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = agent
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in agent {
        let n = name.as_str();
        if !crate::http::is_hop_by_hop(n) && !DROP_REQUEST.contains(&n) && !listed.iter().any(|l| l == n) {
            out.append(name, value.clone());
        }
    }
    out
}

/// One request as it goes upstream; kept whole so a stale pooled connection can be retried.
struct Outgoing {
    method: hyper::Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Outgoing {
    fn build(&self, api: &Api) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.path_and_query.parse().unwrap_or_else(|_| hyper::Uri::from_static("/"));
        let h = req.headers_mut();
        h.clone_from(&self.headers);
        h.insert(header::HOST, HeaderValue::from_str(&api.upstream.authority()).expect("validated authority"));
        let (name, value) = api.header.upstream(&api.credential);
        h.insert(name, value);
        req
    }
}

/// Sends on a kept-alive connection when one is ready, else on a fresh one; a kept connection
/// the upstream closed while idle gets the request again on a fresh one.
async fn send(bundle: &Bundle, api: &Api, request: &Outgoing) -> Result<Response<Incoming>, UpstreamError> {
    let head_timeout = Duration::from_millis(bundle.config.api_gate.head_timeout_ms);
    if let Some(sender) = api.pool.take() {
        match send_on(sender, api, request, head_timeout).await {
            Err(Stale::Retry) => {}
            Err(Stale::Failed(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
    }
    let sender = dial(bundle, bundle.apis.tls.clone(), &api.upstream).await?;
    send_on(sender, api, request, head_timeout).await.map_err(|e| match e {
        Stale::Retry => UpstreamError::Unreachable("upstream closed the connection".into()),
        Stale::Failed(e) => e,
    })
}

enum Stale {
    Retry,
    Failed(UpstreamError),
}

async fn send_on(
    mut sender: Sender,
    api: &Api,
    request: &Outgoing,
    head_timeout: Duration,
) -> Result<Response<Incoming>, Stale> {
    match tokio::time::timeout(head_timeout, sender.send_request(request.build(api))).await {
        Ok(Ok(resp)) => {
            api.pool.put(sender);
            Ok(resp)
        }
        Ok(Err(e)) if e.is_canceled() || e.is_incomplete_message() => Err(Stale::Retry),
        Ok(Err(e)) => Err(Stale::Failed(UpstreamError::Unreachable(format!("HTTP: {e}")))),
        Err(_) => Err(Stale::Failed(UpstreamError::Timeout(head_timeout))),
    }
}

/// `{"type":"error","error":{"type":...,"message":...}}`, as the Messages API answers errors.
fn error_reply(status: StatusCode, error_type: &str, message: &str) -> Response<ApiBody> {
    let body = serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}});
    let full = Full::new(Bytes::from(body.to_string())).map_err(|n: std::convert::Infallible| match n {}).boxed();
    let mut resp = Response::new(full);
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
    resp
}

/// Agent-supplied text made safe to put in an event: printable ASCII, bounded.
fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_dot_segments_or_escapes_are_not_clean() {
        assert!(clean_path("/v1/messages"));
        for bad in ["/v1/../admin", "/./v1", "/v1//x", "/v1/%2e%2e/x", "/v1%2Fx", "/a\\b"] {
            assert!(!clean_path(bad), "{bad}");
        }
    }

    #[test]
    fn agent_credentials_and_connection_listed_headers_stay_behind() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-api-key", "p"),
            ("authorization", "Bearer p"),
            ("cookie", "c"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "v"),
            ("anthropic-version", "2023-06-01"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = forward_headers(&h);
        assert_eq!(out.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["anthropic-version"]);
    }
}
