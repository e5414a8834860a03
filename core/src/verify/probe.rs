//! Driving `bottle-probe` inside a bottle: the command lines (one probe, or
//! several at once through `each`) and their JSON report lines.
//!
//! The probe only observes; every verdict is decided outside the bottle, by
//! the suite or the start check, from these reports and from what the
//! canaries logged.

use std::ops::Deref;

use bottle_protocol::probe::{Report, outcome};
use serde::Deserialize;

use crate::backend::{BottleBackend, ExecOutput};
use crate::images::PROBE_IN_AGENT;
use crate::smolvm::allowlist::Connect;

/// Outcomes of a connect probe that mean something answered at the far end.
pub const ANSWERED: &[&str] = &[outcome::CONNECTED, outcome::REFUSED, outcome::RESET];

/// What one probe run saw: the probe's own [`Report`], read back, with the core's reading of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct ProbeReport(Report);

impl Deref for ProbeReport {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.0
    }
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

    /// A `tcp` probe's outcome in the start check's terms, so both judge a VM's connect alike.
    pub fn connect(&self) -> Connect {
        match self.outcome.as_str() {
            outcome::CONNECTED => Connect::Connected,
            outcome::RESET => Connect::ConnectedThenClosed,
            // No source address for the family (a guest without IPv6): curl's exit 7 as well.
            outcome::REFUSED | outcome::UNREACHABLE | "error:AddrNotAvailable" => Connect::NotConnected,
            outcome::TIMEOUT => Connect::TimedOut,
            other => Connect::Other(format!("outcome {other}")),
        }
    }
}

/// The exec command line for one probe.
pub fn probe_command(args: &[&str]) -> Vec<String> {
    std::iter::once(PROBE_IN_AGENT).chain(args.iter().copied()).map(String::from).collect()
}

/// The exec command line for several probes run at once by one probe process (`each`).
pub fn each_command(probes: &[Vec<String>]) -> Vec<String> {
    let mut cmd = vec![PROBE_IN_AGENT.to_string(), "each".into()];
    for (i, p) in probes.iter().enumerate() {
        if i > 0 {
            cmd.push("--and".into());
        }
        cmd.extend(p.iter().cloned());
    }
    cmd
}

/// The reports of an `each` run, in the order the probes were given.
pub fn parse_each(out: &ExecOutput, count: usize) -> anyhow::Result<Vec<ProbeReport>> {
    let reports = out.stdout.lines().map(serde_json::from_str).collect::<Result<Vec<ProbeReport>, _>>();
    match reports {
        Ok(r) if r.len() == count => Ok(r),
        _ => anyhow::bail!(
            "probe: expected {count} reports (exit {}; is {PROBE_IN_AGENT} mounted?): {}",
            out.exit_code,
            out.stderr.trim()
        ),
    }
}

/// Runs one probe in bottle `name` through the backend.
pub async fn run(backend: &dyn BottleBackend, name: &str, args: &[&str]) -> anyhow::Result<ProbeReport> {
    ProbeReport::parse(&backend.exec(name, &probe_command(args)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> ExecOutput {
        ExecOutput { exit_code: 0, stdout: stdout.into(), stderr: String::new() }
    }

    #[test]
    fn each_joins_the_probes_and_wants_one_report_apiece() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cmd = each_command(&[p(&["tcp", "10.0.0.1:1", "150"]), p(&["caps"])]);
        assert_eq!(cmd, [PROBE_IN_AGENT, "each", "tcp", "10.0.0.1:1", "150", "--and", "caps"]);
        let line = r#"{"probe":"caps","target":"","outcome":"none","detail":"","elapsed_ms":0}"#;
        assert_eq!(parse_each(&out(&format!("{line}\n{line}\n")), 2).unwrap().len(), 2);
        assert!(parse_each(&out(&format!("{line}\n")), 2).is_err(), "a missing report is an error");
        assert!(parse_each(&out("bottle-probe: oops\n"), 1).is_err());
    }
}
