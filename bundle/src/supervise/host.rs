//! The host-side supervise routes, served by the control plane behind its token:
//! the pending queue, approve, deny and the agent's state. Approving is only
//! possible here, so the agent can never grant itself access.

use std::sync::Arc;
use std::time::Instant;

use bottle_protocol::control::{ACCESS, AGENT, Approve};
use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::error::{self, ApiError, Reply};
use crate::state::Bundle;

/// Host-side routes under `/v1/access` and `/v1/agent`, called by the control plane
/// after it has checked the token. Returns `None` when the path is not one of them.
pub async fn control(
    bundle: &Arc<Bundle>,
    method: &Method,
    path: &str,
    body: Bytes,
) -> Option<(StatusCode, serde_json::Value)> {
    let path = path.split('?').next().unwrap_or_default();
    let under = |base: &str| path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'));
    if !under(ACCESS) && !under(AGENT) {
        return None;
    }
    Some(route(bundle, method, path, &body).unwrap_or_else(ApiError::into_pair))
}

fn route(bundle: &Arc<Bundle>, method: &Method, path: &str, body: &[u8]) -> Reply {
    let desk = &bundle.desk;
    if path == AGENT {
        return match *method {
            Method::GET => error::ok(StatusCode::OK, &desk.agent_status()),
            _ => Err(ApiError::method(path, "GET")),
        };
    }
    if path == ACCESS {
        return match *method {
            Method::GET => error::ok(StatusCode::OK, &desk.pending()),
            _ => Err(ApiError::method(path, "GET")),
        };
    }
    let rest = path.strip_prefix(ACCESS).and_then(|r| r.strip_prefix('/')).unwrap_or_default();
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(action, "approve" | "deny") {
        return Err(ApiError::not_found(format!("{path}: no such route")));
    }
    if *method != Method::POST {
        return Err(ApiError::method(path, "POST"));
    }
    if action == "deny" {
        return error::ok(StatusCode::OK, &desk.deny(&bundle.events, id)?);
    }
    let approve: Approve =
        if body.iter().all(u8::is_ascii_whitespace) { Approve::default() } else { error::parse("approve", body)? };
    let (view, deadline) = desk.approve(&bundle.events, &bundle.policy, id, approve.ttl_secs)?;
    bundle.save_state().map_err(|e| ApiError::internal(format!("approve {id}: granted but not saved: {e:#}")))?;
    if let Some(deadline) = deadline {
        expire_at(bundle, id.to_string(), deadline);
    }
    error::ok(StatusCode::OK, &view)
}

/// Removes the grant at its deadline. The timer holds the bundle, so it fires even if nobody watches.
fn expire_at(bundle: &Arc<Bundle>, id: String, deadline: Instant) {
    let bundle = bundle.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        bundle.desk.expire(&bundle.events, &bundle.policy, &id);
        // Not saving only leaves an expired grant on file, which a restart drops by its deadline.
        if let Err(e) = bundle.save_state() {
            tracing::warn!(request_id = %id, "supervise: expiry not saved: {e:#}");
        }
    });
}
