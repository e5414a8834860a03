//! The sandbox-escape suite: `bottle-core verify` proves the boundary instead of trusting it.
//!
//! The static `bottle-probe` runs inside the bottle (mounted read-only by the
//! backend) and only observes; this module drives it through
//! `BottleBackend::exec`, stands up every canary it aims at (see `world`),
//! and decides each verdict from outside: from what the probe saw, from what
//! the canaries logged, and from the bundle's own event stream. `-f` runs the
//! full suite on a throwaway bottle made from the spec (with the "outside"
//! canary reachable as `allowed.test`, a planted never-leave secret and a
//! second bottle beside it); `NAME` runs what can be proved on an existing
//! bottle without touching it. Both backends: the canaries are Docker networks
//! and host processes either way (the smolmachines bundle is a Docker container
//! too), and every probe runs in the agent through `BottleBackend::exec`, so on
//! smolmachines it runs inside the VM and meets smolvm's policy.

mod categories;
mod finding;
pub mod probe;
mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bollard::Docker;

pub use finding::{Category, Finding, Outcome, Report};
pub use world::VERIFY_LABEL;

use crate::backend::{BackendKind, BottleBackend, Progress, Verdict};
use crate::control_client::ControlClient;
use crate::docker::{DockerBackend, DockerOptions};
use crate::images;
use crate::sidecar::{Placement, SidecarOptions};
use crate::smolvm::{DockerHost, SmolmachinesBackend, Smolvm};
use crate::spec::{Secret, SecretSource, Spec};
use world::World;

/// The name the outside canary answers to through the bundle's egress (a static host override).
pub const ALLOWED_HOST: &str = "allowed.test";

/// Secrets the suite plants in its own bottle; the values live in a host temp dir only.
pub(crate) struct Planted {
    /// Sent by DLP probes: must be refused in every form.
    pub dlp: String,
    /// git-gate's credential for the suite's repository (also a named secret of the
    /// bundle): git-gate sends it to the canary upstream, and it must be invisible
    /// from inside the agent.
    pub unseen: String,
    _dir: tempfile::TempDir,
}

/// What `prepare` made before it became a [`Suite`].
struct Made {
    backend: Box<dyn BottleBackend>,
    sidecar: SidecarOptions,
    bottle: String,
    peer: (String, Placement),
    placement: Placement,
    planted: Planted,
    control: ControlClient,
}

/// A prepared run: the canaries, the bottle under test and (for `-f`) its neighbour.
pub struct Suite {
    backend: Box<dyn BottleBackend>,
    /// The engine the canaries and every bundle run on (both backends).
    docker: Docker,
    kind: BackendKind,
    /// How the bundle under test is wired to the canaries (default in NAME mode).
    sidecar: SidecarOptions,
    world: World,
    bottle: String,
    placement: Placement,
    peer: Option<(String, Placement)>,
    planted: Option<Planted>,
    /// Whether the bottle's bundle reaches the outside canary as [`ALLOWED_HOST`].
    allowed: bool,
    /// Whether the suite made the bottles (and so may stop and remove them).
    owned: bool,
    workdir: String,
    control: ControlClient,
}

/// `base` cut short so the name keeps to the spec's rule (a `-` left at the cut goes too).
fn run_id_name(base: &str, id: &str, suffix: &str) -> String {
    let keep = crate::spec::NAME_MAX_LEN - id.len() - suffix.len() - "-v".len();
    format!("{}-v{id}{suffix}", base[..base.len().min(keep)].trim_end_matches('-'))
}

