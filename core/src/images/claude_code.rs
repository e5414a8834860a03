//! The Claude Code agent image (`image = { agent = "claude-code" }`): bottle's
//! own agent image plus the native Claude Code binary from the npm registry,
//! and a start script that answers its first-run questions.
//!
//! The version and the registry's sha512 for each platform are pinned here,
//! and nowhere else. The tarball is checked against that sha512 before use
//! (a mismatch is refused) and cached under the cache dir by version; the image
//! is tagged by the hash of its recipe and the pinned sha512, so a second `up`
//! neither downloads nor builds anything.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use bollard::Docker;
use sha2::{Digest, Sha512};

use super::{build_lock, cache_dir, content_hash, context_tar, image_exists, run_build};
use crate::backend::Progress;

pub const CLAUDE_CODE_REPO: &str = "bottle-claude-code";
pub const CLAUDE_CODE_VERSION: &str = "2.1.328";
/// A tarball to use instead of downloading one (still checked against the pinned sha512).
pub const CLAUDE_CODE_TARBALL_ENV: &str = "BOTTLE_CLAUDE_CODE_TARBALL";
const REGISTRY: &str = "https://registry.npmjs.org";
/// Longest the download may take (a 172 MB tarball).
const DOWNLOAD_TIMEOUT_SECS: u32 = 900;

/// npm package and `dist.integrity` per engine architecture (as `docker info` names it).
const PACKAGES: &[(&str, &str, &str)] = &[
    (
        "x86_64",
        "claude-code-linux-x64",
        "sha512-KuzL+dBHgDCFTHJxwW+xuBJdVKfBsesGx2BBcTOG9sYDGoAD7b1hUV8rsTS4xjoJsB2SmeGraGjBiFuhrYuC9w==",
    ),
    (
        "aarch64",
        "claude-code-linux-arm64",
        "sha512-zeWsClzx/rli8q6RsngKisu5BnuZ41J7Htp0qgsdZomaJCINiksf+mewQ/gyaylKajBZCoE9Z8R+OkLMjIkJig==",
    ),
];

const DOCKERFILE: &str = include_str!("../../../images/claude-code/Dockerfile");
const START_SCRIPT: &str = include_str!("../../../images/claude-code/claude");
const HOME_CONFIG: &str = include_str!("../../../images/claude-code/home/claude.json");
const HOME_SETTINGS: &str = include_str!("../../../images/claude-code/home/settings.json");

/// The npm package the engine's architecture needs: (package, integrity).
pub fn package_for(arch: &str) -> anyhow::Result<(&'static str, &'static str)> {
    let arch = if arch == "arm64" { "aarch64" } else { arch };
    PACKAGES
        .iter()
        .find(|(a, ..)| *a == arch)
        .map(|(_, p, i)| (*p, *i))
        .with_context(|| format!("image: Claude Code has no Linux package for the engine's architecture {arch:?}"))
}

/// The registry URL of a package's tarball at the pinned version.
pub fn tarball_url(package: &str) -> String {
    format!("{REGISTRY}/@anthropic-ai/{package}/-/{package}-{CLAUDE_CODE_VERSION}.tgz")
}

/// Where the verified tarball is cached.
pub fn cached_tarball(package: &str) -> PathBuf {
    cache_dir().join("claude-code").join(format!("{package}-{CLAUDE_CODE_VERSION}.tgz"))
}

