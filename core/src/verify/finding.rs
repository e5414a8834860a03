//! What the suite reports: one finding per probe, grouped by category, as a table or JSON.

use std::fmt::Write;

use serde::Serialize;

/// The probe categories, in the order they run (fail-closed last: it stops the bundle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Direct,
    Hosts,
    Dns,
    EgressPort,
    Proxy,
    Dlp,
    Git,
    Privileges,
    FailClosed,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Self::Direct,
        Self::Hosts,
        Self::Dns,
        Self::EgressPort,
        Self::Proxy,
        Self::Dlp,
        Self::Git,
        Self::Privileges,
        Self::FailClosed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Hosts => "hosts",
            Self::Dns => "dns",
            Self::EgressPort => "egress-port",
            Self::Proxy => "proxy",
            Self::Dlp => "dlp",
            Self::Git => "git",
            Self::Privileges => "privileges",
            Self::FailClosed => "fail-closed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
            format!("unknown category {s:?}: expected one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The probe could not run here (said why); never counted as a pass.
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub category: Category,
    pub probe: String,
    pub expectation: String,
    pub observation: String,
    pub verdict: Outcome,
}

impl Finding {
    pub fn new(
        category: Category,
        probe: impl Into<String>,
        expectation: &str,
        observation: String,
        pass: bool,
    ) -> Self {
        let verdict = if pass { Outcome::Pass } else { Outcome::Fail };
        Self { category, probe: probe.into(), expectation: expectation.into(), observation, verdict }
    }

    pub fn not_run(category: Category, probe: impl Into<String>, expectation: &str, why: impl Into<String>) -> Self {
        Self {
            category,
            probe: probe.into(),
            expectation: expectation.into(),
            observation: why.into(),
            verdict: Outcome::NotRun,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bottle: String,
    pub backend: String,
    pub categories: Vec<Category>,
    pub passed: usize,
    pub failed: usize,
    pub not_run: usize,
    pub elapsed_ms: u128,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(
        bottle: &str,
        backend: &str,
        categories: Vec<Category>,
        findings: Vec<Finding>,
        elapsed_ms: u128,
    ) -> Self {
        let count = |o| findings.iter().filter(|f| f.verdict == o).count();
        Self {
            bottle: bottle.into(),
            backend: backend.into(),
            categories,
            passed: count(Outcome::Pass),
            failed: count(Outcome::Fail),
            not_run: count(Outcome::NotRun),
            elapsed_ms,
            findings,
        }
    }

    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// The human table: one row per probe, failures easy to spot, then a summary line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w = self.findings.iter().map(|f| f.probe.len()).max().unwrap_or(5).max(5);
        let _ = writeln!(out, "{:<12} {:<w$} {:<8} EXPECTED / OBSERVED", "CATEGORY", "PROBE", "VERDICT");
        for f in &self.findings {
            let verdict = match f.verdict {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::NotRun => "not-run",
            };
            let _ = writeln!(
                out,
                "{:<12} {:<w$} {:<8} {} / {}",
                f.category.name(),
                f.probe,
                verdict,
                f.expectation,
                f.observation
            );
        }
        let _ = writeln!(
            out,
            "{}: {} passed, {} FAILED, {} not run, in {} ms",
            self.bottle, self.passed, self.failed, self.not_run, self.elapsed_ms
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_round_trip_and_unknown_ones_are_named() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.name()), Ok(c));
        }
        assert!(Category::parse("nope").unwrap_err().contains("fail-closed"));
    }

    #[test]
    fn a_failure_is_counted_and_shown() {
        let f = vec![
            Finding::new(Category::Direct, "tcp 1.2.3.4:22", "no connection", "timeout".into(), true),
            Finding::new(Category::Hosts, "gateway", "no connection", "connected".into(), false),
            Finding::not_run(Category::Git, "push", "refused", "git-gate absent"),
        ];
        let r = Report::new("b", "docker", Category::ALL.to_vec(), f, 5);
        assert_eq!((r.passed, r.failed, r.not_run, r.ok()), (1, 1, 1, false));
        assert!(r.table().contains("FAIL") && r.table().contains("gateway"));
    }
}
