//! supervise through real sockets, with `curl` as the agent and the host-side
//! routes called the way the control plane calls them.

#[path = "../support/supervise/mod.rs"]
mod supervise_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bottle_bundle::policy::Verdict;
use bottle_bundle::supervise::api::{REQUESTS, STATE, request_path};
use bottle_protocol::EventKind;
use bottle_protocol::control::{ACCESS, AGENT, approve_path, deny_path};
use bottle_protocol::event::AgentState;
use serde_json::json;
use supervise_support::{DEADLINE, curl, start, wait_event};

#[tokio::test]
async fn state_changes_emit_one_event_each_and_repeats_none() {
    let h = start("").await;
    let reports = [
        ("working", "reading the code"),
        ("working", "reading the code"),
        ("needs-input", "which database?\n\u{1b}[31mnow\u{7}"),
        ("needs-input", "which database?\n\u{1b}[31mnow\u{7}"),
        ("done", ""),
        ("done", ""),
    ];
    for (state, message) in reports {
        let (code, v) = h.post(STATE, &json!({ "state": state, "message": message }).to_string()).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["state"], state);
    }
    let want = vec![
        EventKind::AgentState { state: AgentState::Working, message: "reading the code".into() },
        EventKind::AgentState { state: AgentState::NeedsInput, message: "which database? [31mnow".into() },
        EventKind::AgentState { state: AgentState::Done, message: String::new() },
    ];
    assert_eq!(h.supervise_events(), want);
    let (code, v) = h.control("GET", AGENT, "").await;
    assert_eq!((code, v["state"].as_str()), (200, Some("done")));
    assert!(v["since"].is_string(), "{v}");
    let (code, v) = h.post(STATE, r#"{"state":"sleeping"}"#).await;
    assert_eq!(code, 400, "{v}");
}

#[tokio::test]
async fn deny_reaches_the_waiting_agent_and_frees_the_slot() {
    let h = start("[supervise]\nmax_pending = 1\n").await;
    let (_, mut rx) = h.bundle.events.subscribe_since(0);
    let id = h.ask("Docs.Example.test", 8443).await;
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let asked = wait_event(&mut rx, |k| matches!(k, EventKind::AccessRequested { .. })).await;
    assert_eq!(
        asked.kind,
        EventKind::AccessRequested {
            request_id: id.clone(),
            host: "docs.example.test".into(),
            port: Some(8443),
            reason: "need the docs".into()
        }
    );
    let (code, list) = h.control("GET", ACCESS, "").await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!((list[0]["id"].as_str(), list[0]["host"].as_str()), (Some(id.as_str()), Some("docs.example.test")));

    let poll = tokio::spawn(curl_json(h.url(&format!("{}?wait=20", request_path(&id)))));
    let (code, v) = h.control("POST", &deny_path(&id), "").await;
    assert_eq!((code, v["status"].as_str()), (200, Some("denied")), "{v}");
    let (code, v) = tokio::time::timeout(DEADLINE, poll).await.unwrap().unwrap();
    assert_eq!((code, v["status"].as_str()), (200, Some("denied")), "{v}");
    let decided = wait_event(&mut rx, |k| matches!(k, EventKind::AccessDecided { .. })).await;
    assert!(matches!(decided.kind, EventKind::AccessDecided { approved: false, ttl_secs: None, .. }), "{decided:?}");

    assert_eq!(h.control("GET", ACCESS, "").await.1, json!([]));
    let (code, v) = h.control("POST", &approve_path(&id), "").await;
    assert_eq!(code, 409, "a decided request cannot be approved afterwards: {v}");
    assert_eq!(h.control("POST", &deny_path(&"0".repeat(32)), "").await.0, 404);
    // The slot is free again.
    h.ask("docs.example.test", 8443).await;
}

#[tokio::test]
async fn a_verdict_read_without_waiting_is_pending() {
    let h = start("").await;
    let id = h.ask("a.example.test", 443).await;
    let (code, v) = h.get(&request_path(&id)).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("pending")), "{v}");
    let started = Instant::now();
    let (code, v) = h.get(&format!("{}?wait=1", request_path(&id))).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("pending")), "{v}");
    assert!(started.elapsed() >= Duration::from_millis(900), "wait=1 held the reply for its second");
    let (code, v) = h.get(&format!("{}?wait=soon", request_path(&id))).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(h.get(&request_path(&"f".repeat(32))).await.0, 404);
}

