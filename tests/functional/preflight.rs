//! Checking before doing, against the real engine and the real `bottle-core` binary: each
//! input `up` cannot use (a missing secret file, an unset variable, missing git credentials,
//! a failing or hanging secret command, an absent image) is a usage error at its
//! `file:line:col` before any network or container exists; `up --dry-run` reports without
//! values; a command's secret reaches the bundle and DLP stops it leaving; a workspace the
//! agent cannot write is warned about, with the fix.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use bottle_core::backend::{BottleBackend, Progress};
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::preflight::Outcome;
use bottle_core::sidecar::labels;
use bottle_core::spec::{Secret, SecretSource};
use support::{BottleCleanup, Print, unique};

/// Containers and networks labelled with the bottle's name.
fn objects_of(name: &str) -> String {
    let filter = format!("label={}={name}", labels::NAME);
    let ps = support::docker(&["ps", "-aq", "--filter", &filter]);
    let nets = support::docker(&["network", "ls", "-q", "--filter", &filter]);
    format!("{ps}{nets}")
}

fn bottle_core(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottle-core"));
    cmd.args(args).current_dir(dir).env_remove("CLAUDE_BOTTLE_BACKEND").env("BOTTLE_RUN_DIR", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("bottle-core runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bottle.toml of `name` with a workspace, then `rest` from line 3 on.
fn write_spec(dir: &Path, name: &str, rest: &str) {
    std::fs::create_dir_all(dir.join("ws")).unwrap();
    // Writable by the agent whoever runs the test, so no workspace warning comes first.
    std::fs::set_permissions(dir.join("ws"), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("bottle.toml"), format!("name = \"{name}\"\nworkspace = \"ws\"\n{rest}")).unwrap();
}

/// A refused input: a tag, the spec text from line 3 on, extra environment, where the error
/// points (`file:line:col: key`) and what it says.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn each_unusable_input_is_a_usage_error_at_its_line_before_anything_exists() {
    if !support::engine().await {
        return;
    }
    let repo = "[[git.repo]]\nalias = \"app\"\nupstream = \"https://git.example.test/app.git\"\n";
    let cases: &[Case] = &[
        (
            "file",
            "[[secret]]\nname = \"A\"\nfile = \"absent.key\"\n",
            &[],
            "bottle.toml:5:8: secret[0].file",
            "cannot read",
        ),
        (
            "env",
            "[[secret]]\nname = \"B\"\nenv = \"BOTTLE_TEST_NEVER_SET\"\n",
            &[],
            "bottle.toml:5:7: secret[0].env",
            "is not set",
        ),
        (
            "git",
            &format!("[git]\ncredentials = {{ file = \"absent.toml\" }}\n{repo}"),
            &[],
            "bottle.toml:4:24: git.credentials.file",
            "cannot read",
        ),
        (
            "cmd",
            "[[secret]]\nname = \"C\"\ncommand = [\"sh\", \"-c\", \"echo leak-4711; exit 7\"]\n",
            &[],
            "bottle.toml:5:11: secret[0].command = \"sh\"",
            "status 7",
        ),
        (
            "slow",
            "[[api]]\nname = \"m\"\nupstream = \"https://api.test\"\ncredential = { command = [\"sleep\", \"30\"] }\n",
            &[("BOTTLE_SECRET_COMMAND_TIMEOUT", "1")],
            "bottle.toml:6:26: api[0].credential.command = \"sleep\"",
            "still running after 1s",
        ),
        ("image", "image = \"bottle-test-absent:never\"\n", &[], "bottle.toml:3:9: image", "not in the local engine"),
    ];
    for (tag, rest, env, at, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let name = unique(&format!("pre-{tag}"));
        let _cleanup = BottleCleanup(name.clone());
        write_spec(dir.path(), &name, rest);
        let out = bottle_core(dir.path(), &["up"], env);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tag}: {err}");
        assert!(err.starts_with(&format!("error: {at}")) && err.contains(why), "{tag}: {err}");
        assert_eq!(err.lines().count(), 1, "{tag}: one line, the refusal: {err}");
        assert!(!err.contains("leak-4711"), "{tag}: a command's output is never shown: {err}");
        assert!(out.stdout.is_empty(), "{tag}: {}", text(&out.stdout));
        assert_eq!(objects_of(&name), "", "{tag}: nothing was made");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_every_item_without_a_value_and_makes_nothing() {
    if !support::engine().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique("pre-dry");
    let _cleanup = BottleCleanup(name.clone());
    std::fs::write(dir.path().join("deploy.key"), "dry-file-value-81\n").unwrap();
    write_spec(
        dir.path(),
        &name,
        "[[secret]]\nname = \"KEY\"\nfile = \"deploy.key\"\n\
         [[secret]]\nname = \"CMD\"\ncommand = [\"printf\", \"dry-command-value-82\"]\n",
    );
    let out = bottle_core(dir.path(), &["up", "--dry-run", "--json"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains("value-81") && !stdout.contains("value-82"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], true);
    let items = v["items"].as_array().unwrap();
    let what: Vec<&str> = items.iter().map(|i| i["what"].as_str().unwrap()).collect();
    assert_eq!(what, ["secret KEY", "secret CMD", "image", "workspace"], "{stdout}");
    assert_eq!(items[1]["at"], "bottle.toml:8:11");
    assert_eq!(items[1]["detail"], "read from command printf");

    let out = bottle_core(dir.path(), &["up", "--dry-run"], &[]);
    let table = text(&out.stdout);
    assert!(table.lines().next().unwrap().contains("CHECK") && table.contains("secret CMD"), "{table}");
    assert_eq!(objects_of(&name), "", "a dry run makes nothing");
}

/// Progress that keeps what it was told.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl Progress for Steps {
    fn step(&self, message: &str) {
        eprintln!("[steps] {message}");
        self.0.lock().unwrap().push(message.to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_secret_reaches_the_bundle_and_dlp_stops_it_leaving() {
    let Some(b) = backend().await else { return };
    let name = unique("pre-cmd");
    let _cleanup = BottleCleanup(name.clone());
    let (mut spec, _ws) = support::spec(&name);
    let value = "from-a-command-5c1e";
    spec.secrets =
        vec![Secret { name: "CMD".into(), from: SecretSource::Command(vec!["printf".into(), value.into()]) }];
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let out = b
        .exec(
            &name,
            &[
                "sh".into(),
                "-c".into(),
                format!("curl -s -D - -o /dev/null --max-time 10 'http://allowed.test/?k={value}'"),
            ],
        )
        .await
        .unwrap();
    let head = out.stdout.to_lowercase();
    assert!(head.starts_with("http/1.1 403") && head.contains("x-bottle-block: dlp:secret:cmd"), "{out:?}");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_the_agent_cannot_write_is_warned_about_with_the_fix() {
    let Some(b) = backend().await else { return };
    if !rustix::process::geteuid().is_root() {
        skip::skipped("needs a root-owned workspace, which only root can make here");
        return;
    }
    let name = unique("pre-owner");
    let _cleanup = BottleCleanup(name.clone());
    let (mut spec, ws) = support::spec(&name);
    let ro = ws.path().join("root-owned");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    spec.workspace = ro.clone();
    let ok_report = b.preflight(&support::spec(&name).0).await;
    assert_eq!(ok_report.items.last().unwrap().outcome, Outcome::Ok, "a 0777 workspace: {ok_report:?}");

    let steps = Steps::default();
    b.up(&spec, &steps).await.unwrap();
    let warned: Vec<String> = steps.0.lock().unwrap().iter().filter(|s| s.starts_with("warning:")).cloned().collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("uid 1000") && warned[0].contains("cannot write"), "{warned:?}");
    assert!(warned[0].contains("chown -R $(id -u):$(id -g)"), "says how to fix it: {warned:?}");
    let touch = b.exec(&name, &["touch".into(), "/workspace/x".into()]).await.unwrap();
    assert_ne!(touch.exit_code, 0, "the warning was true: the agent cannot write it");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

async fn backend() -> Option<DockerBackend> {
    if !support::engine().await {
        return None;
    }
    Some(DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap())
}
