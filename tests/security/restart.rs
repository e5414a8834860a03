//! A bundle process killed with SIGKILL (as the engine's OOM killer does) and
//! started again on the same config must come back no looser than it died:
//! the kill switch still engaged, the host's tightened policy and the live
//! grants still in force, and event ids above every id the host saw before.
#![cfg(target_os = "linux")]

#[path = "../support/process/mod.rs"]
mod process_support;

use process_support::{BundleProcess, curl};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn health(b: &BundleProcess) -> Value {
    let (code, body) = b.control("GET", "/v1/health", None);
    assert_eq!(code, 200, "{body}");
    json(&body)
}

/// Every event id the control plane still holds, and their kinds.
fn events(b: &BundleProcess) -> Vec<(u64, String)> {
    let (code, body) = b.control("GET", "/v1/events", None);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .map(json)
        .map(|e| (e["id"].as_u64().unwrap(), e["kind"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// What the proxy answers a plain request through it: (status, X-Bottle-Block rule).
fn through_proxy(b: &BundleProcess) -> (u16, String) {
    let proxy = format!("http://{}", b.proxy);
    let (code, headers) = curl(&["-o", "/dev/null", "-D", "-", "-x", &proxy, "http://127.0.0.1:9/"], None);
    let rule = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-bottle-block:").or_else(|| l.strip_prefix("X-Bottle-Block:")))
        .unwrap_or_default()
        .trim()
        .to_string();
    (code, rule)
}

#[test]
fn a_killed_bundle_comes_back_with_its_kill_switch_policy_grants_and_rising_ids() {
    let state = tempfile::tempdir().unwrap();
    let mut b = BundleProcess::start(&format!("state_file = {:?}", state.path().join("state.json")));

    // The agent asks for a host; the host grants it, tightens the policy and pulls the switch.
    let supervise = format!("http://{}/v1/requests", b.supervise);
    let (code, body) =
        curl(&[&supervise], Some(r#"{"host": "granted.test", "port": 443, "reason": "fetch a dependency"}"#));
    assert!(code == 200 || code == 201 || code == 202, "{code} {body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let (code, body) = b.control("POST", &format!("/v1/access/{id}/approve"), Some(r#"{"ttl_secs": 3600}"#));
    assert_eq!(code, 200, "{body}");
    let (code, body) =
        b.control("PUT", "/v1/policy", Some(r#"{"allow": ["kept.test"], "deny": ["denied-by-host.test"]}"#));
    assert_eq!(code, 200, "{body}");
    let (code, body) = b.control("POST", "/v1/kill", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(through_proxy(&b), (403, "kill-switch".to_string()));
    let last_before = events(&b).iter().map(|(id, _)| *id).max().unwrap();

    b.kill_and_restart();

    let h = health(&b);
    assert_eq!(h["kill_switch"], Value::Bool(true), "the kill switch came back released: {h}");
    assert_eq!(through_proxy(&b), (403, "kill-switch".to_string()), "egress after the restart");
    let allow: Vec<&str> = h["allow"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let deny: Vec<&str> = h["deny"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(allow.contains(&"kept.test") && allow.contains(&"granted.test:443"), "allow after restart: {allow:?}");
    assert_eq!(deny, ["denied-by-host.test"], "the host's deny list after restart");
    let after = events(&b);
    assert!(after.iter().all(|(id, _)| *id > last_before), "ids after the restart {after:?} vs {last_before}");
    assert!(after.iter().any(|(_, kind)| kind == "bottle_state"), "the restart is announced: {after:?}");

    // Released by the host, the restarted bundle decides by policy again.
    let (code, body) = b.control("DELETE", "/v1/kill", None);
    assert_eq!(code, 200, "{body}");
    let (code, rule) = through_proxy(&b);
    assert_eq!((code, rule.as_str()), (403, "ip-literal"), "an address nothing allows");
    b.kill_and_restart();
    assert_eq!(health(&b)["kill_switch"], Value::Bool(false), "a release lasts too");
}

#[test]
fn a_state_file_that_does_not_read_fails_closed() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state.json");
    std::fs::write(&file, b"{\"epoch\": 1, \"kill_sw").unwrap();
    let b = BundleProcess::start(&format!("state_file = {file:?}"));
    assert_eq!(health(&b)["kill_switch"], Value::Bool(true));
    assert_eq!(through_proxy(&b), (403, "kill-switch".to_string()));
}
