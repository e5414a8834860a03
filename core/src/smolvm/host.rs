//! [`DockerHost`]: the Docker side of a smolmachines bottle, built from the
//! same `crate::sidecar` and `crate::images` code the Docker backend uses.
//!
//! Two things differ from the Docker backend, both because smolvm's network
//! stack opens the VM's connections from the host:
//! - the bundle's agent network keeps the host's address
//!   (`sidecar::network::host_on_agent_net`), or the host could not route to
//!   `<bundle-ip>`. That address is the gateway hole the Docker backend closes
//!   with `inhibit_ipv4`; here the VM cannot use it, because its allowlist is
//!   `<bundle-ip>/32` and the gateway is another address;
//! - the VM reaches every port on `<bundle-ip>` (smolvm filters addresses, not
//!   ports), so nothing host-only may listen there. The control plane binds the
//!   bundle's egress-network address and is published on host loopback; that is
//!   checked on every placement, not assumed.
//!
//! The start check's canary is the control plane itself, on the egress
//! network: outside the allowlist, always accepting TCP while the bundle runs,
//! and useless to a VM that reached it (it wants a token the VM never sees).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use async_trait::async_trait;
use bollard::Docker;
use bottle_protocol::config::{DEFAULT_CONTROL_PORT, DEFAULT_PROXY_PORT};

use super::allowlist::SmolAllowlistStatus;
use super::backend::{BundleEndpoint, HostSide};
use super::image;
use super::smolfile::BundleAddr;
use crate::backend::{BackendKind, Check, LogStream, Progress, Verdict};
use crate::engine::logs;
use crate::images;
use crate::netpool::NetPool;
use crate::sidecar::config::BundleFile;
use crate::sidecar::{self, BundleRequest, Placement, SidecarOptions, labels, objects, restarts};
use crate::spec::Spec;

const BACKEND: BackendKind = BackendKind::Smolmachines;
/// Where the start-check record is kept: in the bundle, like the Docker backend's, so it
/// lives exactly as long as the bottle and a new bottle-core process reads it back.
pub const RECORD_PATH: &str = "/etc/bottle/smolvm-start-check.json";

pub struct DockerHost {
    docker: Docker,
    pool: NetPool,
    sidecar: SidecarOptions,
    /// Where `docker save` archives are cached (`images::cache_dir()` outside tests).
    cache_dir: PathBuf,
}

impl DockerHost {
    pub fn new(docker: Docker, pool: NetPool, sidecar: SidecarOptions, cache_dir: PathBuf) -> Self {
        Self { docker, pool, sidecar, cache_dir }
    }

    /// The local engine, the subnet pool and canary knobs from the environment.
    pub async fn connect() -> anyhow::Result<Self> {
        Self::connect_with(SidecarOptions::from_env()?).await
    }

    /// The local engine and subnet pool, with bundles placed as `sidecar` says.
    pub async fn connect_with(sidecar: SidecarOptions) -> anyhow::Result<Self> {
        Ok(Self::new(crate::engine::connect().await?, NetPool::from_env()?, sidecar, images::cache_dir()))
    }

    async fn place(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<Placement> {
        let d = &self.docker;
        let bundle_image = images::ensure_bundle_image(d, progress).await?;
        let placement = sidecar::create_networks(d, &self.pool, BACKEND, &spec.name, progress).await?;
        let rendered = sidecar::render(spec, &placement, &self.sidecar, &sidecar::new_token())?;
        let control = rendered.config.listen.control;
        if control.ip() == IpAddr::V4(placement.bundle_ip) {
            anyhow::bail!("bundle: the control plane would listen on {control}, the VM's allowed address; refusing");
        }
        let req = BundleRequest {
            backend: BACKEND,
            name: &spec.name,
            placement: &placement,
            image: &bundle_image,
            rendered: &rendered,
            options: &self.sidecar,
        };
        progress.step("starting the bundle");
        sidecar::create_bundle(d, req).await?;
        sidecar::run_bundle(d, &spec.name).await?;
        Ok(placement)
    }

    fn container(bottle: &str) -> String {
        labels::object_name(bottle, labels::ROLE_BUNDLE)
    }
}

#[async_trait]
impl HostSide for DockerHost {
    fn engine(&self) -> Option<&Docker> {
        Some(&self.docker)
    }

