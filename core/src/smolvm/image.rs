//! The agent image as a `docker save` archive, for `smolvm machine create --image`.
//!
//! One locally built image serves both backends: the Docker backend runs it,
//! this backend hands smolvm the same image as an archive, so the VM boots
//! with no registry. Saving a few hundred MB takes seconds, so the archive is
//! cached by the image's id (not its tag: a rebuilt image under the same tag
//! gets a new archive) and written under a temporary name first, so a killed
//! save never leaves a truncated archive that a later `up` would trust.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::backend::Progress;

/// Subdirectory of the image cache (`images::cache_dir`) that holds the archives.
pub const ARCHIVE_DIR: &str = "smolvm-images";

/// Where the archive of the image with id `id` (`sha256:<hex>`) is kept.
pub fn archive_path(cache_dir: &Path, id: &str) -> PathBuf {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    cache_dir.join(ARCHIVE_DIR).join(format!("{hex}.tar"))
}

/// `docker save` of `tag`, cached by its image id; returns the archive's path.
pub async fn save_cached(
    docker: &Docker,
    tag: &str,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<PathBuf> {
    let id = docker
        .inspect_image(tag)
        .await
        .with_context(|| format!("image: inspecting {tag}"))?
        .id
        .with_context(|| format!("image: {tag} has no id"))?;
    let path = archive_path(cache_dir, &id);
    if path.exists() {
        return Ok(path);
    }
    let _lock = crate::images::build_lock(&format!("save-{}", id.trim_start_matches("sha256:"))).await?;
    if path.exists() {
        return Ok(path);
    }
    let dir = path.parent().expect("archive has a parent");
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("image: creating {}", dir.display()))?;
    progress.step(&format!("saving {tag} for smolvm (docker save, cached at {})", path.display()));
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let result = write_save(docker, tag, &partial).await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, &path)
        .await
        .with_context(|| format!("image: moving {} into place", partial.display()))?;
    Ok(path)
}

async fn write_save(docker: &Docker, tag: &str, to: &Path) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::create(to).await.with_context(|| format!("image: creating {}", to.display()))?;
    let mut stream = docker.export_image(tag);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("image: docker save {tag}"))?;
        file.write_all(&chunk).await.with_context(|| format!("image: writing {}", to.display()))?;
    }
    file.sync_all().await.with_context(|| format!("image: writing {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_named_by_image_id() {
        let p = archive_path(Path::new("/var/cache/bottle"), "sha256:ab12");
        assert_eq!(p, Path::new("/var/cache/bottle/smolvm-images/ab12.tar"));
    }
}
