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
use crate::sidecar::restarts::Checked;
use crate::verify::probe::{ANSWERED, each_command, parse_each};

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

/// Runs the probes in `agent` and returns the verdict.
pub async fn start_check(
    docker: &Docker,
    agent: &str,
    placement: &Placement,
    allow: &[String],
    options: &SidecarOptions,
) -> AllowlistStatus {
    let started = Instant::now();
    let status = |verdict, detail: String| AllowlistStatus {
        verdict,
        allowlist: allow.to_vec(),
        mechanism: MECHANISM.into(),
        checked_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        detail: format!("{detail} (check took {} ms)", started.elapsed().as_millis()),
        vmm: None,
    };
    let proxy = format!("{}:{DEFAULT_PROXY_PORT}", placement.bundle_ip);
    let get = |url: &str| ["http", &proxy, "GET", url].map(String::from).to_vec();
    // The unreachable canary: the bundle's control plane, on the egress side.
    let control = format!("{}:{DEFAULT_CONTROL_PORT}", placement.bundle_egress_ip);
    let mut probes = vec![get(BLOCKED_PROBE_URL), ["tcp", &control, UNREACHABLE_MS].map(String::from).to_vec()];
    probes.extend(options.canary_url.as_deref().map(get));
    // One exec for all: each exec is a round trip through the engine.
    let reports = async { parse_each(&exec(docker, agent, &each_command(&probes)).await?, probes.len()) }.await;
    let reports = match reports {
        Ok(r) => r,
        Err(e) => return status(Verdict::NotVerified, format!("could not run the probes in the agent: {e:#}")),
    };
    // parse_each checked the count: one report per probe, in order.
    let [blocked, direct, allowed @ ..] = reports.as_slice() else {
        return status(Verdict::NotVerified, "the probe returned fewer reports than probes".into());
    };
    let allowed = allowed.first();
    if blocked.outcome != "status:403" {
        return status(
            Verdict::Failed,
            format!("{BLOCKED_PROBE_URL} was not refused by the proxy (got {}, expected status:403)", blocked.outcome),
        );
    }
    if ANSWERED.contains(&direct.outcome.as_str()) {
        return status(
            Verdict::Failed,
            format!("the agent reached {control} directly ({}): the agent network has a way out", direct.outcome),
        );
    }
    let held = format!(
        "the bundle proxy answered and refused {BLOCKED_PROBE_URL} (403); the control plane at {control}, \
         live outside the agent network, was unreachable ({})",
        direct.outcome
    );
    match (&options.canary_url, allowed) {
        (Some(url), Some(r)) if r.http_status().is_some_and(|c| (200..400).contains(&c)) => {
            status(Verdict::Verified, format!("{held}; allowed canary {url} answered {}", r.outcome))
        }
        (Some(url), Some(r)) => status(Verdict::Failed, format!("allowed canary {url} did not pass ({})", r.outcome)),
        _ => status(Verdict::Verified, held),
    }
}

/// What `up` leaves in the bundle once its start check has run.
pub type Record = Checked<AllowlistStatus>;

pub fn record(status: &AllowlistStatus, bundle_restarts: u64) -> anyhow::Result<BundleFile> {
    let record = Checked { status: status.clone(), bundle_restarts };
    Ok(BundleFile { path: RECORD_PATH, contents: serde_json::to_vec(&record)? })
}
