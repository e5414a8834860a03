//! The static binaries bottle puts into images: `bottle-bundle` and `bottle-probe`.
//!
//! Each comes from its own env variable when set (a packaged install), else
//! both are built once per process from this source tree with `crt-static`
//! on the host's gnu target (there is no musl target here). The target is
//! named explicitly so the static flag applies to the binaries only, not to
//! build scripts and proc macros, and the build gets its own target dir so
//! the flag change never invalidates the normal build cache. Debug info is
//! left out (symbols stay, for panic messages): every `up` hashes the bundle
//! binary to find its image, and it is 11 MiB instead of 51.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::backend::Progress;

/// The workspace packages built statically, in one cargo run.
const STATIC_PACKAGES: [&str; 2] = ["bottle-bundle", "bottle-probe"];

/// The static binary `package`: `env` if set, else a sibling of another set binary, else a build.
pub(crate) async fn static_binary(package: &str, env: &str, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    // A packaged install ships the binaries side by side: one named path finds the others.
    for other in [super::BUNDLE_BIN_ENV, super::PROBE_BIN_ENV] {
        let sibling = std::env::var_os(other).map(PathBuf::from).and_then(|p| Some(p.parent()?.join(package)));
        if let Some(sibling) = sibling.filter(|s| s.is_file()) {
            return Ok(sibling);
        }
    }
    let dir = BUILT.get_or_try_init(|| build(progress, env)).await?;
    Ok(dir.join(package))
}

/// Builds every static package; returns the directory holding them.
async fn build(progress: &dyn Progress, env: &str) -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core sits in the workspace");
    if !workspace.join("bundle/Cargo.toml").exists() {
        anyhow::bail!("image: no static binaries: set {env} to a static build, or run from a source checkout");
    }
    let triple = host_triple().await?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bundle-static");
    progress.step(&format!("building {} (release, static; cargo output follows)", STATIC_PACKAGES.join(", ")));
    let mut cmd = tokio::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", &triple]);
    for p in STATIC_PACKAGES {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // Symbols stay for panic messages; debug info would make the bundle image 6× larger
        // and every `up` hash those bytes to find its image.
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("image: running cargo to build the static binaries")?;
    if !status.success() {
        anyhow::bail!("image: cargo build of the static binaries failed ({status}); its output is above");
    }
    Ok(target_dir.join(triple).join("release"))
}

async fn host_triple() -> anyhow::Result<String> {
    let out = tokio::process::Command::new("rustc").arg("-vV").output().await.context("image: running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("image: rustc -vV named no host triple")
}
