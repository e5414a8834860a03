//! `SmolmachinesBackend` end to end against the smolvm test double, with a
//! stand-in for the Docker-side bundle whose "bundle" and "canary" are real
//! listeners on two host addresses of the test's own. What is real: the
//! backend's ordering, the preflight's TCP connect, the Smolfile, every smolvm
//! argv, the start check's verdict logic, and every packet: the probes are real
//! curl in the double's guest network namespace, refused by its policy or
//! relayed from the host. What is stood in for: the VMM. `smolvm_host.rs` runs
//! the same backend with the real Docker side. Needs root (skips, saying so).

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bottle_core::backend::{BackendKind, BottleBackend, BottleState, ControlEndpoint, Error, Progress, Verdict};
use bottle_core::smolvm::{
    BundleAddr, BundleEndpoint, EgressTracker, HostSide, SmolAllowlistStatus, SmolmachinesBackend, Smolvm,
};
use bottle_core::spec::Spec;
use bottle_protocol::EventKind;
use smolvm_support::{Double, HostAddrs, root_or_skip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Quiet;
impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

/// Start-check records, shared by the hosts of "different processes".
type Records = Arc<Mutex<HashMap<String, SmolAllowlistStatus>>>;

/// Bundle on one host address (the VM's whole allowlist), canary on another.
struct FakeHost {
    _addrs: HostAddrs,
    bundle: BundleEndpoint,
    canary: SocketAddr,
    tar: PathBuf,
    placed: Mutex<Vec<String>>,
    removed: Mutex<Vec<String>>,
    records: Records,
}

/// Answers every request as the bundle's proxy refuses a name outside its allowlist (the
/// preflight looks for that), and the double really connects to allowed addresses from the host.
fn serve_http(l: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 403 Forbidden\r\nX-Bottle-Block: policy:not-allowed\r\ncontent-length: 0\r\n\r\n",
                    )
                    .await;
            });
        }
    });
}

impl FakeHost {
    async fn new(dir: &std::path::Path, bundle_listening: bool, canary_listening: bool) -> Self {
        let addrs = HostAddrs::new();
        let bundle_l = TcpListener::bind((addrs.bundle, 0)).await.unwrap();
        let canary_l = TcpListener::bind((addrs.canary, 0)).await.unwrap();
        let bundle_port = bundle_l.local_addr().unwrap().port();
        let canary = canary_l.local_addr().unwrap();
        if bundle_listening {
            serve_http(bundle_l);
        }
        if canary_listening {
            serve_http(canary_l);
        }
        let tar = dir.join("agent.tar");
        std::fs::write(&tar, b"docker save output stand-in").unwrap();
        Self {
            bundle: BundleEndpoint {
                addr: BundleAddr { ip: IpAddr::V4(addrs.bundle), proxy_port: bundle_port },
                control: ControlEndpoint { url: "http://127.0.0.1:1".into(), token: "t".into() },
            },
            canary,
            tar,
            placed: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            records: Records::default(),
            _addrs: addrs,
        }
    }
}

#[async_trait]
impl HostSide for FakeHost {
    async fn place_bundle(&self, spec: &Spec, _: &dyn Progress) -> anyhow::Result<BundleEndpoint> {
        self.placed.lock().unwrap().push(spec.name.clone());
        self.removed.lock().unwrap().retain(|b| b != &spec.name);
        Ok(self.bundle.clone())
    }
    async fn bundle(&self, bottle: &str) -> anyhow::Result<Option<BundleEndpoint>> {
        let gone = self.removed.lock().unwrap().iter().any(|b| b == bottle);
        Ok((!gone).then(|| self.bundle.clone()))
    }
    async fn bottles(&self) -> anyhow::Result<Vec<String>> {
        let removed = self.removed.lock().unwrap();
        Ok(self.placed.lock().unwrap().iter().filter(|b| !removed.contains(b)).cloned().collect())
    }
    async fn remove_bundle(&self, bottle: &str, _: &dyn Progress) -> anyhow::Result<()> {
        self.removed.lock().unwrap().push(bottle.to_owned());
        self.records.lock().unwrap().remove(bottle);
        Ok(())
    }
    async fn record_check(&self, bottle: &str, s: &SmolAllowlistStatus) -> anyhow::Result<()> {
        self.records.lock().unwrap().insert(bottle.to_owned(), s.clone());
        Ok(())
    }
    async fn recorded_check(&self, bottle: &str) -> anyhow::Result<Option<SmolAllowlistStatus>> {
        Ok(self.records.lock().unwrap().get(bottle).cloned())
    }
    async fn export_agent_image(&self, _: &Spec, _: &dyn Progress) -> anyhow::Result<PathBuf> {
        Ok(self.tar.clone())
    }
    async fn canary(&self, _: &str) -> anyhow::Result<SocketAddr> {
        Ok(self.canary)
    }
    async fn doctor(&self) -> Vec<bottle_core::backend::Check> {
        Vec::new()
    }
    async fn bundle_logs(&self, _: &str) -> anyhow::Result<String> {
        Ok("bundle log".into())
    }
    async fn bundle_log_stream(
        &self,
        _: &str,
        _: Option<usize>,
        _: bool,
    ) -> anyhow::Result<bottle_core::backend::LogStream<'_>> {
        let chunk = bottle_core::backend::LogChunk { stderr: false, bytes: "bundle log\n".into() };
        Ok(Box::pin(futures_util::stream::iter([Ok(chunk)])))
    }
}

