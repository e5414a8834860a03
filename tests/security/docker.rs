//! The Docker backend against a real engine: round trip, duplicates, ten concurrent
//! `up`s, recovery from a killed `up`, failing closed, the gateway hole, blocked
//! requests on the event stream, and a default `up`'s start check: verified, then
//! failed once the agent joins the egress network; floods of blocks, bounded logs, and
//! agents that never run as their image's root unless the spec says so.
//!
//! Every test brings up its own uniquely named bottles and removes them, so the
//! tests run in parallel. `scripts/install-docker.sh` runs once first (idempotent:
//! it starts an engine if none answers); only if no engine answers after it is a
//! test skipped, with the reason printed.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bottle_core::backend::{BackendKind, BottleBackend, BottleState, Verdict};
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::sidecar::{Placement, SidecarOptions, labels};
use bottle_core::spec::{ImageSource, Spec};
use support::{Print, unique};

/// A backend on the local engine (starting one if needed), or `None` with the reason printed.
async fn backend(options: DockerOptions) -> Option<DockerBackend> {
    if !support::engine().await {
        return None;
    }
    Some(DockerBackend::connect(options).await.expect("engine answered a moment ago"))
}

fn plumbing() -> DockerOptions {
    DockerOptions { start_check: false, ..Default::default() }
}

/// The shared test spec, with an environment variable the agent must see.
fn spec(name: &str) -> (Spec, tempfile::TempDir) {
    let (mut spec, ws) = support::spec(name);
    spec.env = BTreeMap::from([("AGENT_VISIBLE".into(), "yes".into())]);
    (spec, ws)
}

/// Label on a test's canary objects.
const CANARY_LABEL: &str = "dev.bottle.test-canary";

/// Removes a bottle's objects (and its test's canary) even when the test panicked half-way.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filters: Vec<String> = (self.0.iter())
            .flat_map(|n| [format!("label={}={n}", labels::NAME), format!("label={CANARY_LABEL}={n}")])
            .collect();
        support::remove_labelled(&filters);
    }
}

async fn sh(b: &DockerBackend, name: &str, script: &str) -> bottle_core::backend::ExecOutput {
    b.exec(name, &["sh".into(), "-c".into(), script.into()]).await.unwrap()
}

/// Python in the agent: try a TCP connect, print `open` or the error class. Bounded by a 3 s timeout.
fn connect_probe(ip: Ipv4Addr, port: u16) -> String {
    connect_probes(&[(ip, port)])
}

