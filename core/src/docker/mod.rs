//! The Docker backend: runs a bottle's agent as a container behind its sidecar bundle.
//!
//! The agent sits alone with the bundle on an internal network (see
//! `sidecar`), so the bundle's proxy is the only thing it can talk to; if the
//! bundle stops, the agent has no way out at all. Docker's labels are the only
//! record of a bottle, and the per-bottle token lives only inside its bundle,
//! so a restarted bottle-core sees every bottle with nothing to reload.

mod agent;
mod check;
mod doctor;
pub mod endpoint;
mod exec;
mod logs;
mod record_cache;
mod state;

use anyhow::Context;
use async_trait::async_trait;
use bollard::Docker;
use futures_util::StreamExt;

pub use agent::{agent_ids, gate_env, no_proxy};
pub use check::{BLOCKED_PROBE_URL, MECHANISM, start_check};
pub use doctor::doctor;
pub use state::name_lock_path;

use crate::backend::{
    AllowlistStatus, BackendKind, BottleBackend, BottleStatus, Check, ControlEndpoint, ExecOutput, ExecRequest,
    LogOptions, LogSource, LogStream, Progress, Verdict, timed,
};
use crate::images;
use crate::netpool::{self, NetPool};
use crate::sidecar::{self, BundleRequest, SidecarOptions, labels};
use crate::spec::Spec;

/// Options of the Docker backend beyond the spec.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Canary and test knobs for the bundle (never from a bottle.toml).
    pub sidecar: SidecarOptions,
    /// Run the start check after `up` (default). Off only in tests of plumbing that has no proxy to check.
    pub start_check: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self { sidecar: SidecarOptions::default(), start_check: true }
    }
}

pub struct DockerBackend {
    docker: Docker,
    pool: NetPool,
    options: DockerOptions,
}

/// Connects to the engine (found as the `docker` CLI finds it, see [`endpoint`]) and agrees on an API version.
/// Canary knobs come from the `BOTTLE_CANARY_*` variables (see `sidecar::config`).
pub async fn connect() -> anyhow::Result<DockerBackend> {
    let options = DockerOptions { sidecar: SidecarOptions::from_env()?, ..Default::default() };
    DockerBackend::connect(options).await
}

/// Lines of a container's log kept when reporting why it died.
pub const LOG_TAIL_LINES: usize = 1000;

/// The last `lines` lines of a container's stdout and stderr.
pub async fn logs_tail(docker: &Docker, container: &str, lines: usize) -> anyhow::Result<String> {
    let mut stream = logs::stream(docker, container, Some(lines), false);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?.bytes);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub use logs::stream as log_stream;

/// Bottle names become Docker object names, so they keep to what Docker accepts.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        anyhow::bail!("bottle name {name:?}: use 1-48 of [A-Za-z0-9_.-], starting with a letter or digit");
    }
    Ok(())
}

/// The engine the `docker` CLI would use (see [`endpoint`]), at an API version both sides speak.
/// Shared with the smolmachines backend, whose bundle runs on the same engine.
pub async fn engine() -> anyhow::Result<Docker> {
    let at = endpoint::discover()?;
    let answered = match Docker::connect_with_host(&at.host) {
        Ok(docker) => docker.negotiate_version().await,
        Err(e) => Err(e),
    };
    answered.map_err(|e| {
        anyhow::Error::new(e).context(format!("docker: no engine answers at {at}; {}", endpoint::socket_hint(&at.host)))
    })
}