fn spec(name: &str, workspace: PathBuf) -> Spec {
    Spec { backend: Some(BackendKind::Smolmachines), ..Spec::new(name, workspace) }
}

async fn backend(d: &Double, host: FakeHost) -> SmolmachinesBackend {
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    SmolmachinesBackend::new(vm, Box::new(host), d.dir.path().join("smolfiles"))
}

#[tokio::test]
async fn up_verifies_the_allowlist_then_status_list_exec_down() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let host = FakeHost::new(d.dir.path(), true, true).await;
    let canary = host.canary;
    let proxy_port = host.bundle.addr.proxy_port;
    let bundle_ip = host.bundle.addr.ip;
    let b = backend(&d, host).await;
    let st = b.up(&spec("demo", d.dir.path().into()), &Quiet).await.unwrap();
    assert_eq!(st.state, BottleState::Running, "{st:?}");
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{:?}", st.allowlist);
    assert_eq!(st.allowlist.allowlist, [format!("{bundle_ip}/32")]);
    assert!(st.allowlist.mechanism.contains("smolvm 1.9.3 virtio-net"), "{}", st.allowlist.mechanism);
    assert!(
        st.allowlist.detail.contains("refused") && st.allowlist.detail.contains("smolvm recorded both denials"),
        "{}",
        st.allowlist.detail
    );
    assert!(st.allowlist.checked_at.is_some());

    let mut calls = d.machine_calls();
    assert_eq!(calls.remove(0), "machine ls --json", "the name is checked first");
    assert!(
        calls[0].starts_with("machine create -n bottle-demo -s ")
            && calls[0].contains("--net-backend virtio-net --image "),
        "{calls:?}"
    );
    assert_eq!(calls[1], "machine start -n bottle-demo");
    assert!(
        calls[2].ends_with(&format!("-x http://{bundle_ip}:{proxy_port} http://bottle-start-check.invalid/")),
        "{calls:?}"
    );
    assert!(calls[3].ends_with(&format!("http://{canary}/")), "{calls:?}");
    assert!(calls[4].ends_with(".bottle-start-check.invalid/"), "the DNS probe: {calls:?}");
    assert_eq!(calls[5], "machine egress-events -n bottle-demo --limit 200 --json");
    assert_eq!(calls[6], "machine status -n bottle-demo --json", "no agent command, so nothing launched");

    let mut tracker = EgressTracker::default();
    let events = b.poll_denials("demo", &mut tracker).await.unwrap().unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.id, e.bottle.as_str(), &e.kind)).collect();
    match kinds.as_slice() {
        [
            (0, "demo", EventKind::EgressBlocked { rule, target, method, .. }),
            (0, "demo", EventKind::EgressBlocked { target: name, method: resolve, .. }),
        ] => {
            assert_eq!((rule.as_str(), target.as_str()), ("vmm:egress-policy", canary.to_string().as_str()));
            assert_eq!(method, "connect");
            assert_eq!(resolve, "resolve");
            assert!(name.ends_with(".bottle-start-check.invalid"), "{name}");
        }
        other => panic!("expected the canary's and the DNS probe's denials once each: {other:?}"),
    }
    assert_eq!(b.poll_denials("demo", &mut tracker).await.unwrap(), Some(vec![]), "not reported twice");

    assert_eq!(b.status("demo").await.unwrap().state, BottleState::Running);
    let listed = b.list().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["demo"]);
    let out = b.exec("demo", &["echo".into(), "hi".into()]).await.unwrap();
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(b.control_endpoint("demo").await.unwrap().token, "t");

    b.down("demo", &Quiet).await.unwrap();
    assert!(b.list().await.unwrap().is_empty());
    let again = b.down("demo", &Quiet).await.unwrap_err();
    assert!(matches!(again, Error::NotFound { .. }), "{again:?}");
    // Each operation on a name smolvm has no machine of says so itself.
    assert!(matches!(b.status("demo").await, Err(Error::NotFound { .. })));
    assert!(matches!(b.exec("demo", &["true".into()]).await, Err(Error::NotFound { .. })));
    assert!(matches!(b.control_endpoint("demo").await, Err(Error::NotFound { .. })), "bundle removed");
}

