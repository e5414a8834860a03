//! Working in a real bottle through the real `bottle-core` binary: `exec -it` and `shell` on
//! a real pseudo-terminal (Python's `pty`, driven by `tests/support/docker/pty_run.py`), piped stdin,
//! output that streams and passes bytes unchanged, the command's exit code, and `logs` with
//! `--tail`, `--follow` and `--bundle`. Streaming is shown by order, never by a clock: the
//! command waits for a marker that the test makes only after it has read the first line.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use bottle_core::backend::BottleBackend;
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::sidecar::labels;
use bottle_core::spec::Spec;
use support::{BottleCleanup, Print, unique};

/// A running bottle with `command` as its agent (none: the idle default), or `None` with the
/// reason printed when no engine can be started. No start check: nothing here uses the proxy.
async fn bottle(test: &str, command: &[&str]) -> Option<(DockerBackend, Spec, BottleCleanup, tempfile::TempDir)> {
    if !support::engine().await {
        return None;
    }
    let b = DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap();
    let name = unique(test);
    let cleanup = BottleCleanup(name.clone());
    let (mut spec, ws) = support::spec(&name);
    spec.command = command.iter().map(|s| s.to_string()).collect();
    b.up(&spec, &Print(&name)).await.unwrap();
    Some((b, spec, cleanup, ws))
}

fn core() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottle-core"));
    cmd.env_remove("CLAUDE_BOTTLE_BACKEND").env_remove("NO_COLOR").env_remove("BOTTLE_LOG");
    cmd
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child =
        core().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[derive(serde::Deserialize, Debug)]
struct PtyRun {
    status: i32,
    output: String,
    failed: Option<usize>,
    echo_restored: bool,
}

