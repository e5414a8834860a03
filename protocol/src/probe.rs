//! The one output shape of every probe: `bottle-probe` prints one [`Report`]
//! per probe as a JSON line inside the bottle, and the core reads the same
//! struct back to judge it. Its outcome words are named here for both sides.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Outcome words a probe reports and the core matches on.
pub mod outcome {
    pub const CONNECTED: &str = "connected";
    pub const REFUSED: &str = "refused";
    pub const TIMEOUT: &str = "timeout";
    pub const UNREACHABLE: &str = "unreachable";
    pub const RESET: &str = "reset";
    pub const DENIED: &str = "denied";
    /// The far end closed before answering.
    pub const CLOSED: &str = "closed";
    /// A tunnel the proxy opened and then cut (a refused ClientHello, the kill switch).
    pub const TUNNEL_CUT: &str = "tunnel-cut";
    /// A tunnel that stayed open after the ClientHello.
    pub const TUNNEL_OPEN: &str = "tunnel-open";
    /// Starts the outcome of a probe that got an HTTP answer: `status:403`.
    pub const STATUS_PREFIX: &str = "status:";

    /// The outcome of an HTTP answer with status `code`.
    pub fn status(code: impl std::fmt::Display) -> String {
        format!("{STATUS_PREFIX}{code}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub probe: String,
    pub target: String,
    /// What was observed, in a small fixed vocabulary per probe
    /// ([`outcome`]'s words, `error:<kind>`, ...).
    pub outcome: String,
    /// Extra facts (a banner, a block rule, matching paths); never a secret.
    pub detail: String,
    pub elapsed_ms: u64,
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
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }

    /// The HTTP status of an `http` or `connect` probe, if one came back.
    pub fn http_status(&self) -> Option<u16> {
        self.outcome.strip_prefix(outcome::STATUS_PREFIX)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written() {
        let r = Report::new("http", "http://a.test/", Instant::now(), outcome::status(403), "not-allowed");
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!((back.probe.as_str(), back.outcome.as_str()), ("http", "status:403"));
        assert_eq!(back.http_status(), Some(403));
        let refused = Report::new("tcp", "10.0.0.1:1", Instant::now(), outcome::REFUSED, "");
        assert_eq!(refused.http_status(), None);
    }
}
