//! The model-API gate against a fake Anthropic API over real TLS (a local CA
//! only the gate trusts), with real sockets and curl as the agent's client.
//! The fake API is the one double: `tests/doubles/fake_anthropic.py`.

#[path = "../support/tls/mod.rs"]
mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bottle_bundle::state::Bundle;
use bottle_bundle::{apigate, egress};
use bottle_protocol::{BundleConfig, EventKind};

/// Not shaped like an Anthropic key, so the named-secret rule (not a built-in pattern) must catch it.
const REAL_KEY: &str = "realkey-only-the-bundle-holds-7f3c9e2d";
const PLACEHOLDER: &str = "bottle-placeholder-anthropic-5b1d8c2a";
const OTHER_PLACEHOLDER: &str = "bottle-placeholder-other-api-93e0aa";
const NEVER_LEAVE: &str = "never-leave-value-4c1f2e9a";
/// Longest any one client call may take in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The fake API (HTTPS, key = REAL_KEY); killed on drop.
struct FakeApi {
    child: Child,
    port: u16,
    log: PathBuf,
    release: PathBuf,
}

impl FakeApi {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/doubles/fake_anthropic.py");
        let (log, release) = (dir.join("fake.log"), dir.join("release"));
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--key", REAL_KEY, "--cert"])
            .arg(cert)
            .arg("--key-file")
            .arg(key)
            .arg("--log")
            .arg(&log)
            .arg("--release")
            .arg(&release)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 fake API");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("fake API printed no port");
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("PORT line");
        Self { child, port, log, release }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v.get("x_api_key").is_some())
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundle serving egress and the API gate on loopback.
struct Gate {
    bundle: Arc<Bundle>,
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Gate {
    /// `upstream_port` is where API `anthropic` goes; `extra` is more TOML for the config.
    fn start(dir: &Path, upstream_port: u16, extra: &str) -> anyhow::Result<Self> {
        let token = dir.join("token");
        std::fs::write(&token, "control-token-0123456789")?;
        let secrets = dir.join("secrets.toml");
        std::fs::write(
            &secrets,
            format!(
                "\"api.anthropic\" = \"{REAL_KEY}\"\n\"api.other\" = \"sk-other-real-0123456789\"\nNAMED = \"{NEVER_LEAVE}\"\n"
            ),
        )?;
        let file = dir.join("bundle.toml");
        let text = format!(
            "bottle = \"t\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\negress = \"127.0.0.1:0\"\n\
             api_gate = \"127.0.0.1:0\"\n[control]\ntoken_file = {token:?}\n[dlp]\nsecrets_file = {secrets:?}\n\
             [egress]\nallow_cidrs = [\"127.0.0.0/8\"]\n{extra}\n\
             [[api]]\nname = \"anthropic\"\nupstream = \"https://127.0.0.1:{upstream_port}\"\nheader = \"x-api-key\"\n\
             credential = \"api.anthropic\"\nplaceholder = \"{PLACEHOLDER}\"\n\
             [[api]]\nname = \"other\"\nupstream = \"https://127.0.0.1:{upstream_port}\"\nheader = \"bearer\"\n\
             credential = \"api.other\"\nplaceholder = \"{OTHER_PLACEHOLDER}\"\n"
        );
        std::fs::write(&file, &text)?;
        let (config, text) = BundleConfig::load(&file)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let bundle = Arc::new(Bundle::from_config(&file, &text, config)?);
        let addr = runtime.block_on(async {
            let eg = egress::Server::bind("127.0.0.1:0".parse().unwrap()).await?;
            let gate = apigate::Server::bind("127.0.0.1:0".parse().unwrap()).await?;
            bundle.set_egress_addr(eg.local_addr());
            let addr = gate.local_addr();
            tokio::spawn(eg.run(bundle.clone()));
            tokio::spawn(gate.run(bundle.clone()));
            Ok::<_, anyhow::Error>(addr)
        })?;
        Ok(Self { bundle, addr, runtime: Some(runtime) })
    }

    /// (api, status, allowed, bytes_up, bytes_down, reason) of every API event.
    fn calls(&self) -> Vec<(String, u16, bool, u64, u64, String)> {
        self.bundle
            .events
            .recent()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::ApiCall { api, status, allowed, bytes_up, bytes_down, reason, .. } => {
                    Some((api, status, allowed, bytes_up, bytes_down, reason))
                }
                _ => None,
            })
            .collect()
    }

    /// Waits (bounded) until `n` API events are recorded: a streamed call records when its body ends.
    fn wait_calls(&self, n: usize) -> Vec<(String, u16, bool, u64, u64, String)> {
        let start = Instant::now();
        while self.calls().len() < n && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.calls()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// curl, as the agent's client: (HTTP status, body).
fn curl(gate: &Gate, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--noproxy", "*", "-m", "30", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.args(["-H", "content-type: application/json", "--data-binary", "@-"]);
    cmd.arg(format!("http://{}{path}", gate.addr));
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("curl");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn messages(prompt: &str, stream: bool) -> String {
    serde_json::json!({"model": "claude-fake", "max_tokens": 16, "stream": stream,
                       "messages": [{"role": "user", "content": prompt}]})
    .to_string()
}

fn key_header(v: &str) -> String {
    format!("x-api-key: {v}")
}

struct Rig {
    dir: tempfile::TempDir,
    fake: FakeApi,
    ca: PathBuf,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_support::local_ca(dir.path(), &["127.0.0.1"]);
    let fake = FakeApi::start(dir.path(), &cert, &key);
    Rig { dir, fake, ca }
}

fn gate_for(r: &Rig, extra: &str) -> Gate {
    Gate::start(r.dir.path(), r.fake.port, &format!("[api_gate]\nca_file = {:?}\n{extra}", r.ca)).unwrap()
}

#[test]
fn the_placeholder_is_swapped_for_the_real_key_and_each_call_is_recorded() {
    let r = rig();
    let gate = gate_for(&r, "");
    let (status, body) =
        curl(&gate, "/anthropic/v1/messages?beta=true", &[&key_header(PLACEHOLDER)], &messages("say hi", true));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from the fake API") && body.contains("event: message_stop"), "{body}");
    let seen = r.fake.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["x_api_key"], REAL_KEY);
    assert_eq!(seen[0]["path"], "/v1/messages?beta=true");
    assert!(
        !std::fs::read_to_string(&r.fake.log).unwrap().contains(PLACEHOLDER),
        "the upstream never sees the placeholder"
    );
    let calls = gate.wait_calls(1);
    let (api, status, allowed, up, down, reason) = &calls[0];
    assert_eq!((api.as_str(), *status, *allowed, reason.as_str()), ("anthropic", 200, true, ""));
    assert_eq!(*up as usize, messages("say hi", true).len());
    assert_eq!(*down as usize, body.len(), "bytes down are what the agent got");
    let events = serde_json::to_string(&gate.bundle.events.recent()).unwrap();
    assert!(!events.contains(REAL_KEY) && !events.contains(PLACEHOLDER) && !events.contains("say hi"), "{events}");
}

#[test]
fn calls_without_this_apis_placeholder_or_to_no_api_are_refused_and_recorded() {
    let r = rig();
    let gate = gate_for(&r, "");
    let cases: [(&str, Vec<String>, u16, &str); 6] = [
        ("/anthropic/v1/messages", vec![key_header("sk-ant-guessed-wrong-000000")], 401, "wrong credential"),
        ("/anthropic/v1/messages", vec![], 401, "no credential"),
        ("/anthropic/v1/messages", vec![key_header(OTHER_PLACEHOLDER)], 401, "placeholder of API"),
        // The real key itself, were the agent to learn it, is no placeholder either.
        ("/anthropic/v1/messages", vec![key_header(REAL_KEY)], 401, "wrong credential"),
        ("/v1/messages", vec![key_header(PLACEHOLDER)], 404, "no API"),
        ("/anthropic/v1/../admin", vec![key_header(PLACEHOLDER)], 400, "dot segments"),
    ];
    for (i, (path, headers, want, why)) in cases.iter().enumerate() {
        let hs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (status, body) = curl(&gate, path, &hs, &messages("hi", false));
        assert_eq!(status, *want, "{path} {headers:?}: {body}");
        assert!(body.contains(why) && body.contains("\"type\":\"error\""), "{body}");
        let calls = gate.wait_calls(i + 1);
        assert_eq!(calls.len(), i + 1);
        let last = calls.last().unwrap();
        assert!(!last.2 && last.1 == *want && last.5.contains(why), "{last:?}");
    }
    assert!(r.fake.requests().is_empty(), "nothing refused reaches the upstream");
}

#[test]
fn dlp_holds_back_bodies_with_a_secret_or_the_real_key_and_the_cap_holds() {
    let r = rig();
    let gate = gate_for(&r, "max_body_bytes = 4096");
    for (leak, rule) in [(NEVER_LEAVE, "dlp:secret:NAMED"), (REAL_KEY, "dlp:secret:api.anthropic")] {
        let (status, body) = curl(
            &gate,
            "/anthropic/v1/messages",
            &[&key_header(PLACEHOLDER)],
            &messages(&format!("leak {leak}"), false),
        );
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(rule), "{body}");
    }
    let big = messages(&"a".repeat(5000), false);
    let (status, body) = curl(&gate, "/anthropic/v1/messages", &[&key_header(PLACEHOLDER)], &big);
    assert_eq!(status, 413, "{body}");
    assert!(r.fake.requests().is_empty(), "no held-back body reached the upstream");
    let calls = gate.wait_calls(3);
    assert!(calls.iter().all(|c| !c.2), "{calls:?}");
}

