//! The host's policy commands against a real bundle process, with curl as both the
//! agent and the host: host grants that open, expire, are revoked and outlive a
//! SIGKILL; the decision query giving the proxy's own verdicts; refusals that tell
//! the agent how to ask, and block events that name the agent's access request.
#![cfg(target_os = "linux")]

#[path = "../support/process/mod.rs"]
mod process_support;

use std::time::{Duration, Instant};

use process_support::{BundleProcess, curl};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A plain request through the proxy as the agent sends it: (status, headers and body).
fn fetch(b: &BundleProcess, url: &str) -> (u16, String) {
    curl(&["-i", "-x", &format!("http://{}", b.proxy), url], None)
}

fn check(b: &BundleProcess, host: &str, port: u16) -> Value {
    let (code, body) = b.control("POST", "/v1/policy/check", Some(&format!(r#"{{"host":"{host}","port":{port}}}"#)));
    assert_eq!(code, 200, "{body}");
    json(&body)
}

fn events_of(b: &BundleProcess, kind: &str) -> Vec<Value> {
    let (code, body) = b.control("GET", "/v1/events", None);
    assert_eq!(code, 200, "{body}");
    body.lines().map(json).filter(|e| e["kind"] == kind).collect()
}

#[test]
fn host_grants_open_expire_are_revoked_and_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut b = BundleProcess::start(&format!("state_file = {:?}", state.path().join("state.json")));

    let c = check(&b, "short.test", 80);
    assert_eq!((c["allowed"].as_bool(), c["rule"].as_str()), (Some(false), Some("not-allowed")), "{c}");
    let (code, body) = b.control("POST", "/v1/grants", Some(r#"{"host":"Short.test","port":80,"ttl_secs":2}"#));
    assert_eq!(code, 200, "{body}");
    let g = json(&body);
    assert_eq!((g["id"].as_str(), g["entry"].as_str()), (Some("allow:short.test:80"), Some("short.test:80")));
    assert_eq!((g["source"].as_str(), g["expires_in_secs"].as_u64()), (Some("host"), Some(2)), "{g}");
    let c = check(&b, "short.test", 80);
    assert_eq!((c["allowed"].as_bool(), c["rule"].as_str()), (Some(true), Some("grant")), "{c}");
    assert_eq!(c["grant"]["id"], "allow:short.test:80");
    assert_eq!(check(&b, "short.test", 443)["rule"], "not-allowed", "a grant with a port opens that port only");

    let (code, body) = b.control("POST", "/v1/grants", Some(r#"{"host":"kept.test"}"#));
    assert_eq!(code, 200, "{body}");
    b.kill_and_restart();

    let (code, body) = b.control("GET", "/v1/policy", None);
    assert_eq!(code, 200, "{body}");
    let p = json(&body);
    let grants: Vec<&str> = p["grants"].as_array().unwrap().iter().filter_map(|g| g["id"].as_str()).collect();
    assert!(grants.contains(&"allow:kept.test"), "a host grant outlives the restart: {p}");
    assert_eq!(p["allow"], Value::Array(vec![]), "grants are listed apart from the policy's entries: {p}");
    assert_eq!(check(&b, "kept.test", 443)["rule"], "grant");

    // The short grant ends on time even across the restart (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while check(&b, "short.test", 80)["allowed"] == Value::Bool(true) {
        assert!(Instant::now() < deadline, "the 2 s grant was still live after 10 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = b.control("GET", "/v1/grants", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body).as_array().unwrap().len(), 1, "only kept.test is left: {body}");

    let (code, body) = b.control("DELETE", "/v1/grants", Some(r#"{"host":"kept.test"}"#));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)[0]["id"], "allow:kept.test");
    assert_eq!(check(&b, "kept.test", 443)["rule"], "not-allowed");
    assert!(events_of(&b, "access_expired").iter().any(|e| e["request_id"] == "allow:kept.test"), "revoke is an event");
    let (code, body) = b.control("DELETE", "/v1/grants", Some(r#"{"host":"kept.test"}"#));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no live grant for kept.test"), "{body}");
    b.kill_and_restart();
    assert_eq!(check(&b, "kept.test", 443)["rule"], "not-allowed", "a revoke lasts too");
}

#[test]
fn the_decision_query_names_the_rule_and_the_kill_switch_comes_first() {
    let b = BundleProcess::start("");
    let (code, body) =
        b.control("PUT", "/v1/policy", Some(r#"{"allow": ["*.ok.test", "10.0.0.0/8"], "deny": ["bad.ok.test"]}"#));
    assert_eq!(code, 200, "{body}");
    let cases = [
        ("a.ok.test", 443, true, "allow", Some("*.ok.test")),
        ("bad.ok.test", 443, false, "denied", Some("bad.ok.test")),
        ("ok.test", 443, false, "not-allowed", None),
        ("10.1.2.3", 5432, true, "allow", Some("10.0.0.0/8")),
        ("192.0.2.1", 80, false, "ip-literal", None),
        ("2130706433", 80, false, "odd-host", None),
    ];
    for (host, port, allowed, rule, entry) in cases {
        let c = check(&b, host, port);
        assert_eq!(c["allowed"].as_bool(), Some(allowed), "{host}: {c}");
        assert_eq!(c["rule"].as_str(), Some(rule), "{host}: {c}");
        assert_eq!(c["entry"].as_str(), entry, "{host}: {c}");
    }
    let (status, reply) = fetch(&b, "http://bad.ok.test/");
    assert!(status == 403 && reply.contains("X-Bottle-Block: denied"), "the proxy agrees: {reply}");
    let (code, _) = b.control("POST", "/v1/kill", None);
    assert_eq!(code, 200);
    assert_eq!(check(&b, "a.ok.test", 443)["rule"], "kill-switch");
    let (code, body) = b.control("POST", "/v1/grants", Some(r#"{"host":"x.test","ttl_secs":0}"#));
    assert!(code == 400 && body.contains("ttl_secs must be at least 1"), "{code} {body}");
    let (code, body) = b.control("POST", "/v1/grants", Some(r#"{"host":"*bad"}"#));
    assert!(code == 400 && json(&body)["error"].as_str().unwrap().contains("\"*bad\""), "{code} {body}");
}

#[test]
fn a_refusal_tells_the_agent_how_to_ask_and_a_block_names_its_open_request() {
    let b = BundleProcess::start("");
    let (status, reply) = fetch(&b, "http://asked.test/private/path?q=1");
    assert_eq!(status, 403, "{reply}");
    let ask = format!("http://{}/v1/requests", b.supervise);
    assert!(reply.contains(&format!("X-Bottle-Ask: {ask}")), "{reply}");
    assert!(reply.contains(&format!("curl -s -X POST {ask} ")), "{reply}");
    assert!(reply.contains(r#"{"host":"asked.test","port":80,"reason":"<why you need it>"}"#), "{reply}");
    assert!(!reply.contains("private") && !reply.contains("q=1"), "no path or query is echoed: {reply}");
    let block_id = reply
        .lines()
        .find_map(|l| l.strip_prefix("X-Bottle-Request-Id: "))
        .map(|s| s.trim().to_string())
        .expect("a block id header");
    assert!(block_id.starts_with("blk-"), "{block_id}");

    // Approving the block's id says what it is instead of a bare 404.
    let (code, body) = b.control("POST", &format!("/v1/access/{block_id}/approve"), Some("{}"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("refused request (a block), not of an access request"), "{body}");

    // The agent asks as the refusal said; the next block names the request and says to wait.
    let (code, body) = curl(&[&ask], Some(r#"{"host":"asked.test","port":80,"reason":"fetch the docs"}"#));
    assert_eq!(code, 202, "{body}");
    let request = json(&body)["id"].as_str().unwrap().to_string();
    let (_, reply) = fetch(&b, "http://asked.test/");
    assert!(reply.contains(&format!("Your access request {request}")), "{reply}");
    assert!(reply.contains(&format!("{ask}/{request}?wait=30")), "{reply}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let named = loop {
        let found =
            events_of(&b, "egress_blocked").into_iter().find(|e| e["access_request"].as_str() == Some(&request));
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "no block event named the access request");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(named["request_id"].as_str().unwrap().starts_with("blk-"), "{named}");

    // Approved, then revoked by the host by destination: the agent reads `expired`.
    let (code, body) = b.control("POST", &format!("/v1/access/{request}/approve"), Some("{}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(check(&b, "asked.test", 80)["grant"]["source"], "access-request");
    let (code, body) = b.control("DELETE", "/v1/grants", Some(r#"{"host":"asked.test","port":80}"#));
    assert_eq!(code, 200, "{body}");
    let (_, body) = curl(&[&format!("{ask}/{request}")], None);
    assert_eq!(json(&body)["status"], "expired", "{body}");
    assert_eq!(check(&b, "asked.test", 80)["rule"], "not-allowed");
}
