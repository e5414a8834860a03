//! The Docker backend: runs a bottle's agent as a container behind its sidecar bundle.
//!
//! The agent sits alone with the bundle on an internal network (see
//! `sidecar`), so the bundle's proxy is the only thing it can talk to; if the
//! bundle stops, the agent has no way out at all. Docker's labels are the only
//! record of a bottle, and the per-bottle token lives only inside its bundle,
//! so a restarted bottle-core sees every bottle with nothing to reload.

mod agent;
mod check;
mod exec;
mod record_cache;
mod state;

use anyhow::Context;
use async_trait::async_trait;
use bollard::Docker;

/// Where the CLI finds the engine's address for its hint when the engine does not answer.
pub use check::{BLOCKED_PROBE_URL, MECHANISM, start_check};

use crate::backend::{
    AllowlistStatus, BackendKind, BottleBackend, BottleState, BottleStatus, Check, ControlEndpoint, Error, ExecOutput,
    ExecRequest, LogOptions, LogSource, LogStream, Progress, Result, Verdict, timed,
};
use crate::engine::logs::{self, LOG_TAIL_LINES, logs_tail};
use crate::images;
use crate::netpool::{self, NetPool};
use crate::paths;
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

/// Connects to the engine (found as the `docker` CLI finds it, see [`crate::engine::endpoint`]) and agrees on an API version.
/// Canary knobs come from the `BOTTLE_CANARY_*` variables (see `sidecar::config`).
pub async fn connect() -> anyhow::Result<DockerBackend> {
    let options = DockerOptions { sidecar: SidecarOptions::from_env()?, ..Default::default() };
    DockerBackend::connect(options).await
}

/// The spec's one name rule ([`crate::spec::check_name`]), for a spec that came from no file,
/// naming the value at fault.
fn validate_name(name: &str) -> anyhow::Result<()> {
    crate::spec::check_name(name).map_err(|why| anyhow::anyhow!("bottle name {name:?}: {why}"))
}