/// A backend of `kind`; `sidecar` wires its bundles to the canaries. Docker's start check runs
/// only for the bottle under test (`checked`); smolmachines runs its own on every `up`.
async fn open_backend(
    kind: BackendKind,
    sidecar: SidecarOptions,
    checked: bool,
) -> anyhow::Result<Box<dyn BottleBackend>> {
    Ok(match kind {
        BackendKind::Docker => Box::new(DockerBackend::connect(DockerOptions { sidecar, start_check: checked }).await?),
        BackendKind::Smolmachines => {
            let smolvm = Smolvm::discover(None).await.context("verify: the smolmachines backend needs smolvm")?;
            let host = DockerHost::connect_with(sidecar).await?;
            let state = SmolmachinesBackend::state_dir();
            Box::new(SmolmachinesBackend::new(smolvm, Box::new(host), state).with_probe())
        }
    })
}

/// The metadata namespace is host-wide (one at a time), so it is made only when `hosts` runs.
fn needs_metadata(only: &[Category]) -> bool {
    only.is_empty() || only.contains(&Category::Hosts)
}

async fn start_world(d: &Docker, only: &[Category], progress: &dyn Progress) -> anyhow::Result<World> {
    let (image, probe) =
        tokio::try_join!(images::ensure_probe_image(d, progress), images::ensure_probe_file(progress))?;
    progress.step("standing up the canaries (outside host, host listeners, metadata namespace)");
    World::start(d, &image, &probe, needs_metadata(only)).await
}

fn plant(spec: &mut Spec) -> anyhow::Result<Planted> {
    let dir = tempfile::tempdir().context("verify: making a temp dir for the planted secrets")?;
    let value = |tag: &str| format!("bv{tag}{}", &crate::sidecar::new_token()[..24]);
    let (dlp, unseen) = (value("dlp"), value("unseen"));
    for (name, v) in [("BOTTLE_VERIFY_DLP", &dlp), ("BOTTLE_VERIFY_UNSEEN", &unseen)] {
        let path: PathBuf = dir.path().join(name);
        // With a trailing newline, as `echo` writes it: the suite must see such a file match.
        std::fs::write(&path, format!("{v}\n"))?;
        spec.secrets.push(Secret { name: name.into(), from: SecretSource::File(path) });
    }
    let credentials = dir.path().join("git-credentials.toml");
    std::fs::write(&credentials, categories::git::credentials_toml(&unseen))?;
    spec.git = categories::git::verify_git(credentials);
    Ok(Planted { dlp, unseen, _dir: dir })
}

impl Suite {
    /// `-f`: a throwaway copy of `spec` (plus a neighbour bottle), wired to the canaries.
    pub async fn prepare(
        kind: BackendKind,
        spec: &Spec,
        only: &[Category],
        progress: &dyn Progress,
    ) -> anyhow::Result<Self> {
        let docker = crate::engine::connect().await?;
        let plain = open_backend(kind, SidecarOptions::default(), false).await?;
        let world = start_world(&docker, only, progress).await?;
        match Self::up_bottles(kind, &docker, plain, &world, spec, progress).await {
            Ok(m) => Ok(Self {
                backend: m.backend,
                sidecar: m.sidecar,
                docker,
                kind,
                world,
                bottle: m.bottle,
                placement: m.placement,
                peer: Some(m.peer),
                planted: Some(m.planted),
                allowed: true,
                owned: true,
                workdir: spec.workdir.clone(),
                control: m.control,
            }),
            Err(e) => {
                world.stop().await;
                Err(e)
            }
        }
    }

