//! The real `bottle-core` binary: exit codes and error output for paths that need no engine.

use std::process::{Command, Output};

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(args)
        .current_dir(dir)
        .env_remove("CLAUDE_BOTTLE_BACKEND")
        .output()
        .expect("bottle-core runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn verify_refuses_an_unknown_category_and_a_missing_spec_as_usage_errors() {
    let out = run(&["verify", "demo", "--only", "teleport"], std::path::Path::new("."));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["verify", "-f", "missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn smolmachines_is_reported_as_not_built() {
    let out = run(&["--backend", "smolmachines", "ls"], std::path::Path::new("."));
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr).contains("the smolmachines backend is not built yet; see issue 6"),
        "{}",
        text(&out.stderr)
    );
    let env = Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(["status", "demo"])
        .env("CLAUDE_BOTTLE_BACKEND", "smolmachines")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(6));
}

#[test]
fn invalid_spec_exits_2_with_position_before_touching_a_backend() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ws")).unwrap();
    std::fs::write(
        dir.path().join("bottle.toml"),
        "name = \"demo\"\nworkspace = \"ws\"\n[resources]\nmemory = \"lots\"\n",
    )
    .unwrap();
    // The spec names a backend that is not built: the spec error must win, because it is checked first.
    let out = run(&["up", "--backend", "smolmachines"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: bottle.toml:4:10: resources.memory = \"lots\": "), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let here = std::path::Path::new(".");
    assert_eq!(run(&["frobnicate"], here).status.code(), Some(2));
    assert_eq!(run(&["status", "Bad_Name"], here).status.code(), Some(2));
    let help = run(&["--help"], here);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Usage: bottle-core"));
}
