//! The real `bottle-core` binary: exit codes and error output for paths that need no engine.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;

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
fn smolmachines_without_smolvm_exits_6_and_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    for (args, env) in
        [(&["--backend", "smolmachines", "ls"][..], None), (&["status", "demo"][..], Some("smolmachines"))]
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottle-core"));
        cmd.args(args).env("PATH", empty.path()).env_remove("BOTTLE_SMOLVM").env_remove("CLAUDE_BOTTLE_BACKEND");
        if let Some(v) = env {
            cmd.env("CLAUDE_BOTTLE_BACKEND", v);
        }
        let out = cmd.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{err}");
        assert!(err.starts_with("error: the smolmachines backend needs smolvm: smolvm: not found"), "{err}");
        assert!(err.contains("install smolvm 1.1.3 or newer") && err.contains("BOTTLE_SMOLVM"), "{err}");
    }
}

#[test]
fn smolmachines_refuses_a_smolvm_whose_allowlist_is_not_enforced() {
    let double = smolvm_support::Double::new("1.1.2");
    let out = Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(["--backend", "smolmachines", "ls"])
        .env("BOTTLE_SMOLVM", &double.bin)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("smolvm 1.1.2 is too old for bottle") && err.contains("not enforced"), "{err}");
    assert!(double.machine_calls().is_empty(), "no machine command before the gate");
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
    // The spec error must win over any backend problem, because it is checked first.
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

/// The bash completion script is valid bash that completes bottle's own commands, and the
/// man page is roff that `man` renders, naming the newest commands.
#[test]
fn completions_and_the_man_page_come_from_the_real_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = run(&["completions", "bash"], dir.path());
    assert!(script.status.success());
    let path = dir.path().join("bottle-core.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let complete = "source \"$1\"; COMP_WORDS=(bottle-core sh); COMP_CWORD=1; COMP_LINE='bottle-core sh'; \
                    COMP_POINT=${#COMP_LINE}; _bottle__core bottle-core sh bottle-core; echo \"${COMPREPLY[*]}\"";
    let out = Command::new("bash").args(["-c", complete, "bash"]).arg(&path).output().unwrap();
    assert_eq!(text(&out.stdout), "shell\n", "{}", text(&out.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell], dir.path());
        assert!(out.status.success() && text(&out.stdout).contains("completions"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"], dir.path()).status.code(), Some(2));

    let page = run(&["man"], dir.path());
    assert!(page.status.success());
    assert!(text(&page.stdout).contains(".TH bottle-core 1"), "{}", text(&page.stdout));
    let roff = dir.path().join("bottle-core.1");
    std::fs::write(&roff, &page.stdout).unwrap();
    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).unwrap();
    assert!(run(&["man", "--dir", pages.to_str().unwrap()], dir.path()).status.success());
    for cmd in ["bottle-core", "bottle-core-exec", "bottle-core-shell", "bottle-core-logs", "bottle-core-completions"] {
        assert!(pages.join(format!("{cmd}.1")).is_file(), "no page {cmd}.1");
    }
    let Ok(shown) = Command::new("man").arg("-l").arg(pages.join("bottle-core-logs.1")).env("MANPAGER", "cat").output()
    else {
        skip::skipped("rendering the page: no `man` here");
        return;
    };
    let shown = text(&shown.stdout);
    assert!(shown.contains("--follow") && shown.contains("--bundle") && shown.contains("--tail"), "{shown}");
}
