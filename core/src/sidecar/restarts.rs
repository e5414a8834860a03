//! How often the engine has restarted a bottle's bundle, and why it last died.
//!
//! A restarted bundle puts its kill switch, the host's policy and its grants
//! back from its own state file, but the boundary it enforces has not been
//! seen to hold since: the start check watched the bundle that died. So the
//! record of a start check keeps the restart count it saw, `status` shows any
//! restart after it as degraded, and `up` of the name runs the check again.
//! The engine resets a container's exit code and OOM flag when it restarts
//! it, so the cause comes from the engine's own `die` and `oom` events.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::labels;

/// Longest the engine's event log is read for a cause; past it the cause is unknown.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(5);

/// A start check's result as kept in the bundle, with the restart count it saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checked<T> {
    #[serde(flatten)]
    pub status: T,
    /// The engine's restart count of the bundle when the check ran: a restart after it
    /// means the boundary has not been seen to hold since.
    #[serde(default)]
    pub bundle_restarts: u64,
}

/// How often the engine has restarted `name`'s bundle container.
pub async fn restart_count(docker: &Docker, name: &str) -> anyhow::Result<u64> {
    Ok(inspect_bundle(docker, name).await?.1)
}

/// The bundle's container name, its restart count, and when it was created.
async fn inspect_bundle(docker: &Docker, name: &str) -> anyhow::Result<(String, u64, Option<String>)> {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let info = docker.inspect_container(&container, None).await.with_context(|| format!("bottle {name}: no bundle"))?;
    Ok((container, info.restart_count.unwrap_or(0).max(0) as u64, info.created))
}

/// Why a bundle's start check no longer speaks for it: the engine restarted the bundle more
/// often than the `at_check` times it had when the check ran. `remedy` says what re-runs it.
/// Only then is the engine's event log read for the cause.
pub async fn since_check(docker: &Docker, name: &str, at_check: u64, remedy: &str) -> anyhow::Result<Option<String>> {
    let (container, count, created) = inspect_bundle(docker, name).await?;
    if count <= at_check {
        return Ok(None);
    }
    let cause = last_death(docker, &container, created.as_deref()).await;
    Ok(Some(format!(
        "the bundle restarted {} time(s) since the start check (last: {cause}); it put back its kill switch, \
         policy and grants, but the boundary has not been seen to hold since: {remedy}",
        count - at_check,
    )))
}

/// The cause of the container's last death, from the engine's events since it was created.
async fn last_death(docker: &Docker, container: &str, created: Option<&str>) -> String {
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
    let since = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()).map(unix).unwrap_or_else(|| "0".into());
    let filters = HashMap::from([("container", vec![container]), ("event", vec!["die", "oom"])]);
    let options = bollard::query_parameters::EventsOptionsBuilder::default()
        .since(&since)
        // The engine's `until` is whole seconds and leaves out the current one, where a death
        // just before this call sits; one second ahead makes the read wait at most that long.
        .until(&unix(SystemTime::now() + Duration::from_secs(1)))
        .filters(&filters)
        .build();
    let read = docker.events(Some(options)).collect::<Vec<_>>();
    let events = tokio::time::timeout(EVENTS_TIMEOUT, read).await.unwrap_or_default();
    let (mut oom, mut last) = (false, None);
    for e in events.into_iter().flatten() {
        match e.action.as_deref() {
            Some("oom") => oom = true,
            Some("die") => {
                let exit = e.actor.and_then(|a| a.attributes?.get("exitCode").cloned());
                last = Some(cause(exit.as_deref(), std::mem::take(&mut oom)));
            }
            _ => {}
        }
    }
    last.unwrap_or_else(|| "cause unknown: the engine's event log no longer holds its death".into())
}

/// Words for a death: the engine's `oom` event (just before its `die`) and the exit code.
fn cause(exit: Option<&str>, oom: bool) -> String {
    match (oom, exit) {
        (true, _) => format!("killed by the engine for memory (OOM, exit {})", exit.unwrap_or("?")),
        (false, Some("137")) => "killed with SIGKILL (exit 137)".into(),
        (false, Some(code)) => format!("exited with code {code}"),
        (false, None) => "died with no exit code recorded".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::cause;

    #[test]
    fn causes_read_as_the_engine_gives_them() {
        assert_eq!(cause(Some("137"), true), "killed by the engine for memory (OOM, exit 137)");
        assert_eq!(cause(Some("137"), false), "killed with SIGKILL (exit 137)");
        assert_eq!(cause(Some("3"), false), "exited with code 3");
    }
}
