//! A host-side copy of each bundle's start-check record, so `ls` reads a file per bottle
//! instead of asking the engine for an archive out of each bundle (a hundred of those
//! took seconds).
//!
//! The bundle's own record stays the one `up` decides by. A copy is keyed by the bundle
//! container's id: a recreated bundle has a new id and never finds an old copy, while a
//! restarted one keeps its id and its record, whose restart count `status` compares with
//! the engine's (`sidecar::restarts`), so the restart still shows as degraded. `up`'s start
//! check writes the copy right after the bundle's record, the re-check after a restart
//! included; a record read from a bundle that has no copy (another machine's run folder
//! was lost, say) is copied unless one appeared meanwhile. `gc` drops copies whose bundle
//! is gone. The folder is this user's run folder (`paths`), private to them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

use bollard::Docker;

use super::check::Record;
use crate::backend::{AllowlistStatus, BackendKind};
use crate::sidecar::objects::{self, role};
use crate::sidecar::{labels, restarts::Checked};

fn dir() -> PathBuf {
    crate::paths::run_dir().join("start-checks")
}

/// The copy's file; `None` for anything but an engine id (hex), so no id names another path.
fn file(bundle_id: &str) -> Option<PathBuf> {
    let hex = !bundle_id.is_empty() && bundle_id.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| dir().join(format!("{bundle_id}.json")))
}

/// The copy kept for bundle container `bundle_id`, if any.
pub fn load(bundle_id: &str) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(file(bundle_id)?).ok()?).ok()
}

/// Writes the copy for `bundle_id`; with `replace` false, an existing copy is left as it is.
fn store(bundle_id: &str, record: &Record, replace: bool) -> anyhow::Result<()> {
    let path = file(bundle_id).ok_or_else(|| anyhow::anyhow!("not a container id: {bundle_id:?}"))?;
    let dir = dir();
    crate::paths::ensure_private_dir(&dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    serde_json::to_writer(&mut tmp, record)?;
    if replace {
        tmp.persist(&path).map(drop)?
    } else {
        tmp.persist_noclobber(&path).map(drop)?
    }
    Ok(())
}

/// Keeps the record `up` just wrote into bottle `name`'s bundle on the host too. Best effort:
/// without a copy `ls` reads the bundle's own, and a copy that could not be replaced is removed
/// so it cannot speak for the older check.
pub async fn keep(docker: &Docker, name: &str, status: &AllowlistStatus, bundle_restarts: u64) {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let Some(id) = docker.inspect_container(&container, None).await.ok().and_then(|c| c.id) else { return };
    let record = Checked { status: status.clone(), bundle_restarts };
    if let Err(e) = store(&id, &record, true) {
        tracing::warn!("start-check record of {name}: no host copy ({e:#}); `ls` reads the bundle's");
        if let Some(path) = file(&id) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Copies a record read out of bundle `bundle_id`, unless a copy exists (`up` may have just written a newer one).
pub fn adopt(bundle_id: &str, record: &Record) {
    let _ = store(bundle_id, record, false);
}

/// Removes the copies of bundles the engine no longer has. A copy written after the listing
/// started is left alone: its bundle may be one the listing did not see yet.
pub async fn prune(docker: &Docker) -> anyhow::Result<()> {
    let listed_at = SystemTime::now();
    let bundles: HashSet<String> = objects::containers(docker, BackendKind::Docker, None)
        .await?
        .into_iter()
        .filter(|c| role(c) == Some(labels::ROLE_BUNDLE))
        .filter_map(|c| c.id)
        .collect();
    let Ok(entries) = std::fs::read_dir(dir()) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let older = entry.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < listed_at);
        if older && !bundles.contains(id) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file;

    #[test]
    fn only_an_engine_id_names_a_file() {
        assert!(file("0123abcdef").is_some());
        for bad in ["", "../x", "a/b", "abc.json"] {
            assert!(file(bad).is_none(), "{bad}");
        }
    }
}
