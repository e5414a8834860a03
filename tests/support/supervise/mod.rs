//! Shared harness for the supervise tests: a real bundle state, the agent-facing
//! server on a loopback port, `curl` as the agent, and event waits with deadlines.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bottle_bundle::state::Bundle;
use bottle_bundle::supervise;
use bottle_protocol::{BundleConfig, Event, EventKind};
use tokio::sync::broadcast;

pub const TOKEN: &str = "test-token-0123456789abcdef";
/// Upper bound on any single wait in these tests; a hang fails, it does not stall CI.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct Harness {
    pub bundle: Arc<Bundle>,
    /// The agent-facing supervise address.
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The bundle config text for a test bottle; `extra` is appended (whole tables).
pub fn config_text(dir: &Path, extra: &str) -> String {
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    format!(
        "bottle = \"t\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\negress = \"127.0.0.1:0\"\n\
         supervise = \"127.0.0.1:0\"\n[control]\ntoken_file = {:?}\n{extra}",
        token.display().to_string()
    )
}

pub fn bundle(dir: &Path, extra: &str) -> Arc<Bundle> {
    let text = config_text(dir, extra);
    let file = dir.join("bundle.toml");
    let config = BundleConfig::parse(&file, &text).unwrap();
    Arc::new(Bundle::from_config(&file, &text, config).unwrap())
}

/// A bundle with only the supervise server running (the unit under test).
pub async fn start(extra: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path(), extra);
    let server = supervise::Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(bundle.clone()));
    Harness { bundle, addr, dir }
}

/// Runs curl (the agent's client) and returns the HTTP status and body.
pub async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "40", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or_else(|_| panic!("curl {args:?}: {text:?} {:?}", out.stderr)), body.to_string())
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a JSON body to the agent-facing server.
    pub async fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (code, text) =
            curl(&["-X", "POST", "-H", "content-type: application/json", "--data-binary", body, &self.url(path)]).await;
        (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}")))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, text) = curl(&[&self.url(path)]).await;
        (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}")))
    }

    /// Asks for access as the agent and returns the new request's id.
    pub async fn ask(&self, host: &str, port: u16) -> String {
        let body = serde_json::json!({ "host": host, "port": port, "reason": "need the docs" }).to_string();
        let (code, v) = self.post(supervise::api::REQUESTS, &body).await;
        assert_eq!(code, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Calls a host-side route the way the control plane does (after its token check).
    pub async fn control(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let method = hyper::Method::from_bytes(method.as_bytes()).unwrap();
        let (code, v) = supervise::control(&self.bundle, &method, path, bytes::Bytes::from(body.to_string()))
            .await
            .unwrap_or_else(|| panic!("{path} is a supervise route"));
        (code.as_u16(), v)
    }

    /// Events of the kinds supervise emits, in order.
    pub fn supervise_events(&self) -> Vec<EventKind> {
        self.bundle
            .events
            .recent()
            .into_iter()
            .map(|e| e.kind)
            .filter(|k| {
                matches!(
                    k,
                    EventKind::AgentState { .. }
                        | EventKind::AccessRequested { .. }
                        | EventKind::AccessDecided { .. }
                        | EventKind::AccessExpired { .. }
                )
            })
            .collect()
    }
}

/// Waits (bounded by [`DEADLINE`]) for the first event matching `want`.
pub async fn wait_event(rx: &mut broadcast::Receiver<Event>, want: impl Fn(&EventKind) -> bool) -> Event {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let e = rx.recv().await.expect("event bus open");
            if want(&e.kind) {
                return e;
            }
        }
    })
    .await
    .expect("expected event within the deadline")
}