    async fn up_bottles(
        kind: BackendKind,
        docker: &Docker,
        plain: Box<dyn BottleBackend>,
        world: &World,
        spec: &Spec,
        progress: &dyn Progress,
    ) -> anyhow::Result<Made> {
        let ip = world.outside.ip.to_string();
        let sidecar = SidecarOptions {
            canary_hosts: BTreeMap::from([(ALLOWED_HOST.into(), vec![ip.clone()])]),
            canary_cidrs: vec![format!("{ip}/32")],
            canary_networks: vec![world.outside.network.clone()],
            canary_url: Some(format!("http://{ALLOWED_HOST}/")),
            ..Default::default()
        };
        let backend = open_backend(kind, sidecar.clone(), true).await?;
        let mut under_test = spec.clone();
        under_test.name = run_id_name(&spec.name, &world.id, "");
        if !under_test.allow.iter().any(|a| a == ALLOWED_HOST) {
            under_test.allow.push(ALLOWED_HOST.into());
        }
        let planted = plant(&mut under_test)?;
        let mut peer = spec.clone();
        peer.name = run_id_name(&spec.name, &world.id, "-peer");
        // With a git gate of its own listening, so the probe of it has something to miss.
        peer.git = under_test.git.clone();
        progress.step(&format!("starting {} (under test) and {} (its neighbour)", under_test.name, peer.name));
        let (a, b) = tokio::join!(backend.up(&under_test, progress), plain.up(&peer, progress));
        let cleanup = |names: Vec<String>| async {
            for n in names {
                let _ = plain.down(&n, progress).await;
            }
        };
        if let Err(e) = a.as_ref().map(drop).and(b.as_ref().map(drop)) {
            let e = anyhow::anyhow!("{e:#}");
            cleanup(vec![under_test.name.clone(), peer.name.clone()]).await;
            return Err(e.context("verify: starting the bottles under test"));
        }
        let st = a?;
        if st.allowlist.verdict != Verdict::Verified {
            cleanup(vec![under_test.name.clone(), peer.name.clone()]).await;
            anyhow::bail!("verify: the start check of {} did not verify: {}", st.name, st.allowlist.detail);
        }
        let find = |n: String| async {
            let p = Placement::find(docker, kind, &n).await?.context("verify: no placement")?;
            anyhow::Ok((n, p))
        };
        let found = async {
            let (_, placement) = find(under_test.name.clone()).await?;
            let peer = find(peer.name.clone()).await?;
            let control = ControlClient::of_bottle(&*backend, &under_test.name).await?;
            anyhow::Ok((placement, peer, control))
        };
        match found.await {
            Ok((placement, peer, control)) => {
                Ok(Made { backend, sidecar, bottle: under_test.name, peer, placement, planted, control })
            }
            Err(e) => {
                cleanup(vec![under_test.name.clone(), peer.name.clone()]).await;
                Err(e)
            }
        }
    }

    /// `NAME`: an existing bottle, left as it is (no fail-closed, no planted secret, no neighbour).
    pub async fn attach(
        kind: BackendKind,
        name: &str,
        only: &[Category],
        progress: &dyn Progress,
    ) -> anyhow::Result<Self> {
        let docker = crate::engine::connect().await?;
        let backend = open_backend(kind, SidecarOptions::default(), false).await?;
        let placement =
            Placement::find(&docker, kind, name).await?.with_context(|| format!("bottle {name}: no such bottle"))?;
        let control = ControlClient::of_bottle(&*backend, name).await?;
        let workdir = match kind {
            BackendKind::Docker => docker_workdir(&docker, name).await?,
            BackendKind::Smolmachines => vm_workdir(name)?,
        };
        let world = start_world(&docker, only, progress).await?;
        Ok(Self {
            backend,
            docker,
            kind,
            sidecar: SidecarOptions::default(),
            world,
            bottle: name.into(),
            placement,
            peer: None,
            planted: None,
            allowed: false,
            owned: false,
            workdir,
            control,
        })
    }

    /// The bottle the probes run in.
    pub fn bottle(&self) -> &str {
        &self.bottle
    }

    /// The run id: the value of [`VERIFY_LABEL`] on every canary object of this run.
    pub fn run_id(&self) -> &str {
        &self.world.id
    }

    /// The bottles this run made (under test, then the neighbour); empty in NAME mode.
    pub fn made_bottles(&self) -> Vec<String> {
        if !self.owned {
            return vec![];
        }
        std::iter::once(self.bottle.clone()).chain(self.peer.iter().map(|p| p.0.clone())).collect()
    }

    /// The Docker network of the "outside" canary (tests break the boundary by joining it).
    pub fn outside_network(&self) -> &str {
        &self.world.outside.network
    }