impl DockerBackend {
    pub async fn connect(options: DockerOptions) -> anyhow::Result<Self> {
        Ok(Self { docker: engine().await?, pool: NetPool::from_env()?, options })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn options(&self) -> &DockerOptions {
        &self.options
    }

    /// Removes what interrupted `up`s left behind and bottles whose agent and bundle have both
    /// stopped (skipping names with an `up`/`down` in progress); returns the names removed.
    /// A degraded bottle stays: its state is news the user should see.
    async fn collect(&self, remove: bool) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for name in state::names(&self.docker).await? {
            // Only a bottle that looks like garbage is locked, then looked at again under the
            // lock: holding the lock of a live bottle, even briefly, would fail its `down`.
            // (A bottle a concurrent `down` removes mid-look is a candidate; the locked look decides.)
            if !self.is_garbage(&name).await.unwrap_or(true) {
                continue;
            }
            let Some(_lock) = netpool::lock_file(&state::name_lock_path(&name), false)? else { continue };
            if self.is_garbage(&name).await? && !self.being_made_elsewhere(&name).await? {
                if remove {
                    state::remove(&self.docker, &name).await?;
                }
                found.push(name);
            }
        }
        if remove {
            record_cache::prune(&self.docker).await?;
        }
        Ok(found)
    }

    /// Left half-made by an interrupted `up`, or with both containers stopped.
    async fn is_garbage(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!state::complete(&self.docker, name).await? || state::status(&self.docker, name).await?.state == "stopped")
    }

    /// Half-made by another user's `up` that may still be running (their lock is not ours to see).
    async fn being_made_elsewhere(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!state::complete(&self.docker, name).await?
            && state::made_by_another_user(&self.docker, name).await?.is_some())
    }

    async fn lock_name(&self, name: &str) -> anyhow::Result<std::fs::File> {
        netpool::lock_file(&state::name_lock_path(name), false)?
            .with_context(|| format!("bottle {name}: another `up` or `down` of it is in progress"))
    }

    /// Everything of `up` after the name is locked and leftovers are gone. Each step is
    /// reported to `progress` by the name `up --json` shows in its `timings`.
    async fn make(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<AllowlistStatus> {
        let d = &self.docker;
        // The networks need nothing of the images: both side by side.
        let images = timed(progress, "images", async {
            tokio::try_join!(
                images::ensure_bundle_image(d, progress),
                images::resolve_agent_image(d, &spec.name, &spec.image, progress),
                images::ensure_probe_file(progress),
            )
        });
        let networks = timed(
            progress,
            "networks",
            sidecar::create_networks(d, &self.pool, BackendKind::Docker, &spec.name, progress),
        );
        let ((bundle_image, agent_image, probe), placement) = tokio::try_join!(images, networks)?;
        let rendered = sidecar::render(spec, &placement, &self.options.sidecar, &sidecar::new_token())?;
        let bundle = BundleRequest {
            backend: BackendKind::Docker,
            name: &spec.name,
            placement: &placement,
            image: &bundle_image,
            rendered: &rendered,
            options: &self.options.sidecar,
        };
        // Both containers have pinned addresses, so neither can take the other's, and they are
        // made side by side: until the bundle listens, the agent's only way out refuses (fail closed).
        progress.step(&format!(
            "creating and starting the bundle (proxy, egress, git gate, supervise, control plane) and the agent ({agent_image}) on {}",
            placement.agent_subnet
        ));
        let bundle = async {
            timed(progress, "bundle_create", sidecar::create_bundle(d, bundle)).await?;
            timed(progress, "bundle_start", sidecar::run_bundle(d, &spec.name, &placement)).await
        };
        let api_env = sidecar::api_env(spec, &rendered.config);
        let agent = timed(progress, "agent", agent::create_agent(d, spec, &placement, &agent_image, &probe, api_env));
        let (agent, ()) = tokio::try_join!(agent, bundle)?;
        let (verdict, restarts) = if self.options.start_check {
            progress.step("start check: from inside the agent, one canary unreachable and one reachable");
            timed(progress, "start_check", async {
                // Counted before the check: a restart while it runs must not pass for one it saw.
                let restarts = sidecar::restarts::restart_count(d, &spec.name).await?;
                let verdict = check::start_check(d, &agent, &placement, &spec.allow, &self.options.sidecar).await;
                anyhow::Ok((verdict, restarts))
            })
            .await?
        } else {
            let verdict = AllowlistStatus {
                verdict: Verdict::NotVerified,
                allowlist: spec.allow.clone(),
                mechanism: MECHANISM.into(),
                checked_at: None,
                detail: "start check turned off by the backend options".into(),
                vmm: None,
            };
            (verdict, sidecar::restarts::restart_count(d, &spec.name).await?)
        };
        let record = vec![check::record(&verdict, restarts)?];
        timed(progress, "record", async {
            sidecar::bundle::write_files(d, &spec.name, record).await?;
            record_cache::keep(d, &spec.name, &verdict, restarts).await;
            anyhow::Ok(())
        })
        .await?;
        Ok(verdict)
    }

    /// `up` of a bottle whose bundle the engine restarted since its start check: the check
    /// runs again on the running bottle, and nothing counts as verified until it passes. A
    /// check that fails engages the kill switch and leaves the bottle for the user to see.
    async fn recheck(
        &self,
        name: &str,
        allow: &[String],
        restarts: u64,
        progress: &dyn Progress,
    ) -> anyhow::Result<BottleStatus> {
        let d = &self.docker;
        let placement = sidecar::Placement::find(d, BackendKind::Docker, name)
            .await?
            .with_context(|| format!("bottle {name}: its networks are gone"))?;
        let control = crate::control_client::ControlClient::new(&sidecar::control_endpoint(d, name).await?)?;
        // With the switch engaged nothing may pass, an allowed canary included: only the
        // refusals are checked then.
        let mut options = self.options.sidecar.clone();
        if control.health().await?.kill_switch {
            options.canary_url = None;
        }
        progress.step("the bundle restarted since the start check: running the start check again");
        let agent = labels::object_name(name, labels::ROLE_AGENT);
        let verdict = check::start_check(d, &agent, &placement, allow, &options).await;
        sidecar::bundle::write_files(d, name, vec![check::record(&verdict, restarts)?]).await?;
        record_cache::keep(d, name, &verdict, restarts).await;
        if verdict.verdict != Verdict::Verified {
            control.kill(true).await.context("engaging the kill switch after a failed re-check")?;
            anyhow::bail!(
                "bottle {name}: the start check failed after the bundle's restart; kill switch engaged: {}",
                verdict.detail
            );
        }
        state::status(d, name).await
    }
}