#[tokio::test]
async fn an_unenforced_policy_fails_the_start_check_and_the_vm_is_stopped() {
    if !root_or_skip() {
        return;
    }
    let d = Double::leaking("1.9.3", "0.0.0.0/0");
    let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
    let err = b.up(&spec("leaky", d.dir.path().into()), &Quiet).await.unwrap_err().to_string();
    assert!(err.contains("the allowlist was not seen to hold, VM stopped"), "{err}");
    assert!(err.contains("outside the allowlist: the egress policy is not enforced"), "{err}");
    let st = b.status("leaky").await.unwrap();
    assert_eq!(st.state, BottleState::Stopped);
    assert_eq!(st.allowlist.verdict, Verdict::Failed);
    assert_eq!(d.machine_calls().last().unwrap(), "machine status -n bottle-leaky --json");
    assert!(d.machine_calls().contains(&"machine stop -n bottle-leaky".to_owned()));
}

#[tokio::test]
async fn an_unreachable_bundle_stops_up_before_any_vm_exists() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let b = backend(&d, FakeHost::new(d.dir.path(), false, true).await).await;
    let err = b.up(&spec("noroute", d.dir.path().into()), &Quiet).await.unwrap_err().to_string();
    assert!(err.starts_with("preflight: the host cannot reach the bundle's proxy"), "{err}");
    assert_eq!(d.machine_calls(), ["machine ls --json"], "no VM made");
    // No VM was made, but the bundle was: down still removes it.
    b.down("noroute", &Quiet).await.unwrap();
    assert!(d.machine_calls().iter().all(|c| c == "machine ls --json"), "{:?}", d.machine_calls());
    assert!(matches!(b.control_endpoint("noroute").await, Err(Error::NotFound { .. })), "bundle removed");
}

#[tokio::test]
async fn a_silent_canary_proves_nothing_so_up_refuses() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let b = backend(&d, FakeHost::new(d.dir.path(), true, false).await).await;
    let err = b.up(&spec("nocanary", d.dir.path().into()), &Quiet).await.unwrap_err().to_string();
    assert!(err.contains("does not accept connections from the host"), "{err}");
    let st = b.status("nocanary").await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("stopped", Verdict::NotVerified));
}

#[tokio::test]
async fn on_1_1_3_the_check_runs_without_a_denial_log() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.1.3");
    let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
    let st = b.up(&spec("older", d.dir.path().into()), &Quiet).await.unwrap();
    assert_eq!(st.allowlist.verdict, Verdict::Verified);
    assert!(st.allowlist.detail.contains("keeps no denial log"), "{}", st.allowlist.detail);
    assert!(d.machine_calls().iter().all(|c| !c.contains("egress-events")));
}

#[tokio::test]
async fn the_start_check_record_outlives_the_process_that_made_it() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let first_host = FakeHost::new(d.dir.path(), true, true).await;
    let records = first_host.records.clone();
    let first = backend(&d, first_host).await;
    first.up(&spec("carry", d.dir.path().into()), &Quiet).await.unwrap();
    // A new process (new backend value) reads the record the first one left.
    let mut second_host = FakeHost::new(d.dir.path(), true, true).await;
    second_host.records = records.clone();
    let second = backend(&d, second_host).await;
    let st = second.status("carry").await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("running", Verdict::Verified));
    // Without a record, a running VM is not trusted.
    records.lock().unwrap().clear();
    let st = second.status("carry").await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("degraded", Verdict::NotVerified));
}

#[tokio::test]
async fn up_refuses_a_name_whose_vm_exists_and_leaves_it_alone() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
    b.up(&spec("twice", d.dir.path().into()), &Quiet).await.unwrap();
    let err = b.up(&spec("twice", d.dir.path().into()), &Quiet).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(b.status("twice").await.unwrap().state, BottleState::Running);
}