impl DockerBackend {
    pub async fn connect(options: DockerOptions) -> anyhow::Result<Self> {
        Ok(Self { docker: crate::engine::connect().await?, pool: NetPool::from_env()?, options })
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
            let Some(_lock) = netpool::lock_file(&paths::name_lock_path(&name), false)? else { continue };
            if self.is_garbage(&name).await? && !self.being_made_elsewhere(&name).await? {
                if remove {
                    state::remove(&self.docker, &name).await?;
                }
                found.push(name);
            }
        }
        if remove {
            crate::sidecar::host_copy::prune(&self.docker).await?;
        }
        Ok(found)
    }

    /// Left half-made by an interrupted `up`, or with both containers stopped.
    async fn is_garbage(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!state::complete(&self.docker, name).await?
            || state::status(&self.docker, name).await?.state == BottleState::Stopped)
    }

    /// Half-made by another user's `up` that may still be running (their lock is not ours to see).
    async fn being_made_elsewhere(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!state::complete(&self.docker, name).await?
            && state::made_by_another_user(&self.docker, name).await?.is_some())
    }

    async fn lock_name(&self, name: &str) -> anyhow::Result<std::fs::File> {
        netpool::lock_file(&paths::name_lock_path(name), false)?
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
            timed(progress, "bundle_start", sidecar::run_bundle(d, &spec.name)).await
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
        Ok(state::status(d, name).await?)
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

    async fn up(&self, spec: &Spec, progress: &dyn Progress) -> Result<BottleStatus> {
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
                return Ok(self.recheck(&spec.name, &record.status.allowlist, restarts, progress).await?);
            }
            return Err(
                anyhow::anyhow!("bottle {}: already exists; `down` it first or pick another name", spec.name).into()
            );
        }
        if state::exists(&self.docker, &spec.name).await? {
            if let Some(uid) = state::made_by_another_user(&self.docker, &spec.name).await? {
                return Err(anyhow::anyhow!(
                    "bottle {}: another user (uid {uid}) is bringing a bottle of this name up; pick another name",
                    spec.name
                )
                .into());
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
                Err(anyhow::anyhow!("bottle {}: start check failed, bottle removed: {}", spec.name, verdict.detail)
                    .into())
            }
            // What `status` would read back: both containers were seen running, and the
            // check just passed. Asking the engine again costs three more round trips.
            Ok(verdict) => Ok(BottleStatus {
                name: spec.name.clone(),
                backend: BackendKind::Docker,
                state: BottleState::Running,
                detail: agent::user_note(spec.run_as_image_user, String::new()),
                allowlist: verdict,
                live: None,
            }),
            Err(e) => {
                // Best effort: whatever is left is labelled, so `gc` gets it if this fails too.
                let _ = state::remove(&self.docker, &spec.name).await;
                Err(e.context(format!("bottle {}: up failed; removed what it had made", spec.name)).into())
            }
        }
    }

    async fn down(&self, name: &str, progress: &dyn Progress) -> Result<()> {
        let _lock = self.lock_name(name).await?;
        if !state::exists(&self.docker, name).await? {
            return Err(Error::not_found(name));
        }
        progress.step(&format!("removing bottle {name} (the workspace is left as it is)"));
        if state::complete(&self.docker, name).await? {
            Ok(state::remove_finished(&self.docker, name).await?)
        } else {
            Ok(state::remove(&self.docker, name).await?)
        }
    }

    async fn status(&self, name: &str) -> Result<BottleStatus> {
        state::status(&self.docker, name).await
    }

    async fn exec(&self, name: &str, cmd: &[String]) -> Result<ExecOutput> {
        let res = exec::exec(&self.docker, &labels::object_name(name, labels::ROLE_AGENT), cmd).await;
        self.about(name, res).await
    }

    async fn exec_attached(&self, name: &str, req: ExecRequest) -> Result<i64> {
        let res = exec::exec_attached(&self.docker, &labels::object_name(name, labels::ROLE_AGENT), req).await;
        self.about(name, res).await
    }

    async fn log_stream(&self, name: &str, opts: LogOptions) -> Result<LogStream<'_>> {
        let role = match opts.source {
            LogSource::Agent => labels::ROLE_AGENT,
            LogSource::Bundle => labels::ROLE_BUNDLE,
        };
        let container = labels::object_name(name, role);
        // A missing container is an error here, before any output, so a missing bottle is named.
        let found = self
            .docker
            .inspect_container(&container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("no {role} container {container}"));
        self.about(name, found).await?;
        Ok(logs::stream(&self.docker, &container, opts.tail, opts.follow))
    }

    async fn logs(&self, name: &str) -> Result<String> {
        let mut out = String::new();
        for role in [labels::ROLE_AGENT, labels::ROLE_BUNDLE] {
            let container = labels::object_name(name, role);
            out.push_str(&format!("==> {role} ({container})\n"));
            out.push_str(&self.about(name, logs_tail(&self.docker, &container, LOG_TAIL_LINES).await).await?);
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<BottleStatus>> {
        Ok(state::statuses(&self.docker).await?)
    }

    async fn control_endpoint(&self, name: &str) -> Result<ControlEndpoint> {
        let res = sidecar::control_endpoint(&self.docker, name).await;
        self.about(name, res).await
    }

    async fn control_endpoints(&self, names: &[&str]) -> Vec<Result<ControlEndpoint>> {
        match sidecar::bundle::control_endpoints(&self.docker, BackendKind::Docker, names).await {
            Ok(each) => each.into_iter().map(|res| Ok(res?)).collect(),
            Err(e) => names.iter().map(|_| Err(anyhow::anyhow!("{e:#}").into())).collect(),
        }
    }

    async fn gc(&self, dry_run: bool) -> Result<Vec<String>> {
        Ok(self.collect(!dry_run).await?)
    }

    /// Engine, images and subnet pool, each with what to do when it is wrong.
    async fn doctor(&self) -> Vec<Check> {
        sidecar::doctor(&self.docker, &self.pool).await
    }
}

impl DockerBackend {
    /// The result of an operation on bottle `name`'s containers, with a container the engine
    /// does not have ([`is_missing`]) reported as [`Error::NotFound`] when the bottle has no
    /// object left at all (a bottle with only its bundle gone is still there, and broken).
    async fn about<T>(&self, name: &str, res: anyhow::Result<T>) -> Result<T> {
        match res {
            Err(e) if is_missing(&e) && !state::exists(&self.docker, name).await? => Err(Error::not_found(name)),
            res => Ok(res?),
        }
    }
}

/// Whether the engine answered 404 (no such container) somewhere down the chain.
fn is_missing(e: &anyhow::Error) -> bool {
    use bollard::errors::Error as Engine;
    e.chain()
        .any(|c| matches!(c.downcast_ref::<Engine>(), Some(Engine::DockerResponseServerError { status_code: 404, .. })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_to_the_spec_s_rule_and_errors_name_the_value() {
        for ok in ["demo", "a", "my-bottle-2", &"x".repeat(40)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-x", "x-", "a b", "a/b", "My", "a_b", "a.b", &"x".repeat(41)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("bottle name {bad:?}: a bottle name is 1-40")), "{e}");
        }
    }
}