#[async_trait]
impl BottleBackend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    async fn preflight(&self, spec: &Spec) -> crate::preflight::Report {
        crate::preflight::check(spec, Some(&self.docker), BackendKind::Docker).await
    }

    async fn up(&self, spec: &Spec, progress: &dyn Progress) -> anyhow::Result<BottleStatus> {
        validate_name(&spec.name)?;
        let spec = &self.preflight(spec).await.ready(progress)?;
        // Before anything is made: binaries for another platform than the engine's cannot run.
        images::check_static_binaries(&self.docker, progress).await?;
        let _lock = self.lock_name(&spec.name).await?;
        if state::complete(&self.docker, &spec.name).await? {
            // Counted before the check, as at a first `up`.
            let restarts = sidecar::restarts::restart_count(&self.docker, &spec.name).await?;
            if let Some(record) = state::record(&self.docker, &spec.name).await
                && restarts > record.bundle_restarts
            {
                return self.recheck(&spec.name, &record.status.allowlist, restarts, progress).await;
            }
            anyhow::bail!("bottle {}: already exists; `down` it first or pick another name", spec.name);
        }
        if state::exists(&self.docker, &spec.name).await? {
            if let Some(uid) = state::made_by_another_user(&self.docker, &spec.name).await? {
                anyhow::bail!(
                    "bottle {}: another user (uid {uid}) is bringing a bottle of this name up; pick another name",
                    spec.name
                );
            }
            progress.step("removing what an interrupted `up` of this name left behind");
            state::remove(&self.docker, &spec.name).await?;
        }
        match self.make(spec, progress).await {
            // A boundary not seen to hold is not handed over: a check that could not run
            // counts as failed. (With the check turned off by the options, nothing was claimed.)
            Ok(verdict) if self.options.start_check && verdict.verdict != Verdict::Verified => {
                progress.step("start check failed: stopping the bottle");
                state::remove(&self.docker, &spec.name).await?;
                anyhow::bail!("bottle {}: start check failed, bottle removed: {}", spec.name, verdict.detail)
            }
            // What `status` would read back: both containers were seen running, and the
            // check just passed. Asking the engine again costs three more round trips.
            Ok(verdict) => Ok(BottleStatus {
                name: spec.name.clone(),
                backend: BackendKind::Docker,
                state: "running".into(),
                detail: agent::user_note(spec.run_as_image_user, String::new()),
                allowlist: verdict,
                live: None,
            }),
            Err(e) => {
                // Best effort: whatever is left is labelled, so `gc` gets it if this fails too.
                let _ = state::remove(&self.docker, &spec.name).await;
                Err(e.context(format!("bottle {}: up failed; removed what it had made", spec.name)))
            }
        }
    }

    async fn down(&self, name: &str, progress: &dyn Progress) -> anyhow::Result<()> {
        let _lock = self.lock_name(name).await?;
        if !state::exists(&self.docker, name).await? {
            anyhow::bail!("bottle {name}: no such bottle");
        }
        progress.step(&format!("removing bottle {name} (the workspace is left as it is)"));
        if state::complete(&self.docker, name).await? {
            state::remove_finished(&self.docker, name).await
        } else {
            state::remove(&self.docker, name).await
        }
    }

    async fn status(&self, name: &str) -> anyhow::Result<BottleStatus> {
        state::status(&self.docker, name).await
    }

    async fn exec(&self, name: &str, cmd: &[String]) -> anyhow::Result<ExecOutput> {
        exec::exec(&self.docker, &labels::object_name(name, labels::ROLE_AGENT), cmd).await
    }

    async fn exec_attached(&self, name: &str, req: ExecRequest) -> anyhow::Result<i64> {
        exec::exec_attached(&self.docker, &labels::object_name(name, labels::ROLE_AGENT), req).await
    }

    async fn log_stream(&self, name: &str, opts: LogOptions) -> anyhow::Result<LogStream<'_>> {
        let role = match opts.source {
            LogSource::Agent => labels::ROLE_AGENT,
            LogSource::Bundle => labels::ROLE_BUNDLE,
        };
        let container = labels::object_name(name, role);
        // A missing container is an error here, before any output, so `found` can name the bottle.
        self.docker
            .inspect_container(&container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("no {role} container {container}"))?;
        Ok(logs::stream(&self.docker, &container, opts.tail, opts.follow))
    }

    async fn logs(&self, name: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        for role in [labels::ROLE_AGENT, labels::ROLE_BUNDLE] {
            let container = labels::object_name(name, role);
            out.push_str(&format!("==> {role} ({container})\n"));
            out.push_str(&logs_tail(&self.docker, &container, LOG_TAIL_LINES).await?);
        }
        Ok(out)
    }

    async fn list(&self) -> anyhow::Result<Vec<BottleStatus>> {
        state::statuses(&self.docker).await
    }

    async fn control_endpoint(&self, name: &str) -> anyhow::Result<ControlEndpoint> {
        sidecar::control_endpoint(&self.docker, name).await
    }

    async fn gc(&self, dry_run: bool) -> anyhow::Result<Vec<String>> {
        self.collect(!dry_run).await
    }

    /// Engine, images and subnet pool, each with what to do when it is wrong.
    async fn doctor(&self) -> Vec<Check> {
        doctor::doctor(&self.docker, &self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_docker_objects() {
        for ok in ["demo", "a", "my-bottle_2.x"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(49)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("bottle name"), "{e}");
        }
    }
}
