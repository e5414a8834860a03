//! `SmolmachinesBackend`: a bottle whose agent runs in a smolvm microVM.
//!
//! The VM side is here. The bundle side (its dedicated Docker network, pinned
//! IP and container, the agent image exported with `docker save`) is the same
//! code the Docker backend uses; it comes in through [`HostSide`], implemented
//! by [`super::DockerHost`] with `crate::sidecar`, so tests can also drive the
//! VM side alone.
//!
//! Order in `up`, and why: the bundle first (the VM's allowlist is its IP);
//! the host-route preflight before any VM exists (a VM that cannot reach the
//! bundle is useless and the failure would look like a proxy fault); then
//! create, start (an idle workload: no agent code yet), the start check, and
//! only then the agent's command (`Smolvm::launch`). A VM whose allowlist was
//! not seen to hold is stopped again, and the agent never ran in it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use bottle_protocol::Event;

use super::allowlist::{SmolAllowlistStatus, run_start_check};
use super::driver::{CreateRequest, EXEC_TIMEOUT, Launch, Smolvm};
use super::egress::EgressTracker;
use super::name::MachineName;
use super::preflight::{PREFLIGHT_CONNECT_TIMEOUT, check_bundle_reachable};
use super::smolfile::{AllowList, BundleAddr, Smolfile, SmolfileInput, VmImage, split_env};
use super::status::{MachineState, MachineStatus};
use crate::backend::{
    AllowlistStatus, BackendKind, BottleBackend, BottleState, BottleStatus, Check, ControlEndpoint, Error, EventSource,
    ExecOutput, ExecRequest, LogOptions, LogSource, LogStream, Progress, Result, Verdict,
};
use crate::images::PROBE_IN_AGENT;
use crate::sidecar;
use crate::spec::Spec;

/// Where the VM and the host reach one bottle's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEndpoint {
    /// Pinned IP + proxy port: the VM's whole allowlist.
    pub addr: BundleAddr,
    pub control: ControlEndpoint,
}

