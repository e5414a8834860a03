//! Escape-suite hook for the smolmachines backend: boots a REAL smolvm VM
//! behind a REAL bundle, through exactly the code `bottle-core --backend
//! smolmachines up` runs (`DockerHost` + `SmolmachinesBackend`), and checks
//! that its allowlist holds. It runs only where that can mean something and
//! otherwise prints why it skipped:
//! - a real `smolvm` (BOTTLE_SMOLVM or PATH) that passes the version gate;
//! - a hypervisor: macOS (HVF), or a usable /dev/kvm that is not nested PVM
//!   (libkrun's guest kernel fails there with KVM_EXIT_INTERNAL_ERROR);
//! - a Docker engine for the bundle (if the host cannot route to it, `up`'s
//!   preflight fails the test and says what to fix).
//!
//! The agent image is bottle's default (whatever `core/src/images` resolves,
//! handed to smolvm as a `docker save` of it), or `BOTTLE_ESCAPE_AGENT_IMAGE`
//! (any local image with curl and sh). Nothing outside this host is contacted
//! by the test itself: the start check's canary is the bundle's control plane
//! on its egress network, and its DNS probe a `.invalid` name.

#[path = "../support/skip.rs"]
mod skip;
use bottle_core::backend::{BackendKind, BottleBackend, Progress, Verdict};
use bottle_core::smolvm::{DockerHost, SmolmachinesBackend, Smolvm};
use bottle_core::spec::{ImageSource, Spec};

fn hypervisor() -> Result<(), String> {
    if cfg!(target_os = "macos") {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm is not usable: {e}"))?;
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return Err("KVM here is nested PVM (kvm_pvm loaded); libkrun's guest kernel cannot boot on it".into());
    }
    Ok(())
}

async fn backend() -> Result<SmolmachinesBackend, String> {
    let smolvm = Smolvm::discover(None).await.map_err(|e| format!("no usable real smolvm: {e}"))?;
    hypervisor()?;
    let host = DockerHost::connect().await.map_err(|e| format!("no Docker engine for the bundle: {e:#}"))?;
    let state = std::env::temp_dir().join(format!("bottle-escape-{}", std::process::id()));
    Ok(SmolmachinesBackend::new(smolvm, Box::new(host), state))
}

struct Print;
impl Progress for Print {
    fn step(&self, m: &str) {
        eprintln!("escape: {m}");
    }
}

#[tokio::test]
async fn real_smolvm_vm_reaches_only_its_bundle() {
    let backend = match backend().await {
        Ok(b) => b,
        Err(why) => {
            skip::skipped(why);
            return;
        }
    };
    let workspace = tempfile::tempdir().unwrap();
    let image = match std::env::var("BOTTLE_ESCAPE_AGENT_IMAGE") {
        Ok(r) if !r.is_empty() => ImageSource::Reference(r),
        _ => ImageSource::Default,
    };
    let spec = Spec {
        image,
        backend: Some(BackendKind::Smolmachines),
        ..Spec::new(format!("escape-{}", std::process::id()), workspace.path())
    };
    let up = backend.up(&spec, &Print).await;
    let status = backend.status(&spec.name).await;
    let down = backend.down(&spec.name, &Print).await;
    let st = up.expect("up on real smolvm");
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{:?}", st.allowlist);
    assert_eq!(status.expect("status").allowlist.verdict, Verdict::Verified, "the record is read back");
    down.expect("down on real smolvm");
    // What this run confirms that the double could not: the refusal, the DNS filter's
    // `resolve` record (1.8.1+) and the launch order (docs/smolmachines.md lists them).
    eprintln!("escape: start check on a real VM: {}", st.allowlist.detail);
}
