//! Local image builds: the bundle and probe images, bottle's default agent image, and spec-given build contexts.
//!
//! No registry is reachable from where bottle runs, so every image is made
//! on the host. Images are tagged by the hash of what they are made from, so
//! an unchanged recipe is never rebuilt and a changed one can never be
//! mistaken for the old image. A lock per tag (per user, see `paths`) keeps ten
//! concurrent `up`s from building the same image ten times; two users may both
//! build one, which costs time only: the content and the tag are the same.

mod agent;
mod bundle;
mod claude_code;
mod identity;
pub mod platform;
mod probe;
mod static_bin;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::backend::Progress;
use crate::netpool;
use crate::spec::{AgentKind, ImageSource};

pub use agent::{AGENT_HOME, AGENT_REPO, AGENT_UID, agent_base, agent_ids, agent_tag, ensure_agent_image};
pub use bundle::{BUNDLE_BIN_ENV, BUNDLE_REPO, ensure_bundle_image};
pub use claude_code::{
    CLAUDE_CODE_REPO, CLAUDE_CODE_TARBALL_ENV, CLAUDE_CODE_VERSION, cached_tarball, ensure_claude_code_image,
    package_for, tarball_url,
};
pub use platform::{Platform, check_binary, engine_platform};
pub use probe::{PROBE_BIN_ENV, PROBE_IN_AGENT, PROBE_REPO, ensure_probe_file, ensure_probe_image};
pub use static_bin::LIB_DIR_ENV;

/// Finds the bundle and probe binaries for the engine's platform (building them only in a
/// checkout whose sources changed) and refuses ones built for another platform.
pub async fn check_static_binaries(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<Platform> {
    crate::backend::timed(progress, "binaries", async {
        let platform = engine_platform(docker).await?;
        static_bin::static_binary("bottle-bundle", BUNDLE_BIN_ENV, progress).await?;
        static_bin::static_binary("bottle-probe", PROBE_BIN_ENV, progress).await?;
        Ok(platform)
    })
    .await
}

pub use crate::paths::{CACHE_DIR_ENV, cache_dir};

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

/// Holds this user's build lock for one tag while it lives.
pub(crate) async fn build_lock(tag: &str) -> anyhow::Result<std::fs::File> {
    let path = netpool::run_dir().join(format!("image-{}.lock", tag.replace([':', '/'], "_")));
    tokio::task::spawn_blocking(move || Ok(netpool::lock_file(&path, true)?.expect("blocking lock"))).await?
}

/// One entry of a `FROM scratch` build context.
pub(crate) struct ImageFile {
    path: &'static str,
    mode: u32,
    source: FileSource,
}

enum FileSource {
    Host(PathBuf),
    Data(Vec<u8>),
}

impl ImageFile {
    pub(crate) fn exec(path: &'static str, host: PathBuf) -> Self {
        Self { path, mode: 0o755, source: FileSource::Host(host) }
    }
    pub(crate) fn data(path: &'static str, data: Vec<u8>) -> Self {
        Self { path, mode: 0o644, source: FileSource::Data(data) }
    }
    pub(crate) fn dir(path: &'static str, mode: u32) -> Self {
        Self { path, mode, source: FileSource::Data(Vec::new()) }
    }
}

/// Builds (once per content) a `FROM scratch` image `repo:<hash of dockerfile and files>`.
/// The tag found for unchanged host files is remembered (see `identity`), so an `up` with
/// everything cached reads and hashes no binary.
pub(crate) async fn ensure_scratch_image(
    docker: &Docker,
    repo: &str,
    dockerfile: &str,
    files: Vec<ImageFile>,
    progress: &dyn Progress,
) -> anyhow::Result<String> {
    let memo = identity::Memo::in_cache();
    let key = recipe_key(dockerfile, &files);
    let remembered = key.as_deref().and_then(|k| memo.recall(repo, k)).filter(|t| t.starts_with(&format!("{repo}:")));
    if let Some(tag) = remembered
        && image_exists(docker, &tag).await
    {
        return Ok(tag);
    }
    let tag = build_scratch_image(docker, repo, dockerfile, files, progress).await?;
    if let Some(k) = key {
        memo.remember(repo, &k, &tag);
    }
    Ok(tag)
}

/// What a scratch image is made from, with each host file by its stat key rather than its
/// bytes (see `identity`); `None` if a host file cannot be looked at.
fn recipe_key(dockerfile: &str, files: &[ImageFile]) -> Option<String> {
    let mut parts = vec![dockerfile.as_bytes().to_vec()];
    for f in files {
        parts.push(f.path.as_bytes().to_vec());
        parts.push(f.mode.to_le_bytes().to_vec());
        parts.push(match &f.source {
            FileSource::Data(d) => d.clone(),
            FileSource::Host(p) => identity::stat_key(p)?.into_bytes(),
        });
    }
    Some(content_hash(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>()))
}

/// The image's tag by the hash of its content, built if the engine lacks it.
async fn build_scratch_image(
    docker: &Docker,
    repo: &str,
    dockerfile: &str,
    files: Vec<ImageFile>,
    progress: &dyn Progress,
) -> anyhow::Result<String> {
    let mut loaded = Vec::with_capacity(files.len());
    for f in files {
        let data = match f.source {
            FileSource::Data(d) => d,
            FileSource::Host(p) => {
                tokio::fs::read(&p).await.with_context(|| format!("image: reading {}", p.display()))?
            }
        };
        loaded.push((f.path, f.mode, data));
    }
    let mut parts: Vec<&[u8]> = vec![dockerfile.as_bytes()];
    parts.extend(loaded.iter().map(|(_, _, d)| d.as_slice()));
    let tag = format!("{repo}:{}", content_hash(&parts));
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let _lock = build_lock(&tag).await?;
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    progress.step(&format!("building image {tag}"));
    let dockerfile = dockerfile.to_string();
    let context = tokio::task::spawn_blocking(move || context_tar(&dockerfile, &loaded)).await??;
    run_build(docker, &tag, "Dockerfile", context, progress).await?;
    Ok(tag)
}

/// A build context: the Dockerfile and `files` (path, mode, bytes; a path ending in `/` is a folder).
pub(crate) fn context_tar(dockerfile: &str, files: &[(&str, u32, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let entries = std::iter::once(("Dockerfile", 0o644, dockerfile.as_bytes()))
        .chain(files.iter().map(|(p, m, d)| (*p, *m, d.as_slice())));
    for (path, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
        b.append_data(&mut h, path, data)?;
    }
    Ok(b.into_inner()?)
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
        ImageSource::Agent(AgentKind::ClaudeCode) => {
            let base = ensure_agent_image(docker, progress).await?;
            ensure_claude_code_image(docker, &base, progress).await
        }
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