#[tokio::test]
async fn event_source_merges_vmm_denials_once_and_only_where_smolvm_logs_them() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
    b.up(&spec("ev", d.dir.path().into()), &Quiet).await.unwrap();
    let mut source = b.event_source("ev").await.unwrap().expect("1.9.3 logs denials");
    let first = source.poll().await.unwrap();
    assert_eq!(first.len(), 2, "the canary's connect and the DNS probe's name: {first:?}");
    assert!(source.poll().await.unwrap().is_empty(), "de-duplicated across polls");

    let old = Double::new("1.1.3");
    let b = backend(&old, FakeHost::new(old.dir.path(), true, true).await).await;
    assert!(b.event_source("ev").await.unwrap().is_none());
}

/// The agent's command: started only after the check passed, with its secret-like env through
/// `--secret-env` (in no argv, no Smolfile), and never started in a VM that failed the check.
#[tokio::test]
async fn the_agent_starts_after_the_check_and_its_secrets_stay_out_of_smolvm_records() {
    if !root_or_skip() {
        return;
    }
    let secret = "sk-ant-h17-never-in-a-record";
    for (leak, should_run) in [("", true), ("0.0.0.0/0", false)] {
        let d = Double::leaking("1.9.3", leak);
        let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
        let ws = tempfile::tempdir().unwrap();
        let mut s = spec("agent", ws.path().into());
        // Written into the workspace (its working directory) by the agent itself, in the guest.
        s.command = vec!["/bin/sh".into(), "-c".into(), "echo \"$ANTHROPIC_API_KEY $LANG\" > started".into()];
        s.env.insert("ANTHROPIC_API_KEY".into(), secret.into());
        s.env.insert("LANG".into(), "C.UTF-8".into());
        let up = b.up(&s, &Quiet).await;
        let started = ws.path().join("started");
        let calls = d.machine_calls();
        let launched = calls.iter().position(|c| c.contains(" -d "));
        if should_run {
            up.unwrap();
            let check = calls.iter().position(|c| c.contains("egress-events")).unwrap();
            let launched = launched.expect("the agent was launched");
            assert!(launched > check, "launched after the check: {calls:?}");
            assert!(calls[launched].contains("--secret-env ANTHROPIC_API_KEY=BOTTLE_SMOLVM_SECRET_0"), "{calls:?}");
            for _ in 0..50 {
                if started.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(std::fs::read_to_string(&started).unwrap(), format!("{secret} C.UTF-8\n"));
        } else {
            assert!(up.is_err(), "a leaking VMM fails the check");
            assert!(launched.is_none() && !started.exists(), "the agent never ran: {calls:?}");
        }
        let smolfile = std::fs::read_to_string(d.dir.path().join("smolfiles/bottle-agent.Smolfile")).unwrap();
        let argv = std::fs::read_to_string(&d.log).unwrap();
        assert!(!smolfile.contains(secret) && !argv.contains(secret), "the value is in no record smolvm keeps");
        let state = std::fs::read_to_string(d.state.join("machines/bottle-agent.json")).unwrap();
        assert!(!state.contains(secret), "nor in the machine record");
        let _ = b.down("agent", &Quiet).await;
    }
}

/// With labels (1.8.0+), a machine is bottle's by its label, not by its name: a hand-made
/// `bottle-stray` is neither listed nor collected; before 1.8.0 the name prefix decides.
#[tokio::test]
async fn labels_decide_which_machines_are_bottles() {
    if !root_or_skip() {
        return;
    }
    for (version, listed) in [("1.9.3", false), ("1.1.3", true)] {
        let d = Double::new(version);
        let sf = d.dir.path().join("hand.Smolfile");
        std::fs::write(&sf, "net = true\n").unwrap();
        let made = std::process::Command::new(&d.bin)
            .args(["machine", "create", "-n", "bottle-stray", "-s"])
            .arg(&sf)
            .output()
            .unwrap();
        assert!(made.status.success());
        let b = backend(&d, FakeHost::new(d.dir.path(), true, true).await).await;
        let names: Vec<String> = b.list().await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names.contains(&"stray".to_owned()), listed, "{version}: {names:?}");
        assert!(!b.gc(true).await.unwrap().contains(&"stray".to_owned()), "created, not stopped");
    }
}
