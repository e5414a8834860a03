//! The real Claude Code (the npm binary, run as the agent user) in a bottle made
//! from `examples/claude-code/bottle.toml`, against a fake Anthropic API over
//! HTTPS: the one double, `doubles/fake_anthropic.py`, on an `--internal`
//! network this test creates, with a certificate for `api.anthropic.com` from a
//! test CA only the bundle trusts. The bundle's egress resolves that name to
//! the fake statically, so nothing leaves the machine.
//!
//! Needs the Claude Code tarball in the cache (`scripts/fetch-claude-code.sh`)
//! or `BOTTLE_CLAUDE_CODE_TARBALL`; without either it skips and says so, so a
//! test run never downloads.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;
#[path = "../support/tls/mod.rs"]
mod tls_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use bottle_core::backend::{BottleBackend, Progress};
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::images;
use bottle_core::sidecar::{SidecarOptions, labels};
use bottle_core::spec::{SecretSource, Spec};
use bottle_protocol::{Event, EventKind};
use support::{Print, unique};

const REAL_KEY: &str = "sk-ant-api03-e2e-REAL-key-only-host-and-bundle-hold-9c41";
const CANARY_LABEL: &str = "dev.bottle.test-canary";

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        support::remove_labelled(&[
            format!("label={}={}", labels::NAME, self.0),
            format!("label={CANARY_LABEL}={}", self.0),
        ]);
    }
}

/// Progress that remembers its steps, to see that a cached image needs no download or build.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl Progress for Steps {
    fn step(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fake API in bottle's agent image (it has python3), on its own internal network; its IP.
fn start_fake_api(image: &str, name: &str, dir: &Path) -> (String, String) {
    let network = format!("bottle-0canary-{name}");
    let label = format!("{CANARY_LABEL}={name}");
    docker(&["network", "create", "--internal", "--label", &label, &network]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/doubles/fake_anthropic.py");
    std::fs::copy(script, dir.join("fake_anthropic.py")).unwrap();
    let mount = format!("{}:/fake", dir.display());
    let container = format!("{network}-api");
    docker(&[
        "run",
        "-d",
        "--label",
        &label,
        "--name",
        &container,
        "--network",
        &network,
        "-v",
        &mount,
        image,
        "python3",
        "/fake/fake_anthropic.py",
        "--bind",
        "0.0.0.0",
        "--port",
        "443",
        "--key",
        REAL_KEY,
        "--cert",
        "/fake/cert.pem",
        "--key-file",
        "/fake/key.pem",
        "--log",
        "/fake/requests.jsonl",
    ]);
    let ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &container]);
    (network, ip)
}

