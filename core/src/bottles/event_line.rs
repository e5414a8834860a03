//! One event as one line of text: what `bottle-core events` prints and what the app shows
//! in its recent-events view, worded here once for both.

use std::fmt::Write as _;

use bottle_protocol::display::escape_controls;
use bottle_protocol::{Event, EventKind};

/// `host:port`, or the host alone when no port was named.
pub(crate) fn destination(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `#id time kind: details`, one line per event. Its fields are partly the agent's (ref
/// names, hosts, reasons), so a control character never reaches the terminal raw.
pub fn line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::EgressBlocked { client, method, target, rule, request_id, access_request, count } => {
            let times = if *count == 1 { String::new() } else { format!(", {count} times") };
            let ask = access_request.as_ref().map(|id| format!(", access request {id}")).unwrap_or_default();
            format!("egress blocked: {method} {target} from {client} (rule {rule}, block {request_id}{ask}{times})")
        }
        EventKind::Git { repo, operation, allowed, refs, reason } => {
            let verb = if *allowed { "allowed" } else { "refused" };
            let op = format!("{operation:?}").to_lowercase();
            let mut s = format!("git {op} {repo} {verb}");
            if !refs.is_empty() {
                let _ = write!(s, " [{}]", refs.join(", "));
            }
            if !reason.is_empty() {
                let _ = write!(s, ": {reason}");
            }
            s
        }
        EventKind::ApiCall { api, method, path, status, allowed, bytes_up, bytes_down, duration_ms, reason } => {
            let verb = if *allowed { "" } else { " REFUSED" };
            let mut s = format!(
                "api {api}{verb}: {method} {path} -> {status} ({bytes_up} B up, {bytes_down} B down, {duration_ms} ms)"
            );
            if !reason.is_empty() {
                let _ = write!(s, ": {reason}");
            }
            s
        }
        EventKind::AgentState { state, message } => {
            let state = serde_json::to_value(state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            format!("agent {state}: {message}")
        }
        EventKind::AccessRequested { request_id, host, port: p, reason } => {
            format!("access requested {request_id}: {} ({reason})", destination(host, *p))
        }
        EventKind::AccessDecided { request_id, host, port: p, approved, ttl_secs } => {
            let verb = if *approved { "approved" } else { "denied" };
            let ttl = ttl_secs.map(|t| format!(" for {t}s")).unwrap_or_default();
            format!("access {verb} {request_id}: {}{ttl}", destination(host, *p))
        }
        EventKind::AccessExpired { request_id, host, port: p } => {
            format!("access expired {request_id}: {}", destination(host, *p))
        }
        EventKind::PolicyReloaded { allow, deny } => format!("policy reloaded: {allow} allow, {deny} deny"),
        EventKind::KillSwitch { engaged } => {
            format!("kill switch {}", if *engaged { "ENGAGED: all egress cut" } else { "released" })
        }
        EventKind::BottleState { state, detail } => {
            if detail.is_empty() {
                format!("bottle {state}")
            } else {
                format!("bottle {state}: {detail}")
            }
        }
    };
    format!("#{} {} {}\n", e.id, escape_controls(&e.time), escape_controls(&what))
}