#[test]
fn server_sent_events_reach_the_agent_before_the_upstream_sends_its_last() {
    let r = rig();
    let gate = gate_for(&r, "");
    let body = messages("HOLD please", true);
    let mut s = TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /anthropic/v1/messages HTTP/1.1\r\nHost: gate\r\nx-api-key: {PLACEHOLDER}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: message_start") {
        let n = s.read(&mut buf).expect("the first event arrives while the upstream still holds the rest");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let log = std::fs::read_to_string(&r.fake.log).unwrap();
    assert!(!log.contains("last_event_sent"), "the fake had not sent its last event yet: {log}");
    std::fs::write(&r.fake.release, "").unwrap();
    while !String::from_utf8_lossy(&got).contains("event: message_stop") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn upstream_tls_is_verified_and_failures_answer_clearly_without_hanging() {
    let r = rig();
    // No CA file: the public roots do not vouch for the fake's certificate.
    let untrusted = Gate::start(r.dir.path(), r.fake.port, "").unwrap();
    let (status, body) =
        curl(&untrusted, "/anthropic/v1/messages", &[&key_header(PLACEHOLDER)], &messages("hi", false));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS"), "{body}");

    // Down: a port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = Gate::start(r.dir.path(), closed, "").unwrap();
    let (status, body) = curl(&down, "/anthropic/v1/messages", &[&key_header(PLACEHOLDER)], &messages("hi", false));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("unreachable"), "{body}");

    // Slow: accepts and never speaks; the connect timeout (1 s here) answers for it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow =
        Gate::start(r.dir.path(), silent.local_addr().unwrap().port(), "[limits]\nconnect_timeout_ms = 1000").unwrap();
    let start = Instant::now();
    let (status, body) = curl(&slow, "/anthropic/v1/messages", &[&key_header(PLACEHOLDER)], &messages("hi", false));
    assert_eq!(status, 504, "{body}");
    assert!(start.elapsed() < CALL_TIMEOUT / 3, "answered within its timeout, took {:?}", start.elapsed());
    assert_eq!(slow.wait_calls(1)[0].1, 504);

    // The upstream's own errors pass through as it sent them.
    let gate = gate_for(&r, "");
    let (status, body) = curl(&gate, "/anthropic/v2/nothing", &[&key_header(PLACEHOLDER)], &messages("hi", false));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not_found_error") && !body.contains("bottle"), "{body}");
}

#[test]
fn a_kept_alive_upstream_connection_serves_the_next_call() {
    let r = rig();
    let gate = gate_for(&r, "");
    for _ in 0..3 {
        let (status, body) = curl(&gate, "/anthropic/v1/messages", &[&key_header(PLACEHOLDER)], &messages("hi", true));
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(r.fake.requests().len(), 3);
}
