//! The one output shape of every probe.

use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub probe: String,
    pub target: String,
    /// What was observed, in a small fixed vocabulary per probe
    /// (`connected`, `refused`, `timeout`, `unreachable`, `status:403`, ...).
    pub outcome: String,
    /// Extra facts (a banner, a block rule, matching paths); never a secret.
    pub detail: String,
    pub elapsed_ms: u128,
}

impl Report {
    pub fn new(
        probe: &str,
        target: &str,
        started: Instant,
        outcome: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            probe: probe.into(),
            target: target.into(),
            outcome: outcome.into(),
            detail: detail.into(),
            elapsed_ms: started.elapsed().as_millis(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }
}