/// The Docker-side half of a smolmachines bottle: [`super::DockerHost`] in
/// use, a stand-in in tests of the VM side alone.
#[async_trait]
pub trait HostSide: Send + Sync {
    /// Starts the bottle's bundle and says where it is. The caller has checked
    /// that no VM of this name exists, so any object of the name is a leftover.
    async fn place_bundle(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<BundleEndpoint>;
    /// The running bundle of `bottle`, if any.
    async fn bundle(&self, bottle: &str) -> anyhow::Result<Option<BundleEndpoint>>;
    /// Every bottle of this backend with any host-side object (for `gc`).
    async fn bottles(&self) -> anyhow::Result<Vec<String>>;
    async fn remove_bundle(&self, bottle: &str, progress: &dyn Progress) -> anyhow::Result<()>;
    /// The agent image as a `docker save` tarball, for `smolvm --image`.
    async fn export_agent_image(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<PathBuf>;
    /// For the start check: an address outside the allowlist on which something
    /// on the host accepts TCP, so that only the egress policy can stop the VM.
    async fn canary(&self, bottle: &str) -> anyhow::Result<SocketAddr>;
    /// Keeps the start check's result for as long as the bottle exists, so
    /// another bottle-core process reports it too.
    async fn record_check(&self, bottle: &str, status: &SmolAllowlistStatus) -> anyhow::Result<()>;
    async fn recorded_check(&self, bottle: &str) -> anyhow::Result<Option<SmolAllowlistStatus>>;
    async fn bundle_logs(&self, bottle: &str) -> anyhow::Result<String>;
    /// The bundle's log as it is written: its last `tail` lines (all when `None`), then, with
    /// `follow`, new ones until the bundle stops.
    async fn bundle_log_stream(&self, bottle: &str, tail: Option<usize>, follow: bool)
    -> anyhow::Result<LogStream<'_>>;
    /// What the host side needs (engine, images, subnet pool), each with what to fix.
    async fn doctor(&self) -> Vec<Check>;
    /// The engine the agent image comes from, for `up`'s checks; `None` where there is none to ask.
    fn engine(&self) -> Option<&bollard::Docker> {
        None
    }
}

pub struct SmolmachinesBackend {
    smolvm: Smolvm,
    host: Box<dyn HostSide>,
    /// Where rendered Smolfiles are written (one per bottle).
    state_dir: PathBuf,
    /// Whether each VM gets `bottle-probe` at [`PROBE_IN_AGENT`], as every Docker agent
    /// does, for `verify`. Off only for tests of the VM side alone, which have no probe build.
    mount_probe: bool,
}

impl SmolmachinesBackend {
    pub fn new(smolvm: Smolvm, host: Box<dyn HostSide>, state_dir: PathBuf) -> Self {
        Self { smolvm, host, state_dir, mount_probe: false }
    }

    /// This backend as bottle-core runs it: every VM gets the probe, so `verify` can run in it.
    pub fn with_probe(self) -> Self {
        Self { mount_probe: true, ..self }
    }

    /// The directory mounted read-only at the parent of [`PROBE_IN_AGENT`]: a per-VM copy of
    /// the probe (a volume is a directory, and the shared cache holds every probe build).
    async fn probe_volume(&self, name: &MachineName, progress: &dyn Progress) -> anyhow::Result<String> {
        let probe = crate::images::ensure_probe_file(progress).await?;
        let in_agent = std::path::Path::new(PROBE_IN_AGENT);
        let (Some(guest), Some(file)) = (in_agent.parent(), in_agent.file_name()) else {
            bail!("smolmachines: {PROBE_IN_AGENT} has no parent directory");
        };
        let dir = self.probe_dir(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("smolmachines: creating {}", dir.display()))?;
        std::fs::copy(&probe, dir.join(file))
            .with_context(|| format!("smolmachines: copying {} into {}", probe.display(), dir.display()))?;
        let host = dir.to_str().filter(|s| !s.contains(':')).with_context(|| {
            format!("smolmachines: the state dir {} is not a UTF-8 path without ':'", dir.display())
        })?;
        Ok(format!("{host}:{}:ro", guest.display()))
    }

    fn probe_dir(&self, name: &MachineName) -> PathBuf {
        self.state_dir.join(format!("{name}.probe"))
    }

    /// Where bottle-core keeps this backend's Smolfiles and probe copies: under the run dir.
    pub fn state_dir() -> PathBuf {
        crate::netpool::run_dir().join("smolvm")
    }

    pub fn smolvm(&self) -> &Smolvm {
        &self.smolvm
    }

    /// Serialises `up`/`down`/`gc` of one bottle across processes; the same lock
    /// file as the Docker backend's, since both share the bundle's object names.
    fn lock_name(bottle: &str) -> anyhow::Result<std::fs::File> {
        crate::netpool::lock_file(&crate::paths::name_lock_path(bottle), false)?.with_context(|| {
            format!("smolmachines: bottle {bottle}: another `up`, `down` or `gc` of it is in progress")
        })
    }

    async fn machine_exists(&self, name: &MachineName) -> anyhow::Result<bool> {
        Ok(self.smolvm.list().await?.iter().any(|m| m.name == name.as_str()))
    }

    /// `down` without the lock (the caller holds it).
    async fn remove(&self, bottle: &str, progress: &dyn Progress) -> anyhow::Result<()> {
        let name = Self::machine(bottle)?;
        // A failed `up` can leave a bundle without a VM; `down` still cleans it.
        if self.machine_exists(&name).await? {
            progress.step("stopping the VM");
            // Stop before delete: an old smolvm deleted a running VM without stopping it.
            self.smolvm.stop(&name).await?;
            self.smolvm.delete(&name).await?;
        }
        let _ = std::fs::remove_dir_all(self.probe_dir(&name));
        progress.step("removing the bundle");
        self.host.remove_bundle(bottle, progress).await
    }

    /// The bottle a machine runs, if it is bottle's. With labels (smolvm 1.8.0+) only a
    /// machine bottle labelled is, under the name that label gives (a hand-made
    /// `bottle-x` is left alone); before, the name prefix is all there is.
    fn bottle_of(&self, m: &MachineStatus) -> Option<String> {
        if self.smolvm.version().has_labels() {
            let bottle = m.labels.get(crate::sidecar::labels::NAME)?;
            return (Self::machine(bottle).ok()?.as_str() == m.name).then(|| bottle.clone());
        }
        MachineName::new(&m.name).ok().and_then(|n| n.bottle_name().map(str::to_owned))
    }

    fn machine(bottle: &str) -> anyhow::Result<MachineName> {
        MachineName::for_bottle(bottle).map_err(anyhow::Error::msg)
    }

    /// New VMM-level denials for `bottle` as events (rule `vmm:egress-policy`),
    /// for the caller's event stream; `None` when this smolvm keeps no denial
    /// log (before 1.8.1). One tracker per bottle, kept across polls.
    pub async fn poll_denials(&self, bottle: &str, tracker: &mut EgressTracker) -> anyhow::Result<Option<Vec<Event>>> {
        denials(&self.smolvm, bottle, tracker).await
    }

    /// The result of an operation on `bottle`, reported as [`Error::NotFound`] when it
    /// failed and smolvm has no machine of that name.
    async fn about<T>(&self, bottle: &str, res: anyhow::Result<T>) -> Result<T> {
        match res {
            Ok(v) => Ok(v),
            Err(e) => match self.smolvm.status(&Self::machine(bottle)?).await {
                Err(s) if s.is_no_machine() => Err(Error::not_found(bottle)),
                _ => Err(e.into()),
            },
        }
    }

    async fn allowlist_status(&self, bottle: &str, bundle: Option<&BundleEndpoint>) -> anyhow::Result<AllowlistStatus> {
        if let Some(s) = self.host.recorded_check(bottle).await? {
            return Ok(s.to_status());
        }
        Ok(match bundle {
            Some(b) => {
                SmolAllowlistStatus::new(&AllowList::bundle_only(b.addr.ip), self.smolvm.version(), None).to_status()
            }
            None => AllowlistStatus {
                verdict: Verdict::NotVerified,
                allowlist: Vec::new(),
                mechanism: format!("smolvm {} (bundle not found)", self.smolvm.version()),
                checked_at: None,
                detail: "the bottle's bundle is not running".into(),
                vmm: None,
            },
        })
    }

    async fn to_bottle_status(&self, bottle: &str, m: &MachineStatus) -> anyhow::Result<BottleStatus> {
        let bundle = self.host.bundle(bottle).await?;
        let allowlist = self.allowlist_status(bottle, bundle.as_ref()).await?;
        let (state, detail) = match (&m.state, bundle.is_some(), allowlist.verdict) {
            (MachineState::Running, false, _) => {
                (BottleState::Degraded, "the VM runs but its bundle does not".to_owned())
            }
            (MachineState::Running, true, Verdict::Verified) => (BottleState::Running, String::new()),
            (MachineState::Running, true, _) => (BottleState::Degraded, allowlist.detail.clone()),
            (MachineState::Unreachable, ..) => {
                (BottleState::Degraded, "the VM process is alive but its agent does not answer".to_owned())
            }
            (MachineState::Created, ..) => (BottleState::Created, String::new()),
            (MachineState::Stopped, ..) => (BottleState::Stopped, String::new()),
            (MachineState::Failed, ..) => (BottleState::Failed, String::new()),
            (MachineState::Frozen, ..) => (BottleState::Frozen, String::new()),
            (MachineState::Other(word), ..) => (BottleState::Other(word.clone()), String::new()),
        };
        Ok(BottleStatus {
            name: bottle.to_owned(),
            backend: BackendKind::Smolmachines,
            state,
            detail,
            allowlist,
            live: None,
        })
    }
}

#[async_trait]
impl BottleBackend for SmolmachinesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Smolmachines
    }

