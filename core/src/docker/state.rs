//! Reading bottles back from the engine: labels are the record.
//!
//! A bottle is *complete* once its bundle holds a start-check record (written
//! last by `up`). Anything labelled with a name but not complete is the
//! leftover of an interrupted `up` unless that name's lock is held (an `up`
//! or `down` in progress), and `gc` or the next `up` of the name removes it.

use std::collections::BTreeSet;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

use super::check::{MECHANISM, RECORD_PATH};
use crate::backend::{AllowlistStatus, BackendKind, BottleStatus, Verdict};
use crate::netpool;
use crate::sidecar::{bundle::read_file, labels, network};

/// Every container of one bottle (or of all bottles), stopped ones included.
pub async fn containers(docker: &Docker, name: Option<&str>) -> anyhow::Result<Vec<ContainerSummary>> {
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&labels::filter(BackendKind::Docker, name))
        .build();
    docker.list_containers(Some(options)).await.context("docker: listing containers")
}

/// Names of every bottle that has any labelled object.
pub async fn names(docker: &Docker) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for c in containers(docker, None).await? {
        out.extend(c.labels.and_then(|l| l.get(labels::NAME).cloned()));
    }
    for n in network::list_networks(docker, BackendKind::Docker, None).await? {
        out.extend(n.labels.and_then(|l| l.get(labels::NAME).cloned()));
    }
    Ok(out)
}

fn role(c: &ContainerSummary) -> Option<&str> {
    c.labels.as_ref()?.get(labels::ROLE).map(String::as_str)
}

fn running(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RUNNING)
}

/// The start-check record kept in the bundle, if `up` got that far.
pub async fn record(docker: &Docker, name: &str) -> Option<AllowlistStatus> {
    let bundle = labels::object_name(name, labels::ROLE_BUNDLE);
    let text = read_file(docker, &bundle, RECORD_PATH).await.ok()?;
    serde_json::from_str(&text).ok()
}

/// The lock that serialises `up`/`down`/`gc` of one name across processes.
pub fn name_lock_path(name: &str) -> std::path::PathBuf {
    netpool::run_dir().join(format!("bottle-{name}.lock"))
}

pub async fn status(docker: &Docker, name: &str) -> anyhow::Result<BottleStatus> {
    let all = containers(docker, Some(name)).await?;
    let find = |r| all.iter().find(|c| role(c) == Some(r));
    let (agent, bundle) = (find(labels::ROLE_AGENT), find(labels::ROLE_BUNDLE));
    if agent.is_none()
        && bundle.is_none()
        && network::list_networks(docker, BackendKind::Docker, Some(name)).await?.is_empty()
    {
        anyhow::bail!("bottle {name}: no such bottle");
    }
    let allow: Vec<String> = agent
        .and_then(|a| a.labels.as_ref()?.get(labels::ALLOW).cloned())
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let record = record(docker, name).await;
    let (state, detail) = match (agent, bundle, &record) {
        (Some(a), Some(b), Some(_)) => match (running(a), running(b)) {
            (true, true) => ("running", String::new()),
            (true, false) => (
                "degraded",
                format!(
                    "the bundle is not running ({}): the agent has no way out at all (fail closed); \
                     `down` and `up` the bottle to restore egress",
                    b.status.clone().unwrap_or_default()
                ),
            ),
            (false, true) => {
                ("degraded", format!("the agent is not running ({})", a.status.clone().unwrap_or_default()))
            }
            (false, false) => ("stopped", String::new()),
        },
        _ => (
            "incomplete",
            "left half-made by an interrupted `up` (or one still in progress); `gc` or the next `up` removes it".into(),
        ),
    };
    let allowlist = record.unwrap_or(AllowlistStatus {
        verdict: Verdict::NotVerified,
        allowlist: allow,
        mechanism: MECHANISM.into(),
        checked_at: None,
        detail: "no start check has completed".into(),
    });
    Ok(BottleStatus { name: name.into(), backend: BackendKind::Docker, state: state.into(), detail, allowlist })
}

/// How many list-and-remove passes `remove` makes at most. A create request that was
/// in flight when an `up` was killed can land just after a pass has listed.
pub const REMOVE_PASSES: usize = 5;
/// Pause between passes that found something, giving such a late create time to land.
const REMOVE_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Removes every container and network labelled with `name`, until a pass finds none.
/// Never touches the workspace (a bind mount: removing the container leaves the host directory alone).
pub async fn remove(docker: &Docker, name: &str) -> anyhow::Result<()> {
    remove_passes(docker, name, REMOVE_SETTLE).await
}

/// `remove` for a bottle whose `up` finished: none of its creates can still be in
/// flight, so the passes need no pause between them (`down` is that much faster).
pub async fn remove_finished(docker: &Docker, name: &str) -> anyhow::Result<()> {
    remove_passes(docker, name, std::time::Duration::ZERO).await
}

async fn remove_passes(docker: &Docker, name: &str, settle: std::time::Duration) -> anyhow::Result<()> {
    for _ in 0..REMOVE_PASSES {
        if !remove_pass(docker, name).await? {
            return Ok(());
        }
        tokio::time::sleep(settle).await;
    }
    Ok(())
}

/// One pass; returns whether it found anything.
async fn remove_pass(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    // The agent goes first, so there is never a moment with an agent and no bundle in front of it.
    let mut all = containers(docker, Some(name)).await?;
    all.sort_by_key(|c| role(c) != Some(labels::ROLE_AGENT));
    let found = !all.is_empty();
    for c in all {
        let Some(id) = c.id.as_deref() else { continue };
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("bottle {name}: removing container {id}")),
        }
    }
    Ok(network::remove_networks(docker, BackendKind::Docker, name).await? || found)
}

/// Whether a bottle finished `up` (its agent exists and its bundle holds the start-check record).
pub async fn complete(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    let all = containers(docker, Some(name)).await?;
    let has = |r| all.iter().any(|c| role(c) == Some(r));
    Ok(has(labels::ROLE_AGENT) && has(labels::ROLE_BUNDLE) && record(docker, name).await.is_some())
}
