//! Host-side copies of a bundle's small files, so reading many bottles costs a file read
//! each instead of an archive out of each bundle (for which Docker 20.10 starts a helper
//! process: a hundred of those took seconds).
//!
//! The bundle's own files stay the ones it acts on. A copy is keyed by the bundle
//! container's id: a recreated bundle has a new id and never finds an old copy. Removing a
//! bundle removes its copies, and `gc` drops any whose bundle is gone anyway. The folder is this user's run folder (`paths`), private to
//! them (0700), and each copy is written 0600: the control token kept here is one anyone
//! who can use the engine could read out of the bundle anyway.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

use bollard::Docker;

use super::labels;
use super::objects::{self, role};
use crate::backend::BackendKind;

/// Which of a bundle's files a copy is of.
#[derive(Debug, Clone, Copy)]
pub enum Kept {
    /// The start check's record (`docker::record_cache`).
    StartCheck,
    /// The control plane's bearer token, written at `up` and read by `ls` and `status`.
    ControlToken,
}

impl Kept {
    fn extension(self) -> &'static str {
        match self {
            Kept::StartCheck => "json",
            Kept::ControlToken => "token",
        }
    }
}

pub fn dir() -> PathBuf {
    crate::paths::run_dir().join("bundles")
}

/// The copy's file; `None` for anything but an engine id (hex), so no id names another path.
pub fn file(bundle_id: &str, kept: Kept) -> Option<PathBuf> {
    let hex = !bundle_id.is_empty() && bundle_id.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| dir().join(format!("{bundle_id}.{}", kept.extension())))
}

/// The copy kept for bundle container `bundle_id`, if any.
pub fn load(bundle_id: &str, kept: Kept) -> Option<Vec<u8>> {
    std::fs::read(file(bundle_id, kept)?).ok()
}

/// Writes the copy for `bundle_id`; with `replace` false, an existing copy is left as it is.
pub fn store(bundle_id: &str, kept: Kept, contents: &[u8], replace: bool) -> anyhow::Result<()> {
    let path = file(bundle_id, kept).ok_or_else(|| anyhow::anyhow!("not a container id: {bundle_id:?}"))?;
    let dir = dir();
    crate::paths::ensure_private_dir(&dir)?;
    // A named temporary file is created 0600, and the rename makes the copy appear whole.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, contents)?;
    if replace {
        tmp.persist(&path).map(drop)?
    } else {
        tmp.persist_noclobber(&path).map(drop)?
    }
    Ok(())
}

/// [`store`] as best effort: a copy that could not be replaced is removed, so it cannot
/// speak for an older file; without one, readers fall back to the bundle's own.
pub fn keep(bundle_id: &str, kept: Kept, contents: &[u8]) {
    if let Err(e) = store(bundle_id, kept, contents, true) {
        tracing::warn!("bundle {bundle_id}: no host copy of its {kept:?} ({e:#}); readers use the bundle's own");
        if let Some(path) = file(bundle_id, kept) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes the copies of removed bundle container `bundle_id`.
pub fn forget(bundle_id: &str) {
    for kept in [Kept::StartCheck, Kept::ControlToken] {
        if let Some(path) = file(bundle_id, kept) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes the copies of bundles the engine no longer has, for either backend. A copy
/// written after the listing started is left alone: its bundle may be one the listing did
/// not see yet.
pub async fn prune(docker: &Docker) -> anyhow::Result<()> {
    let listed_at = SystemTime::now();
    let mut bundles = HashSet::new();
    for backend in [BackendKind::Docker, BackendKind::Smolmachines] {
        let listed = objects::containers(docker, backend, None).await?;
        bundles.extend(listed.into_iter().filter(|c| role(c) == Some(labels::ROLE_BUNDLE)).filter_map(|c| c.id));
    }
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
    use super::{Kept, file};

    #[test]
    fn only_an_engine_id_names_a_file() {
        assert!(file("0123abcdef", Kept::StartCheck).is_some());
        assert!(file("0123abcdef", Kept::ControlToken).unwrap().to_string_lossy().ends_with(".token"));
        for bad in ["", "../x", "a/b", "abc.json"] {
            assert!(file(bad, Kept::ControlToken).is_none(), "{bad}");
        }
    }
}