/// Several connect probes at once (in threads, so closed-by-silence targets time out together);
/// prints one `ip:port result` line per target, in order.
fn connect_probes(targets: &[(Ipv4Addr, u16)]) -> String {
    let list: Vec<String> = targets.iter().map(|(ip, port)| format!("('{ip}', {port})")).collect();
    format!(
        "python3 -c \"\nimport socket, concurrent.futures as f\ndef p(t):\n try:\n  socket.create_connection(t, timeout=3); return 'open'\n except Exception as e:\n  return type(e).__name__\nts = [{}]\nfor t, r in zip(ts, f.ThreadPoolExecutor(len(ts)).map(p, ts)): print(t[0] + ':' + str(t[1]), r)\"",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn up_status_exec_down_round_trip_keeps_the_workspace() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("round");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, ws) = spec(&name);
    let st = b.up(&spec, &Print(name.clone())).await.unwrap();
    assert_eq!(st.state, BottleState::Running, "{st:?}");
    assert_eq!(st.allowlist.verdict, Verdict::NotVerified);
    assert_eq!(st.allowlist.allowlist, ["allowed.test"]);

    let p = Placement::find(b.docker(), BackendKind::Docker, &name).await.unwrap().expect("placement from labels");
    let out = sh(&b, &name, "id -u; echo $https_proxy; echo $NO_PROXY; echo $AGENT_VISIBLE; echo hi > /workspace/made-inside; touch /etc/x 2>&1 || true").await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..4],
        ["1000", &format!("http://{}:3128", p.bundle_ip), &format!("localhost,127.0.0.1,::1,{}", p.bundle_ip), "yes"],
        "{out:?}"
    );
    assert!(out.stdout.contains("Read-only file system"), "the agent's root is read-only: {out:?}");
    assert_eq!(std::fs::read_to_string(ws.path().join("made-inside")).unwrap(), "hi\n");
    let git = sh(&b, &name, "git config --get-regexp '^url\\.'").await;
    assert_eq!(git.stdout.trim(), format!("url.http://{}:9418/.insteadof bottle:", p.bundle_ip), "{git:?}");

    // The agent container: no socket, no capabilities, no secrets or token in its environment.
    let agent = b.docker().inspect_container(&labels::object_name(&name, labels::ROLE_AGENT), None).await.unwrap();
    let hc = agent.host_config.unwrap();
    assert_eq!(hc.cap_drop.unwrap(), ["ALL"]);
    assert!(hc.security_opt.unwrap().contains(&"no-new-privileges".to_string()));
    assert!(!hc.binds.unwrap().iter().any(|b| b.contains("docker.sock")));
    let ctl = b.control_endpoint(&name).await.unwrap();
    assert!(ctl.url.starts_with("http://127.0.0.1:"), "{ctl:?}");
    assert_eq!(ctl.token.len(), 64);
    let env = agent.config.unwrap().env.unwrap().join("\n");
    assert!(!env.contains(&ctl.token), "the control token never reaches the agent");
    let port: u16 = ctl.url.rsplit(':').next().unwrap().parse().unwrap();
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("host reaches the published control port");

    // A restarted bottle-core (a new backend) sees the bottle from labels alone.
    let again = DockerBackend::connect(plumbing()).await.unwrap();
    assert!(again.list().await.unwrap().iter().any(|s| s.name == name && s.state == BottleState::Running));

    b.down(&name, &Print(name.clone())).await.unwrap();
    let gone = b.status(&name).await.unwrap_err();
    assert!(matches!(gone, bottle_core::backend::Error::NotFound { .. }), "{gone:?}");
    let gone = b.exec(&name, &["true".into()]).await.unwrap_err();
    assert!(matches!(gone, bottle_core::backend::Error::NotFound { .. }), "exec says it too: {gone:?}");
    assert!(ws.path().join("made-inside").exists(), "down never touches the workspace");
    assert!(Placement::find(b.docker(), BackendKind::Docker, &name).await.unwrap().is_none(), "networks removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_up_of_the_same_name_is_refused() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("dup");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let e = format!("{:#}", b.up(&spec, &Print(name.clone())).await.unwrap_err());
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(b.status(&name).await.unwrap().state, BottleState::Running, "the first bottle is untouched");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_ups_get_disjoint_subnets() {
    let Some(b) = backend(plumbing()).await else { return };
    let b = Arc::new(b);
    let names: Vec<String> = (0..10).map(|i| unique(&format!("par{i}"))).collect();
    let _cleanup = Cleanup(names.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for name in &names {
        let (b, name) = (b.clone(), name.clone());
        tasks.spawn(async move {
            let (spec, ws) = spec(&name);
            let r = b.up(&spec, &Print(name.clone())).await;
            (name, r.map(|s| s.state), ws)
        });
    }
    let mut workspaces = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (name, state, ws) = done.unwrap();
        assert_eq!(state.unwrap(), BottleState::Running, "{name}");
        workspaces.push(ws);
    }
    let mut subnets = Vec::new();
    for name in &names {
        let p = Placement::find(b.docker(), BackendKind::Docker, name).await.unwrap().unwrap();
        subnets.extend([p.agent_subnet, p.egress_subnet]);
    }
    for (i, a) in subnets.iter().enumerate() {
        for c in &subnets[i + 1..] {
            assert!(!bottle_core::netpool::overlaps(a, c), "{a} and {c} collide");
        }
    }
    for name in &names {
        b.down(name, &Print(name.clone())).await.unwrap();
    }
}

/// Polls (bounded) until bottle `name` has at least one labelled network.
async fn wait_for_networks(b: &DockerBackend, name: &str) {
    for _ in 0..600 {
        if !bottle_core::sidecar::network::list_networks(b.docker(), BackendKind::Docker, Some(name))
            .await
            .unwrap()
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("up of {name} made no network within 30 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_up_leaves_nothing_gc_or_the_next_up_does_not_clean() {
    let Some(b) = backend(plumbing()).await else { return };
    let b = Arc::new(b);
    let name = unique("killed");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);

    for round in ["gc", "next up"] {
        let task = tokio::spawn({
            let (b, spec, name) = (b.clone(), spec.clone(), name.clone());
            async move { b.up(&spec, &Print(name)).await }
        });
        wait_for_networks(&b, &name).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(b.status(&name).await.unwrap().state, BottleState::Incomplete, "{round}");
        assert!(b.gc(true).await.unwrap().contains(&name));
        if round == "gc" {
            assert!(b.gc(false).await.unwrap().contains(&name));
            assert!(b.status(&name).await.is_err(), "gc removed everything");
        } else {
            assert_eq!(b.up(&spec, &Print(name.clone())).await.unwrap().state, BottleState::Running);
            assert!(!b.gc(true).await.unwrap().contains(&name), "a complete bottle is not garbage");
        }
    }
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reaches_neither_the_host_nor_the_control_plane() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("hole");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let p = Placement::find(b.docker(), BackendKind::Docker, &name).await.unwrap().unwrap();

    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let docker0 = Ipv4Addr::new(172, 17, 0, 1);
    let gateway = bottle_core::netpool::host(&p.agent_subnet, 1);
    let egress_gateway = bottle_core::netpool::host(&p.egress_subnet, 1);
    // Positive control: the same probe does reach the bundle's proxy.
    let out = sh(&b, &name, &connect_probe(p.bundle_ip, 3128)).await;
    assert_eq!(out.stdout.trim(), format!("{}:3128 open", p.bundle_ip), "{out:?}");
    let targets = [
        ("agent-network gateway", gateway, port),
        ("egress-network gateway", egress_gateway, port),
        ("docker0", docker0, port),
        ("agent loopback", Ipv4Addr::LOCALHOST, port),
        ("control plane on the bundle's egress address", p.bundle_egress_ip, 9090),
        ("control port on the bundle's agent address", p.bundle_ip, 9090),
        ("the bundle's egress dialer", p.bundle_ip, 9099),
    ];
    let out = sh(&b, &name, &connect_probes(&targets.map(|(_, ip, port)| (ip, port)))).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), targets.len(), "every probe ran: {out:?}");
    for ((what, ip, port), line) in targets.iter().zip(lines) {
        assert!(line.starts_with(&format!("{ip}:{port} ")), "{line}");
        assert!(!line.ends_with(" open"), "{what} {ip}:{port} reachable from the agent: {line}");
    }
    assert!(listener.accept().is_err(), "no connection ever arrived at the host listener");
    // The host's bridge keeps an IPv6 link-local address; the agent must have no IPv6 to use it.
    let v6 = sh(&b, &name, "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; wc -l < /proc/net/if_inet6").await;
    assert_eq!(v6.stdout.split_whitespace().collect::<Vec<_>>(), ["1", "0"], "agent has IPv6: {v6:?}");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_bundle_leaves_the_agent_with_no_way_out() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("closed");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let p = Placement::find(b.docker(), BackendKind::Docker, &name).await.unwrap().unwrap();
    let bundle = labels::object_name(&name, labels::ROLE_BUNDLE);
    b.docker()
        .stop_container(&bundle, Some(bollard::query_parameters::StopContainerOptionsBuilder::default().t(2).build()))
        .await
        .unwrap();
    let st = b.status(&name).await.unwrap();
    assert_eq!(st.state, BottleState::Degraded, "{st:?}");
    assert!(st.detail.contains("no way out"), "{st:?}");
    let out = sh(&b, &name, &connect_probe(p.bundle_ip, 3128)).await;
    let line = out.stdout.trim();
    assert!(line.starts_with(&format!("{}:3128 ", p.bundle_ip)) && !line.ends_with(" open"), "{out:?}");
    let out = sh(&b, &name, "curl -sS --max-time 5 http://allowed.test/ 2>&1; echo exit=$?").await;
    assert!(!out.stdout.contains("exit=0"), "{out:?}");
    assert!(!b.gc(true).await.unwrap().contains(&name), "a degraded bottle is not garbage");
    let agent = labels::object_name(&name, labels::ROLE_AGENT);
    b.docker()
        .stop_container(&agent, Some(bollard::query_parameters::StopContainerOptionsBuilder::default().t(2).build()))
        .await
        .unwrap();
    assert_eq!(b.status(&name).await.unwrap().state, BottleState::Stopped);
    assert!(b.gc(false).await.unwrap().contains(&name), "gc removes a bottle that has stopped");
    assert!(b.status(&name).await.is_err());
}

/// A canary "internet": python's http.server in bottle's agent image, on a network of its own.
struct Canary {
    network: String,
    ip: String,
}

async fn canary(b: &DockerBackend, name: &str) -> Canary {
    let image = bottle_core::images::ensure_agent_image(b.docker(), &Print("canary")).await.unwrap();
    let label = format!("{CANARY_LABEL}={name}");
    let (network, _, ip) =
        support::canary_container(name, &label, &image, &[], &["python3", "-m", "http.server", "80"]);
    Canary { network, ip }
}

/// A backend whose bottles allow `allowed.test`, a canary of `name`'s, and whose start check fetches it.
async fn with_canary(probe: &DockerBackend, name: &str) -> DockerBackend {
    with_canary_as(probe, name, &[]).await
}

/// [`with_canary`], the canary also answering to `more` names (which no policy allows).
async fn with_canary_as(probe: &DockerBackend, name: &str, more: &[&str]) -> DockerBackend {
    let c = canary(probe, name).await;
    let hosts = std::iter::once("allowed.test").chain(more.iter().copied());
    let options = DockerOptions {
        sidecar: SidecarOptions {
            canary_hosts: hosts.map(|h| (h.to_string(), vec![c.ip.clone()])).collect(),
            canary_cidrs: vec![format!("{}/32", c.ip)],
            canary_networks: vec![c.network.clone()],
            canary_url: Some("http://allowed.test/".into()),
            ..Default::default()
        },
        start_check: true,
    };
    DockerBackend::connect(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_check_verifies_and_blocked_requests_reach_the_event_stream() {
    let Some(probe) = backend(plumbing()).await else { return };
    let name = unique("events");
    let _cleanup = Cleanup(vec![name.clone()]);
    let b = with_canary(&probe, &name).await;
    let (spec, _ws) = spec(&name);
    let st = b.up(&spec, &Print(name.clone())).await.unwrap();
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{:?}", st.allowlist);

    let out =
        sh(&b, &name, "curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://blocked.test/secret-path").await;
    assert_eq!(out.stdout, "403", "{out:?}");
    let (text, token) = event_stream(&b, &name).await;
    let blocked = blocks_of(&text, "blocked.test");
    assert_eq!(blocked.len(), 1, "one block event for blocked.test in: {text}");
    assert!(!text.contains(&token), "the token never appears in events");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

/// What the bundle's event stream holds now (one JSON event a line), and the control token.
async fn event_stream(b: &DockerBackend, name: &str) -> (String, String) {
    let ctl = b.control_endpoint(name).await.unwrap();
    let events = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-H", &format!("Authorization: Bearer {}", ctl.token)])
        .arg(format!("{}{}", ctl.url, bottle_protocol::control::EVENTS))
        .output()
        .await
        .unwrap();
    (String::from_utf8_lossy(&events.stdout).into_owned(), ctl.token)
}

/// The `EgressBlocked` events of a stream whose target starts with `target`, as their counts.
fn blocks_of(text: &str, target: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<bottle_protocol::Event>(l).ok())
        .filter_map(|e| match e.kind {
            bottle_protocol::EventKind::EgressBlocked { target: t, count, .. } if t.starts_with(target) => Some(count),
            _ => None,
        })
        .collect()
}

/// `bottle-core ARGS` as the host runs it: (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(args)
        .env_remove("CLAUDE_BOTTLE_BACKEND")
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A server the agent starts on its own loopback (python's http.server, serving a git
/// repository over dumb HTTP) is reached by curl, urllib and git without the proxy and
/// raises no block; the bundle's own loopback services stay out of reach, directly and
/// through the proxy, even once the host allows 127.0.0.1.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_s_own_loopback_is_its_own_and_the_bundle_s_stays_out_of_reach() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("loopback");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let serve = "set -e; cd /tmp; git init -q w; cd w; echo hi > f; git add f; \
        git -c user.email=a@b.test -c user.name=a commit -q -m one; git clone -q --bare . /tmp/srv/repo.git; \
        git -C /tmp/srv/repo.git update-server-info; \
        (python3 -m http.server 8765 --bind 127.0.0.1 --directory /tmp/srv >/dev/null 2>&1 &); \
        for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8765/ && break; sleep 0.1; done; \
        curl -s -o /dev/null -w 'curl-localhost %{http_code}\n' --max-time 5 http://localhost:8765/; \
        curl -s -o /dev/null -w 'curl-127 %{http_code}\n' --max-time 5 http://127.0.0.1:8765/repo.git/HEAD; \
        python3 -c \"import urllib.request as u; print('urllib', u.urlopen('http://localhost:8765/', timeout=5).status)\"; \
        git clone -q http://localhost:8765/repo.git /tmp/c && echo \"git $(cat /tmp/c/f)\"";
    let out = sh(&b, &name, serve).await;
    for line in ["curl-localhost 200", "curl-127 200", "urllib 200", "git hi"] {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} missing from {out:?}");
    }

    // The bundle's egress dialer listens on its loopback: not the agent's, and not via the proxy
    // (NO_PROXY is dropped for these, or curl would not use the proxy for loopback at all).
    let tricks = "curl -s -o /dev/null -w 'direct %{http_code}\n' --max-time 5 http://127.0.0.1:9099/; \
        for u in http://127.0.0.1:9099/ http://localhost:9099/; do \
        env -u NO_PROXY -u no_proxy curl -s -o /dev/null -D /tmp/h --max-time 5 -x \"$HTTP_PROXY\" \"$u\"; \
        echo \"proxied $(tr -d '\\r' < /tmp/h | sed -n 's/^X-Bottle-Block: //p')\"; done";
    let out = sh(&b, &name, tricks).await;
    assert_eq!(out.stdout, "direct 000\nproxied ip-literal\nproxied not-allowed\n", "{out:?}");
    let (code, _, err) = cli(&["allow", &name, "127.0.0.1"]).await;
    assert_eq!(code, 0, "{err}");
    let proxied = "env -u NO_PROXY -u no_proxy curl -s -o /dev/null -D - --max-time 5 -x \"$HTTP_PROXY\" http://127.0.0.1:9099/ | tr -d '\\r' | sed -n 's/^X-Bottle-Block: //p'";
    assert_eq!(
        sh(&b, &name, proxied).await.stdout.trim(),
        "egress:loopback",
        "a host grant does not open the bundle's loopback"
    );

    tokio::time::sleep(bottle_protocol::event::BLOCK_COALESCE_WINDOW).await;
    let (text, _) = event_stream(&b, &name).await;
    assert!(blocks_of(&text, "localhost:8765").is_empty() && blocks_of(&text, "127.0.0.1:8765").is_empty(), "{text}");
    assert!(!blocks_of(&text, "127.0.0.1:9099").is_empty(), "the tricks were refused and recorded: {text}");
    b.down(&name, &Print(name.clone())).await.unwrap();
}

/// A block that leads somewhere, with real curl in the agent and the real CLI on the host:
/// the 403 says how to ask, the agent asks through supervise, `approve --ttl` lets it
/// through until the grant ends, `allow` and `revoke` do the same without a request, and
/// `policy` / `policy check` report it all.
#[tokio::test(flavor = "multi_thread")]
async fn a_block_leads_to_an_ask_an_approval_a_grant_its_end_and_a_revoke() {
    let Some(probe) = backend(plumbing()).await else { return };
    let name = unique("asks");
    let _cleanup = Cleanup(vec![name.clone()]);
    let b = with_canary_as(&probe, &name, &["asked.test"]).await;
    let (spec, _ws) = spec(&name);
    assert_eq!(b.up(&spec, &Print(name.clone())).await.unwrap().allowlist.verdict, Verdict::Verified);
    let fetch = "curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://asked.test/";

    let out = sh(
        &b,
        &name,
        "curl -s -i --max-time 10 http://asked.test/ | tr -d '\\r'; echo; echo \"url=$BOTTLE_SUPERVISE_URL\"",
    )
    .await;
    let url = out.stdout.lines().find_map(|l| l.strip_prefix("url=")).unwrap().to_string();
    assert!(out.stdout.starts_with("HTTP/1.1 403"), "{out:?}");
    assert!(out.stdout.contains(&format!("X-Bottle-Ask: {url}/v1/requests\n")), "{out:?}");
    assert!(out.stdout.contains(&format!("curl -s -X POST {url}/v1/requests ")), "{out:?}");
    assert!(out.stdout.contains(r#""host":"asked.test","port":80"#), "{out:?}");

    let ask = r#"curl -s -X POST "$BOTTLE_SUPERVISE_URL/v1/requests" -H 'Content-Type: application/json' -d '{"host":"asked.test","port":80,"reason":"the e2e test"}'"#;
    let asked: serde_json::Value = serde_json::from_str(&sh(&b, &name, ask).await.stdout).unwrap();
    let id = asked["id"].as_str().unwrap().to_string();
    let (code, listed, err) = cli(&["requests", &name, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(listed.contains(&id), "{listed}");
    let (code, _, err) = cli(&["approve", &name, &id, "--ttl", "3"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(sh(&b, &name, fetch).await.stdout, "200", "approved");
    let (code, text, _) = cli(&["policy", "check", &name, "asked.test:80"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("allowed: asked.test:80 (rule grant: grant ") && text.contains("approved access request"),
        "{text}"
    );
    // The grant ends after 3 s; bounded wait for the proxy to refuse again.
    let mut refused = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if sh(&b, &name, fetch).await.stdout == "403" {
            refused = true;
            break;
        }
    }
    assert!(refused, "the 3 s grant still let the agent through after 15 s");
    let (code, text, _) = cli(&["policy", "check", &name, "asked.test:80"]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(text, "refused: asked.test:80 (rule not-allowed: no allow entry or live grant matches)\n");

    let (code, text, err) = cli(&["allow", &name, "asked.test:80", "--ttl", "600", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let grant: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((grant["id"].as_str(), grant["source"].as_str()), (Some("allow:asked.test:80"), Some("host")));
    assert_eq!(sh(&b, &name, fetch).await.stdout, "200", "allowed by the host");
    let (code, text, _) = cli(&["policy", &name, "--json"]).await;
    assert_eq!(code, 0);
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(policy["bottle"], name.as_str());
    assert_eq!(policy["allow"], serde_json::json!(["allowed.test"]));
    assert_eq!(policy["kill_switch"], false);
    let g = &policy["grants"][0];
    assert_eq!((g["entry"].as_str(), g["source"].as_str()), (Some("asked.test:80"), Some("host")), "{policy}");
    assert!(g["expires_at"].is_string() && g["expires_in_secs"].as_u64().is_some_and(|s| s <= 600), "{policy}");
    let (_, table, _) = cli(&["policy", &name]).await;
    assert!(
        table.contains("allow  allowed.test") && table.contains("grant  asked.test:80  host grant, ends "),
        "{table}"
    );

    let (code, _, err) = cli(&["revoke", &name, "asked.test"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(sh(&b, &name, fetch).await.stdout, "403", "revoked");
    let (code, _, err) = cli(&["revoke", &name, "asked.test"]).await;
    assert!(code == 1 && err.contains("no live grant for asked.test"), "{code} {err}");
    let (code, _, _) = cli(&["policy", "check", &name, "asked.test:80"]).await;
    assert_eq!(code, 1);
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_check_removes_the_bottle_and_says_why() {
    let name = unique("failcheck");
    let _cleanup = Cleanup(vec![name.clone()]);
    // The "allowed" canary name points at the bundle's own loopback, which egress refuses to dial:
    // the allowed probe cannot pass, so the bottle must not stay up.
    let options = DockerOptions {
        sidecar: SidecarOptions {
            canary_hosts: BTreeMap::from([("allowed.test".into(), vec!["127.0.0.1".into()])]),
            canary_url: Some("http://allowed.test/".into()),
            ..Default::default()
        },
        start_check: true,
    };
    let Some(b) = backend(options).await else { return };
    let (spec, _ws) = spec(&name);
    let e = format!("{:#}", b.up(&spec, &Print(name.clone())).await.unwrap_err());
    assert!(e.contains("start check failed") && e.contains("removed"), "{e}");
    assert!(b.status(&name).await.is_err(), "nothing of the bottle is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_start_check_verifies_and_fails_once_the_agent_has_a_way_out() {
    let name = unique("defcheck");
    let _cleanup = Cleanup(vec![name.clone()]);
    let Some(b) = backend(DockerOptions { start_check: true, ..Default::default() }).await else { return };
    let (spec, _ws) = spec(&name);
    let st = b.up(&spec, &Print(name.clone())).await.unwrap();
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{}", st.allowlist.detail);
    assert!(st.allowlist.detail.contains("was unreachable"), "{}", st.allowlist.detail);

    // Break the boundary: the agent joins the bundle's egress network, where the control plane listens.
    let p = Placement::find(b.docker(), BackendKind::Docker, &name).await.unwrap().expect("placement");
    let agent = labels::object_name(&name, labels::ROLE_AGENT);
    let out = std::process::Command::new("docker").args(["network", "connect", &p.egress_net, &agent]).output();
    assert!(out.unwrap().status.success());
    let broken =
        bottle_core::docker::start_check(b.docker(), &agent, &p, &spec.allow, &SidecarOptions::default()).await;
    assert_eq!(broken.verdict, Verdict::Failed, "{}", broken.detail);
    let control = format!("{}:{}", p.bundle_egress_ip, bottle_protocol::config::DEFAULT_CONTROL_PORT);
    assert!(broken.detail.contains(&control) && broken.detail.contains("way out"), "{}", broken.detail);
    b.down(&name, &Print(name.clone())).await.unwrap();
}

/// The steps `up --json` names in its `timings`, as CI logs show them (milliseconds each).
const UP_STEPS: [&str; 9] = [
    "binaries_ms",
    "images_ms",
    "networks_ms",
    "bundle_create_ms",
    "bundle_start_ms",
    "agent_ms",
    "start_check_ms",
    "record_ms",
    "total_ms",
];

#[tokio::test(flavor = "multi_thread")]
async fn up_json_reports_the_time_of_each_named_step() {
    let name = unique("timings");
    let _cleanup = Cleanup(vec![name.clone()]);
    if backend(DockerOptions::default()).await.is_none() {
        return;
    }
    let ws = support::workspace();
    let spec = ws.path().join("bottle.toml");
    std::fs::create_dir(ws.path().join("w")).unwrap();
    std::fs::write(&spec, format!("name = \"{name}\"\nworkspace = \"w\"\n[egress]\nallow = [\"allowed.test\"]\n"))
        .unwrap();
    let cli =
        |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_bottle-core")).args(args).output().unwrap();
    let out = cli(&["--backend", "docker", "--json", "up", "-f", spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["name"], name.as_str(), "the status is there beside the timings");
    assert_eq!(reply["allowlist"]["verdict"], "verified", "{stderr}");
    let timings = reply["timings"].as_object().unwrap_or_else(|| panic!("no timings object: {reply}"));
    let mut named: Vec<&str> = timings.keys().map(String::as_str).collect();
    let mut expected = UP_STEPS.to_vec();
    named.sort_unstable();
    expected.sort_unstable();
    assert_eq!(named, expected, "{reply}");
    assert!(timings.values().all(serde_json::Value::is_u64), "whole milliseconds: {reply}");
    let down = cli(&["--backend", "docker", "down", &name]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_network_that_is_not_internal_is_refused() {
    let name = unique("extnet");
    let _cleanup = Cleanup(vec![name.clone()]);
    let network = format!("bottle-0canary-{name}");
    let label = format!("{CANARY_LABEL}={name}");
    let out = std::process::Command::new("docker").args(["network", "create", "--label", &label, &network]).output();
    assert!(out.unwrap().status.success());
    let options = DockerOptions {
        sidecar: SidecarOptions { canary_networks: vec![network.clone()], ..Default::default() },
        start_check: false,
    };
    let Some(b) = backend(options).await else { return };
    let (spec, _ws) = spec(&name);
    let e = format!("{:#}", b.up(&spec, &Print(name.clone())).await.unwrap_err());
    assert!(e.contains(&network) && e.contains("--internal"), "{e}");
    assert!(b.status(&name).await.is_err(), "nothing of the bottle is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_engine_images_and_free_subnets() {
    let Some(b) = backend(plumbing()).await else { return };
    let checks = b.doctor().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["engine", "agent image", "bundle image", "subnet pool"]);
    let engine = &checks[0];
    assert!(engine.ok && engine.detail.contains("API"), "{engine:?}");
    assert!(checks.iter().all(|c| c.ok || !c.fix.is_empty()), "every failed check says what to do: {checks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_runs_as_the_workspace_owner() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("owner");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, ws) = spec(&name);
    std::os::unix::fs::chown(ws.path(), Some(4242), Some(4243)).unwrap();
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let out = sh(&b, &name, "id -u; id -g; touch /workspace/mine && touch $HOME/ok && echo wrote").await;
    assert_eq!(out.stdout, "4242\n4243\nwrote\n", "{out:?}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(ws.path().join("mine")).unwrap().uid(), 4242);
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_build_context_becomes_the_agent_image() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("build");
    let _cleanup = Cleanup(vec![name.clone()]);
    let base = bottle_core::images::ensure_agent_image(b.docker(), &Print(name.clone())).await.unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {base}\nRUN echo built-here > /built\n")).unwrap();
    let (mut spec, _ws) = spec(&name);
    spec.image = ImageSource::Build { context: ctx.path().to_path_buf(), dockerfile: None };
    b.up(&spec, &Print(name.clone())).await.unwrap();
    assert_eq!(sh(&b, &name, "cat /built").await.stdout, "built-here\n");
    b.down(&name, &Print(name.clone())).await.unwrap();
    let _ = b
        .docker()
        .remove_image(
            &format!("bottle-build-{name}:latest"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_and_the_token_live_only_in_the_bundle() {
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("secrets");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (mut spec, ws) = spec(&name);
    let value = "never-leave-3f9a1c";
    let secret_file = ws.path().join("..").join(format!("{name}.secret"));
    std::fs::write(&secret_file, value).unwrap();
    spec.secrets = vec![bottle_core::spec::Secret {
        name: "API_KEY".into(),
        from: bottle_core::spec::SecretSource::File(secret_file.clone()),
    }];
    b.up(&spec, &Print(name.clone())).await.unwrap();
    let token = b.control_endpoint(&name).await.unwrap().token;

    // In the bundle: the secrets file, owned by the bundle's user, readable by it alone.
    let bundle = labels::object_name(&name, labels::ROLE_BUNDLE);
    let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
        .path("/etc/bottle/secrets.toml")
        .build();
    let tar: Vec<bytes::Bytes> =
        futures_util::TryStreamExt::try_collect(b.docker().download_from_container(&bundle, Some(options)))
            .await
            .unwrap();
    let tar = tar.concat();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let header = entry.header().clone();
    assert_eq!((header.uid().unwrap(), header.mode().unwrap() & 0o777), (65534, 0o400));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
    assert!(text.contains(value), "{text}");

    // Nowhere the agent or `docker inspect` can see.
    for role in [labels::ROLE_AGENT, labels::ROLE_BUNDLE] {
        let inspect = b.docker().inspect_container(&labels::object_name(&name, role), None).await.unwrap();
        let json = serde_json::to_string(&inspect).unwrap();
        assert!(!json.contains(value) && !json.contains(&token), "{role} inspect shows a secret");
    }
    let seen =
        sh(&b, &name, &format!("env; ls -la /etc/bottle 2>&1; grep -rs {value} /etc /home /tmp; echo done")).await;
    assert!(seen.stdout.ends_with("done\n") && !seen.stdout.contains(value), "{seen:?}");
    assert!(seen.stdout.contains("No such file or directory"), "no /etc/bottle in the agent: {seen:?}");
    b.down(&name, &Print(name.clone())).await.unwrap();
    std::fs::remove_file(secret_file).unwrap();
}

/// Python in the agent: `n` requests through the bundle's proxy, each on a connection of its
/// own, for `http://<host>/` where `{i}` in `host` is the request's number; prints how many got a 403.
fn proxy_flood(n: usize, host: &str) -> Vec<String> {
    let script = format!(
        "import os, socket, urllib.parse\n\
         p = urllib.parse.urlsplit(os.environ['HTTP_PROXY'])\n\
         def ask(host):\n\
         \x20s = socket.create_connection((p.hostname, p.port), timeout=10)\n\
         \x20s.sendall(f'GET http://{{host}}/ HTTP/1.1\\r\\nHost: {{host}}\\r\\nConnection: close\\r\\n\\r\\n'.encode())\n\
         \x20r = s.recv(64)\n\
         \x20s.close()\n\
         \x20return r.split(b' ')[1] == b'403'\n\
         print(sum(ask(f'{host}') for i in range({n})))\n"
    );
    vec!["python3".into(), "-c".into(), script]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_blocks_from_the_agent_is_coalesced_and_its_log_lines_are_rate_limited() {
    use bottle_bundle::events::coalesce::{MAX_KEYS, WINDOW};
    use bottle_bundle::logging::LINES_PER_INTERVAL;
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("flood");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    let started = std::time::Instant::now();
    b.up(&spec, &Print(name.clone())).await.unwrap();

    // One refusal, repeated: one event per window plus one follow-up with the repeats' number.
    const SAME: usize = 600;
    let flood_start = std::time::Instant::now();
    let out = b.exec(&name, &proxy_flood(SAME, "same.blocked.test")).await.unwrap();
    let windows = flood_start.elapsed().as_secs() / WINDOW.as_secs() + 1;
    assert_eq!(out.stdout.trim(), SAME.to_string(), "every request was refused: {out:?}");
    let mut counts = Vec::new();
    for _ in 0..40 {
        counts = blocks_of(&event_stream(&b, &name).await.0, "same.blocked.test");
        if counts.iter().sum::<u64>() == SAME as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts.iter().sum::<u64>(), SAME as u64, "the counts add up to the refusals: {counts:?}");
    assert!(counts.len() as u64 <= 2 * windows, "{} events for {SAME} refusals in {windows} windows", counts.len());

    // Many destinations: events stop at the tracked-key cap, and log lines at the rate limit.
    const DISTINCT: usize = 2 * MAX_KEYS + 200;
    let out = b.exec(&name, &proxy_flood(DISTINCT, "t{i}.blocked.test")).await.unwrap();
    assert_eq!(out.stdout.trim(), DISTINCT.to_string(), "{out:?}");
    let mut distinct = Vec::new();
    for _ in 0..40 {
        let text = event_stream(&b, &name).await.0;
        distinct = blocks_of(&text, "t");
        distinct.extend(blocks_of(&text, bottle_bundle::events::OVERFLOW));
        if distinct.iter().sum::<u64>() == DISTINCT as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(distinct.iter().sum::<u64>(), DISTINCT as u64, "{distinct:?}");
    let options = bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).stderr(true).build();
    let logs = b.docker().logs(&labels::object_name(&name, labels::ROLE_BUNDLE), Some(options));
    let logs: Vec<bollard::container::LogOutput> = futures_util::TryStreamExt::try_collect(logs).await.unwrap();
    let logs: String = logs.iter().map(|l| l.to_string()).collect();
    let seconds = started.elapsed().as_secs() + 1;
    let lines = logs.lines().count() as u64;
    assert!(logs.contains("log lines suppressed"), "the flood was rate limited: {lines} lines");
    assert!(
        lines <= (u64::from(LINES_PER_INTERVAL) + 1) * (seconds + 1),
        "{lines} log lines in {seconds} s, more than the rate limit lets through"
    );
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn both_containers_log_to_rotated_files_of_bounded_size() {
    use bottle_core::engine::container::{LOG_DRIVER, LOG_MAX_FILES, LOG_MAX_SIZE};
    let Some(b) = backend(plumbing()).await else { return };
    let name = unique("logs");
    let _cleanup = Cleanup(vec![name.clone()]);
    let (spec, _ws) = spec(&name);
    b.up(&spec, &Print(name.clone())).await.unwrap();
    for role in [labels::ROLE_AGENT, labels::ROLE_BUNDLE] {
        let inspect = b.docker().inspect_container(&labels::object_name(&name, role), None).await.unwrap();
        let log = inspect.host_config.and_then(|h| h.log_config).expect("a log config");
        let config = log.config.unwrap_or_default();
        assert_eq!(log.typ.as_deref(), Some(LOG_DRIVER), "{role}");
        assert_eq!(config.get("max-size").map(String::as_str), Some(LOG_MAX_SIZE), "{role}: {config:?}");
        assert_eq!(config.get("max-file").map(String::as_str), Some(LOG_MAX_FILES), "{role}: {config:?}");
    }
    b.down(&name, &Print(name.clone())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_image_runs_its_agent_as_non_root_unless_the_spec_opts_out() {
    let Some(b) = backend(plumbing()).await else { return };
    let (name, root_name) = (unique("nonroot"), unique("asroot"));
    let _cleanup = Cleanup(vec![name.clone(), root_name.clone()]);
    let base = bottle_core::images::ensure_agent_image(b.docker(), &Print(name.clone())).await.unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {base}\nUSER root\n")).unwrap();
    let (mut own, _ws) = spec(&name);
    own.image = ImageSource::Build { context: ctx.path().to_path_buf(), dockerfile: None };
    b.up(&own, &Print(name.clone())).await.unwrap();
    let uid = sh(&b, &name, "id -u").await.stdout;
    assert!(!uid.is_empty() && uid.trim() != "0", "the image says root, the agent is not: {uid:?}");
    assert!(!b.status(&name).await.unwrap().detail.contains("run_as_image_user"));

    let image = format!("bottle-build-{name}:latest");
    let (mut root, _ws2) = spec(&root_name);
    root.image = ImageSource::Reference(image.clone());
    root.run_as_image_user = true;
    b.up(&root, &Print(root_name.clone())).await.unwrap();
    assert_eq!(sh(&b, &root_name, "id -u").await.stdout, "0\n", "opted out: the image's own user");
    let status = b.status(&root_name).await.unwrap();
    assert!(status.detail.contains("run_as_image_user"), "status shows the opt-out: {status:?}");
    for n in [&name, &root_name] {
        b.down(n, &Print(n.clone())).await.unwrap();
    }
    let _ = b.docker().remove_image(&image, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
}

/// The bundle's process, SIGKILLed from the host as the engine's OOM killer would, while the
/// kill switch is engaged: the engine restarts it, egress stays refused, `status` says the
/// bottle is degraded and why, and only `up` of the name (which runs the start check again)
/// makes it verified once more.
#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_killed_with_the_kill_switch_on_comes_back_refusing_and_unverified() {
    let Some(probe) = backend(plumbing()).await else { return };
    let name = unique("restart");
    let _cleanup = Cleanup(vec![name.clone()]);
    let b = with_canary(&probe, &name).await;
    let (spec, _ws) = spec(&name);
    assert_eq!(b.up(&spec, &Print(name.clone())).await.unwrap().allowlist.verdict, Verdict::Verified);
    let fetch = "curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://allowed.test/";
    assert_eq!(sh(&b, &name, fetch).await.stdout, "200", "the allowed canary before the kill switch");
    let control = || async {
        bottle_core::control_client::ControlClient::new(&b.control_endpoint(&name).await.unwrap()).unwrap()
    };
    control().await.kill(true).await.unwrap();
    assert_eq!(sh(&b, &name, fetch).await.stdout, "403", "the kill switch refuses");

    let bundle = labels::object_name(&name, labels::ROLE_BUNDLE);
    let pid = support::docker(&["inspect", "-f", "{{.State.Pid}}", &bundle]);
    let image = bottle_core::images::ensure_agent_image(b.docker(), &Print("killer")).await.unwrap();
    support::docker(&["run", "--rm", "--pid=host", "--network", "none", &image, "sh", "-c", &format!("kill -9 {pid}")]);
    let mut restarted = false;
    for _ in 0..100 {
        let state = support::docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", &bundle]);
        if state != "0 true" && state.ends_with(" true") && b.control_endpoint(&name).await.is_ok() {
            restarted = control().await.health().await.is_ok();
            if restarted {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(restarted, "the engine did not restart the killed bundle within 20 s");

    assert!(control().await.health().await.unwrap().kill_switch, "the kill switch survived the restart");
    assert_eq!(sh(&b, &name, fetch).await.stdout, "403", "egress after the restart");
    let st = b.status(&name).await.unwrap();
    assert_eq!(st.state, BottleState::Degraded, "{st:?}");
    assert!(st.detail.contains("restarted 1 time") && st.detail.contains("SIGKILL"), "{st:?}");
    assert_eq!(st.allowlist.verdict, Verdict::NotVerified, "{:?}", st.allowlist);

    let st = b.up(&spec, &Print(name.clone())).await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("running", Verdict::Verified), "{st:?}");
    assert!(control().await.health().await.unwrap().kill_switch, "a re-check releases nothing");
    b.down(&name, &Print(name.clone())).await.unwrap();
}
