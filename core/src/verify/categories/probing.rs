//! Running probes in the bottle and reading what they saw, for every category.

use bottle_protocol::config::DEFAULT_PROXY_PORT;
use futures_util::future::join_all;

use crate::backend::BackendKind;
use crate::verify::probe::{self, ProbeReport};
use crate::verify::world::Contact;
use crate::verify::{Category, Finding, Suite};

/// Connect timeout of reachability probes: an isolated network answers at once (no route) or never.
pub(super) const REACH_MS: &str = "1000";

pub(super) async fn probe(s: &Suite, args: &[&str]) -> anyhow::Result<ProbeReport> {
    probe::run(&*s.backend, &s.bottle, args).await
}

/// Runs many probes at once (each bounded by its own timeout).
pub(super) async fn probes(s: &Suite, all: &[Vec<String>]) -> Vec<anyhow::Result<ProbeReport>> {
    join_all(all.iter().map(|a| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        async move { probe(s, &a).await }
    }))
    .await
}

pub(super) fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn seen(r: &anyhow::Result<ProbeReport>) -> String {
    match r {
        Ok(r) if r.detail.is_empty() => r.outcome.clone(),
        Ok(r) => format!("{} ({})", r.outcome, r.detail),
        Err(e) => format!("probe did not run: {e:#}"),
    }
}

/// No connection: the probe ran and saw nothing answer (`refused` counts as answered).
pub(super) fn unreached(r: &anyhow::Result<ProbeReport>, refused_ok: bool) -> bool {
    r.as_ref().is_ok_and(|r| r.outcome != "connected" && (refused_ok || !probe::ANSWERED.contains(&r.outcome.as_str())))
}

/// The finding on what canaries logged during a category: it passes only with no contact at all.
pub(super) fn no_contact(category: Category, probe: &str, expect: &str, logged: &[Contact]) -> Finding {
    let text = logged.iter().map(|c| format!("{} {}/{} from {}", c.canary, c.proto, c.port, c.peer));
    let observed = if logged.is_empty() { "no contact".into() } else { text.collect::<Vec<_>>().join("; ") };
    Finding::new(category, probe, expect, observed, logged.is_empty())
}

pub(super) fn vm(s: &Suite) -> bool {
    s.kind == BackendKind::Smolmachines
}

pub(super) fn proxy_addr(s: &Suite) -> String {
    format!("{}:{DEFAULT_PROXY_PORT}", s.placement.bundle_ip)
}