    async fn preflight(&self, spec: &Spec) -> crate::preflight::Report {
        crate::preflight::check(spec, self.host.engine(), BackendKind::Smolmachines).await
    }

    async fn up(&self, spec: &Spec, progress: &dyn Progress) -> Result<BottleStatus> {
        let name = Self::machine(&spec.name)?;
        let spec = &self.preflight(spec).await.ready(progress)?;
        // Refused before anything is made: what this smolvm could not start as asked.
        let secrets = split_env(&spec.env).1;
        if spec.command.is_empty() && !secrets.is_empty() {
            let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
            return Err(anyhow::anyhow!(
                "smolmachines: bottle {}: env {} look like secrets, which reach the agent only through its \
                 `command` (never smolvm's plain-text record); set `command` or rename them",
                spec.name,
                names.join(", ")
            )
            .into());
        }
        if !spec.command.is_empty() && !self.smolvm.version().has_exec_detach() {
            return Err(anyhow::anyhow!(
                "smolmachines: bottle {}: smolvm {} cannot start `command` after the start check \
                 (`machine exec -d` needs smolvm {}); upgrade smolvm or leave `command` empty",
                spec.name,
                self.smolvm.version(),
                super::Version::EXEC_DETACH
            )
            .into());
        }
        let _lock = Self::lock_name(&spec.name)?;
        if self.machine_exists(&name).await? {
            return Err(anyhow::anyhow!(
                "smolmachines: bottle {}: already exists; `down` it first or pick another name",
                spec.name
            )
            .into());
        }
        progress.step("starting the bundle");
        let bundle = self.host.place_bundle(spec, progress).await?;
        progress.step("checking the host reaches the bundle");
        check_bundle_reachable(bundle.addr, PREFLIGHT_CONNECT_TIMEOUT).await.map_err(anyhow::Error::msg)?;
        progress.step("exporting the agent image");
        let tarball = self.host.export_agent_image(spec, progress).await?;
        let image = VmImage::Tarball(tarball);
        let mut smolfile =
            Smolfile::for_bottle(&SmolfileInput::from_spec(spec), bundle.addr, &image).map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&self.state_dir)
            .with_context(|| format!("smolmachines: create state dir {}", self.state_dir.display()))?;
        smolfile.env.extend(sidecar::gate_env(spec, bundle.addr.ip).into_iter().map(|(k, v)| format!("{k}={v}")));
        if self.mount_probe {
            smolfile.volumes.push(self.probe_volume(&name, progress).await?);
        }
        let req = CreateRequest {
            smolfile_path: self.state_dir.join(format!("{name}.Smolfile")),
            name: name.clone(),
            smolfile,
            image,
            labels: vm_labels(&spec.name),
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
        let status = SmolAllowlistStatus::new(&req.smolfile.network.allow_cidrs, self.smolvm.version(), Some(check));
        self.host.record_check(&spec.name, &status).await?;
        if verdict != Verdict::Verified {
            self.smolvm
                .stop(&name)
                .await
                .with_context(|| format!("smolmachines: stopping VM {name} after a failed start check"))?;
            return Err(anyhow::anyhow!(
                "smolmachines: bottle {}: the allowlist was not seen to hold, VM stopped: {detail}",
                spec.name
            )
            .into());
        }
        if !spec.command.is_empty() {
            progress.step("starting the agent");
            let launch = Launch { cmd: spec.command.clone(), workdir: spec.workdir.clone(), secrets };
            if let Err(e) = self.smolvm.launch(&name, &launch).await {
                let _ = self.smolvm.stop(&name).await;
                return Err(anyhow::Error::new(e)
                    .context(format!("smolmachines: bottle {}: starting the agent; VM stopped", spec.name))
                    .into());
            }
        }
        let m = self.smolvm.status(&name).await?;
        Ok(self.to_bottle_status(&spec.name, &m).await?)
    }

