//! Escape-suite hook for the smolmachines backend: boots a REAL smolvm VM and
//! checks that its allowlist holds. It runs only where that can mean something
//! and otherwise prints why it skipped:
//! - a real `smolvm` (BOTTLE_SMOLVM or PATH) that passes the version gate;
//! - a hypervisor: macOS (HVF), or a usable /dev/kvm that is not nested PVM
//!   (libkrun's guest kernel fails there with KVM_EXIT_INTERNAL_ERROR);
//! - BOTTLE_ESCAPE_BUNDLE_IP and BOTTLE_ESCAPE_CANARY_IP: two distinct
//!   addresses of THIS host (e.g. a bridge gateway and the LAN address). The
//!   test listens on both; the VM may reach only the first. No other address is
//!   ever contacted;
//! - BOTTLE_ESCAPE_IMAGE: a `docker save` tarball of an image with curl.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use async_trait::async_trait;
use bottle_core::backend::{BackendKind, BottleBackend, ControlEndpoint, Progress, Verdict};
use bottle_core::smolvm::{BundleAddr, BundleEndpoint, HostSide, SmolAllowlistStatus, SmolmachinesBackend, Smolvm};
use bottle_core::spec::{GitSpec, ImageSource, Resources, Spec};
use tokio::net::TcpListener;

struct Inputs {
    smolvm: Smolvm,
    bundle_ip: IpAddr,
    canary_ip: IpAddr,
    image: PathBuf,
}

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

fn env_ip(key: &str) -> Result<IpAddr, String> {
    let v = std::env::var(key).map_err(|_| format!("{key} is not set"))?;
    v.parse().map_err(|e| format!("{key}={v}: {e}"))
}

async fn inputs() -> Result<Inputs, String> {
    let smolvm = Smolvm::discover(None).await.map_err(|e| format!("no usable real smolvm: {e}"))?;
    hypervisor()?;
    let bundle_ip = env_ip("BOTTLE_ESCAPE_BUNDLE_IP")?;
    let canary_ip = env_ip("BOTTLE_ESCAPE_CANARY_IP")?;
    if bundle_ip == canary_ip {
        return Err("BOTTLE_ESCAPE_BUNDLE_IP and BOTTLE_ESCAPE_CANARY_IP must differ".into());
    }
    let image = std::env::var_os("BOTTLE_ESCAPE_IMAGE").ok_or("BOTTLE_ESCAPE_IMAGE is not set")?.into();
    Ok(Inputs { smolvm, bundle_ip, canary_ip, image })
}

struct Quiet;
impl Progress for Quiet {
    fn step(&self, m: &str) {
        eprintln!("escape: {m}");
    }
}

struct LocalHost {
    bundle: BundleEndpoint,
    canary: SocketAddr,
    image: PathBuf,
    record: std::sync::Mutex<Option<SmolAllowlistStatus>>,
}

#[async_trait]
impl HostSide for LocalHost {
    async fn place_bundle(&self, _: &Spec, _: &dyn Progress) -> anyhow::Result<BundleEndpoint> {
        Ok(self.bundle.clone())
    }
    async fn bundle(&self, _: &str) -> anyhow::Result<Option<BundleEndpoint>> {
        Ok(Some(self.bundle.clone()))
    }
    async fn bottles(&self) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn remove_bundle(&self, _: &str, _: &dyn Progress) -> anyhow::Result<()> {
        Ok(())
    }
    async fn record_check(&self, _: &str, s: &SmolAllowlistStatus) -> anyhow::Result<()> {
        *self.record.lock().unwrap() = Some(s.clone());
        Ok(())
    }
    async fn recorded_check(&self, _: &str) -> anyhow::Result<Option<SmolAllowlistStatus>> {
        Ok(self.record.lock().unwrap().clone())
    }
    async fn export_agent_image(&self, _: &Spec, _: &dyn Progress) -> anyhow::Result<PathBuf> {
        Ok(self.image.clone())
    }
    async fn canary(&self, _: &str) -> anyhow::Result<SocketAddr> {
        Ok(self.canary)
    }
    async fn bundle_logs(&self, _: &str) -> anyhow::Result<String> {
        Ok(String::new())
    }
}

#[tokio::test]
async fn real_smolvm_vm_reaches_only_its_bundle() {
    let inputs = match inputs().await {
        Ok(i) => i,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    // Accept-and-drop servers: curl gets a connection (and an empty reply).
    let bundle_l = TcpListener::bind((inputs.bundle_ip, 0)).await.unwrap();
    let canary_l = TcpListener::bind((inputs.canary_ip, 0)).await.unwrap();
    let bundle_port = bundle_l.local_addr().unwrap().port();
    let canary = canary_l.local_addr().unwrap();
    for l in [bundle_l, canary_l] {
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
    }
    let host = LocalHost {
        bundle: BundleEndpoint {
            addr: BundleAddr { ip: inputs.bundle_ip, proxy_port: bundle_port },
            control: ControlEndpoint { url: String::new(), token: String::new() },
        },
        canary,
        image: inputs.image,
        record: Default::default(),
    };
    let state = tempfile::tempdir().unwrap();
    let backend = SmolmachinesBackend::new(inputs.smolvm, Box::new(host), state.path().into());
    let spec = Spec {
        source: "escape".into(),
        name: format!("escape-{}", std::process::id()),
        image: ImageSource::Default,
        workspace: state.path().into(),
        workdir: "/workspace".into(),
        command: vec![],
        env: Default::default(),
        allow: vec![],
        deny: vec![],
        secrets: vec![],
        git: GitSpec::default(),
        resources: Resources::default(),
        backend: Some(BackendKind::Smolmachines),
    };
    let up = backend.up(&spec, &Quiet).await;
    let down = backend.down(&spec.name, &Quiet).await;
    let st = up.expect("up on real smolvm");
    assert_eq!(st.allowlist.verdict, Verdict::Verified, "{:?}", st.allowlist);
    down.expect("down on real smolvm");
}