    pub fn backend(&self) -> &dyn BottleBackend {
        &*self.backend
    }

    /// The engine the canaries and the bundles run on.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The canary wiring of the bundle under test.
    pub fn sidecar(&self) -> &SidecarOptions {
        &self.sidecar
    }

    /// Runs `only` (all categories when empty), in order, fail-closed last.
    pub async fn run(&self, only: &[Category], progress: &dyn Progress) -> Report {
        let started = Instant::now();
        let mut chosen: Vec<Category> = if only.is_empty() { Category::ALL.to_vec() } else { only.to_vec() };
        chosen.sort();
        chosen.dedup();
        let mut findings = Vec::new();
        for c in &chosen {
            progress.step(&format!("verify: {}", c.name()));
            findings.extend(categories::run(self, *c).await);
        }
        let backend = serde_json::to_value(self.kind).ok().and_then(|v| v.as_str().map(String::from));
        Report::new(&self.bottle, &backend.unwrap_or_default(), chosen, findings, started.elapsed().as_millis())
    }

    /// Removes every canary, and the bottles the suite made.
    pub async fn finish(self, progress: &dyn Progress) {
        if self.owned {
            let _ = self.backend.down(&self.bottle, progress).await;
            if let Some((peer, _)) = &self.peer {
                let _ = self.backend.down(peer, progress).await;
            }
        }
        self.world.stop().await;
    }
}

/// The whole `verify` command: prepare, run, always tear down.
pub async fn verify(
    kind: BackendKind,
    target: Target<'_>,
    only: &[Category],
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let suite = match target {
        Target::Spec(spec) => Suite::prepare(kind, spec, only, progress).await?,
        Target::Bottle(name) => Suite::attach(kind, name, only, progress).await?,
    };
    let report = suite.run(only, progress).await;
    suite.finish(progress).await;
    Ok(report)
}

/// The agent's writable mount other than the probe: where its workspace is.
async fn docker_workdir(docker: &Docker, name: &str) -> anyhow::Result<String> {
    let agent = crate::sidecar::labels::object_name(name, crate::sidecar::labels::ROLE_AGENT);
    let mounts = docker.inspect_container(&agent, None).await?.mounts.unwrap_or_default();
    Ok(mounts
        .iter()
        .find(|m| {
            m.rw == Some(true)
                && m.typ.as_deref() == Some("bind")
                && m.destination.as_deref() != Some(crate::images::PROBE_IN_AGENT)
        })
        .and_then(|m| m.destination.clone())
        .unwrap_or_else(|| "/workspace".into()))
}

/// The VM's working directory, where bottle mounts the workspace: its rendered Smolfile's `workdir`.
fn vm_workdir(name: &str) -> anyhow::Result<String> {
    let machine = crate::smolvm::MachineName::for_bottle(name).map_err(anyhow::Error::msg)?;
    let path = SmolmachinesBackend::state_dir().join(format!("{machine}.Smolfile"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("verify: reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("verify: parsing {}", path.display()))?;
    doc.get("workdir")
        .and_then(|w| w.as_str())
        .map(String::from)
        .with_context(|| format!("verify: {} has no workdir", path.display()))
}

pub enum Target<'a> {
    Spec(&'a Spec),
    Bottle(&'a str),
}

#[cfg(test)]
mod tests {
    use super::run_id_name;

    #[test]
    fn run_names_keep_to_the_spec_s_name_rule() {
        let long = format!("{}-tail", "a".repeat(20));
        for base in ["demo", long.as_str(), &"b".repeat(40)] {
            for suffix in ["", "-peer"] {
                let name = run_id_name(base, "4194304-ffff", suffix);
                assert_eq!(crate::spec::check_name(&name), Ok(()), "{name}");
            }
        }
        assert_eq!(run_id_name("demo", "12-abcd", "-peer"), "demo-v12-abcd-peer");
    }
}
