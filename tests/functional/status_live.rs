//! `status` and `ls` of a real Docker bottle, through the real `bottle-core` binary, show
//! what only its bundle knows: the kill switch (a killed bottle is never plainly
//! verified), the grants of approved access requests with their ends, and the state the
//! agent last reported through supervise. Human and `--json` output both. Also: the host's
//! copies of the start-check record and the control token, and a new bundle that never
//! reads an old one's.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use std::process::{Command, Output};

use bottle_core::backend::BottleBackend;
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::sidecar::host_copy::{self, Kept};
use bottle_core::sidecar::labels;
use support::{BottleCleanup, Print, unique};

fn bottle_core(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(args)
        .env_remove("CLAUDE_BOTTLE_BACKEND")
        .output()
        .expect("bottle-core runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = bottle_core(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout_of(args)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_ls_show_the_kill_switch_grants_and_the_agent_s_state() {
    if !support::engine().await {
        return;
    }
    let b = DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap();
    let name = unique("live");
    let _cleanup = BottleCleanup(name.clone());
    let (spec, _ws) = support::spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let sh = |script: String| {
        let b = &b;
        let name = &name;
        async move { b.exec(name, &["sh".into(), "-c".into(), script]).await.unwrap() }
    };

    let v = json_of(&["status", &name, "--json"]);
    assert_eq!(v["live"]["kill_switch"], false, "{v}");
    assert_eq!(v["live"]["grants"], serde_json::json!([]), "{v}");
    assert_eq!(v["live"]["agent"]["state"], serde_json::Value::Null, "{v}");

    // The agent reports a state and asks for a host; the host grants it for ten minutes.
    let post = |path: &str, body: &str| {
        format!("curl -s -X POST -H 'content-type: application/json' -d '{body}' \"$BOTTLE_SUPERVISE_URL{path}\"")
    };
    let said = sh(post("/v1/state", r#"{"state":"needs-input","message":"which branch?"}"#)).await;
    assert!(said.stdout.contains("needs-input"), "{said:?}");
    let asked = sh(post("/v1/requests", r#"{"host":"pypi.test","port":443,"reason":"deps"}"#)).await;
    let id = serde_json::from_str::<serde_json::Value>(&asked.stdout).unwrap()["id"].as_str().unwrap().to_string();
    stdout_of(&["approve", &name, &id, "--ttl", "600"]);
    stdout_of(&["kill", &name]);

    let v = json_of(&["status", &name, "--json"]);
    let live = &v["live"];
    assert_eq!(live["kill_switch"], true, "{v}");
    assert_eq!(live["agent"]["state"], "needs-input", "{v}");
    assert_eq!(live["agent"]["message"], "which branch?", "{v}");
    assert_eq!(live["grants"][0]["id"], id.as_str(), "{v}");
    assert_eq!(live["grants"][0]["entry"], "pypi.test:443", "{v}");
    let ends = live["grants"][0]["expires_at"].as_str().expect("a grant with a ttl has an end");
    let left = humantime::parse_rfc3339(ends).unwrap().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left.as_secs() > 500 && left.as_secs() <= 600, "ends in about ten minutes: {ends}");

    let text = stdout_of(&["status", &name]);
    assert!(text.contains("state:      running · killed\n"), "{text}");
    assert!(text.contains("boundary:   not verified · egress cut\n"), "{text}");
    assert!(text.contains("kill:       ENGAGED"), "{text}");
    assert!(text.contains(&format!("grants:     pypi.test:443 until {ends} (request {id})")), "{text}");
    assert!(text.contains("agent:      needs-input since ") && text.contains(": which branch?"), "{text}");

    let all = json_of(&["ls", "--json"]);
    let mine = all.as_array().unwrap().iter().find(|s| s["name"] == name.as_str()).expect("ls lists it");
    assert_eq!(mine["live"]["kill_switch"], true, "{mine}");
    let table = stdout_of(&["ls"]);
    let row = table.lines().find(|l| l.starts_with(&format!("{name} "))).expect("ls lists it");
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells[2..6], ["running · killed", "not verified · egress cut", "needs-input", "1"], "{row}");

    stdout_of(&["kill", &name, "--release"]);
    let v = json_of(&["status", &name, "--json"]);
    assert_eq!(v["live"]["kill_switch"], false, "{v}");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

/// `status` and `ls` read the host's copies of a bundle's start-check record and control
/// token (see `sidecar::host_copy`), and a bundle made anew for the same name never reads
/// the copies of the one before: they are the old container's, `down` removes them, and the
/// new one's record comes out of the new bundle when its copy is missing (and is then copied).
#[tokio::test(flavor = "multi_thread")]
async fn status_reads_the_host_copies_and_a_new_bundle_never_reads_an_old_one() {
    if !support::engine().await {
        return;
    }
    let b = DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap();
    let name = unique("record");
    let _cleanup = BottleCleanup(name.clone());
    let (spec, _ws) = support::spec(&name);
    let bundle_id = || async {
        let bundle = labels::object_name(&name, labels::ROLE_BUNDLE);
        b.docker().inspect_container(&bundle, None).await.unwrap().id.unwrap()
    };
    let kept = |id: &str, what| host_copy::file(id, what).unwrap();

    b.up(&spec, &Print(name.clone())).await.unwrap();
    let first = bundle_id().await;
    let record = kept(&first, Kept::StartCheck);
    let mut copy: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(copy["detail"], "start check turned off by the backend options", "{copy}");
    copy["detail"] = "the host's copy".into();
    std::fs::write(&record, copy.to_string()).unwrap();
    assert_eq!(b.status(&name).await.unwrap().allowlist.detail, "the host's copy");
    let listed = b.list().await.unwrap().into_iter().find(|s| s.name == name).expect("ls lists it");
    assert_eq!(listed.allowlist.detail, "the host's copy");
    assert_eq!(json_of(&["status", &name, "--json"])["allowlist"]["detail"], "the host's copy");

    // The token `ls` sends is the copy's: a wrong one is refused by the bundle, and said.
    let token = kept(&first, Kept::ControlToken);
    let real = std::fs::read(&token).unwrap();
    assert_eq!(real.len(), 64, "the copy holds the 256-bit hex token");
    std::fs::write(&token, "0".repeat(64)).unwrap();
    let ls = json_of(&["ls", "--json"]);
    let row = ls.as_array().unwrap().iter().find(|r| r["name"] == name.as_str()).cloned().unwrap();
    assert!(row["live"].is_null(), "{row}");
    assert!(row["detail"].as_str().unwrap().contains("did not answer"), "{row}");
    std::fs::write(&token, &real).unwrap();
    let ls = json_of(&["ls", "--json"]);
    let row = ls.as_array().unwrap().iter().find(|r| r["name"] == name.as_str()).cloned().unwrap();
    assert_eq!(row["live"]["kill_switch"], false, "{row}");

    b.down(&name, &Print(name.clone())).await.unwrap();
    assert!(!record.exists() && !token.exists(), "`down` removed the old bundle's copies");
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let second = bundle_id().await;
    assert_ne!(first, second, "a new bundle container");
    std::fs::remove_file(kept(&second, Kept::StartCheck)).unwrap();
    std::fs::remove_file(kept(&second, Kept::ControlToken)).unwrap();
    let st = json_of(&["status", &name, "--json"]);
    assert_eq!(st["allowlist"]["detail"], "start check turned off by the backend options", "read from the new bundle");
    assert_eq!(st["live"]["kill_switch"], false, "the token read from the new bundle works: {st}");
    assert!(kept(&second, Kept::StartCheck).exists(), "the record read from the bundle is copied");
    assert!(kept(&second, Kept::ControlToken).exists(), "the token read from the bundle is copied");
    b.down(&name, &Print(name.clone())).await.unwrap();
}
