//! Finding and removing a bottle's Docker objects, for either backend.
//!
//! Both backends label what they create with the bottle's name and their own
//! backend (see `labels`), so one listing and one removal serve both: the
//! Docker backend removes agent, bundle and networks, the smolmachines backend
//! its bundle and networks (its VM is smolvm's to delete).

use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use bollard::models::ContainerSummary;

use super::{labels, network};
use crate::backend::BackendKind;
use crate::engine::container;

/// How many list-and-remove passes `remove` makes at most. A create request that was
/// in flight when an `up` was killed can land just after a pass has listed.
pub const REMOVE_PASSES: usize = 5;
/// Pause between passes that found something, giving such a late create time to land.
const REMOVE_SETTLE: Duration = Duration::from_millis(200);

/// Every container of one bottle (or of all bottles) of `backend`, stopped ones included.
pub async fn containers(
    docker: &Docker,
    backend: BackendKind,
    name: Option<&str>,
) -> anyhow::Result<Vec<ContainerSummary>> {
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&labels::filter(backend, name))
        .build();
    docker.list_containers(Some(options)).await.context("docker: listing containers")
}

pub fn role(c: &ContainerSummary) -> Option<&str> {
    c.labels.as_ref()?.get(labels::ROLE).map(String::as_str)
}

/// Removes every container and network of `backend` labelled with `name`, until a pass finds none.
/// Never touches the workspace (a bind mount: removing the container leaves the host directory alone).
pub async fn remove(docker: &Docker, backend: BackendKind, name: &str) -> anyhow::Result<()> {
    remove_passes(docker, backend, name, REMOVE_SETTLE).await
}

/// `remove` for a bottle whose `up` finished: none of its creates can still be in
/// flight, so the passes need no pause between them (`down` is that much faster).
pub async fn remove_finished(docker: &Docker, backend: BackendKind, name: &str) -> anyhow::Result<()> {
    remove_passes(docker, backend, name, Duration::ZERO).await
}

async fn remove_passes(docker: &Docker, backend: BackendKind, name: &str, settle: Duration) -> anyhow::Result<()> {
    for _ in 0..REMOVE_PASSES {
        if !remove_pass(docker, backend, name).await? {
            return Ok(());
        }
        tokio::time::sleep(settle).await;
    }
    Ok(())
}

/// One pass; returns whether it found anything.
async fn remove_pass(docker: &Docker, backend: BackendKind, name: &str) -> anyhow::Result<bool> {
    // The agent goes first, so there is never a moment with an agent and no bundle in front of it.
    let mut all = containers(docker, backend, Some(name)).await?;
    all.sort_by_key(|c| role(c) != Some(labels::ROLE_AGENT));
    let found = !all.is_empty();
    for c in all {
        let Some(id) = c.id.as_deref() else { continue };
        container::remove(docker, id).await.with_context(|| format!("bottle {name}: removing container {id}"))?;
        if role(&c) == Some(labels::ROLE_BUNDLE) {
            super::host_copy::forget(id);
        }
    }
    Ok(network::remove_networks(docker, backend, name).await? || found)
}
