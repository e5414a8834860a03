//! The start check: watch the allowlist hold from inside the agent before calling a bottle up.
//!
//! bottle never trusts a boundary it has not seen hold. Right after `up`, the
//! static probe mounted into the agent checks, all at once:
//! - one canary is reachable: the bundle proxy the agent's own tools use
//!   answers, and refuses a `.invalid` name no allowlist contains (403,
//!   without dialing anything);
//! - one canary is unreachable: a raw TCP connect, ignoring the proxy, to the
//!   bundle's control plane on its egress network. That is a live listener
//!   (`up` waited for it) the host reaches, so only the missing route keeps
//!   the agent from it: any way out of the agent network would reach it;
//! - when a canary URL is configured (the escape suite), a request to an
//!   allowed host passes end to end.
//!
//! The probe needs nothing from the image, so the check works on any agent
//! image. The verdict is kept in the bundle (`start-check.json`) so a
//! restarted bottle-core reports it too.

use std::time::{Instant, SystemTime};

use bollard::Docker;
use bottle_protocol::config::{DEFAULT_CONTROL_PORT, DEFAULT_PROXY_PORT};

use super::exec::exec;
use crate::backend::{AllowlistStatus, Verdict};
use crate::sidecar::Placement;
use crate::sidecar::config::{BundleFile, SidecarOptions};
use crate::verify::probe::{ProbeReport, probe_command};

/// A destination no allowlist can contain (RFC 2606 `.invalid`); the proxy must refuse it.
pub const BLOCKED_PROBE_URL: &str = "http://bottle-start-check.invalid/";
pub const RECORD_PATH: &str = "/etc/bottle/start-check.json";
pub const MECHANISM: &str = "docker internal bridge (no gateway address) + bundle egress proxy";
/// The unreachable canary's connect timeout. The agent has a default route to a
/// gateway nobody holds (the bridge has no host address), so a blocked SYN is never
/// answered and only the timeout ends the probe; a reachable listener one bridge
/// away answers from the kernel in well under a millisecond, so 150 ms leaves a
/// loaded host a wide margin while keeping the check fast.
const UNREACHABLE_MS: &str = "150";
/// Probe outcomes that mean something answered at the far end.
const ANSWERED: &[&str] = &["connected", "refused", "reset"];

/// Runs the probes in `agent` and returns the verdict.
pub async fn start_check(
    docker: &Docker,
    agent: &str,
    placement: &Placement,
    allow: &[String],
    options: &SidecarOptions,
) -> AllowlistStatus {
    let started = Instant::now();
    let proxy = format!("{}:{DEFAULT_PROXY_PORT}", placement.bundle_ip);
    let get = |url: &str| probe_command(&["http", &proxy, "GET", url]);
    let allowed = async {
        match &options.canary_url {
            Some(url) => Some(run(docker, agent, &get(url)).await),
            None => None,
        }
    };
    let blocked_cmd = get(BLOCKED_PROBE_URL);
    // The unreachable canary: the bundle's control plane, on the egress side.
    let control = format!("{}:{DEFAULT_CONTROL_PORT}", placement.bundle_egress_ip);
    let direct_cmd = probe_command(&["tcp", &control, UNREACHABLE_MS]);
    let (blocked, direct, allowed) =
        tokio::join!(run(docker, agent, &blocked_cmd), run(docker, agent, &direct_cmd), allowed);
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
    match direct {
        Ok(r) if ANSWERED.contains(&r.outcome.as_str()) => {
            return status(
                Verdict::Failed,
                format!("the agent reached {control} directly ({}): the agent network has a way out", r.outcome),
            );
        }
        Ok(_) => {}
        Err(e) => return status(Verdict::NotVerified, format!("could not run the direct probe in the agent: {e:#}")),
    }
    let held = format!(
        "the bundle proxy answered and refused {BLOCKED_PROBE_URL} (403); the control plane at {control}, \
         live outside the agent network, was unreachable"
    );
    let (Some(url), Some(allowed)) = (&options.canary_url, allowed) else {
        return status(Verdict::Verified, held);
    };
    match allowed {
        Ok(r) if r.http_status().is_some_and(|c| (200..400).contains(&c)) => {
            status(Verdict::Verified, format!("{held}; allowed canary {url} answered {}", r.outcome))
        }
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
