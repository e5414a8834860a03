//! What the read commands print: aligned tables for people, JSON for programs.
//!
//! Pure functions from plain data to text, so the formats are tested without a
//! backend. The JSON shapes are the protocol and backend types themselves,
//! serialized as-is, so a script sees the same field names as the code.

use std::fmt::Write as _;

use bottle_protocol::control::{AccessRequest, GrantSource};
use bottle_protocol::display::escape_controls;
use bottle_protocol::{Event, EventKind};
use serde::Serialize;

use super::backends::kind_name;
use crate::backend::{BottleStatus, Check, Verdict};

pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("plain data always serializes");
    s.push('\n');
    s
}

/// One compact JSON object per line (for streams).
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s = serde_json::to_string(value).expect("plain data always serializes");
    s.push('\n');
    s
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Verified => "verified",
        Verdict::Failed => "FAILED",
        Verdict::NotVerified => "not verified",
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
/// Cells hold agent-controlled text (reasons, details), so control characters are escaped.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| escape_controls(c)).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut l = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The state, with `· killed` while the kill switch cuts all egress.
fn state(b: &BottleStatus) -> String {
    if b.live.as_ref().is_some_and(|l| l.kill_switch) { format!("{} · killed", b.state) } else { b.state.clone() }
}

/// The verdict, qualified while the kill switch is engaged: a killed bottle is never shown
/// as plainly verified, since nothing it was verified to allow passes.
fn boundary(b: &BottleStatus) -> String {
    let v = verdict(b.allowlist.verdict);
    if b.live.as_ref().is_some_and(|l| l.kill_switch) { format!("{v} · egress cut") } else { v.to_string() }
}

fn agent_state(b: &BottleStatus) -> String {
    let state = b.live.as_ref().and_then(|l| l.agent.state);
    state.and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.as_str().map(String::from)).unwrap_or("-".into())
}

pub fn list(bottles: &[BottleStatus]) -> String {
    if bottles.is_empty() {
        return "no bottles\n".to_string();
    }
    let rows: Vec<Vec<String>> = bottles
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                kind_name(b.backend).to_string(),
                state(b),
                boundary(b),
                agent_state(b),
                b.live.as_ref().map_or("-".into(), |l| l.grants.len().to_string()),
                b.detail.clone(),
            ]
        })
        .collect();
    table(&["NAME", "BACKEND", "STATE", "BOUNDARY", "AGENT", "GRANTS", "DETAIL"], &rows)
}

/// Details come from the engine and the bundle's checks, so they are escaped like events.
pub fn status(b: &BottleStatus) -> String {
    let a = &b.allowlist;
    let mut out = String::new();
    let _ = writeln!(out, "name:       {}", escape_controls(&b.name));
    let _ = writeln!(out, "backend:    {}", kind_name(b.backend));
    let _ = writeln!(out, "state:      {}", escape_controls(&state(b)));
    if !b.detail.is_empty() {
        let _ = writeln!(out, "detail:     {}", escape_controls(&b.detail));
    }
    let _ = writeln!(out, "boundary:   {}", boundary(b));
    let _ = writeln!(out, "mechanism:  {}", a.mechanism);
    if let Some(v) = &a.vmm {
        let _ = writeln!(out, "vmm:        {} {}, {} network backend", v.runtime, v.version, v.net_backend);
    }
    let _ = writeln!(out, "checked at: {}", a.checked_at.as_deref().unwrap_or("never"));
    if !a.detail.is_empty() {
        let _ = writeln!(out, "check:      {}", escape_controls(&a.detail));
    }
    let allow = if a.allowlist.is_empty() { "(nothing)".to_string() } else { a.allowlist.join(", ") };
    let _ = writeln!(out, "allowlist:  {}", escape_controls(&allow));
    if let Some(l) = &b.live {
        let kill = if l.kill_switch {
            format!("ENGAGED: all egress cut (`bottle-core kill {} --release` restores it)", b.name)
        } else {
            "off".into()
        };
        let _ = writeln!(out, "kill:       {kill}");
        let grants: Vec<String> = l
            .grants
            .iter()
            .map(|g| {
                let until = g.expires_at.as_deref().map_or("for the bottle's life".into(), |t| format!("until {t}"));
                match g.source {
                    GrantSource::Host => format!("{} {until} (bottle-core allow)", g.entry),
                    GrantSource::AccessRequest => format!("{} {until} (request {})", g.entry, g.id),
                }
            })
            .collect();
        let grants = if grants.is_empty() { "none".to_string() } else { grants.join(", ") };
        let _ = writeln!(out, "grants:     {}", escape_controls(&grants));
        let agent = match &l.agent {
            s if s.state.is_none() => "no state reported".to_string(),
            s => {
                let mut t = agent_state(b);
                if let Some(since) = &s.since {
                    let _ = write!(t, " since {since}");
                }
                if !s.message.is_empty() {
                    let _ = write!(t, ": {}", s.message);
                }
                t
            }
        };
        let _ = writeln!(out, "agent:      {}", escape_controls(&agent));
    }
    out
}

fn port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `#id time kind: details`, one line per event. Its fields are partly the agent's (ref
/// names, hosts, reasons), so a control character never reaches the terminal raw.
pub fn event(e: &Event) -> String {
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
            format!("access requested {request_id}: {} ({reason})", port(host, *p))
        }
        EventKind::AccessDecided { request_id, host, port: p, approved, ttl_secs } => {
            let verb = if *approved { "approved" } else { "denied" };
            let ttl = ttl_secs.map(|t| format!(" for {t}s")).unwrap_or_default();
            format!("access {verb} {request_id}: {}{ttl}", port(host, *p))
        }
        EventKind::AccessExpired { request_id, host, port: p } => {
            format!("access expired {request_id}: {}", port(host, *p))
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

pub fn requests(reqs: &[AccessRequest]) -> String {
    if reqs.is_empty() {
        return "no pending requests\n".to_string();
    }
    let rows: Vec<Vec<String>> = reqs
        .iter()
        .map(|r| vec![r.id.clone(), port(&r.host, r.port), r.requested_at.clone(), r.reason.clone()])
        .collect();
    table(&["ID", "DESTINATION", "REQUESTED", "REASON"], &rows)
}

/// `up --dry-run`: one line per thing the spec names, where it names it, and what was found.
pub fn preflight(report: &crate::preflight::Report) -> String {
    use crate::preflight::Outcome;
    let rows: Vec<Vec<String>> = report
        .items
        .iter()
        .map(|i| {
            let outcome = match i.outcome {
                Outcome::Ok => "ok",
                Outcome::Warning => "WARN",
                Outcome::Failed => "FAIL",
            };
            vec![outcome.into(), i.what.clone(), i.at.clone(), i.detail.clone(), i.fix.clone()]
        })
        .collect();
    table(&["", "CHECK", "AT", "DETAIL", "FIX"], &rows)
}

pub fn checks(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| vec![if c.ok { "ok" } else { "FAIL" }.to_string(), c.name.clone(), c.detail.clone(), c.fix.clone()])
        .collect();
    table(&["", "CHECK", "DETAIL", "FIX"], &rows)
}
