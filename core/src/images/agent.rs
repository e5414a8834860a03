//! bottle's default agent image: a debootstrapped Debian rootfs with sh, curl,
//! git, python3 and CA certificates, imported into the engine.
//!
//! debootstrap takes minutes, so the rootfs tarball is cached by the recipe's
//! hash under the cache dir: a CI rerun on the same machine, or a pruned image,
//! only pays for the import.

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;

use super::{build_lock, cache_dir, content_hash, image_exists};
use crate::backend::Progress;

/// The recipe, embedded so an installed bottle-core builds the same image as a source checkout.
const ROOTFS_RECIPE: &str = include_str!("../../../images/agent/rootfs.sh");
pub const AGENT_REPO: &str = "bottle-agent";
/// The unprivileged user the recipe creates (`agent`, uid and gid 1000).
pub const AGENT_UID: u32 = 1000;
pub const AGENT_HOME: &str = "/home/agent";

pub fn agent_tag() -> String {
    format!("{AGENT_REPO}:{}", content_hash(&[ROOTFS_RECIPE.as_bytes()]))
}

/// Returns the default agent image's tag, building and importing it if the engine lacks it.
pub async fn ensure_agent_image(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<String> {
    let tag = agent_tag();
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let _lock = build_lock(&tag).await?;
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let hash = content_hash(&[ROOTFS_RECIPE.as_bytes()]);
    let tarball = cache_dir().join(format!("agent-rootfs-{hash}.tar"));
    if !tarball.exists() {
        progress
            .step(&format!("building agent rootfs with debootstrap (a few minutes; cached at {})", tarball.display()));
        build_rootfs(&tarball).await?;
    }
    progress.step(&format!("importing {} as {tag}", tarball.display()));
    let file =
        tokio::fs::File::open(&tarball).await.with_context(|| format!("image: opening {}", tarball.display()))?;
    let body = file_chunks(file);
    let (repo, version) = tag.split_once(':').expect("tag has a version");
    let options =
        bollard::query_parameters::CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(version).build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("image: importing {}", tarball.display()))?;
    }
    if !image_exists(docker, &tag).await {
        anyhow::bail!("image: import of {} finished but {tag} is missing", tarball.display());
    }
    Ok(tag)
}

async fn build_rootfs(tarball: &std::path::Path) -> anyhow::Result<()> {
    let dir = tarball.parent().expect("cache file has a parent");
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("image: creating {}", dir.display()))?;
    let script = dir.join(".agent-rootfs.sh");
    tokio::fs::write(&script, ROOTFS_RECIPE).await.with_context(|| format!("image: writing {}", script.display()))?;
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(tarball)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("image: running the agent rootfs recipe (bash)")?;
    if !status.success() {
        anyhow::bail!("image: agent rootfs recipe failed ({status}); its output is above");
    }
    Ok(())
}

/// Reads a file as a stream of byte chunks without pulling it all into memory.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}
