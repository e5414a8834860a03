//! The bundle image: `FROM scratch` + the static `bottle-bundle` binary + CA certificates.
//!
//! The binary comes from `BOTTLE_BUNDLE_BIN` when set (a packaged install),
//! else it is built from this source tree with `crt-static` on the host's gnu
//! target (there is no musl target here). The target is named explicitly so
//! the static flag applies to the binary only, not to build scripts and proc
//! macros, and the build gets its own target dir so the flag change never
//! invalidates the normal build cache.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::Docker;

use super::{build_lock, content_hash, image_exists, run_build};
use crate::backend::Progress;

const DOCKERFILE: &str = include_str!("../../../images/bundle/Dockerfile");
pub const BUNDLE_REPO: &str = "bottle-bundle";
/// Env: path to a prebuilt static `bottle-bundle` binary.
pub const BUNDLE_BIN_ENV: &str = "BOTTLE_BUNDLE_BIN";
const HOST_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Returns the bundle image's tag, building the binary and the image as needed.
pub async fn ensure_bundle_image(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<String> {
    let binary = bundle_binary(progress).await?;
    let bin = tokio::fs::read(&binary).await.with_context(|| format!("image: reading {}", binary.display()))?;
    let tag = format!("{BUNDLE_REPO}:{}", content_hash(&[&bin, DOCKERFILE.as_bytes()]));
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let _lock = build_lock(&tag).await?;
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    progress.step(&format!("building bundle image {tag}"));
    let ca = tokio::fs::read(HOST_CA_FILE).await.unwrap_or_default();
    let context = tokio::task::spawn_blocking(move || build_context(&bin, &ca)).await??;
    run_build(docker, &tag, "Dockerfile", context, progress).await?;
    Ok(tag)
}

fn build_context(bin: &[u8], ca: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
        b.append_data(&mut h, path, data)
    };
    add("Dockerfile", 0o644, DOCKERFILE.as_bytes())?;
    add("bottle-bundle", 0o755, bin)?;
    add("ca-certificates.crt", 0o644, ca)?;
    add("tmp/", 0o1777, &[])?;
    Ok(b.into_inner()?)
}

/// The static bundle binary: `BOTTLE_BUNDLE_BIN`, or a build from this source tree, once per process.
async fn bundle_binary(progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    if let Some(p) = std::env::var_os(BUNDLE_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    BUILT.get_or_try_init(|| build_bundle_binary(progress)).await.cloned()
}

async fn build_bundle_binary(progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core sits in the workspace");
    if !workspace.join("bundle/Cargo.toml").exists() {
        anyhow::bail!(
            "image: no bottle-bundle binary: set {BUNDLE_BIN_ENV} to a static build, or run from a source checkout"
        );
    }
    let triple = host_triple().await?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bundle-static");
    progress.step("building bottle-bundle (release, static; cargo output follows)");
    let status = tokio::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "bottle-bundle", "--target", &triple])
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("image: running cargo to build bottle-bundle")?;
    if !status.success() {
        anyhow::bail!("image: cargo build of bottle-bundle failed ({status}); its output is above");
    }
    Ok(target_dir.join(triple).join("release/bottle-bundle"))
}

async fn host_triple() -> anyhow::Result<String> {
    let out = tokio::process::Command::new("rustc").arg("-vV").output().await.context("image: running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("image: rustc -vV named no host triple")
}
