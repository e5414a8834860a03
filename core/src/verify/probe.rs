//! Driving `bottle-probe` inside a bottle: the command line and its one-line JSON report.
//!
//! The probe only observes; every verdict is decided outside the bottle, by
//! the suite, from this report and from what the canaries logged.

use serde::Deserialize;

use crate::backend::{BottleBackend, ExecOutput};
use crate::images::PROBE_IN_AGENT;

/// What one probe run saw (the probe crate's `Report`, read back).
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeReport {
    pub probe: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub elapsed_ms: u64,
}

impl ProbeReport {
    /// Reads the probe's report from an exec's output; a probe that did not run is an error.
    pub fn parse(out: &ExecOutput) -> anyhow::Result<Self> {
        let line = out.stdout.lines().last().unwrap_or("");
        serde_json::from_str(line).map_err(|_| {
            anyhow::anyhow!(
                "probe: no report (exit {}; is {PROBE_IN_AGENT} mounted?): {}",
                out.exit_code,
                out.stderr.trim()
            )
        })
    }

    /// The HTTP status of an `http` or `connect` probe, if one came back.
    pub fn http_status(&self) -> Option<u16> {
        self.outcome.strip_prefix("status:")?.parse().ok()
    }
}

/// The exec command line for one probe.
pub fn probe_command(args: &[&str]) -> Vec<String> {
    std::iter::once(PROBE_IN_AGENT).chain(args.iter().copied()).map(String::from).collect()
}

/// Runs one probe in bottle `name` through the backend.
pub async fn run(backend: &dyn BottleBackend, name: &str, args: &[&str]) -> anyhow::Result<ProbeReport> {
    ProbeReport::parse(&backend.exec(name, &probe_command(args)).await?)
}