    async fn down(&self, bottle: &str, progress: &dyn Progress) -> Result<()> {
        let _lock = Self::lock_name(bottle)?;
        let known = self.machine_exists(&Self::machine(bottle)?).await?
            || self.host.bottles().await?.iter().any(|b| b == bottle);
        if !known {
            return Err(Error::not_found(bottle));
        }
        Ok(self.remove(bottle, progress).await?)
    }

    async fn status(&self, bottle: &str) -> Result<BottleStatus> {
        let m = match self.smolvm.status(&Self::machine(bottle)?).await {
            Err(e) if e.is_no_machine() => return Err(Error::not_found(bottle)),
            m => m?,
        };
        Ok(self.to_bottle_status(bottle, &m).await?)
    }

    async fn exec(&self, bottle: &str, cmd: &[String]) -> Result<ExecOutput> {
        match self.smolvm.exec(&Self::machine(bottle)?, cmd, EXEC_TIMEOUT).await {
            Err(e) if e.is_no_machine() => Err(Error::not_found(bottle)),
            out => Ok(out?),
        }
    }

    async fn exec_attached(&self, bottle: &str, req: ExecRequest) -> Result<i64> {
        Ok(self.smolvm.exec_attached(&Self::machine(bottle)?, &req).await?)
    }

    async fn logs(&self, bottle: &str) -> Result<String> {
        let res = self.host.bundle_logs(bottle).await;
        self.about(bottle, res).await
    }

