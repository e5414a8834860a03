//! The start check: watch the allowlist hold from inside the agent before calling a bottle up.
//!
//! bottle never trusts a boundary it has not seen hold. Right after `up`, the
//! static probe mounted into the agent sends one request that must be refused
//! (a `.invalid` name no allowlist contains, so the proxy answers 403 without
//! dialing anything) and, when a canary is configured, one that must pass.
//! Both run at once, through the bundle proxy the agent's own tools use; the
//! probe needs nothing from the image, so the check works on any agent image.
//! The verdict is kept in the bundle (`start-check.json`) so a restarted
//! bottle-core reports it too.

use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime};

use bollard::Docker;
use bottle_protocol::config::DEFAULT_PROXY_PORT;

use super::exec::exec;
use crate::backend::{AllowlistStatus, Verdict};
use crate::sidecar::config::{BundleFile, SidecarOptions};
use crate::verify::probe::{ProbeReport, probe_command};

/// A destination no allowlist can contain (RFC 2606 `.invalid`); the proxy must refuse it.
pub const BLOCKED_PROBE_URL: &str = "http://bottle-start-check.invalid/";
pub const RECORD_PATH: &str = "/etc/bottle/start-check.json";
pub const MECHANISM: &str = "docker internal bridge (no gateway address) + bundle egress proxy";

/// Runs the probes in `agent` and returns the verdict.
pub async fn start_check(
    docker: &Docker,
    agent: &str,
    bundle_ip: Ipv4Addr,
    allow: &[String],
    options: &SidecarOptions,
) -> AllowlistStatus {
    let started = Instant::now();
    let proxy = format!("{bundle_ip}:{DEFAULT_PROXY_PORT}");
    let get = |url: &str| probe_command(&["http", &proxy, "GET", url]);
    let allowed = async {
        match &options.canary_url {
            Some(url) => Some(run(docker, agent, &get(url)).await),
            None => None,
        }
    };
    let blocked_cmd = get(BLOCKED_PROBE_URL);
    let (blocked, allowed) = tokio::join!(run(docker, agent, &blocked_cmd), allowed);
    let took = started.elapsed().as_millis();
    let status = |verdict, detail: String| AllowlistStatus {
        verdict,
        allowlist: allow.to_vec(),
        mechanism: MECHANISM.into(),
        checked_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        detail: format!("{detail} (check took {took} ms)"),
        vmm: None,
    };
    let blocked = match blocked {
        Ok(r) => r,
        Err(e) => return status(Verdict::NotVerified, format!("could not run the probe in the agent: {e:#}")),
    };
    if blocked.outcome != "status:403" {
        return status(
            Verdict::Failed,
            format!("{BLOCKED_PROBE_URL} was not refused by the proxy (got {}, expected status:403)", blocked.outcome),
        );
    }
    let (Some(url), Some(allowed)) = (&options.canary_url, allowed) else {
        return status(
            Verdict::NotVerified,
            "a non-allowed destination was refused (403); no allowed canary is configured, so allowed traffic was not checked".into(),
        );
    };
    match allowed {
        Ok(r) if r.http_status().is_some_and(|c| (200..400).contains(&c)) => status(
            Verdict::Verified,
            format!("{BLOCKED_PROBE_URL} refused (403); allowed canary {url} answered {}", r.outcome),
        ),
        Ok(r) => status(Verdict::Failed, format!("allowed canary {url} did not pass ({})", r.outcome)),
        Err(e) => status(Verdict::Failed, format!("allowed canary {url}: {e:#}")),
    }
}

async fn run(docker: &Docker, agent: &str, cmd: &[String]) -> anyhow::Result<ProbeReport> {
    ProbeReport::parse(&exec(docker, agent, cmd).await?)
}

pub fn record(status: &AllowlistStatus) -> anyhow::Result<BundleFile> {
    Ok(BundleFile { path: RECORD_PATH, contents: serde_json::to_vec(status)? })
}
