//! Reading bottles back from the engine: labels are the record.
//!
//! A bottle is *complete* once its bundle holds a start-check record (written
//! last by `up`). Anything labelled with a name but not complete is the
//! leftover of an interrupted `up` unless that name's lock is held (an `up`
//! or `down` in progress), and `gc` or the next `up` of the name removes it.

use std::collections::{BTreeMap, BTreeSet};

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

use super::check::{MECHANISM, RECORD_PATH, Record};
use super::record_cache;
use crate::backend::{AllowlistStatus, BackendKind, BottleState, BottleStatus, Verdict};
use crate::sidecar::objects::{self, role};
use crate::sidecar::{bundle::read_file, labels, network, restarts};

/// Every container of one bottle (or of all bottles), stopped ones included.
pub async fn containers(docker: &Docker, name: Option<&str>) -> anyhow::Result<Vec<ContainerSummary>> {
    objects::containers(docker, BackendKind::Docker, name).await
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

/// Whether bottle `name` has any labelled object (asking for its own only: with many
/// bottles on the host, listing every one's objects is the slow way to learn this).
pub async fn exists(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    Ok(!containers(docker, Some(name)).await?.is_empty()
        || !network::list_networks(docker, BackendKind::Docker, Some(name)).await?.is_empty())
}

fn running(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RUNNING)
}

/// The start-check record kept in the bundle, if `up` got that far.
pub async fn record(docker: &Docker, name: &str) -> Option<Record> {
    let bundle = labels::object_name(name, labels::ROLE_BUNDLE);
    let text = read_file(docker, &bundle, RECORD_PATH).await.ok()?;
    serde_json::from_str(&text).ok()
}

/// [`record`], from the host's copy for bundle container `bundle_id` when there is one (see `record_cache`).
async fn record_of(docker: &Docker, name: &str, bundle_id: Option<&str>) -> Option<Record> {
    if let Some(kept) = bundle_id.and_then(record_cache::load) {
        return Some(kept);
    }
    let read = record(docker, name).await?;
    if let Some(id) = bundle_id {
        record_cache::adopt(id, &read);
    }
    Some(read)
}

/// Why a running bottle's start check no longer speaks for it: its bundle restarted after.
pub async fn restarted_since_check(docker: &Docker, name: &str, record: &Record) -> anyhow::Result<Option<String>> {
    restarts::since_check(docker, name, record.bundle_restarts, "`up` this bottle again to re-run the check").await
}

/// Bottle `name`'s status; [`crate::backend::Error::NotFound`] when it has no object at all.
pub async fn status(docker: &Docker, name: &str) -> crate::backend::Result<BottleStatus> {
    let all = containers(docker, Some(name)).await?;
    let find = |r| all.iter().find(|c| role(c) == Some(r));
    if find(labels::ROLE_AGENT).is_none()
        && find(labels::ROLE_BUNDLE).is_none()
        && network::list_networks(docker, BackendKind::Docker, Some(name)).await?.is_empty()
    {
        return Err(crate::backend::Error::not_found(name));
    }
    Ok(status_of(docker, name, &all).await?)
}

/// How many bottles `list` reads at once: each costs the engine a file read out of the
/// bundle and an inspect, and one at a time made `ls` of a hundred bottles take seconds.
const LIST_PARALLEL: usize = 16;

/// The status of every bottle, from one listing of containers and one of networks.
pub async fn statuses(docker: &Docker) -> anyhow::Result<Vec<BottleStatus>> {
    use futures_util::StreamExt;
    let all = containers(docker, None).await?;
    let mut by_name: BTreeMap<String, Vec<ContainerSummary>> = BTreeMap::new();
    for c in all {
        if let Some(name) = c.labels.as_ref().and_then(|l| l.get(labels::NAME)).cloned() {
            by_name.entry(name).or_default().push(c);
        }
    }
    // A bottle with networks and no container left is still listed (as incomplete).
    for n in network::list_networks(docker, BackendKind::Docker, None).await? {
        if let Some(name) = n.labels.and_then(|l| l.get(labels::NAME).cloned()) {
            by_name.entry(name).or_default();
        }
    }
    // Made up front: a stream over a borrowing closure would not be `Send` for the backend trait.
    let reads: Vec<_> = by_name.iter().map(|(name, own)| status_of(docker, name, own)).collect();
    futures_util::stream::iter(reads).buffered(LIST_PARALLEL).collect::<Vec<_>>().await.into_iter().collect()
}

