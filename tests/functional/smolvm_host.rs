//! The smolmachines backend with its real Docker side: `DockerHost` places a
//! real bundle (networks, pinned IP, container) on the local engine with the
//! Docker backend's own `sidecar` code, exports a real image with `docker
//! save`, and the backend drives the smolvm TEST DOUBLE for the VM.
//!
//! What is real here: the bundle, its networks and its control plane; the
//! preflight (a TCP connect from the host to `<bundle-ip>:<proxy-port>`); the
//! archive; the connections the double makes from the host for destinations
//! inside the VM's allowlist (smolvm's virtio-net stack opens them on the host,
//! so the start check's "VM reaches the bundle proxy" is a real HTTP exchange
//! with the real bundle); and the canary, the real control plane on the
//! bundle's egress address; and every packet of the probes, sent by real curl in
//! the double's guest network namespace. What is stood in for: the VMM (the
//! double resets destinations outside `allow_cidrs`, and with
//! `SMOLVM_DOUBLE_LEAK=0.0.0.0/0` relays them too, as a non-enforcing VMM would).
//!
//! Each test creates uniquely named objects and removes them, also on panic.
//! Without a Docker engine (after `scripts/install-docker.sh`) the tests skip
//! and say why.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;
#[path = "../support/docker/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bottle_core::backend::{BackendKind, BottleBackend, Verdict};
use bottle_core::control_client::ControlClient;
use bottle_core::netpool::NetPool;
use bottle_core::sidecar::{SidecarOptions, labels};
use bottle_core::smolvm::{DockerHost, HostSide, SmolmachinesBackend, Smolvm};
use bottle_core::spec::{ImageSource, Resources, Spec};
use bottle_protocol::EventKind;
use bottle_protocol::config::DEFAULT_CONTROL_PORT;
use smolvm_support::{Double, root_or_skip};
use support::{Cleanup, Print};

/// Label on the test's own agent image, so cleanup finds it.
const TEST_LABEL: &str = "dev.bottle.test-smolhost";

/// The local engine, started by the project's script if needed; `None` (reason printed) if none answers.
async fn engine() -> Option<bollard::Docker> {
    if !support::engine().await {
        return None;
    }
    Some(bottle_core::engine::connect().await.expect("engine answers after install-docker.sh"))
}

/// A tiny agent image of this test's own, labelled for cleanup.
fn test_image(bottle: &str) -> String {
    let tag = format!("bottle-smolhost-test:{bottle}");
    smolvm_support::import_image(&tag, Some(&format!("{TEST_LABEL}={bottle}")));
    tag
}

fn spec(name: &str, image: &str, workspace: PathBuf) -> Spec {
    Spec {
        image: ImageSource::Reference(image.into()),
        allow: vec!["allowed.test".into()],
        resources: Resources { cpus: 1.0, memory_mib: 512, pids: 128 },
        backend: Some(BackendKind::Smolmachines),
        ..Spec::new(name, workspace)
    }
}

async fn backend(docker: &bollard::Docker, d: &Double, cache: &std::path::Path) -> SmolmachinesBackend {
    let host = DockerHost::new(docker.clone(), NetPool::from_env().unwrap(), SidecarOptions::default(), cache.into());
    let smolvm = Smolvm::at(d.bin.clone()).await.unwrap();
    SmolmachinesBackend::new(smolvm, Box::new(host), d.dir.path().join("smolfiles"))
}

