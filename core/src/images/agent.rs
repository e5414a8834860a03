//! bottle's default agent image, built by the engine from `images/agent/Dockerfile`
//! (`FROM debian:bookworm-slim`, then apt-get): the same recipe on Linux and
//! macOS, and nothing runs on the host.
//!
//! An engine that reaches no registry (as on these CI machines) has no
//! `debian:bookworm-slim` to start from. There, bottle makes that base once
//! itself when it can (root on Linux, with debootstrap: `images/agent/base.sh`),
//! caches the tarball by the recipe's hash and imports it under the FROM name.
//! Elsewhere the engine pulls the base as any `docker build` does, and a
//! failure says what is missing. The Dockerfile's apt-get needs Debian's
//! mirror from inside the engine's build (seen reachable here).

use anyhow::Context;
use bollard::Docker;
use futures_util::StreamExt;

use super::{build_lock, cache_dir, content_hash, context_tar, image_exists, run_build};
use crate::backend::Progress;
use crate::spec::Spec;

/// The recipes, embedded so an installed bottle-core builds the same image as a source checkout.
const DOCKERFILE: &str = include_str!("../../../images/agent/Dockerfile");
const BASE_RECIPE: &str = include_str!("../../../images/agent/base.sh");
pub const AGENT_REPO: &str = "bottle-agent";
/// The unprivileged user the recipe creates (`agent`, uid and gid 1000).
pub const AGENT_UID: u32 = 1000;
pub const AGENT_HOME: &str = "/home/agent";

/// Who the agent runs as, in any image: the workspace's owner, so files the agent writes
/// belong to the person who owns the workspace; bottle's `agent` uid when the workspace
/// belongs to root (never uid 0 in the agent). A custom image's own `USER` is often root,
/// and root in a container with a writable root is one kernel bug from the host.
pub fn agent_ids(spec: &Spec) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(&spec.workspace) {
        Ok(m) if m.uid() != 0 => (m.uid(), m.gid()),
        _ => (AGENT_UID, AGENT_UID),
    }
}

pub fn agent_tag() -> String {
    format!("{AGENT_REPO}:{}", content_hash(&[DOCKERFILE.as_bytes()]))
}

/// The image the Dockerfile starts FROM.
pub fn agent_base() -> &'static str {
    DOCKERFILE
        .lines()
        .find_map(|l| l.strip_prefix("FROM "))
        .map(str::trim)
        .expect("images/agent/Dockerfile has a FROM line")
}

/// Returns the default agent image's tag, building it with the engine if it lacks it.
pub async fn ensure_agent_image(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<String> {
    let tag = agent_tag();
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let _lock = build_lock(&tag).await?;
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let base = agent_base();
    let made_base = ensure_base(docker, base, progress).await?;
    progress.step(&format!("building agent image {tag} from images/agent/Dockerfile (apt-get in the engine's build)"));
    let context = context_tar(DOCKERFILE, &[])?;
    run_build(docker, &tag, "Dockerfile", context, progress).await.with_context(|| {
        if made_base {
            "the build's apt-get needs Debian's mirror (set BOTTLE_DEBIAN_MIRROR for the base only)".to_string()
        } else {
            format!(
                "the engine needs the base {base}: where no registry is reachable, run one `bottle-core up` as root on Linux (it makes {base} with debootstrap), or `docker load` it"
            )
        }
    })?;
    Ok(tag)
}

/// Makes the base from debootstrap when the engine lacks it and this host can; says whether it did.
async fn ensure_base(docker: &Docker, base: &str, progress: &dyn Progress) -> anyhow::Result<bool> {
    if image_exists(docker, base).await {
        return Ok(false);
    }
    let can_make = cfg!(target_os = "linux") && crate::paths::is_root() && which("debootstrap");
    if !can_make {
        progress.step(&format!(
            "the engine has no {base}; its build will try to pull it (bottle can make it only as root on Linux with debootstrap)"
        ));
        return Ok(false);
    }
    let tarball = cache_dir().join(format!("agent-base-{}.tar", content_hash(&[BASE_RECIPE.as_bytes()])));
    if !tarball.exists() {
        progress.step(&format!(
            "the engine has no {base} and reaches no registry: making it with debootstrap (a few minutes; cached at {})",
            tarball.display()
        ));
        run_base_recipe(&tarball).await?;
    }
    progress.step(&format!("importing {} as {base}", tarball.display()));
    import(docker, &tarball, base).await?;
    Ok(true)
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).chain(["/usr/sbin".into(), "/sbin".into()]).any(|d| d.join(tool).is_file())
    })
}

async fn run_base_recipe(tarball: &std::path::Path) -> anyhow::Result<()> {
    let dir = tarball.parent().expect("cache file has a parent");
    crate::paths::ensure_private_dir(dir).context("image")?;
    let script = dir.join(".agent-base.sh");
    tokio::fs::write(&script, BASE_RECIPE).await.with_context(|| format!("image: writing {}", script.display()))?;
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(tarball)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("image: running the agent base recipe (bash)")?;
    if !status.success() {
        anyhow::bail!("image: agent base recipe failed ({status}); its output is above");
    }
    Ok(())
}

/// Imports a rootfs tarball into the engine as `tag`.
async fn import(docker: &Docker, tarball: &std::path::Path, tag: &str) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(tarball).await.with_context(|| format!("image: opening {}", tarball.display()))?;
    let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let options =
        bollard::query_parameters::CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(version).build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(file_chunks(file))), None);
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("image: importing {}", tarball.display()))?;
    }
    if !image_exists(docker, tag).await {
        anyhow::bail!("image: import of {} finished but {tag} is missing", tarball.display());
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