/// Returns the Claude Code image's tag for `base` (bottle's agent image), building it if missing.
pub async fn ensure_claude_code_image(docker: &Docker, base: &str, progress: &dyn Progress) -> anyhow::Result<String> {
    let arch = docker.info().await.context("image: asking the engine for its architecture")?.architecture;
    let (package, integrity) = package_for(arch.as_deref().unwrap_or("x86_64"))?;
    let dockerfile = DOCKERFILE.replace("@BASE@", base);
    let parts: [&[u8]; 5] = [
        dockerfile.as_bytes(),
        START_SCRIPT.as_bytes(),
        HOME_CONFIG.as_bytes(),
        HOME_SETTINGS.as_bytes(),
        integrity.as_bytes(),
    ];
    let tag = format!("{CLAUDE_CODE_REPO}:{}", content_hash(&parts));
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let _lock = build_lock(&tag).await?;
    if image_exists(docker, &tag).await {
        return Ok(tag);
    }
    let tarball = fetch_tarball(package, integrity, progress).await?;
    progress.step(&format!("building image {tag} (Claude Code {CLAUDE_CODE_VERSION} on {base})"));
    let context = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let tgz = std::fs::read(&tarball).with_context(|| format!("image: reading {}", tarball.display()))?;
        let files = [
            ("claude-code.tgz", 0o644, tgz),
            ("claude", 0o755, START_SCRIPT.as_bytes().to_vec()),
            ("home/", 0o755, Vec::new()),
            ("home/claude.json", 0o644, HOME_CONFIG.as_bytes().to_vec()),
            ("home/settings.json", 0o644, HOME_SETTINGS.as_bytes().to_vec()),
        ];
        context_tar(&dockerfile, &files)
    })
    .await??;
    run_build(docker, &tag, "Dockerfile", context, progress).await?;
    Ok(tag)
}

/// The verified tarball: from [`CLAUDE_CODE_TARBALL_ENV`], the cache, or the registry (then cached).
async fn fetch_tarball(package: &str, integrity: &str, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    if let Some(given) = std::env::var_os(CLAUDE_CODE_TARBALL_ENV).map(PathBuf::from) {
        check_integrity(&given, integrity).await?;
        return Ok(given);
    }
    let cached = cached_tarball(package);
    if cached.exists() && check_integrity(&cached, integrity).await.is_ok() {
        return Ok(cached);
    }
    let dir = cached.parent().expect("cache file has a parent");
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("image: creating {}", dir.display()))?;
    let partial = cached.with_extension("tgz.partial");
    let url = tarball_url(package);
    progress.step(&format!("downloading Claude Code {CLAUDE_CODE_VERSION} ({url}; cached at {})", cached.display()));
    let status = tokio::process::Command::new("curl")
        .args(["-fsSL", "--retry", "2", "--max-time", &DOWNLOAD_TIMEOUT_SECS.to_string(), "-o"])
        .arg(&partial)
        .arg(&url)
        .status()
        .await
        .context("image: running curl to download Claude Code")?;
    anyhow::ensure!(status.success(), "image: downloading {url} failed ({status})");
    if let Err(e) = check_integrity(&partial, integrity).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, &cached).await.with_context(|| format!("image: caching {}", cached.display()))?;
    Ok(cached)
}

/// Refuses a file whose sha512 is not the registry's `dist.integrity`.
async fn check_integrity(path: &Path, integrity: &str) -> anyhow::Result<()> {
    let p = path.to_path_buf();
    let got = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha512::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(h.finalize())))
    })
    .await?
    .with_context(|| format!("image: reading {}", path.display()))?;
    anyhow::ensure!(
        got == integrity,
        "image: {} does not match the registry's integrity for Claude Code {CLAUDE_CODE_VERSION}: expected {integrity}, got {got}; refused",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tarball_with_another_sha512_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.tgz");
        std::fs::write(&f, b"not claude code").unwrap();
        let (_, integrity) = package_for("x86_64").unwrap();
        let e = check_integrity(&f, integrity).await.unwrap_err().to_string();
        assert!(e.contains("does not match") && e.contains("refused"), "{e}");
        let own =
            format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(Sha512::digest(b"not claude code")));
        check_integrity(&f, &own).await.unwrap();
    }

    #[test]
    fn packages_follow_the_engines_architecture() {
        assert_eq!(package_for("x86_64").unwrap().0, "claude-code-linux-x64");
        assert_eq!(package_for("arm64").unwrap().0, "claude-code-linux-arm64");
        assert!(package_for("s390x").is_err());
        assert!(tarball_url("claude-code-linux-x64").ends_with("/-/claude-code-linux-x64-2.1.328.tgz"));
    }
}