fn unique(test: &str) -> String {
    format!("sh{}{test}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_bundle_placed_reached_from_the_host_checked_persisted_and_removed() {
    let Some(docker) = engine().await else { return };
    if !root_or_skip() {
        return;
    }
    let name = unique("a");
    let image = test_image(&name);
    let _cleanup = Cleanup { bottle: name.clone(), image: image.clone() };
    let d = Double::new("1.9.3");
    let cache = tempfile::tempdir().unwrap();
    let b = backend(&docker, &d, cache.path()).await;
    let progress = Print(name.clone());

    let st = b.up(&spec(&name, &image, d.dir.path().into()), &progress).await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("running", Verdict::Verified), "{st:?}");
    let vmm = st.allowlist.vmm.clone().expect("smolvm facts");
    assert_eq!(
        (vmm.runtime.as_str(), vmm.version.as_str(), vmm.net_backend.as_str()),
        ("smolvm", "1.9.3", "virtio-net")
    );

    // The bundle: a real container of this backend, at the pinned IP the VM's allowlist names.
    let bundle = docker.inspect_container(&labels::object_name(&name, labels::ROLE_BUNDLE), None).await.unwrap();
    let l = bundle.config.unwrap().labels.unwrap();
    assert_eq!(l[labels::BACKEND], "smolmachines");
    let bundle_ip: IpAddr = l[labels::BUNDLE_IP].parse().unwrap();
    assert_eq!(st.allowlist.allowlist, [format!("{bundle_ip}/32")]);
    let smolfile = std::fs::read_to_string(d.dir.path().join(format!("smolfiles/bottle-{name}.Smolfile"))).unwrap();
    assert!(smolfile.contains(&format!("allow_cidrs = [\"{bundle_ip}/32\"]")), "{smolfile}");

    // Its agent network is internal but keeps the host's address (no inhibit_ipv4), so the host routes to it.
    let agent_net = docker.inspect_network(&labels::object_name(&name, labels::ROLE_AGENT_NET), None).await.unwrap();
    assert_eq!(agent_net.internal, Some(true));
    assert!(!agent_net.options.unwrap_or_default().contains_key("com.docker.network.bridge.inhibit_ipv4"));

    // Nothing host-only on the VM's address: the control plane refuses there and answers on loopback.
    let on_bundle_ip = tokio::net::TcpStream::connect(SocketAddr::new(bundle_ip, DEFAULT_CONTROL_PORT)).await;
    assert!(on_bundle_ip.is_err(), "the control plane must not listen on the bundle IP");
    let endpoint = b.control_endpoint(&name).await.unwrap();
    assert!(endpoint.url.starts_with("http://127.0.0.1:"), "{}", endpoint.url);
    assert!(ControlClient::new(&endpoint).unwrap().health().await.unwrap().ok);

    // The VM was given a real `docker save` archive, cached by image id.
    let create = d.machine_calls().into_iter().find(|c| c.starts_with("machine create")).unwrap();
    let archive = PathBuf::from(create.split(" --image ").nth(1).unwrap().split(' ').next().unwrap());
    assert!(archive.starts_with(cache.path().join("smolvm-images")), "{create}");
    let entries: Vec<String> = tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(entries.iter().any(|e| e == "manifest.json"), "{entries:?}");
    // A second export of the same image is the cached archive, not a new save.
    let saved_at = std::fs::metadata(&archive).unwrap().modified().unwrap();
    let host =
        DockerHost::new(docker.clone(), NetPool::from_env().unwrap(), SidecarOptions::default(), cache.path().into());
    let again = host.export_agent_image(&spec(&name, &image, d.dir.path().into()), &progress).await.unwrap();
    assert_eq!(again, archive);
    assert_eq!(std::fs::metadata(&again).unwrap().modified().unwrap(), saved_at);

    // The start check's canary was the control plane on the egress network, refused and logged by the
    // VMM; its DNS probe was refused by smolvm's DNS filter and logged too.
    let mut source = b.event_source(&name).await.unwrap().expect("1.9.3 keeps a denial log");
    let events = source.poll().await.unwrap();
    let targets: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::EgressBlocked { target, rule, method, .. } if rule == "vmm:egress-policy" => {
                Some(format!("{method} {target}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(targets.len(), 2, "{events:?}");
    assert!(
        targets[0].starts_with("connect ") && targets[0].ends_with(&format!(":{DEFAULT_CONTROL_PORT}")),
        "{targets:?}"
    );
    assert!(targets[1].starts_with("resolve ") && targets[1].ends_with(".bottle-start-check.invalid"), "{targets:?}");

    // The CLI, as a separate process on the same engine and smolvm: status with the VMM's facts,
    // and the VMM's denial merged into the bundle's event stream.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-core"))
            .args(["--backend", "smolmachines", "--json"])
            .args(args)
            .env("BOTTLE_SMOLVM", &d.bin)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let status: serde_json::Value = serde_json::from_str(&cli(&["status", &name])).unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(status["allowlist"]["verdict"], "verified");
    assert_eq!(status["allowlist"]["vmm"]["net_backend"], "virtio-net");
    assert_eq!(status["allowlist"]["vmm"]["version"], "1.9.3");
    let lines: Vec<serde_json::Value> =
        cli(&["events", &name]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let vmm: Vec<_> = lines.iter().filter(|e| e["rule"] == "vmm:egress-policy").collect();
    assert_eq!(vmm.len(), 2, "the canary's connect and the DNS probe: {lines:?}");
    assert_eq!((vmm[0]["id"].as_u64(), vmm[0]["bottle"].as_str()), (Some(0), Some(name.as_str())));

    // A new process reads the verdict back from the bundle.
    let fresh = backend(&docker, &d, cache.path()).await;
    let again = fresh.status(&name).await.unwrap();
    assert_eq!((again.state.as_str(), again.allowlist.verdict), ("running", Verdict::Verified), "{again:?}");
    assert_eq!(again.allowlist.checked_at, st.allowlist.checked_at);
    assert!(fresh.logs(&name).await.unwrap().starts_with("==> bundle"));
    let checks = fresh.doctor().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[..2], ["smolvm", "engine"], "{checks:?}");

    // The bundle's process SIGKILLed from the host (the test runs as root): the engine restarts
    // it, and the bottle is degraded until it is checked again.
    let container = labels::object_name(&name, labels::ROLE_BUNDLE);
    let pid = support::docker(&["inspect", "-f", "{{.State.Pid}}", &container]);
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let mut after = None;
    for _ in 0..100 {
        if support::docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", &container]) == "1 true" {
            after = Some(fresh.status(&name).await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let after = after.expect("the engine restarted the killed bundle within 20 s");
    assert_eq!((after.state.as_str(), after.allowlist.verdict), ("degraded", Verdict::NotVerified), "{after:?}");
    assert!(after.detail.contains("restarted 1 time") && after.detail.contains("SIGKILL"), "{after:?}");

    fresh.down(&name, &progress).await.unwrap();
    assert!(fresh.list().await.unwrap().iter().all(|s| s.name != name));
    let left =
        bottle_core::sidecar::objects::containers(&docker, BackendKind::Smolmachines, Some(&name)).await.unwrap();
    assert!(left.is_empty(), "bundle removed: {left:?}");
    let nets =
        bottle_core::sidecar::network::list_networks(&docker, BackendKind::Smolmachines, Some(&name)).await.unwrap();
    assert!(nets.is_empty(), "networks removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vmm_that_lets_the_canary_through_fails_the_check_against_the_real_control_plane() {
    let Some(docker) = engine().await else { return };
    if !root_or_skip() {
        return;
    }
    let name = unique("b");
    let image = test_image(&name);
    let _cleanup = Cleanup { bottle: name.clone(), image: image.clone() };
    // The double relays every destination from the host: a VMM that does not enforce.
    let d = Double::leaking("1.9.3", "0.0.0.0/0");
    let cache = tempfile::tempdir().unwrap();
    let b = backend(&docker, &d, cache.path()).await;
    let err = b.up(&spec(&name, &image, d.dir.path().into()), &Print(name.clone())).await.unwrap_err().to_string();
    assert!(err.contains("outside the allowlist: the egress policy is not enforced"), "{err}");
    let st = b.status(&name).await.unwrap();
    assert_eq!((st.state.as_str(), st.allowlist.verdict), ("stopped", Verdict::Failed), "{st:?}");
    // gc would take the stopped VM and its bundle (dry run: other tests' bottles share the engine).
    assert!(b.gc(true).await.unwrap().contains(&name));
    b.down(&name, &Print(name.clone())).await.unwrap();
    assert!(
        bottle_core::sidecar::objects::containers(&docker, BackendKind::Smolmachines, Some(&name))
            .await
            .unwrap()
            .is_empty()
    );
}