    /// The agent's output is not kept: smolvm's `machine exec -d`, which starts it, gives the
    /// process no stdout or stderr to keep (its agent nulls them, read from the 1.9.3 source),
    /// and smolvm has no log command for a machine.
    async fn log_stream(&self, bottle: &str, opts: LogOptions) -> Result<LogStream<'_>> {
        match opts.source {
            LogSource::Bundle => {
                let res = self.host.bundle_log_stream(bottle, opts.tail, opts.follow).await;
                self.about(bottle, res).await
            }
            LogSource::Agent => {
                let refused = Err(anyhow::anyhow!(
                    "smolmachines: bottle {bottle}: smolvm keeps no output of the agent's command \
                     (`machine exec -d` discards it); use `logs --bundle` for the bundle's log, or have \
                     `command` write its own log file in the workspace"
                ));
                self.about(bottle, refused).await
            }
        }
    }

    async fn list(&self) -> Result<Vec<BottleStatus>> {
        let mut out = Vec::new();
        for m in self.smolvm.list().await? {
            if let Some(bottle) = self.bottle_of(&m) {
                out.push(self.to_bottle_status(&bottle, &m).await?);
            }
        }
        Ok(out)
    }

    /// Stopped or failed VMs, and bundles whose VM is gone (an `up` that failed
    /// before `create`), go; a degraded bottle stays, its state is news.
    async fn gc(&self, dry_run: bool) -> Result<Vec<String>> {
        let vms = self.list().await?;
        let mut found: Vec<String> = vms
            .iter()
            .filter(|b| matches!(b.state, BottleState::Stopped | BottleState::Failed))
            .map(|b| b.name.clone())
            .collect();
        for bottle in self.host.bottles().await? {
            if !vms.iter().any(|b| b.name == bottle) {
                found.push(bottle);
            }
        }
        let mut out = Vec::new();
        for b in found {
            // A held lock is an `up` or `down` in progress: its bundle may not have a VM yet.
            let Some(_lock) = crate::netpool::lock_file(&crate::paths::name_lock_path(&b), false)? else {
                continue;
            };
            if !dry_run {
                self.remove(&b, &crate::backend::NoProgress).await?;
            }
            out.push(b);
        }
        Ok(out)
    }

    async fn event_source(&self, bottle: &str) -> Result<Option<Box<dyn EventSource>>> {
        if !self.smolvm.version().has_egress_events() {
            return Ok(None);
        }
        Ok(Some(Box::new(VmmDenials {
            smolvm: self.smolvm.clone(),
            bottle: bottle.to_owned(),
            tracker: EgressTracker::default(),
        })))
    }

    async fn doctor(&self) -> Vec<Check> {
        let mut checks = vec![Check::new(
            "smolvm",
            true,
            format!(
                "smolvm {} at {} (allowlist enforced from 1.1.3; denial log {})",
                self.smolvm.version(),
                self.smolvm.bin().display(),
                if self.smolvm.version().has_egress_events() { "read" } else { "absent before 1.8.1" }
            ),
            "",
        )];
        checks.extend(self.host.doctor().await);
        checks
    }

    async fn control_endpoint(&self, bottle: &str) -> Result<ControlEndpoint> {
        match self.host.bundle(bottle).await? {
            Some(b) => Ok(b.control),
            None => self.about(bottle, Err(anyhow::anyhow!("smolmachines: bottle {bottle}: no bundle running"))).await,
        }
    }
}

/// The labels a bottle's VM is created with (smolvm 1.8.0+): the same keys as its Docker
/// objects, so `ls` and `gc` find bottle's machines by label rather than by name alone.
fn vm_labels(bottle: &str) -> std::collections::BTreeMap<String, String> {
    use crate::sidecar::labels;
    [
        (labels::NAME, bottle),
        (labels::BACKEND, labels::backend_value(BackendKind::Smolmachines)),
        (labels::ROLE, labels::ROLE_AGENT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// New VMM-level denials for `bottle` as events (see [`SmolmachinesBackend::poll_denials`]).
async fn denials(smolvm: &Smolvm, bottle: &str, tracker: &mut EgressTracker) -> anyhow::Result<Option<Vec<Event>>> {
    let name = SmolmachinesBackend::machine(bottle)?;
    let Some(events) = smolvm.egress_events(&name).await? else {
        return Ok(None);
    };
    Ok(Some(tracker.fresh(events).iter().map(|d| d.to_event(bottle, name.as_str())).collect()))
}

/// The VMM's denials of one bottle, as `bottles::follow` merges them into the bundle's stream.
struct VmmDenials {
    smolvm: Smolvm,
    bottle: String,
    tracker: EgressTracker,
}

#[async_trait]
impl EventSource for VmmDenials {
    async fn poll(&mut self) -> anyhow::Result<Vec<Event>> {
        Ok(denials(&self.smolvm, &self.bottle, &mut self.tracker).await?.unwrap_or_default())
    }
}
