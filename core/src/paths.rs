//! Where bottle keeps its lock files and caches: per user, as the platform expects.
//!
//! A user in the `docker` group is not root and cannot write `/run` or
//! `/var/cache`, so those stay root's alone. Everyone else gets folders of
//! their own: `$XDG_RUNTIME_DIR` and `$XDG_CACHE_HOME` on Linux, a run folder
//! under the per-user `$TMPDIR` and `~/Library/Caches` on macOS. The env
//! overrides win over all of these.
//!
//! Per-user lock folders mean two users' locks never meet. That is safe
//! because a lock is only a speed-up: the engine's own state is the record.
//! Two users picking the same subnet at once are caught by the engine, which
//! refuses a network whose pool overlaps one it has; the pick then moves on
//! to the next free subnet (see `sidecar::network`).

use std::path::{Path, PathBuf};

/// Env override for the directory holding bottle's lock files (and the smolmachines Smolfiles).
pub const RUN_DIR_ENV: &str = "BOTTLE_RUN_DIR";
/// Env override for the cache of image tarballs and the probe copies.
pub const CACHE_DIR_ENV: &str = "BOTTLE_CACHE_DIR";
/// root's lock directory (cleared at boot, which is what a lock wants).
pub const ROOT_RUN_DIR: &str = "/run/bottle";
/// root's cache.
pub const ROOT_CACHE_DIR: &str = "/var/cache/bottle";

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The directory for bottle's lock files.
pub fn run_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(RUN_DIR_ENV).unwrap_or_else(|| {
        user_run_dir(is_root(), cfg!(target_os = "macos"), env("XDG_RUNTIME_DIR"), env("TMPDIR"), home())
    })
}

/// The lock that serialises `up`/`down`/`gc` of one bottle name across processes. Both
/// backends take the same one: they share the bundle's object names.
pub fn name_lock_path(name: &str) -> PathBuf {
    run_dir().join(format!("bottle-{name}.lock"))
}

/// The directory for bottle's caches.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(CACHE_DIR_ENV)
        .unwrap_or_else(|| user_cache_dir(is_root(), cfg!(target_os = "macos"), env("XDG_CACHE_HOME"), home()))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn user_run_dir(
    root: bool,
    macos: bool,
    xdg_runtime: Option<PathBuf>,
    tmpdir: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    match (root, macos) {
        (true, false) => PathBuf::from(ROOT_RUN_DIR),
        // macOS gives every user a private $TMPDIR (under /var/folders); launchd sets it.
        (_, true) => tmpdir.map(|t| t.join("bottle")).unwrap_or_else(|| caches(home).join("run")),
        (false, false) => xdg_runtime
            .map(|x| x.join("bottle"))
            // No login session (su, a service): a folder of this user's own under /tmp,
            // which `lock_file` refuses unless this user owns it.
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/bottle-{}", rustix::process::geteuid().as_raw()))),
    }
}

fn user_cache_dir(root: bool, macos: bool, xdg_cache: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    match (root, macos) {
        (true, false) => PathBuf::from(ROOT_CACHE_DIR),
        (_, true) => caches(home),
        (false, false) => xdg_cache
            .or_else(|| home.map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/bottle-cache-{}", rustix::process::geteuid().as_raw())))
            .join("bottle"),
    }
}

fn caches(home: Option<PathBuf>) -> PathBuf {
    home.unwrap_or_else(|| PathBuf::from("/tmp")).join("Library/Caches/bottle")
}

/// Creates `dir` (private to this user when bottle makes it) and refuses one another user owns:
/// whoever owns a lock folder can delete the locks in it.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let hint = || format!("set {RUN_DIR_ENV} / {CACHE_DIR_ENV} to a directory of yours");
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => anyhow::bail!("creating {}: {e} ({})", dir.display(), hint()),
    }
    let meta = std::fs::metadata(dir).map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && !is_root() && meta.mode() & 0o002 != 0 {
        anyhow::bail!(
            "{} belongs to uid {}, not to you (uid {me}), and others can write it ({})",
            dir.display(),
            meta.uid(),
            hint()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn root_on_linux_keeps_the_system_paths() {
        assert_eq!(user_run_dir(true, false, p("/run/user/0"), None, p("/root")), PathBuf::from(ROOT_RUN_DIR));
        assert_eq!(user_cache_dir(true, false, p("/root/.cache"), p("/root")), PathBuf::from(ROOT_CACHE_DIR));
    }

    #[test]
    fn a_linux_user_follows_xdg_then_home() {
        assert_eq!(
            user_run_dir(false, false, p("/run/user/1000"), None, p("/home/u")),
            PathBuf::from("/run/user/1000/bottle")
        );
        assert_eq!(user_cache_dir(false, false, p("/x/cache"), p("/home/u")), PathBuf::from("/x/cache/bottle"));
        assert_eq!(user_cache_dir(false, false, None, p("/home/u")), PathBuf::from("/home/u/.cache/bottle"));
        let no_session = user_run_dir(false, false, None, None, p("/home/u"));
        assert!(no_session.starts_with("/tmp") && no_session.to_string_lossy().contains("bottle-"), "{no_session:?}");
    }

    #[test]
    fn macos_uses_the_private_tmpdir_and_library_caches() {
        assert_eq!(
            user_run_dir(false, true, None, p("/var/folders/ab/T"), p("/Users/u")),
            PathBuf::from("/var/folders/ab/T/bottle")
        );
        assert_eq!(
            user_run_dir(false, true, None, None, p("/Users/u")),
            PathBuf::from("/Users/u/Library/Caches/bottle/run")
        );
        assert_eq!(user_cache_dir(false, true, None, p("/Users/u")), PathBuf::from("/Users/u/Library/Caches/bottle"));
    }
}
