//! The `dlp` category: a secret leaves in no form (URL, header, body, encoded), and shows up in no
//! log, event or canary.

use base64::Engine;

use super::events::{events_since, refused_with_event};
use super::probing::{args, proxy_addr};
use crate::engine::logs::{LOG_TAIL_LINES, logs_tail};
use crate::sidecar::labels;
use crate::verify::{ALLOWED_HOST, Category, Finding, Suite};

pub(super) async fn run(s: &Suite) -> Vec<Finding> {
    let expect = "refused, with an egress-blocked event";
    if !s.allowed {
        return vec![Finding::not_run(
            Category::Dlp,
            "dlp",
            expect,
            "no allowed canary host in NAME mode, so DLP cannot be told apart from the allowlist (run with -f)",
        )];
    }
    let px = proxy_addr(s);
    let url = format!("http://{ALLOWED_HOST}/");
    let aws = format!("AKIA{}", "QZ7XK2M4N6P8R3T5");
    let mut cases: Vec<(String, Vec<String>)> = vec![(
        "builtin pattern (AWS access key id) in the URL".into(),
        args(&["http", &px, "GET", &format!("{url}?k={aws}")]),
    )];
    let mut secret = None;
    if let Some(p) = &s.planted {
        let sec = p.dlp.as_str();
        let pct: String = sec.bytes().map(|b| format!("%{b:02X}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sec);
        let hex: String = sec.bytes().map(|b| format!("{b:02x}")).collect();
        cases.extend([
            ("planted secret in the URL".to_string(), args(&["http", &px, "GET", &format!("{url}?q={sec}")])),
            ("planted secret in a header".into(), args(&["http", &px, "GET", &url, &format!("X-Verify: {sec}")])),
            ("planted secret in the body".into(), args(&["http", &px, "POST", &url, "--body", &format!("data={sec}")])),
            ("planted secret URL-encoded".into(), args(&["http", &px, "GET", &format!("{url}?q={pct}")])),
            ("planted secret base64".into(), args(&["http", &px, "POST", &url, "--body", &format!("blob={b64}")])),
            ("planted secret hex".into(), args(&["http", &px, "POST", &url, "--body", &format!("h={hex}")])),
        ]);
        secret = Some(sec);
    }
    let mut out = Vec::new();
    for (name, a) in &cases {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        out.push(refused_with_event(s, Category::Dlp, name, &a).await);
    }
    if let Some(sec) = secret {
        let bundle = labels::object_name(&s.bottle, labels::ROLE_BUNDLE);
        let logs = logs_tail(&s.docker, &bundle, LOG_TAIL_LINES).await;
        let events = events_since(s, None).await.map(|e| serde_json::to_string(&e).unwrap_or_default());
        let outside = s.world.outside_contacts().await;
        let in_logs = logs.map(|l| l.contains(sec));
        let in_events = events.map(|e| e.contains(sec));
        let at_canary = outside.iter().any(|c| c.detail.contains(sec));
        let ok = in_logs.as_ref().is_ok_and(|x| !x) && in_events.as_ref().is_ok_and(|x| !x) && !at_canary;
        out.push(Finding::new(
            Category::Dlp,
            "planted secret in bundle logs, events, canary",
            "appears nowhere",
            format!("bundle logs: {}; events: {}; canary: {at_canary}", fmt_found(&in_logs), fmt_found(&in_events)),
            ok,
        ));
    }
    out
}

fn fmt_found(r: &anyhow::Result<bool>) -> String {
    match r {
        Ok(true) => "FOUND".into(),
        Ok(false) => "absent".into(),
        Err(e) => format!("unreadable ({e:#})"),
    }
}
