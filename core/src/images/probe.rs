//! The probe: the static `bottle-probe`, as an image (the escape suite's
//! "outside" canary runs it) and as a host file the agent gets bind-mounted
//! read-only at [`PROBE_IN_AGENT`], so the start check and the suite need
//! nothing from the agent's image (no shell, no curl).

use std::path::PathBuf;

use anyhow::Context;
use bollard::Docker;

use super::identity::{Memo, stat_key};
use super::{ImageFile, cache_dir, content_hash, ensure_scratch_image, static_bin::static_binary};
use crate::backend::Progress;

const DOCKERFILE: &str = include_str!("../../../images/probe/Dockerfile");
pub const PROBE_REPO: &str = "bottle-probe";
/// Env: path to a prebuilt static `bottle-probe` binary.
pub const PROBE_BIN_ENV: &str = "BOTTLE_PROBE_BIN";
/// Where the agent sees the probe.
pub const PROBE_IN_AGENT: &str = "/opt/bottle/probe";

/// The probe binary as the host keeps it for agents: a content-addressed copy under the
/// cache dir, so a rebuilt source tree never pulls the file out from under a running agent.
/// The copy found for an unchanged binary is remembered (see `identity`), so an `up` with
/// everything cached does not read or hash the binary again.
pub async fn ensure_probe_file(progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    let binary = static_binary("bottle-probe", PROBE_BIN_ENV, progress).await?;
    let memo = Memo::in_cache();
    let key = stat_key(&binary);
    let remembered = key.as_deref().and_then(|k| memo.recall(MEMO_KIND, k)).map(PathBuf::from);
    if let Some(copy) = remembered.filter(|c| c.starts_with(cache_dir().join("probe")) && c.is_file()) {
        return Ok(copy);
    }
    let copy = copy_probe(&binary).await?;
    if let Some(k) = key {
        memo.remember(MEMO_KIND, &k, &copy.to_string_lossy());
    }
    Ok(copy)
}

/// Under what the probe copy's name is remembered.
const MEMO_KIND: &str = "probe-file";

/// The content-addressed copy of `binary`, made if missing.
async fn copy_probe(binary: &std::path::Path) -> anyhow::Result<PathBuf> {
    let bytes = tokio::fs::read(binary).await.with_context(|| format!("image: reading {}", binary.display()))?;
    let dir = cache_dir().join("probe");
    let path = dir.join(format!("bottle-probe-{}", content_hash(&[&bytes])));
    if !path.exists() {
        tokio::fs::create_dir_all(&dir).await.with_context(|| format!("image: creating {}", dir.display()))?;
        // Written aside under a name of this call's own and renamed, so a concurrent `up`
        // (in this process or another) never mounts half a file or renames ours away.
        let tmp = dir.join(format!(".bottle-probe-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        tokio::fs::write(&tmp, &bytes).await.with_context(|| format!("image: writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .with_context(|| format!("image: making {} executable", tmp.display()))?;
        tokio::fs::rename(&tmp, &path).await.with_context(|| format!("image: placing {}", path.display()))?;
    }
    Ok(path)
}

/// Returns the probe image's tag, building it as needed.
pub async fn ensure_probe_image(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<String> {
    let binary = static_binary("bottle-probe", PROBE_BIN_ENV, progress).await?;
    ensure_scratch_image(docker, PROBE_REPO, DOCKERFILE, vec![ImageFile::exec("bottle-probe", binary)], progress).await
}
