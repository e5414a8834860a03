//! What the read commands print: aligned tables for people, JSON for programs.
//!
//! Pure functions from plain data to text, so the formats are tested without a
//! backend. The JSON shapes are the protocol and backend types themselves,
//! serialized as-is, so a script sees the same field names as the code.

use std::fmt::Write as _;

use bottle_protocol::control::{AccessRequest, GrantSource};
use bottle_protocol::display::escape_controls;
use serde::Serialize;

use crate::backend::{BottleStatus, Check, Verdict};
use crate::bottles::event_line::destination;
use crate::bottles::kind_name;

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
    if b.live.as_ref().is_some_and(|l| l.kill_switch) { format!("{} · killed", b.state) } else { b.state.to_string() }
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

pub fn requests(reqs: &[AccessRequest]) -> String {
    if reqs.is_empty() {
        return "no pending requests\n".to_string();
    }
    let rows: Vec<Vec<String>> = reqs
        .iter()
        .map(|r| vec![r.id.clone(), destination(&r.host, r.port), r.requested_at.clone(), r.reason.clone()])
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