/// `bottle-core ARGS` on a fresh 30x100 terminal, typed at as `steps` say.
fn on_pty(args: &[&str], env: &[(&str, &str)], steps: serde_json::Value) -> PtyRun {
    let mut argv = vec![env!("CARGO_BIN_EXE_bottle-core")];
    argv.extend(args);
    let spec = serde_json::json!({
        "argv": argv,
        "env": env.iter().copied().collect::<std::collections::BTreeMap<_, _>>(),
        "rows": 30, "cols": 100, "timeout": 120, "steps": steps,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/docker/pty_run.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(spec.to_string())
        .env_remove("CLAUDE_BOTTLE_BACKEND")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "pty_run.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_it_is_a_terminal_that_answers_resizes_and_exits_with_the_commands_code() {
    let Some((_b, spec, _cleanup, _ws)) = bottle("exec-it", &[]).await else { return };
    // Reads a name, greets it, then reports its terminal's size on every line typed until `q`.
    let script = r#"printf 'name? '; read -r n; echo "hello, $n"; while :; do echo "size $(stty size)"; read -r l; [ "$l" = q ] && exit 7; done"#;
    let run = on_pty(
        &["exec", "-it", &spec.name, "--", "sh", "-c", script],
        &[],
        serde_json::json!([
            {"expect": "name? "},
            {"send": "bottle\r"},
            {"expect": "hello, bottle"},
            {"expect": "size 30 100"},
            {"resize": [40, 120]},
            {"until": "size 40 120", "send": "\r", "max": 30},
            {"send": "q\r"},
        ]),
    );
    assert_eq!(run.failed, None, "{run:?}");
    assert_eq!(run.status, 7, "{run:?}");
    assert!(run.echo_restored, "the host terminal was left in raw mode: {run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_is_a_login_shell_as_the_agents_user() {
    let Some((_b, spec, _cleanup, _ws)) = bottle("shell", &[]).await else { return };
    let container = labels::object_name(&spec.name, labels::ROLE_AGENT);
    let user = support::docker(&["inspect", "-f", "{{.Config.User}}", &container]);
    let uid = user.split(':').next().unwrap().to_string();
    let run = on_pty(
        &["shell", &spec.name],
        &[],
        serde_json::json!([
            {"send": "shopt -q login_shell && echo \"LOGIN-$(id -u)-$((6 * 7))\"\r"},
            {"expect": format!("LOGIN-{uid}-42")},
            {"send": "exit 3\r"},
        ]),
    );
    assert_eq!(run.failed, None, "{run:?}");
    assert_eq!(run.status, 3, "{run:?}");
    assert!(run.echo_restored, "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_stdin_and_binary_output_pass_through_byte_for_byte() {
    let Some((_b, spec, _cleanup, _ws)) = bottle("exec-pipe", &[]).await else { return };
    let out = run(&["exec", &spec.name, "--", "cat"], b"x\n");
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"x\n"[..]), "{out:?}");

    // Every byte value, in through stdin and back out, and made by the agent itself.
    let all: Vec<u8> = (0..=255u8).collect();
    let out = run(&["exec", &spec.name, "--", "cat"], &all);
    assert_eq!(out.stdout, all, "stdin -> cat -> stdout changed the bytes");
    let printf: String = (0..=255u8).map(|b| format!("\\{b:03o}")).collect();
    let out = run(&["exec", &spec.name, "--", "printf", &printf], b"");
    assert_eq!(out.stdout, all, "{}", String::from_utf8_lossy(&out.stderr));

    let out = run(&["exec", &spec.name, "--", "sh", "-c", "echo out; echo err >&2; exit 42"], b"");
    assert_eq!(out.status.code(), Some(42));
    assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn output_streams_before_the_command_ends() {
    let Some((b, spec, _cleanup, _ws)) = bottle("exec-stream", &[]).await else { return };
    // `b` only once the marker exists, which the test makes after it has read `a`: with output
    // held back to the end, the command would time out waiting and print `late` instead.
    let script = "echo a; i=0; while [ ! -e /tmp/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
                  if [ -e /tmp/go ]; then echo b; else echo late; fi";
    let mut child = core().args(["exec", &spec.name, "--", "sh", "-c", script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "a");
    b.exec(&spec.name, &["touch".into(), "/tmp/go".into()]).await.unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "b");
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_the_agents_or_the_bundles_with_tail_and_follow() {
    let agent = "echo oops >&2; echo one; echo two; echo three; \
                 while :; do if [ -e /tmp/more ]; then echo more; rm /tmp/more; fi; sleep 0.2; done";
    let Some((b, spec, _cleanup, _ws)) = bottle("logs", &["sh", "-c", agent]).await else { return };
    let name = spec.name.as_str();
    // The agent has started once its last line is logged.
    let mut ready = false;
    for _ in 0..100 {
        if String::from_utf8_lossy(&run(&["logs", name], b"").stdout).contains("three") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "the agent never logged its lines");

    let out = run(&["logs", name], b"");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "one\ntwo\nthree\n", "{stderr}");
    assert_eq!(stderr, "oops\n");

    // The engine keeps stdout and stderr lines in the order it copied them, which between the
    // two streams need not be the order they were written: so two lines, whichever they are.
    let out = run(&["logs", name, "--tail", "2"], b"");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count() + stderr.lines().count(), 2, "{stdout}{stderr}");
    assert!(stdout.ends_with("three\n") && !stdout.contains("one"), "{stdout}");

    let out = run(&["logs", name, "--bundle"], b"");
    let both = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && both.contains("bundle listening"), "{both}");
    assert!(!both.contains("three"), "the agent's output is not the bundle's log: {both}");

    let out = run(&["--json", "logs", name], b"");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["name"].as_str(), v["source"].as_str()), (Some(name), Some("agent")));
    assert!(v["logs"].as_str().unwrap().contains("three"), "{v}");

    // Following: a line logged after `logs` started arrives while it still runs. (Read up to
    // `three` on stdout alone: where stderr's `oops` falls among them is the engine's choice.)
    let mut child =
        core().args(["logs", name, "--follow"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = lines.by_ref().take(3).map(Result::unwrap).collect();
    assert_eq!(first, ["one", "two", "three"]);
    b.exec(name, &["touch".into(), "/tmp/more".into()]).await.unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "more");
    assert_eq!(child.try_wait().unwrap(), None, "--follow ended on its own");
    child.kill().unwrap();
    child.wait().unwrap();

    let out = run(&["logs", "no-such-bottle-here"], b"");
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
}

/// bottle's only colour is its diagnostic log's; it must not reach a pipe, `--json` or a
/// terminal whose user set `NO_COLOR`, and does reach a plain terminal (so the test can fail).
#[tokio::test(flavor = "multi_thread")]
async fn no_escape_codes_in_json_in_pipes_or_with_no_color() {
    if !support::engine().await {
        return;
    }
    let out = core().args(["--json", "ls"]).env("BOTTLE_LOG", "debug").output().unwrap();
    assert!(out.status.success());
    assert!(!out.stderr.is_empty(), "BOTTLE_LOG=debug logged nothing, so this test shows nothing");
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();

    let debug = [("BOTTLE_LOG", "debug")];
    let plain = on_pty(&["ls"], &debug, serde_json::json!([]));
    assert!(plain.output.contains('\x1b'), "a terminal without NO_COLOR gets colour: {plain:?}");
    for (args, env) in [(&["--json", "ls"][..], &debug[..]), (&["ls"], &[("BOTTLE_LOG", "debug"), ("NO_COLOR", "1")])] {
        let run = on_pty(args, env, serde_json::json!([]));
        assert_eq!(run.status, 0, "{run:?}");
        assert!(run.output.contains("DEBUG"), "{run:?}");
        assert!(!run.output.contains('\x1b'), "escape codes with {args:?} {env:?}: {:?}", run.output);
    }
}