/// The status of bottle `name`, whose containers are `all`.
async fn status_of(docker: &Docker, name: &str, all: &[ContainerSummary]) -> anyhow::Result<BottleStatus> {
    let find = |r| all.iter().find(|c| role(c) == Some(r));
    let (agent, bundle) = (find(labels::ROLE_AGENT), find(labels::ROLE_BUNDLE));
    let allow: Vec<String> = agent
        .and_then(|a| a.labels.as_ref()?.get(labels::ALLOW).cloned())
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let mut record = record_of(docker, name, bundle.and_then(|b| b.id.as_deref())).await;
    let (state, detail) = match (agent, bundle, &mut record) {
        (Some(a), Some(b), Some(r)) => match (running(a), running(b)) {
            (true, true) => match restarted_since_check(docker, name, r).await? {
                Some(why) => {
                    r.status.verdict = Verdict::NotVerified;
                    r.status.detail =
                        format!("not seen to hold since the bundle restarted; before: {}", r.status.detail);
                    (BottleState::Degraded, why)
                }
                None => (BottleState::Running, String::new()),
            },
            (true, false) => (
                BottleState::Degraded,
                format!(
                    "the bundle is not running ({}): the agent has no way out at all (fail closed); \
                     `down` and `up` the bottle to restore egress",
                    b.status.clone().unwrap_or_default()
                ),
            ),
            (false, true) => {
                (BottleState::Degraded, format!("the agent is not running ({})", a.status.clone().unwrap_or_default()))
            }
            (false, false) => (BottleState::Stopped, String::new()),
        },
        _ => (
            BottleState::Incomplete,
            "left half-made by an interrupted `up` (or one still in progress); `gc` or the next `up` removes it".into(),
        ),
    };
    let detail = super::agent::user_note(super::agent::runs_as_image_user(agent), detail);
    let allowlist = record.map(|r| r.status).unwrap_or(AllowlistStatus {
        verdict: Verdict::NotVerified,
        allowlist: allow,
        mechanism: MECHANISM.into(),
        checked_at: None,
        detail: "no start check has completed".into(),
        vmm: None,
    });
    Ok(BottleStatus { name: name.into(), backend: BackendKind::Docker, state, detail, allowlist, live: None })
}

/// Removes every container and network of the bottle (see `sidecar::objects::remove`).
pub async fn remove(docker: &Docker, name: &str) -> anyhow::Result<()> {
    objects::remove(docker, BackendKind::Docker, name).await
}

/// `remove` for a bottle whose `up` finished (see `sidecar::objects::remove_finished`).
pub async fn remove_finished(docker: &Docker, name: &str) -> anyhow::Result<()> {
    objects::remove_finished(docker, BackendKind::Docker, name).await
}

/// How long a half-made bottle of another user is taken for an `up` still in progress.
/// Past this, its `up` is taken for dead and anyone's `up` of the name or `gc` removes it.
pub const OTHER_USER_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The uid of another user whose `up` of `name` made objects within [`OTHER_USER_GRACE`].
/// That user's name lock is in their own folder, out of this process's sight, so this label
/// and the objects' age are what keep one user's `up` or `gc` from removing another's
/// bottle while it is being made.
pub async fn made_by_another_user(docker: &Docker, name: &str) -> anyhow::Result<Option<u32>> {
    let me = rustix::process::geteuid().as_raw();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let mut made = Vec::new();
    for c in containers(docker, Some(name)).await? {
        made.push((c.labels.and_then(|l| l.get(labels::MAKER).cloned()), c.created));
    }
    for n in network::list_networks(docker, BackendKind::Docker, Some(name)).await? {
        let created = n
            .created
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64);
        made.push((n.labels.and_then(|l| l.get(labels::MAKER).cloned()), created));
    }
    Ok(made.into_iter().find_map(|(maker, created)| {
        let uid: u32 = maker?.parse().ok()?;
        // An unknown age counts as fresh: better to leave another user's objects than remove them mid-`up`.
        let fresh = created.is_none_or(|c| now - c < OTHER_USER_GRACE.as_secs() as i64);
        (uid != me && fresh).then_some(uid)
    }))
}

/// Whether a bottle finished `up` (its agent exists and its bundle holds the start-check record).
pub async fn complete(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    let all = containers(docker, Some(name)).await?;
    let has = |r| all.iter().any(|c| role(c) == Some(r));
    Ok(has(labels::ROLE_AGENT) && has(labels::ROLE_BUNDLE) && record(docker, name).await.is_some())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_engine_s_network_times_parse() {
        // Docker's RFC 3339 with nanoseconds, as /networks answers on this machine.
        assert!(humantime::parse_rfc3339_weak("2026-12-02T20:18:00.123456789Z").is_ok());
    }
}
