//! The static binaries bottle puts into images: `bottle-bundle` and `bottle-probe`.
//!
//! They are release artifacts, built once per engine platform
//! (`scripts/build-static.sh`) and found, in this order:
//! 1. `BOTTLE_BUNDLE_BIN` / `BOTTLE_PROBE_BIN` (one named path also finds its sibling);
//! 2. `BOTTLE_LIB_DIR/<os>-<arch>/` (the menu-bar app may set it);
//! 3. beside `bottle-core` itself: `<exe>/../lib/bottle/<os>-<arch>/` (the installed
//!    tarball) or `<exe>/../Resources/<os>-<arch>/` (inside the `.app`);
//! 4. in a source checkout, `target/bundle-static/<rust target>/release/`, built by
//!    `scripts/build-static.sh` only when a source file is newer than the last build.
//!
//! Every candidate is checked against the engine's platform before it is used.
//! Finding a fresh build never runs cargo, so `up` with everything cached
//! starts no compiler.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use super::platform::{self, Platform};
use crate::backend::Progress;

/// Env: a folder holding `<os>-<arch>/bottle-bundle` and `bottle-probe`.
pub const LIB_DIR_ENV: &str = "BOTTLE_LIB_DIR";
/// Written by `scripts/build-static.sh` after a successful build; its mtime is the build's.
const STAMP: &str = ".bottle-static-stamp";
/// What the static build is made from: a change under these makes a checkout rebuild.
const SOURCES: [&str; 5] = ["Cargo.toml", "Cargo.lock", "protocol", "bundle", "probe"];

/// The static binary `package` for the engine's platform (see the module docs for the order).
pub(crate) async fn static_binary(package: &str, env: &str, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    let platform = platform::current_platform().await?;
    let path = find(package, env, &platform, progress).await?;
    platform::check_binary(&path, &platform)?;
    Ok(path)
}

async fn find(package: &str, env: &str, platform: &Platform, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let siblings = [super::BUNDLE_BIN_ENV, super::PROBE_BIN_ENV]
        .into_iter()
        .filter_map(|other| Some(PathBuf::from(std::env::var_os(other)?).parent()?.to_path_buf()));
    let installed = std::env::var_os(LIB_DIR_ENV)
        .map(|d| PathBuf::from(d).join(platform.dir_name()))
        .into_iter()
        .chain(beside_exe(platform));
    let mut looked = Vec::new();
    for dir in siblings.chain(installed) {
        let candidate = dir.join(package);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(dir);
    }
    match checkout() {
        Some(workspace) => checkout_build(&workspace, platform, progress).await.map(|d| d.join(package)),
        None => {
            let looked: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
            anyhow::bail!(
                "image: no {package} for the engine's platform {platform} (looked in: {}); install bottle's {} release binaries there, or set {env}",
                looked.join(", "),
                platform.dir_name()
            )
        }
    }
}

/// The installed layouts relative to the running executable.
fn beside_exe(platform: &Platform) -> Vec<PathBuf> {
    std::env::current_exe().and_then(|e| e.canonicalize()).map(|e| installed_dirs(&e, platform)).unwrap_or_default()
}

/// `<prefix>/bin/bottle-core` → `<prefix>/lib/bottle/<os>-<arch>`; `X.app/Contents/MacOS/App` →
/// `X.app/Contents/Resources/<os>-<arch>` (the core runs inside the app's own executable).
fn installed_dirs(exe: &Path, platform: &Platform) -> Vec<PathBuf> {
    let Some(prefix) = exe.parent().and_then(Path::parent) else { return Vec::new() };
    vec![prefix.join("lib/bottle").join(platform.dir_name()), prefix.join("Resources").join(platform.dir_name())]
}

/// This crate's source workspace, if bottle-core runs from (or beside) a checkout that still exists.
fn checkout() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    workspace.join("scripts/build-static.sh").is_file().then(|| workspace.to_path_buf())
}

/// The checkout's static build dir for `platform`, built first if a source is newer than it.
async fn checkout_build(workspace: &Path, platform: &Platform, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    let target = platform.rust_target()?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let dir = target_dir.join("bundle-static").join(target).join("release");
    let ws = workspace.to_path_buf();
    let fresh = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || is_fresh(&ws, &dir)).await?
    };
    if fresh {
        return Ok(dir);
    }
    BUILT
        .get_or_try_init(|| async {
            progress.step(&format!(
                "building bottle-bundle, bottle-probe for {platform} (release, static; sources are newer than the last build)"
            ));
            let status = tokio::process::Command::new("bash")
                .arg(workspace.join("scripts/build-static.sh"))
                .args(["--arch", &platform.arch])
                .env("CARGO_TARGET_DIR", &target_dir)
                .stdout(std::process::Stdio::null())
                .status()
                .await
                .context("image: running scripts/build-static.sh")?;
            if !status.success() {
                anyhow::bail!("image: scripts/build-static.sh --arch {} failed ({status}); its output is above", platform.arch);
            }
            Ok(dir.clone())
        })
        .await
        .cloned()
}

/// Whether the stamp of the last static build is newer than every source file.
fn is_fresh(workspace: &Path, dir: &Path) -> bool {
    let Ok(built) = std::fs::metadata(dir.join(STAMP)).and_then(|m| m.modified()) else { return false };
    let newest = SOURCES.iter().filter_map(|s| newest_mtime(&workspace.join(s))).max();
    newest.is_some_and(|n| n <= built)
}

/// The newest mtime of a file or of any file under a folder (skipping `target` folders).
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "target")
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_binaries_sit_beside_the_executable_or_in_the_app_resources() {
        let arm = Platform { os: "linux".into(), arch: "arm64".into() };
        let dirs = installed_dirs(Path::new("/opt/bottle-0.1.0/bin/bottle-core"), &arm);
        assert_eq!(dirs[0], Path::new("/opt/bottle-0.1.0/lib/bottle/linux-arm64"));
        let dirs = installed_dirs(Path::new("/Applications/bottle.app/Contents/MacOS/BottleApp"), &arm);
        assert_eq!(dirs[1], Path::new("/Applications/bottle.app/Contents/Resources/linux-arm64"));
    }

    #[test]
    fn a_checkout_build_is_fresh_until_a_source_changes() {
        let ws = tempfile::tempdir().unwrap();
        let out = ws.path().join("out");
        std::fs::create_dir_all(ws.path().join("bundle/src")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(ws.path().join("bundle/src/main.rs"), "").unwrap();
        assert!(!is_fresh(ws.path(), &out), "no stamp: never built");
        std::fs::write(out.join(STAMP), "").unwrap();
        assert!(is_fresh(ws.path(), &out));
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(ws.path().join("bundle/src/main.rs"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!is_fresh(ws.path(), &out), "a newer source file wants a build");
    }
}