#[tokio::test]
async fn pending_requests_are_capped_and_repeats_return_the_same_request() {
    let h = start("[supervise]\nmax_pending = 2\n").await;
    let a = h.ask("a.example.test", 443).await;
    h.ask("b.example.test", 443).await;
    let again = json!({ "host": "a.example.test", "port": 443, "reason": "still need it" }).to_string();
    let (code, v) = h.post(REQUESTS, &again).await;
    assert_eq!((code, v["id"].as_str()), (200, Some(a.as_str())), "{v}");
    let third = json!({ "host": "c.example.test", "reason": "more" }).to_string();
    let (code, v) = h.post(REQUESTS, &third).await;
    assert_eq!(code, 429, "{v}");
    assert!(v["error"].as_str().unwrap().contains("limit 2"), "{v}");
    let asked = h.supervise_events().iter().filter(|k| matches!(k, EventKind::AccessRequested { .. })).count();
    assert_eq!(asked, 2, "neither the repeat nor the refused ask is an event");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let h = start("[supervise]\nmax_body_bytes = 256\n").await;
    let big = json!({ "host": "a.example.test", "reason": "x".repeat(400) }).to_string();
    let (code, v) = h.post(REQUESTS, &big).await;
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("256 bytes"), "{v}");
    // Without a Content-Length the limit still holds while reading.
    let (code, text) =
        curl(&["-X", "POST", "-H", "transfer-encoding: chunked", "--data-binary", &big, &h.url(STATE)]).await;
    assert_eq!(code, 413, "{text}");
    assert!(h.supervise_events().is_empty());
}

#[tokio::test]
async fn bad_asks_get_a_400_that_says_why() {
    let h = start("").await;
    let long_host = format!("{}.example.test", "a".repeat(250));
    let long_reason = "r".repeat(501);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({ "host": "*.example.test", "reason": "r" }), "wildcards"),
        (json!({ "host": "10.1.2.3", "reason": "r" }), "IP literals"),
        (json!({ "host": "[::1]", "reason": "r" }), "IP literals"),
        (json!({ "host": "user:pw@example.test", "reason": "r" }), "userinfo"),
        (json!({ "host": "https://example.test/x", "reason": "r" }), "not a URL"),
        (json!({ "host": "example.test:443", "reason": "r" }), "port field"),
        (json!({ "host": long_host, "reason": "r" }), "at most 253"),
        (json!({ "host": "", "reason": "r" }), "host is empty"),
        (json!({ "host": "localhost", "reason": "r" }), "fully qualified"),
        (json!({ "host": "a.example.test", "port": 0, "reason": "r" }), "port 0"),
        (json!({ "host": "a.example.test", "port": 70000, "reason": "r" }), "invalid JSON"),
        (json!({ "host": "a.example.test", "reason": " \n\u{7} " }), "reason is empty"),
        (json!({ "host": "a.example.test", "reason": long_reason }), "at most 500"),
        (json!({ "host": "a.example.test", "reason": "r", "approved": true }), "unknown field"),
        (json!({ "host": "a.example.test" }), "missing field `reason`"),
    ];
    for (body, why) in cases {
        let (code, v) = h.post(REQUESTS, &body.to_string()).await;
        assert_eq!(code, 400, "{body}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.starts_with("access request"), "{error}");
        assert!(error.contains(why), "{body}: {error}");
    }
    assert_eq!(h.post(REQUESTS, "{not json").await.0, 400);
    assert!(h.supervise_events().is_empty(), "refused asks are not events");
}

#[tokio::test]
async fn the_agent_server_has_no_host_routes() {
    let h = start("").await;
    let id = h.ask("a.example.test", 443).await;
    for path in [approve_path(&id), deny_path(&id), format!("{}/approve", request_path(&id))] {
        let (code, v) = h.post(&path, r#"{"ttl_secs":60}"#).await;
        assert_eq!(code, 404, "{path}: {v}");
    }
    for path in [ACCESS, AGENT, "/v1/events"] {
        assert_eq!(h.get(path).await.0, 404, "{path}");
    }
    // No listing of requests, and the state route is write-only.
    let (code, text) = curl(&["-i", &h.url(REQUESTS)]).await;
    assert_eq!(code, 405, "{text}");
    assert!(text.to_ascii_lowercase().contains("allow: post"), "{text}");
    assert_eq!(h.get(STATE).await.0, 405);
    let (_, v) = h.get(&request_path(&id)).await;
    assert_eq!(v["status"], "pending", "nothing the agent sent decided its own request");
    assert!(h.supervise_events().iter().all(|k| !matches!(k, EventKind::AccessDecided { .. })));
}

#[tokio::test]
async fn a_slow_header_is_cut_off() {
    let h = start("[limits]\nheader_timeout_ms = 300\n").await;
    let addr = h.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"POST /v1/state HTTP/1.1\r\nHost: x\r\n").unwrap();
        let started = Instant::now();
        let mut reply = Vec::new();
        let read = s.read_to_end(&mut reply);
        (read.is_ok(), started.elapsed(), String::from_utf8_lossy(&reply).to_string())
    })
    .await
    .unwrap();
    let (closed, took, reply) = outcome;
    assert!(closed, "the server closed the connection");
    // Far above the 300 ms limit, far below the 10 s default: it was this config's timeout.
    assert!(took < Duration::from_secs(5), "closed by the header timeout, not the test deadline: {took:?}");
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 408"), "{reply:?}");
}

