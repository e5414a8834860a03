//! `SmolmachinesBackend`: a bottle whose agent runs in a smolvm microVM.
//!
//! The VM side is complete here. The bundle side (its dedicated Docker network,
//! pinned IP and container, the agent image exported with `docker save`) is
//! the same code the Docker backend uses, so it is not rebuilt here: it comes
//! in through [`HostSide`], which the lead wires to `crate::sidecar`.
//!
//! Order in `up`, and why: the bundle first (the VM's allowlist is its IP);
//! the host-route preflight before any VM exists (a VM that cannot reach the
//! bundle is useless and the failure would look like a proxy fault); then
//! create, start, and the start check, and a VM whose allowlist was not seen to
//! hold is stopped again rather than handed to an agent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, bail};
use async_trait::async_trait;
use bottle_protocol::EventKind;

use super::allowlist::{SmolAllowlistStatus, run_start_check};
use super::driver::{CreateRequest, EXEC_TIMEOUT, Smolvm};
use super::egress::EgressTracker;
use super::name::MachineName;
use super::preflight::{PREFLIGHT_CONNECT_TIMEOUT, check_bundle_reachable};
use super::smolfile::{AllowList, BundleAddr, Smolfile, SmolfileInput, VmImage};
use super::status::{MachineState, MachineStatus};
use crate::backend::{
    AllowlistStatus, BackendKind, BottleBackend, BottleStatus, Check, ControlEndpoint, ExecOutput,
    Progress, Verdict,
};
use crate::spec::Spec;

/// Where the VM and the host reach one bottle's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEndpoint {
    /// Pinned IP + proxy port: the VM's whole allowlist.
    pub addr: BundleAddr,
    pub control: ControlEndpoint,
}

/// The Docker-side half of a smolmachines bottle.
///
/// TODO(lead): implement with `crate::sidecar` (bundle network + pinned IP +
/// bundle container). Two requirements differ from the Docker backend:
/// - the host must route to the bundle IP (smolvm dials from the host), so the
///   bundle network cannot use `inhibit_ipv4` unless the bundle also sits on a
///   host-routable network; the preflight reports it if not;
/// - every port on the bundle IP is reachable from the VM (smolvm filters by
///   IP, not port), so the control plane must not listen on the bundle IP.
#[async_trait]
pub trait HostSide: Send + Sync {
    /// Starts (or finds) the bottle's bundle and says where it is.
    async fn place_bundle(
        &self,
        spec: &Spec,
        progress: &dyn Progress,
    ) -> anyhow::Result<BundleEndpoint>;
    /// The running bundle of `bottle`, if any.
    async fn bundle(&self, bottle: &str) -> anyhow::Result<Option<BundleEndpoint>>;
    async fn remove_bundle(&self, bottle: &str, progress: &dyn Progress) -> anyhow::Result<()>;
    /// The agent image as a `docker save` tarball, for `smolvm --image`.
    async fn export_agent_image(
        &self,
        spec: &Spec,
        progress: &dyn Progress,
    ) -> anyhow::Result<PathBuf>;
    /// For the start check: an address outside the allowlist on which something
    /// on the host accepts TCP, so that only the egress policy can stop the VM.
    async fn canary(&self, bottle: &str) -> anyhow::Result<SocketAddr>;
    async fn bundle_logs(&self, bottle: &str) -> anyhow::Result<String>;
}

pub struct SmolmachinesBackend {
    smolvm: Smolvm,
    host: Box<dyn HostSide>,
    /// Where rendered Smolfiles are written (one per bottle).
    state_dir: PathBuf,
    /// Start-check results of this process, by bottle name.
    checks: Mutex<HashMap<String, SmolAllowlistStatus>>,
}

impl SmolmachinesBackend {
    pub fn new(smolvm: Smolvm, host: Box<dyn HostSide>, state_dir: PathBuf) -> Self {
        Self {
            smolvm,
            host,
            state_dir,
            checks: Mutex::new(HashMap::new()),
        }
    }

    fn machine(bottle: &str) -> anyhow::Result<MachineName> {
        MachineName::for_bottle(bottle).map_err(anyhow::Error::msg)
    }

    /// New VMM-level denials for `bottle` as events (rule `vmm:egress-policy`),
    /// for the caller's event stream; `None` when this smolvm keeps no denial
    /// log (before 1.8.1). One tracker per bottle, kept across polls.
    pub async fn poll_denials(
        &self,
        bottle: &str,
        tracker: &mut EgressTracker,
    ) -> anyhow::Result<Option<Vec<EventKind>>> {
        let name = Self::machine(bottle)?;
        let Some(events) = self.smolvm.egress_events(&name).await? else {
            return Ok(None);
        };
        Ok(Some(
            tracker
                .fresh(events)
                .iter()
                .map(|d| d.to_event_kind(name.as_str()))
                .collect(),
        ))
    }

    fn allowlist_status(&self, bottle: &str, bundle: Option<&BundleEndpoint>) -> AllowlistStatus {
        let checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = checks.get(bottle) {
            return s.to_status();
        }
        match bundle {
            Some(b) => SmolAllowlistStatus::new(
                &AllowList::bundle_only(b.addr.ip),
                self.smolvm.version(),
                None,
            )
            .to_status(),
            None => AllowlistStatus {
                verdict: Verdict::NotVerified,
                allowlist: Vec::new(),
                mechanism: format!("smolvm {} (bundle not found)", self.smolvm.version()),
                checked_at: None,
                detail: "the bottle's bundle is not running".into(),
            },
        }
    }

