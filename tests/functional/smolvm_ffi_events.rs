//! The menu-bar app hears of a denial smolvm made: a VMM-level block reaches an FFI
//! `EventListener` (the trait Swift implements) as an `egressBlocked` event, through
//! `BottleManager::subscribe` and the core's one event stream (`bottles::follow`).
//!
//! Real here: the bundle, its networks and control plane on the local engine, the FFI's
//! manager and subscription. Stood in for: the VMM (the smolvm TEST DOUBLE, whose start
//! check leaves the canary's and the DNS probe's denials in its log, as smolvm 1.9.3 does).
//!
//! The manager opens its backend from the environment, as the app does, so the
//! subscribing half runs in a child process of this test with `CLAUDE_BOTTLE_BACKEND` and
//! `BOTTLE_SMOLVM` set there (this process never changes its own environment).

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;
#[path = "../support/docker/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_core::backend::{BackendKind, BottleBackend, Verdict};
use bottle_core::netpool::NetPool;
use bottle_core::sidecar::SidecarOptions;
use bottle_core::smolvm::{DockerHost, SmolmachinesBackend, Smolvm};
use bottle_core::spec::{ImageSource, Resources, Spec};
use bottle_ffi::{BottleEvent, BottleManager, BottleNotification, EventKind, EventListener};
use smolvm_support::{Double, root_or_skip};
use support::Cleanup;

/// Set in the child: the bottle whose events it subscribes to.
const LISTEN_TO: &str = "BOTTLE_TEST_LISTEN_TO";
/// How long the child waits for the denial; the first poll of the VMM's log is at once.
const WAIT: Duration = Duration::from_secs(30);
const TEST: &str = "a_vmm_denial_reaches_an_ffi_listener_as_egress_blocked";

/// Every event and the close reason, as the app's listener would get them.
#[derive(Default)]
struct Heard {
    events: Mutex<Vec<BottleEvent>>,
    closed: Mutex<Option<String>>,
}

impl EventListener for Heard {
    fn on_event(&self, event: BottleEvent) {
        self.events.lock().unwrap().push(event);
    }
    fn on_notification(&self, _: BottleNotification) {}
    fn on_closed(&self, reason: String) {
        *self.closed.lock().unwrap() = Some(reason);
    }
}

impl Heard {
    /// The `(method, target)` of each VMM denial heard so far.
    fn vmm_denials(&self) -> Vec<(String, String)> {
        let events = self.events.lock().unwrap();
        let vmm = events.iter().filter_map(|e| match &e.kind {
            EventKind::EgressBlocked { rule, method, target, client, .. } if rule == "vmm:egress-policy" => {
                assert!(client.starts_with("smolvm:"), "{client}");
                Some((method.clone(), target.clone()))
            }
            _ => None,
        });
        vmm.collect()
    }
}

/// The child's half: subscribe as the app does and wait for the VMM's denials.
async fn listen(name: String) {
    let manager = BottleManager::new();
    let heard = Arc::new(Heard::default());
    let sub = manager.subscribe(name.clone(), heard.clone()).await.expect("subscribe");
    let deadline = tokio::time::Instant::now() + WAIT;
    while heard.vmm_denials().len() < 2 && tokio::time::Instant::now() < deadline {
        assert!(heard.closed.lock().unwrap().is_none(), "closed: {:?}", heard.closed.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sub.cancel();
    let denials = heard.vmm_denials();
    assert_eq!(denials.len(), 2, "the start check's canary connect and DNS probe, once each: {denials:?}");
    assert_eq!(denials[0].0, "connect", "{denials:?}");
    assert!(denials[1].0 == "resolve" && denials[1].1.ends_with(".bottle-start-check.invalid"), "{denials:?}");
    let events = heard.events.lock().unwrap();
    assert!(events.iter().all(|e| e.bottle == name), "only this bottle's events");
    assert!(events.iter().any(|e| e.line.contains("egress blocked: connect")), "the line the CLI prints");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vmm_denial_reaches_an_ffi_listener_as_egress_blocked() {
    if let Ok(name) = std::env::var(LISTEN_TO) {
        return listen(name).await;
    }
    if !support::engine().await || !root_or_skip() {
        return;
    }
    let docker = bottle_core::engine::connect().await.unwrap();
    let name = format!("ffi{}", std::process::id());
    let image = format!("bottle-ffi-events-test:{name}");
    smolvm_support::import_image(&image, Some(&format!("dev.bottle.test-ffi-events={name}")));
    let _cleanup = Cleanup { bottle: name.clone(), image: image.clone() };
    let d = Double::new("1.9.3");
    let cache = tempfile::tempdir().unwrap();
    let host = DockerHost::new(docker, NetPool::from_env().unwrap(), SidecarOptions::default(), cache.path().into());
    let smolvm = Smolvm::at(d.bin.clone()).await.unwrap();
    let b = SmolmachinesBackend::new(smolvm, Box::new(host), d.dir.path().join("smolfiles"));
    let spec = Spec {
        image: ImageSource::Reference(image.clone()),
        allow: vec!["allowed.test".into()],
        resources: Resources { cpus: 1.0, memory_mib: 512, pids: 128 },
        backend: Some(BackendKind::Smolmachines),
        ..Spec::new(&name, d.dir.path())
    };
    let st = b.up(&spec, &support::Print(name.clone())).await.unwrap();
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{st:?}");

    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
        .env(LISTEN_TO, &name)
        .env("CLAUDE_BOTTLE_BACKEND", "smolmachines")
        .env("BOTTLE_SMOLVM", &d.bin)
        .output()
        .await
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "the listening child failed:\n{said}");
    assert!(said.contains("1 passed"), "the child ran the listening half:\n{said}");
    b.down(&name, &support::Print(name.clone())).await.unwrap();
}