#[tokio::test]
async fn host_routes_answer_only_their_own_paths() {
    let h = start("").await;
    let none = [("GET", "/v1/health"), ("GET", "/v1/agentx"), ("GET", "/v1/accessory"), ("GET", "/v1/events")];
    for (m, path) in none {
        let method = hyper::Method::from_bytes(m.as_bytes()).unwrap();
        let got = bottle_bundle::supervise::control(&h.bundle, &method, path, bytes::Bytes::new()).await;
        assert!(got.is_none(), "{path} is not a supervise route");
    }
    let id = h.ask("a.example.test", 443).await;
    assert_eq!(h.control("POST", ACCESS, "").await.0, 405);
    assert_eq!(h.control("DELETE", AGENT, "").await.0, 405);
    assert_eq!(h.control("GET", &approve_path(&id), "").await.0, 405);
    assert_eq!(h.control("POST", &format!("{ACCESS}/{id}/frob"), "").await.0, 404);
    let (code, v) = h.control("POST", &approve_path(&id), r#"{"ttl_secs":0}"#).await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = h.control("POST", &approve_path(&id), "{oops").await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("approve: invalid JSON"), "{v}");
    let (code, v) = h.control("GET", &format!("{ACCESS}?x=1"), "").await;
    assert_eq!((code, v.as_array().map(Vec::len)), (200, Some(1)));
    let (_, v) = h.control("GET", AGENT, "").await;
    assert_eq!(v, json!({ "state": null, "message": "", "since": null }));
}

/// Approval puts the grant in the live allowlist; the ttl (capped by
/// `max_grant_secs`) takes it out again, and both show up for agent and host.
#[tokio::test]
async fn approval_grants_until_the_ttl_then_expires() {
    let h = start("[supervise]\nmax_grant_secs = 1\n").await;
    let (_, mut rx) = h.bundle.events.subscribe_since(0);
    let policy = &h.bundle.policy;
    assert!(matches!(policy.decide("api.example.test", 8443), Verdict::Deny { .. }));
    let id = h.ask("api.example.test", 8443).await;
    let poll = tokio::spawn(curl_json(h.url(&format!("{}?wait=20", request_path(&id)))));

    let (code, v) = h.control("POST", &approve_path(&id), r#"{"ttl_secs":3600}"#).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["ttl_secs"].as_u64()), (Some("approved"), Some(1)), "capped at max_grant_secs");
    let (code, seen) = tokio::time::timeout(DEADLINE, poll).await.unwrap().unwrap();
    assert_eq!((code, seen["status"].as_str()), (200, Some("approved")), "{seen}");
    assert!(seen["expires_at"].is_string(), "{seen}");
    assert_eq!(policy.decide("api.example.test", 8443), Verdict::Allow);
    assert!(matches!(policy.decide("api.example.test", 8444), Verdict::Deny { .. }), "only the asked port");
    let decided = wait_event(&mut rx, |k| matches!(k, EventKind::AccessDecided { .. })).await;
    assert!(matches!(decided.kind, EventKind::AccessDecided { approved: true, ttl_secs: Some(1), .. }));
    assert_eq!(h.control("GET", ACCESS, "").await.1, json!([]));

    let expired = wait_event(&mut rx, |k| matches!(k, EventKind::AccessExpired { .. })).await;
    assert_eq!(
        expired.kind,
        EventKind::AccessExpired { request_id: id.clone(), host: "api.example.test".into(), port: Some(8443) }
    );
    assert!(matches!(policy.decide("api.example.test", 8443), Verdict::Deny { .. }));
    assert!(!policy.revoke(&id), "expiry already revoked the grant");
    let (_, v) = h.get(&request_path(&id)).await;
    assert_eq!(v["status"], "expired");
}

async fn curl_json(url: String) -> (u16, serde_json::Value) {
    let (code, text) = curl(&[&url]).await;
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text:?}")))
}
