//! Local image builds: the bundle image, bottle's default agent image, and spec-given build contexts.
//!
//! No registry is reachable from where bottle runs, so every image is made
//! on the host. Images are tagged by the hash of what they are made from, so
//! an unchanged recipe is never rebuilt and a changed one can never be
//! mistaken for the old image. A host-wide lock per tag keeps ten concurrent
//! `up`s from building the same image ten times.

mod agent;
mod bundle;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::backend::Progress;
use crate::netpool;
use crate::spec::ImageSource;

pub use agent::{AGENT_HOME, AGENT_REPO, AGENT_UID, agent_tag, ensure_agent_image};
pub use bundle::{BUNDLE_BIN_ENV, BUNDLE_REPO, ensure_bundle_image};

/// Env override for the cache of rootfs tarballs.
pub const CACHE_DIR_ENV: &str = "BOTTLE_CACHE_DIR";
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/bottle";

pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// First 16 hex digits of the sha256 over `parts` (each length-prefixed, so parts cannot run together).
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub async fn image_exists(docker: &Docker, tag: &str) -> bool {
    docker.inspect_image(tag).await.is_ok()
}

/// Holds the host-wide build lock for one tag while it lives.
pub(crate) async fn build_lock(tag: &str) -> anyhow::Result<std::fs::File> {
    let path = netpool::run_dir().join(format!("image-{}.lock", tag.replace([':', '/'], "_")));
    tokio::task::spawn_blocking(move || Ok(netpool::lock_file(&path, true)?.expect("blocking lock"))).await?
}

/// The image the agent runs: bottle's default, an existing reference, or a local build.
pub async fn resolve_agent_image(
    docker: &Docker,
    bottle: &str,
    source: &ImageSource,
    progress: &dyn Progress,
) -> anyhow::Result<String> {
    match source {
        ImageSource::Default => ensure_agent_image(docker, progress).await,
        ImageSource::Reference(r) => {
            if !image_exists(docker, r).await {
                anyhow::bail!(
                    "image: {r:?} is not in the local engine and bottle pulls from no registry; build or load it first"
                );
            }
            Ok(r.clone())
        }
        ImageSource::Build { context, dockerfile } => {
            build_context(docker, bottle, context, dockerfile.as_deref(), progress).await
        }
    }
}

async fn build_context(
    docker: &Docker,
    bottle: &str,
    context: &Path,
    dockerfile: Option<&Path>,
    progress: &dyn Progress,
) -> anyhow::Result<String> {
    let tag = format!("bottle-build-{bottle}:latest");
    progress.step(&format!("building agent image {tag} from {}", context.display()));
    let ctx = context.to_path_buf();
    let tar = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", &ctx).with_context(|| format!("image: reading build context {}", ctx.display()))?;
        Ok(b.into_inner()?)
    })
    .await??;
    let dockerfile = dockerfile.map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into());
    run_build(docker, &tag, &dockerfile, tar, progress).await?;
    Ok(tag)
}

/// Runs a classic (non-BuildKit) build of a context tarball, forwarding the build's output as progress.
pub(crate) async fn run_build(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    context_tar: Vec<u8>,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let options =
        bollard::query_parameters::BuildImageOptionsBuilder::default().dockerfile(dockerfile).t(tag).rm(true).build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context_tar.into())));
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("image: building {tag}"))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            anyhow::bail!("image: building {tag}: {e}");
        }
        if let Some(line) = info.stream.as_deref().map(str::trim).filter(|l| l.starts_with("Step ")) {
            progress.step(line);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_depends_on_part_boundaries() {
        assert_ne!(content_hash(&[b"ab", b"c"]), content_hash(&[b"a", b"bc"]));
        assert_eq!(content_hash(&[b"x"]).len(), 16);
    }
}