    async fn place_bundle(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<BundleEndpoint> {
        // The caller found no VM of this name, so anything labelled with it is an interrupted `up`'s.
        objects::remove(&self.docker, BACKEND, &spec.name).await?;
        if let Err(e) = self.place(spec, progress).await {
            // Best effort: whatever is left is labelled, so `down` or `gc` gets it if this fails too.
            let _ = objects::remove(&self.docker, BACKEND, &spec.name).await;
            return Err(e.context(format!("bottle {}: placing the bundle failed; removed what it had made", spec.name)));
        }
        self.bundle(&spec.name)
            .await?
            .with_context(|| format!("bottle {}: the bundle stopped right after it started", spec.name))
    }

    async fn bundle(&self, bottle: &str) -> anyhow::Result<Option<BundleEndpoint>> {
        let info = match self.docker.inspect_container(&Self::container(bottle), None).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("bottle {bottle}: inspecting its bundle")),
        };
        let l = info.config.and_then(|c| c.labels).unwrap_or_default();
        let ours = l.get(labels::BACKEND).map(String::as_str) == Some(labels::backend_value(BACKEND));
        let running = info.state.and_then(|s| s.running) == Some(true);
        if !ours || !running {
            return Ok(None);
        }
        let ip: IpAddr = l
            .get(labels::BUNDLE_IP)
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("bottle {bottle}: its bundle has no {} label", labels::BUNDLE_IP))?;
        Ok(Some(BundleEndpoint {
            addr: BundleAddr { ip, proxy_port: DEFAULT_PROXY_PORT },
            control: sidecar::control_endpoint(&self.docker, bottle).await?,
        }))
    }

    async fn bottles(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = objects::containers(&self.docker, BACKEND, None)
            .await?
            .into_iter()
            .filter_map(|c| c.labels?.get(labels::NAME).cloned())
            .collect();
        for n in sidecar::network::list_networks(&self.docker, BACKEND, None).await? {
            names.extend(n.labels.and_then(|l| l.get(labels::NAME).cloned()));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn remove_bundle(&self, bottle: &str, progress: &dyn Progress) -> anyhow::Result<()> {
        progress.step(&format!("removing the bundle and networks of {bottle}"));
        objects::remove(&self.docker, BACKEND, bottle).await
    }

    async fn export_agent_image(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
        let tag = images::resolve_agent_image(&self.docker, &spec.name, &spec.image, progress).await?;
        image::save_cached(&self.docker, &tag, &self.cache_dir, progress).await
    }

    async fn canary(&self, bottle: &str) -> anyhow::Result<SocketAddr> {
        let p = Placement::find(&self.docker, BACKEND, bottle)
            .await?
            .with_context(|| format!("bottle {bottle}: no networks"))?;
        Ok(SocketAddr::from((p.bundle_egress_ip, DEFAULT_CONTROL_PORT)))
    }

    async fn record_check(&self, bottle: &str, status: &SmolAllowlistStatus) -> anyhow::Result<()> {
        let bundle_restarts = restarts::restart_count(&self.docker, bottle).await?;
        let record = restarts::Checked { status: status.clone(), bundle_restarts };
        let file = BundleFile { path: RECORD_PATH, contents: serde_json::to_vec(&record)? };
        sidecar::bundle::write_files(&self.docker, bottle, vec![file]).await
    }

    /// The recorded check, which no longer counts as verified once the engine has restarted
    /// the bundle since (the VM's status then shows the bottle degraded, saying why).
    async fn recorded_check(&self, bottle: &str) -> anyhow::Result<Option<SmolAllowlistStatus>> {
        let Ok(text) = sidecar::bundle::read_file(&self.docker, &Self::container(bottle), RECORD_PATH).await else {
            return Ok(None);
        };
        let Ok(restarts::Checked::<SmolAllowlistStatus> { mut status, bundle_restarts }) = serde_json::from_str(&text)
        else {
            return Ok(None);
        };
        let remedy = "`down` and `up` the bottle to check it again";
        if let Some(check) = &mut status.check
            && let Some(why) = restarts::since_check(&self.docker, bottle, bundle_restarts, remedy).await?
        {
            check.verdict = Verdict::NotVerified;
            check.detail = why;
        }
        Ok(Some(status))
    }

    async fn doctor(&self) -> Vec<Check> {
        sidecar::doctor(&self.docker, &self.pool).await
    }

    async fn bundle_logs(&self, bottle: &str) -> anyhow::Result<String> {
        let container = Self::container(bottle);
        let mut out = format!("==> bundle ({container})\n");
        out.push_str(&logs::logs_tail(&self.docker, &container, logs::LOG_TAIL_LINES).await?);
        Ok(out)
    }

    async fn bundle_log_stream(
        &self,
        bottle: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> anyhow::Result<LogStream<'_>> {
        let container = Self::container(bottle);
        self.docker
            .inspect_container(&container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("smolmachines: bottle {bottle}: no bundle container {container}"))?;
        Ok(logs::stream(&self.docker, &container, tail, follow))
    }
}
