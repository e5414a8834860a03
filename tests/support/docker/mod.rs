//! Shared by the test files that run bottles on the real local engine (and by
//! `examples/verify_bench.rs`, through `#[path]`): starting the engine, a
//! throwaway spec and workspace, and removing what a test made.
//!
//! These live here rather than in the library because they encode test
//! policy (skip when no engine can be started, small resources, the
//! `allowed.test` canary name, `docker` CLI cleanup that must work even while
//! a test panics), which no real caller of `bottle-core` should inherit. The
//! library offers only the policy-free part, [`Spec::new`].

#![allow(dead_code)] // each test file uses a different part of this module

use std::fmt::Display;
use std::path::PathBuf;

use bottle_core::backend::Progress;
use bottle_core::spec::{Resources, Spec};
use tokio::sync::OnceCell;

/// Progress printed to stderr, tagged with the test's name, so parallel tests' lines can be told apart.
pub struct Print<T>(pub T);

impl<T: Display + Send + Sync> Progress for Print<T> {
    fn step(&self, message: &str) {
        eprintln!("[{}] {message}", self.0);
    }
}

static ENGINE: OnceCell<Result<(), String>> = OnceCell::const_new();

/// Whether a Docker engine answers, after `scripts/install-docker.sh` (run once
/// per test binary: it is idempotent, starts an engine if none answers, and
/// installs what image builds need, e.g. debootstrap). If none answers the
/// caller skips its test; the reason is printed.
pub async fn engine() -> bool {
    let ready = ENGINE
        .get_or_init(|| async {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-docker.sh");
            let out = tokio::process::Command::new("bash").arg(script).output().await.map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("install-docker.sh failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            bottle_core::engine::connect().await.map(drop).map_err(|e| format!("{e:#}"))
        })
        .await;
    if let Err(why) = ready {
        crate::skip::skipped(format_args!("no Docker engine can be started here: {why}"));
    }
    ready.is_ok()
}

/// A unique bottle name per test and process, so parallel runs never meet.
pub fn unique(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// A fresh workspace the agent can write (it runs as uid 1000, not as the test's user).
pub fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    std::fs::set_permissions(ws.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    ws
}

/// A Docker bottle small enough for many to run side by side, allowed to reach
/// only `allowed.test` (the name the tests' canaries answer to).
pub fn spec(name: &str) -> (Spec, tempfile::TempDir) {
    let ws = workspace();
    let spec = Spec {
        allow: vec!["allowed.test".into()],
        resources: Resources { cpus: 0.5, memory_mib: 256, pids: 128 },
        ..Spec::new(name, ws.path())
    };
    (spec, ws)
}

/// Removes every container, then every network, matching any of `filters`
/// (`docker --filter` values). Containers go first: a network still joined by
/// any of them cannot be removed. Errors are ignored, as this runs from `Drop`,
/// also while a test panics.
pub fn remove_labelled(filters: &[String]) {
    for (list, rm) in [(&["ps", "-aq"][..], &["rm", "-f"][..]), (&["network", "ls", "-q"], &["network", "rm"])] {
        for filter in filters {
            let ids = std::process::Command::new("docker").args(list).args(["--filter", filter]).output();
            let ids = ids.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            if !ids.trim().is_empty() {
                let _ = std::process::Command::new("docker").args(rm).args(ids.split_whitespace()).output();
            }
        }
    }
}

/// Removes everything a test made, also while it panics: the bottle's labelled objects and
/// the agent image the test made for it.
/// Removes everything bottle `.0` made (labelled with its name), even when the test panicked.
pub struct BottleCleanup(pub String);

impl Drop for BottleCleanup {
    fn drop(&mut self) {
        remove_labelled(&[format!("label={}={}", bottle_core::sidecar::labels::NAME, self.0)]);
    }
}

pub struct Cleanup {
    pub bottle: String,
    pub image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_labelled(&[format!("label={}={}", bottle_core::sidecar::labels::NAME, self.bottle)]);
        let _ = std::process::Command::new("docker").args(["rmi", "-f", &self.image]).output();
    }
}

/// Runs `docker ARGS`, panicking with its stderr on failure; returns its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A test's canary: `image` running `cmd` (after `run_args`) on a new internal network of its
/// own, labelled `label` (not the bottle label: a canary is no bottle, and `gc` in a parallel
/// test must not take it). The network is named to sort before a bottle's egress network:
/// were it not internal, Docker 20.10 would make it the bundle's gateway network and publish
/// the control port into it. Returns (network, container, ip).
pub fn canary_container(
    name: &str,
    label: &str,
    image: &str,
    run_args: &[&str],
    cmd: &[&str],
) -> (String, String, String) {
    let network = format!("bottle-0canary-{name}");
    docker(&["network", "create", "--internal", "--label", label, &network]);
    let container = format!("{network}-origin");
    let mut args = vec!["run", "-d", "--label", label, "--name", &container, "--network", &network];
    args.extend_from_slice(run_args);
    args.push(image);
    args.extend_from_slice(cmd);
    docker(&args);
    let ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &container]);
    (network, container, ip)
}
