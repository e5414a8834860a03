//! The start check: watch the allowlist hold from inside the agent before calling a bottle up.
//!
//! bottle never trusts a boundary it has not seen hold. Right after `up`, the
//! agent itself sends one request that must be refused (a `.invalid` name no
//! allowlist contains, so the proxy answers 403 without dialing anything) and,
//! when a canary is configured, one that must pass. Both go through the same
//! proxy variables the agent's own tools use. The verdict is kept in the
//! bundle (`start-check.json`) so a restarted bottle-core reports it too.

use std::time::SystemTime;

use bollard::Docker;

use super::exec::exec;
use crate::backend::{AllowlistStatus, Verdict};
use crate::sidecar::config::{BundleFile, SidecarOptions};

/// A destination no allowlist can contain (RFC 2606 `.invalid`); the proxy must refuse it.
pub const BLOCKED_PROBE_URL: &str = "http://bottle-start-check.invalid/";
/// Per-probe bound, passed to curl.
pub const PROBE_TIMEOUT_SECS: u32 = 15;
pub const RECORD_PATH: &str = "/etc/bottle/start-check.json";
pub const MECHANISM: &str = "docker internal bridge (no gateway address) + bundle egress proxy";

/// Runs the probes in `agent` and returns the verdict.
pub async fn start_check(docker: &Docker, agent: &str, allow: &[String], options: &SidecarOptions) -> AllowlistStatus {
    let status = |verdict, detail: String| AllowlistStatus {
        verdict,
        allowlist: allow.to_vec(),
        mechanism: MECHANISM.into(),
        checked_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        detail,
        vmm: None,
    };
    let blocked = match probe(docker, agent, BLOCKED_PROBE_URL).await {
        Ok(code) => code,
        Err(e) => return status(Verdict::NotVerified, format!("could not run the probe in the agent: {e:#}")),
    };
    if blocked != 403 {
        return status(
            Verdict::Failed,
            format!("{BLOCKED_PROBE_URL} was not refused by the proxy (HTTP {blocked}, expected 403)"),
        );
    }
    let Some(url) = &options.canary_url else {
        return status(
            Verdict::NotVerified,
            "a non-allowed destination was refused (403); no allowed canary is configured, so allowed traffic was not checked".into(),
        );
    };
    match probe(docker, agent, url).await {
        Ok(code) if (200..400).contains(&code) => status(
            Verdict::Verified,
            format!("{BLOCKED_PROBE_URL} refused (403); allowed canary {url} answered HTTP {code}"),
        ),
        Ok(code) => status(Verdict::Failed, format!("allowed canary {url} did not pass (HTTP {code})")),
        Err(e) => status(Verdict::Failed, format!("allowed canary {url}: {e:#}")),
    }
}

/// One `curl` through the agent's proxy variables; `0` means no HTTP answer at all.
async fn probe(docker: &Docker, agent: &str, url: &str) -> anyhow::Result<u16> {
    let cmd: Vec<String> = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time"]
        .iter()
        .map(|s| s.to_string())
        .chain([PROBE_TIMEOUT_SECS.to_string(), url.to_string()])
        .collect();
    let out = exec(docker, agent, &cmd).await?;
    if out.exit_code == 126 || out.exit_code == 127 {
        anyhow::bail!("no curl in the agent image (exit {})", out.exit_code);
    }
    Ok(out.stdout.trim().parse().unwrap_or(0))
}

pub fn record(status: &AllowlistStatus) -> anyhow::Result<BundleFile> {
    Ok(BundleFile { path: RECORD_PATH, contents: serde_json::to_vec(status)? })
}
