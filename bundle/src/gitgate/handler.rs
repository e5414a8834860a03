//! One agent request: route it, apply the repository's rules, and either
//! answer for the upstream (refusals, errors) or relay to it.
//!
//! Fetches are relayed as streams; a push's RPC goes to [`super::push`],
//! which holds it until the rules have judged every ref.

use std::convert::Infallible;
use std::sync::Arc;

use bottle_protocol::EventKind;
use bottle_protocol::event::GitOperation;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::config::Repo;
use super::push::push;
use super::rules::options;
use super::upstream::{self, FORWARD_RESPONSE, UpstreamError};
use crate::state::Bundle;

pub type GateBody = BoxBody<Bytes, hyper::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::UploadPack => "git-upload-pack",
            Self::ReceivePack => "git-receive-pack",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Advertise,
    Rpc,
}

struct Route {
    alias: String,
    service: Service,
    step: Step,
}

pub async fn handle(bundle: Arc<Bundle>, req: Request<Incoming>) -> Response<GateBody> {
    let route = match route(&req) {
        Ok(r) => r,
        Err((status, msg)) => return text(status, msg),
    };
    let op = match route.service {
        Service::UploadPack => GitOperation::Fetch,
        Service::ReceivePack => GitOperation::Push,
    };
    let Some(repo) = bundle.git.get(&route.alias) else {
        let shown = printable(&route.alias);
        event(&bundle, &shown, op, false, vec![], "unknown repository alias");
        return text(StatusCode::NOT_FOUND, &format!("bottle: no repository {shown:?} is configured for this bottle"));
    };
    if bundle.kill.engaged() {
        event(&bundle, &repo.alias, op, false, vec![], "kill switch engaged");
        return text(StatusCode::SERVICE_UNAVAILABLE, "bottle: the kill switch is engaged; git is cut off");
    }
    if op == GitOperation::Fetch && !repo.fetch {
        event(&bundle, &repo.alias, op, false, vec![], "fetch is not allowed");
        return text(StatusCode::FORBIDDEN, &format!("bottle: fetching {} is not allowed", repo.alias));
    }
    match (route.service, route.step) {
        (Service::ReceivePack, Step::Rpc) => push(bundle, repo, req).await,
        (service, step) => {
            let (parts, body) = req.into_parts();
            let name = service.name();
            let path = match step {
                Step::Advertise => format!("/info/refs?service={name}"),
                Step::Rpc => format!("/{name}"),
            };
            let tls = bundle.git.tls.clone();
            let result = upstream::send(&bundle, tls, &repo, parts.method, &path, &parts.headers, body).await;
            // Only receive-pack's advertisement reaches here: its RPC is `push`.
            let unadvertise = service == Service::ReceivePack && repo.push_options.is_empty();
            let result = result
                .map(|resp| resp.map(|b| if unadvertise { options::Unadvertised::new(b).boxed() } else { b.boxed() }));
            // A fetch is recorded once, at its advertisement; pushes are recorded at their update.
            let record = service == Service::UploadPack && step == Step::Advertise;
            relay(&bundle, &repo, op, record, vec![], "", result)
        }
    }
}

/// Parses the agent's path; an error is the status and message to answer with.
fn route(req: &Request<Incoming>) -> Result<Route, (StatusCode, &'static str)> {
    let path = req.uri().path();
    let (repo, rest) = path.strip_prefix('/').and_then(|p| p.split_once('/')).unwrap_or((path, ""));
    let alias = repo.strip_suffix(".git").unwrap_or(repo).to_string();
    let query = req.uri().query().unwrap_or("");
    let service_param = query.split('&').find_map(|kv| kv.strip_prefix("service="));
    let service = |name: &str| [Service::UploadPack, Service::ReceivePack].into_iter().find(|s| s.name() == name);
    let found = match (req.method(), rest) {
        (&Method::GET, "info/refs") => match service_param.and_then(service) {
            Some(s) => Some((s, Step::Advertise)),
            None => return Err((StatusCode::FORBIDDEN, "bottle: only git smart HTTP is served here")),
        },
        (&Method::POST, name) => service(name).map(|s| (s, Step::Rpc)),
        _ => None,
    };
    match found {
        Some((service, step)) if !alias.is_empty() => Ok(Route { alias, service, step }),
        _ => Err((StatusCode::NOT_FOUND, "bottle: not a git smart-HTTP path; use http://<gate>/<alias>.git")),
    }
}

/// Turns an upstream answer into the agent's response. Only 2xx bodies pass; every other
/// upstream body (which could echo anything) is replaced by the gate's own message.
/// `note` (what the gate changed on the way, e.g. dropped push options) joins the event.
pub(super) fn relay(
    bundle: &Bundle,
    repo: &Repo,
    op: GitOperation,
    record: bool,
    refs: Vec<String>,
    note: &str,
    result: Result<Response<GateBody>, UpstreamError>,
) -> Response<GateBody> {
    let alias = &repo.alias;
    let (status, msg) = match result {
        Ok(resp) if resp.status().is_success() => {
            if record {
                event(bundle, alias, op, true, refs, note);
            }
            let (parts, body) = resp.into_parts();
            let mut out = Response::new(body);
            for name in FORWARD_RESPONSE {
                for v in parts.headers.get_all(*name) {
                    out.headers_mut().append(*name, v.clone());
                }
            }
            return out;
        }
        Ok(resp) => match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PROXY_AUTHENTICATION_REQUIRED => (
                StatusCode::BAD_GATEWAY,
                format!("upstream refused the bundle's credentials for {alias} (HTTP {})", resp.status().as_u16()),
            ),
            StatusCode::NOT_FOUND => (StatusCode::NOT_FOUND, format!("upstream repository of {alias} not found")),
            s => (StatusCode::BAD_GATEWAY, format!("upstream of {alias} answered HTTP {}", s.as_u16())),
        },
        Err(e @ UpstreamError::Refused(_)) => (StatusCode::FORBIDDEN, format!("{e} for {alias}")),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e} ({alias})")),
    };
    tracing::warn!(repo = %alias, "git-gate: {msg}");
    let reason = if note.is_empty() { msg.clone() } else { format!("{msg}; {note}") };
    event(bundle, alias, op, false, refs, &reason);
    text(status, &format!("bottle: {msg}"))
}

pub(super) fn event(
    bundle: &Bundle,
    repo: &str,
    operation: GitOperation,
    allowed: bool,
    refs: Vec<String>,
    reason: &str,
) {
    bundle.events.emit(EventKind::Git { repo: repo.to_string(), operation, allowed, refs, reason: reason.to_string() });
}

/// An agent-supplied alias made safe to echo: printable ASCII, bounded.
fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

pub(super) fn full(b: impl Into<Bytes>) -> GateBody {
    Full::new(b.into()).map_err(|n: Infallible| match n {}).boxed()
}

/// A plain-text answer; git shows `text/plain` error bodies to the user as `remote: ...`.
pub(super) fn text(status: StatusCode, msg: &str) -> Response<GateBody> {
    let mut resp = Response::new(full(format!("{msg}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
