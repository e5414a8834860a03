//! The control plane over real sockets with a real client (curl): the bearer
//! token on every request, health, the live event stream and its replay, the
//! kill switch cutting an open egress tunnel, and policy reload.

#[path = "../support/egress/mod.rs"]
mod egress_support;

use std::process::Stdio;

use bottle_bundle::egress;
use bottle_protocol::control::{EVENTS, ErrorReply, HEALTH, Health, KILL, POLICY};
use bottle_protocol::{Event, EventKind};
use egress_support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs curl against the control plane; returns (status, body).
async fn curl(b: &Running, method: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let url = format!("http://{}{path}", b.control);
    let out = tokio::time::timeout(
        WAIT,
        Command::new("curl")
            .args(["-sS", "-X", method, "-w", "\n%{http_code}", "--max-time", "5"])
            .args(extra)
            .arg(&url)
            .output(),
    )
    .await
    .expect("curl timed out")
    .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    (status.parse().unwrap(), body.to_string())
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

async fn authed(b: &Running, method: &str, path: &str) -> (u16, String) {
    curl(b, method, path, &["-H", &bearer(TOKEN)]).await
}

fn kinds(ndjson: &str) -> Vec<EventKind> {
    ndjson.lines().map(|l| serde_json::from_str::<Event>(l).unwrap().kind).collect()
}

#[tokio::test]
async fn every_request_needs_the_token_and_failures_look_alike() {
    let b = start("").await;
    let mut replies = Vec::new();
    for (path, header) in [
        (HEALTH, None),
        (HEALTH, Some(bearer("wrong-token-wrong-token-wrong-token"))),
        (HEALTH, Some(format!("Authorization: Basic {TOKEN}"))),
        (HEALTH, Some(format!("Authorization: Bearer {TOKEN}x"))),
        ("/v1/nothing-here", None),
        (KILL, None),
    ] {
        let extra: Vec<&str> = header.iter().flat_map(|h| ["-H", h.as_str()]).collect();
        let (status, body) = curl(&b, "GET", path, &extra).await;
        assert_eq!(status, 401, "{path} {header:?}");
        assert!(!body.contains(TOKEN), "the token is never echoed");
        replies.push(body);
    }
    assert!(replies.windows(2).all(|w| w[0] == w[1]), "401 bodies differ: {replies:?}");
    let e: ErrorReply = serde_json::from_str(&replies[0]).unwrap();
    assert!(e.error.starts_with("control: "), "{e:?}");
    assert!(!b.bundle.kill.engaged(), "an unauthenticated kill must not act");
}

#[tokio::test]
async fn health_with_the_token() {
    let b = start("").await;
    let (status, body) = authed(&b, "GET", HEALTH).await;
    assert_eq!(status, 200, "{body}");
    let h: Health = serde_json::from_str(&body).unwrap();
    assert_eq!((h.bottle.as_str(), h.ok, h.kill_switch), ("t", true, false));
    // Scheme names are case-insensitive (RFC 9110).
    let (status, _) = curl(&b, "GET", HEALTH, &["-H", &format!("authorization: bearer {TOKEN}")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn wrong_methods_and_paths() {
    let b = start("").await;
    assert_eq!(authed(&b, "GET", KILL).await.0, 405);
    assert_eq!(authed(&b, "POST", HEALTH).await.0, 405);
    assert_eq!(authed(&b, "GET", "/v1/nothing-here").await.0, 404);
    assert_eq!(authed(&b, "GET", &format!("{EVENTS}?since=x")).await.0, 400);
}

#[tokio::test]
async fn a_follower_receives_kill_switch_events_live() {
    let b = start("").await;
    let mut child = Command::new("curl")
        .args(["-sSN", "--max-time", "10", "-H", &bearer(TOKEN)])
        .arg(format!("http://{}{EVENTS}?follow=1", b.control))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Event {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("no event in time").unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(authed(&b, "POST", KILL).await.0, 200);
    let first = next().await;
    assert_eq!(first.kind, EventKind::KillSwitch { engaged: true });
    // The follower has delivered a line, so it is subscribed: this one can only arrive live.
    assert_eq!(authed(&b, "DELETE", KILL).await.0, 200);
    let second = next().await;
    assert_eq!(second.kind, EventKind::KillSwitch { engaged: false });
    assert_eq!(second.id, first.id + 1);
    assert_eq!(second.bottle, "t");
    assert!(child.try_wait().unwrap().is_none(), "a follow stream stays open");
}

#[tokio::test]
async fn since_replays_the_ring_and_ends() {
    let b = start("").await;
    for method in ["POST", "DELETE", "POST"] {
        assert_eq!(authed(&b, method, KILL).await.0, 200);
    }
    // A repeated engage is not a change and emits nothing.
    assert_eq!(authed(&b, "POST", KILL).await.0, 200);
    let (status, all) = authed(&b, "GET", EVENTS).await;
    assert_eq!(status, 200);
    assert_eq!(all.lines().count(), 3, "{all}");
    let first: Event = serde_json::from_str(all.lines().next().unwrap()).unwrap();
    let (_, after) = authed(&b, "GET", &format!("{EVENTS}?since={}", first.id)).await;
    assert_eq!(kinds(&after), vec![EventKind::KillSwitch { engaged: false }, EventKind::KillSwitch { engaged: true }]);
}

#[tokio::test]
async fn the_kill_switch_via_control_cuts_an_open_egress_tunnel() {
    let canary = Canary::start(&[]).await;
    let echo = Echo::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let mut t = egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"open").await;
    let (status, body) = authed(&b, "POST", KILL).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Health>(&body).unwrap().kill_switch);
    assert_closed(&mut t).await;
    match egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await {
        Err(egress::EgressError::Refused { rule }) => assert_eq!(rule, "kill-switch"),
        other => panic!("expected the kill switch, got {:?}", other.map(|_| ())),
    }
    let (_, body) = authed(&b, "DELETE", KILL).await;
    assert!(!serde_json::from_str::<Health>(&body).unwrap().kill_switch);
    let mut t = egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"released").await;
}

async fn put_policy(b: &Running, body: &str) -> (u16, String) {
    curl(b, "PUT", POLICY, &["-H", &bearer(TOKEN), "-H", "Content-Type: application/json", "--data-binary", body]).await
}

#[tokio::test]
async fn a_bad_policy_update_is_a_400_and_changes_nothing() {
    let b = start("").await;
    let (status, body) = put_policy(&b, "{\"allow\": \"not-a-list\"}").await;
    assert_eq!(status, 400, "{body}");
    assert!(serde_json::from_str::<ErrorReply>(&body).unwrap().error.starts_with("policy: "), "{body}");
    // A well-formed update the policy store rejects is a 400 naming its reason.
    let (status, body) = put_policy(&b, "{\"allow\": [\"not a host name\"], \"deny\": []}").await;
    assert_eq!(status, 400, "{body}");
    assert!(serde_json::from_str::<ErrorReply>(&body).unwrap().error.starts_with("policy: "), "{body}");
    assert!(b.bundle.events.recent().is_empty(), "a refused reload emits nothing");
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let b = start("").await;
    let huge = format!("{{\"allow\": [\"{}\"]}}", "a".repeat(bottle_bundle::control::MAX_BODY_BYTES));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), huge).unwrap();
    let data = format!("@{}", file.path().display());
    let (status, _) = curl(&b, "PUT", POLICY, &["-H", &bearer(TOKEN), "--data-binary", &data]).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn a_policy_update_replaces_the_allowlist_and_emits_an_event() {
    let b = start("").await;
    let (status, body) =
        put_policy(&b, "{\"allow\": [\"example.com\", \"*.example.org:443\"], \"deny\": [\"bad.example.com\"]}").await;
    assert_eq!(status, 200, "{body}");
    let h: Health = serde_json::from_str(&body).unwrap();
    assert_eq!(h.allow, vec!["example.com", "*.example.org:443"]);
    assert_eq!(h.deny, vec!["bad.example.com"]);
    let (_, events) = authed(&b, "GET", EVENTS).await;
    assert_eq!(kinds(&events), vec![EventKind::PolicyReloaded { allow: 2, deny: 1 }]);
}

#[tokio::test]
async fn the_control_plane_refuses_every_interface_addresses() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let e = bottle_bundle::control::Server::bind(addr.parse().unwrap()).await.err().unwrap();
        assert!(e.to_string().contains("host-only"), "{e}");
    }
}
