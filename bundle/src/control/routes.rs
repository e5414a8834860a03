//! Authentication and routing: the token is checked before anything else is
//! looked at (path, method, body), so an unauthenticated caller learns nothing,
//! not even which endpoints exist.

use std::sync::Arc;

use bottle_protocol::EventKind;
use bottle_protocol::control::{
    ACCESS, AGENT, AUTHORIZATION, EVENTS, GRANTS, HEALTH, Health, KILL, POLICY, POLICY_CHECK, PolicyUpdate,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use super::reply::{self, Body};
use super::{events, grants};
use crate::state::{Bundle, Stats};

/// Largest request body the control plane reads (a policy update is the big one).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub async fn handle(bundle: Arc<Bundle>, req: Request<Incoming>) -> Response<Body> {
    if !authorized(&bundle, &req) {
        return reply::unauthorized();
    }
    let (parts, body) = req.into_parts();
    let (method, path) = (&parts.method, parts.uri.path());
    match path {
        HEALTH if method == Method::GET => health(&bundle),
        HEALTH => reply::method_not_allowed("GET"),
        EVENTS if method == Method::GET => events::stream(&bundle, parts.uri.query()),
        EVENTS => reply::method_not_allowed("GET"),
        POLICY if method == Method::GET => grants::view(&bundle),
        POLICY if method == Method::PUT => match read_body(body).await {
            Ok(b) => policy(&bundle, &b),
            Err(r) => r,
        },
        POLICY => reply::method_not_allowed("GET, PUT"),
        POLICY_CHECK if method == Method::POST => match read_body(body).await {
            Ok(b) => grants::check(&bundle, &b),
            Err(r) => r,
        },
        POLICY_CHECK => reply::method_not_allowed("POST"),
        GRANTS if method == Method::GET => grants::list(&bundle),
        GRANTS if method == Method::POST => match read_body(body).await {
            Ok(b) => grants::add(&bundle, &b),
            Err(r) => r,
        },
        GRANTS if method == Method::DELETE => match read_body(body).await {
            Ok(b) => grants::revoke(&bundle, &b),
            Err(r) => r,
        },
        GRANTS => reply::method_not_allowed("GET, POST, DELETE"),
        KILL if method == Method::POST => kill(&bundle, true),
        KILL if method == Method::DELETE => kill(&bundle, false),
        KILL => reply::method_not_allowed("POST, DELETE"),
        p if under(p, ACCESS) || under(p, AGENT) => {
            let body = match read_body(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match crate::supervise::control(&bundle, method, p, body).await {
                Some((status, value)) => reply::json(status, &value),
                None => reply::not_found(),
            }
        }
        _ => reply::not_found(),
    }
}

fn authorized(bundle: &Bundle, req: &Request<Incoming>) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| bundle.control_token_matches(token.trim()))
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Reads a body up to [`MAX_BODY_BYTES`]. A declared length over the cap is refused
/// before a byte is read (so a client waiting on `Expect: 100-continue` sends nothing).
async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    let too_large =
        || reply::error(StatusCode::PAYLOAD_TOO_LARGE, format!("control: request body is over {MAX_BODY_BYTES} bytes"));
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(reply::error(StatusCode::BAD_REQUEST, "control: request body could not be read")),
    }
}

fn health_of(bundle: &Bundle) -> Health {
    let (allow, deny) = bundle.policy.entries();
    Health {
        bottle: bundle.config.bottle.clone(),
        ok: true,
        kill_switch: bundle.kill.engaged(),
        open_connections: Stats::get(&bundle.stats.open_connections),
        blocked_total: Stats::get(&bundle.stats.blocked_total),
        allow,
        deny,
    }
}

fn health(bundle: &Bundle) -> Response<Body> {
    reply::json(StatusCode::OK, &health_of(bundle))
}

/// Replaces the allowlist; the reply is the new [`Health`] (which lists it).
fn policy(bundle: &Bundle, body: &[u8]) -> Response<Body> {
    let update: PolicyUpdate = match serde_json::from_slice(body) {
        Ok(u) => u,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("policy: body is not a policy update: {e}")),
    };
    match bundle.policy.replace(&update) {
        Ok((allow, deny)) => {
            bundle.events.emit(EventKind::PolicyReloaded { allow, deny });
            saved_then_health(bundle, "policy replaced")
        }
        Err(message) => reply::error(StatusCode::BAD_REQUEST, format!("policy: {message}")),
    }
}

/// Engages or releases the kill switch; only a change emits an event, so a
/// repeated call is harmless. The reply is the new [`Health`].
fn kill(bundle: &Bundle, engaged: bool) -> Response<Body> {
    if bundle.kill.set(engaged) {
        bundle.events.emit(EventKind::KillSwitch { engaged });
    }
    saved_then_health(bundle, if engaged { "kill switch engaged" } else { "kill switch released" })
}

/// The reply to a change, once it is saved; a change a restart would undo is reported as
/// not done, so the host does not take it for lasting.
fn saved_then_health(bundle: &Bundle, change: &str) -> Response<Body> {
    match bundle.save_state() {
        Ok(()) => health(bundle),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("control: {change} in this process but not saved, so a restart would undo it: {e:#}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("/v1/access", "/v1/access"));
        assert!(under("/v1/access/7/approve", "/v1/access"));
        assert!(!under("/v1/accessories", "/v1/access"));
    }
}