    async fn to_bottle_status(
        &self,
        bottle: &str,
        m: &MachineStatus,
    ) -> anyhow::Result<BottleStatus> {
        let bundle = self.host.bundle(bottle).await?;
        let allowlist = self.allowlist_status(bottle, bundle.as_ref());
        let (state, detail) = match (&m.state, bundle.is_some(), allowlist.verdict) {
            (MachineState::Running, false, _) => {
                ("degraded", "the VM runs but its bundle does not".to_owned())
            }
            (MachineState::Running, true, Verdict::Verified) => ("running", String::new()),
            (MachineState::Running, true, _) => ("degraded", allowlist.detail.clone()),
            (MachineState::Unreachable, ..) => (
                "degraded",
                "the VM process is alive but its agent does not answer".to_owned(),
            ),
            (s, ..) => (s.as_str(), String::new()),
        };
        Ok(BottleStatus {
            name: bottle.to_owned(),
            backend: BackendKind::Smolmachines,
            state: state.into(),
            detail,
            allowlist,
        })
    }
}

#[async_trait]
impl BottleBackend for SmolmachinesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Smolmachines
    }

    async fn up(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<BottleStatus> {
        let name = Self::machine(&spec.name)?;
        progress.step("starting the bundle");
        let bundle = self.host.place_bundle(spec, progress).await?;
        progress.step("checking the host reaches the bundle");
        check_bundle_reachable(bundle.addr, PREFLIGHT_CONNECT_TIMEOUT)
            .await
            .map_err(anyhow::Error::msg)?;
        progress.step("exporting the agent image");
        let tarball = self.host.export_agent_image(spec, progress).await?;
        let image = VmImage::Tarball(tarball);
        let smolfile = Smolfile::for_bottle(&SmolfileInput::from_spec(spec), bundle.addr, &image)
            .map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&self.state_dir).with_context(|| {
            format!(
                "smolmachines: create state dir {}",
                self.state_dir.display()
            )
        })?;
        let req = CreateRequest {
            smolfile_path: self.state_dir.join(format!("{name}.Smolfile")),
            name: name.clone(),
            smolfile,
            image,
        };
        progress.step("creating the VM");
        self.smolvm.create(&req).await?;
        progress.step("starting the VM");
        self.smolvm.start(&name).await?;
        progress.step("checking the allowlist holds");
        let canary = self.host.canary(&spec.name).await?;
        let check = run_start_check(&self.smolvm, &name, bundle.addr, canary).await;
        let verdict = check.verdict;
        let detail = check.detail.clone();
        let status = SmolAllowlistStatus::new(
            &req.smolfile.network.allow_cidrs,
            self.smolvm.version(),
            Some(check),
        );
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.name.clone(), status);
        if verdict != Verdict::Verified {
            self.smolvm.stop(&name).await.with_context(|| {
                format!("smolmachines: stopping VM {name} after a failed start check")
            })?;
            bail!(
                "smolmachines: bottle {}: the allowlist was not seen to hold, VM stopped: {detail}",
                spec.name
            );
        }
        let m = self.smolvm.status(&name).await?;
        self.to_bottle_status(&spec.name, &m).await
    }

    async fn down(&self, bottle: &str, progress: &dyn Progress) -> anyhow::Result<()> {
        let name = Self::machine(bottle)?;
        // A failed `up` can leave a bundle without a VM; `down` still cleans it.
        let exists = self
            .smolvm
            .list()
            .await?
            .iter()
            .any(|m| m.name == name.as_str());
        if exists {
            progress.step("stopping the VM");
            // Stop before delete: an old smolvm deleted a running VM without stopping it.
            self.smolvm.stop(&name).await?;
            self.smolvm.delete(&name).await?;
        }
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(bottle);
        progress.step("removing the bundle");
        self.host.remove_bundle(bottle, progress).await
    }

    async fn status(&self, bottle: &str) -> anyhow::Result<BottleStatus> {
        let m = self.smolvm.status(&Self::machine(bottle)?).await?;
        self.to_bottle_status(bottle, &m).await
    }

    async fn exec(&self, bottle: &str, cmd: &[String]) -> anyhow::Result<ExecOutput> {
        Ok(self
            .smolvm
            .exec(&Self::machine(bottle)?, cmd, EXEC_TIMEOUT)
            .await?)
    }

    async fn logs(&self, bottle: &str) -> anyhow::Result<String> {
        self.host.bundle_logs(bottle).await
    }

    async fn list(&self) -> anyhow::Result<Vec<BottleStatus>> {
        let mut out = Vec::new();
        for m in self.smolvm.list().await? {
            let bottle = MachineName::new(&m.name)
                .ok()
                .and_then(|n| n.bottle_name().map(str::to_owned));
            if let Some(bottle) = bottle {
                out.push(self.to_bottle_status(&bottle, &m).await?);
            }
        }
        Ok(out)
    }

    async fn gc(&self, dry_run: bool) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for b in self.list().await? {
            if b.state == "stopped" || b.state == "failed" {
                if !dry_run {
                    self.down(&b.name, &crate::backend::NoProgress).await?;
                }
                found.push(b.name);
            }
        }
        Ok(found)
    }

    async fn doctor(&self) -> Vec<Check> {
        vec![Check::new(
            "smolvm",
            true,
            format!("smolvm {} at {} (allowlist enforced from 1.1.3)", self.smolvm.version(), self.smolvm.bin().display()),
            "",
        )]
    }

    async fn control_endpoint(&self, bottle: &str) -> anyhow::Result<ControlEndpoint> {
        match self.host.bundle(bottle).await? {
            Some(b) => Ok(b.control),
            None => bail!("smolmachines: bottle {bottle}: no bundle running"),
        }
    }
}