async fn events(b: &DockerBackend, name: &str) -> Vec<Event> {
    let ctl = b.control_endpoint(name).await.unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-H", &format!("Authorization: Bearer {}", ctl.token)])
        .arg(format!("{}{}", ctl.url, bottle_protocol::control::EVENTS))
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

async fn run(b: &DockerBackend, name: &str, argv: &[&str]) -> bottle_core::backend::ExecOutput {
    // Every agent command is bounded, so a hung Claude Code fails the test instead of stalling it.
    let mut cmd = vec!["timeout".to_string(), "120".to_string()];
    cmd.extend(argv.iter().map(|s| s.to_string()));
    b.exec(name, &cmd).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_answers_through_the_gate_with_its_key_outside_and_its_tools_fenced() {
    let tarball = images::cached_tarball(images::package_for(std::env::consts::ARCH).unwrap().0);
    if std::env::var_os(images::CLAUDE_CODE_TARBALL_ENV).is_none() && !tarball.exists() {
        skip::skipped(format_args!(
            "no Claude Code tarball at {} (run scripts/fetch-claude-code.sh)",
            tarball.display()
        ));
        return;
    }
    if !support::engine().await {
        return;
    }
    let name = unique("claude");
    let _cleanup = Cleanup(name.clone());
    let dir = tempfile::tempdir().unwrap();
    tls_support::local_ca(dir.path(), &["api.anthropic.com"]);
    let plain = DockerBackend::connect(DockerOptions::default()).await.unwrap();
    let base = images::ensure_agent_image(plain.docker(), &Print(&name)).await.unwrap();
    let (network, ip) = start_fake_api(&base, &name, dir.path());
    let options = DockerOptions {
        sidecar: SidecarOptions {
            canary_hosts: BTreeMap::from([("api.anthropic.com".into(), vec![ip.clone()])]),
            canary_cidrs: vec![format!("{ip}/32")],
            canary_networks: vec![network],
            canary_ca: Some(dir.path().join("ca.pem")),
            ..Default::default()
        },
        start_check: false,
    };
    let b = DockerBackend::connect(options).await.unwrap();

    // The example, as shipped, with this test's name and workspace, and the key from a host file.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/claude-code/bottle.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let copy = dir.path().join("bottle.toml");
    std::fs::write(&copy, &text).unwrap();
    let ws = dir.path().join("workspace");
    std::fs::create_dir(&ws).unwrap();
    std::fs::set_permissions(&ws, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut spec = Spec::parse(&copy, &text).unwrap_or_else(|e| panic!("{e}"));
    spec.name = name.clone();
    let key_file = dir.path().join("anthropic.key");
    std::fs::write(&key_file, format!("{REAL_KEY}\n")).unwrap();
    spec.apis[0].credential = SecretSource::File(key_file);
    b.up(&spec, &Print(name.clone())).await.unwrap();

    // The image is cached: asking again downloads and builds nothing.
    let steps = Steps::default();
    let tag = images::ensure_claude_code_image(b.docker(), &base, &steps).await.unwrap();
    assert!(steps.0.lock().unwrap().is_empty(), "{:?}", steps.0.lock().unwrap());
    assert!(tag.starts_with(images::CLAUDE_CODE_REPO));

    // A prompt is answered, by the real binary, as the non-root agent user.
    let who = run(&b, &name, &["id", "-u"]).await;
    assert_ne!(who.stdout.trim(), "0", "{who:?}");
    let out = run(&b, &name, &["claude", "-p", "say hi"]).await;
    assert!(out.stdout.contains("hello from the fake API"), "{out:?}");
    let log = std::fs::read_to_string(dir.path().join("requests.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["x_api_key"], REAL_KEY, "the fake API got the real key: {log}");
    assert!(first["path"].as_str().unwrap().starts_with("/v1/messages"), "{log}");
    let placeholder = run(&b, &name, &["sh", "-c", "printf %s \"$ANTHROPIC_API_KEY\""]).await.stdout;
    assert!(placeholder.starts_with("bottle-placeholder-anthropic-"), "{placeholder}");
    assert!(!log.contains(&placeholder), "the upstream never sees the placeholder");

    // The key stays outside: no process's environment or command line, nothing in the home or
    // the workspace, nothing in `docker inspect` holds it. The scan must find the placeholder
    // where it is, or it proves nothing.
    let scan = format!(
        "import base64, glob, os\nneedles = {{'key': base64.b64decode('{}'), 'placeholder': base64.b64decode('{}')}}\n\
         hits = set()\nfiles = glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline')\n\
         for root in (os.environ['HOME'], '/workspace'):\n    for d, _, fs in os.walk(root):\n        files += [os.path.join(d, f) for f in fs]\n\
         for f in files:\n    try:\n        data = open(f, 'rb').read()\n    except OSError:\n        continue\n\
         \x20   for n, v in needles.items():\n        if v in data:\n            hits.add(n + ' ' + f)\n\
         print('\\n'.join(sorted(hits)))\n",
        base64::engine::general_purpose::STANDARD.encode(REAL_KEY),
        base64::engine::general_purpose::STANDARD.encode(&placeholder),
    );
    let found = run(&b, &name, &["python3", "-c", &scan]).await;
    assert!(found.stdout.contains("placeholder /proc/"), "the scan sees the agent's environment: {found:?}");
    assert!(!found.stdout.contains("key "), "the real key is inside the bottle: {found:?}");
    let agent = b.docker().inspect_container(&labels::object_name(&name, labels::ROLE_AGENT), None).await.unwrap();
    assert!(!serde_json::to_string(&agent).unwrap().contains(REAL_KEY), "docker inspect shows the key");

    // A tool call is fenced: the fake API asks Claude Code's Bash tool to reach a host the
    // bottle does not allow; the proxy refuses it and says so on the event stream.
    let out = run(&b, &name, &["claude", "-p", "RUN: curl -sS https://denied.test/", "--allowedTools", "Bash"]).await;
    let log = std::fs::read_to_string(dir.path().join("requests.jsonl")).unwrap();
    assert!(
        out.stdout.contains("tool said:"),
        "the tool ran and its result went back: {out:?}\n{log}\n{:?}",
        events(&b, &name).await
    );
    assert!(log.contains("\"tool_result\": \"") && log.contains("403"), "curl saw the proxy's 403: {log}");

    // Streaming through the gate, seen from inside: the fake sends its first event, holds the
    // rest for 3 s; the agent must have the first event long before the stream ends.
    let stream = "import http.client, json, os, time, urllib.parse\n\
        u = urllib.parse.urlparse(os.environ['ANTHROPIC_BASE_URL'])\n\
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)\n\
        body = json.dumps({'model': 'm', 'max_tokens': 1, 'stream': True, 'messages': [{'role': 'user', 'content': 'HOLD'}]})\n\
        c.request('POST', u.path + '/v1/messages', body, {'x-api-key': os.environ['ANTHROPIC_API_KEY'], 'content-type': 'application/json'})\n\
        r = c.getresponse()\nbuf = b''\n\
        while b'message_start' not in buf:\n    buf += r.read1(65536)\n\
        t = time.time()\nrest = r.read()\nprint(round(time.time() - t, 1), b'message_stop' in rest)\n";
    let held = run(&b, &name, &["python3", "-c", stream]).await;
    let (secs, ended) = held.stdout.trim().split_once(' ').unwrap_or(("0", ""));
    assert!(secs.parse::<f64>().unwrap_or(0.0) >= 2.0 && ended == "True", "first event early, rest later: {held:?}");

    // Refusals from inside, each recorded; and no tunnel to the API's host past the gate.
    let probe = "u=$ANTHROPIC_BASE_URL/v1/messages; c='curl -s -o /dev/null -w %{http_code} -X POST --max-time 10';\
                 $c -H 'x-api-key: sk-ant-guess' $u; echo; $c $u; echo; $c -H \"x-api-key: $ANTHROPIC_API_KEY\" \
                 ${ANTHROPIC_BASE_URL%/anthropic}/elsewhere/v1/messages; echo; \
                 curl -s -o /dev/null -w %{http_code} --max-time 10 https://api.anthropic.com/v1/messages; echo";
    let codes = run(&b, &name, &["sh", "-c", probe]).await;
    let codes: Vec<&str> = codes.stdout.lines().collect();
    assert_eq!(codes, ["401", "401", "404", "000"], "wrong key, no key, no such API, CONNECT refused");

    let ev = events(&b, &name).await;
    let blocked: Vec<&str> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::EgressBlocked { target, .. } => Some(target.as_str()),
            _ => None,
        })
        .collect();
    assert!(blocked.contains(&"denied.test:443"), "{blocked:?}");
    assert!(blocked.contains(&"api.anthropic.com:443"), "{blocked:?}");
    let calls: Vec<(u16, bool)> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ApiCall { status, allowed, .. } => Some((*status, *allowed)),
            _ => None,
        })
        .collect();
    assert!(calls.iter().filter(|c| **c == (200, true)).count() >= 3, "{calls:?}");
    for refused in [401, 404] {
        assert!(calls.contains(&(refused, false)), "{calls:?}");
    }
    let all = serde_json::to_string(&ev).unwrap();
    assert!(!all.contains(REAL_KEY) && !all.contains(&placeholder), "events never carry credentials");
    b.down(&name, &Print(name.clone())).await.unwrap();
}
