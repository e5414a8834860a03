//! Which backend a command uses, and the one place a backend is opened.
//!
//! Precedence is `--backend`, then `CLAUDE_BOTTLE_BACKEND`, then the spec's
//! `backend`, then Docker; the choice and where it came from are reported by
//! `doctor` so a surprising backend is easy to trace.

use serde::Serialize;

use super::exit::{Exit, ExitWith, Failure};
use crate::backend::{BackendKind, BottleBackend};

/// The environment variable that picks a backend when `--backend` is absent.
pub const BACKEND_ENV: &str = "CLAUDE_BOTTLE_BACKEND";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChoiceSource {
    Flag,
    Env,
    Spec,
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub kind: BackendKind,
    pub source: ChoiceSource,
}

/// Applies the precedence; `env` is the raw value of [`BACKEND_ENV`] (empty counts as unset).
pub fn choose(flag: Option<BackendKind>, env: Option<&str>, spec: Option<BackendKind>) -> Result<Choice, Failure> {
    if let Some(kind) = flag {
        return Ok(Choice { kind, source: ChoiceSource::Flag });
    }
    if let Some(raw) = env.filter(|v| !v.is_empty()) {
        let kind = crate::spec::parse_backend(raw).ok_or_else(|| {
            Failure::new(Exit::Usage, anyhow::anyhow!("{BACKEND_ENV}={raw:?}: expected docker or smolmachines"))
        })?;
        return Ok(Choice { kind, source: ChoiceSource::Env });
    }
    Ok(match spec {
        Some(kind) => Choice { kind, source: ChoiceSource::Spec },
        None => Choice { kind: BackendKind::Docker, source: ChoiceSource::Default },
    })
}

/// [`choose`] with the process environment.
pub fn choose_from_env(flag: Option<BackendKind>, spec: Option<BackendKind>) -> Result<Choice, Failure> {
    choose(flag, std::env::var(BACKEND_ENV).ok().as_deref(), spec)
}

/// The backend chosen outside any spec (flag or environment), if any: a spec is then
/// checked against that backend's limits rather than its own `backend`'s.
pub fn forced_from_env(flag: Option<BackendKind>) -> Result<Option<BackendKind>, Failure> {
    let c = choose_from_env(flag, None)?;
    Ok((c.source != ChoiceSource::Default).then_some(c.kind))
}

pub fn kind_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Docker => "docker",
        BackendKind::Smolmachines => "smolmachines",
    }
}

/// Opens the chosen backend; failing to reach its engine is [`Exit::EngineUnavailable`], a
/// missing or too old smolvm is [`Exit::BackendUnavailable`] (checked first: it needs no engine).
pub async fn open(kind: BackendKind) -> Result<Box<dyn BottleBackend>, Failure> {
    match kind {
        BackendKind::Docker => docker().await.exit_with(Exit::EngineUnavailable),
        BackendKind::Smolmachines => smolmachines().await,
    }
}

async fn docker() -> anyhow::Result<Box<dyn BottleBackend>> {
    Ok(Box::new(crate::docker::connect().await?))
}

async fn smolmachines() -> Result<Box<dyn BottleBackend>, Failure> {
    use crate::smolvm::{DockerHost, SmolmachinesBackend, Smolvm};
    let smolvm = Smolvm::discover(None)
        .await
        .map_err(|e| anyhow::anyhow!("the smolmachines backend needs smolvm: {e}"))
        .exit_with(Exit::BackendUnavailable)?;
    let host = DockerHost::connect()
        .await
        .map_err(|e| e.context("the smolmachines backend runs its bundle on Docker"))
        .exit_with(Exit::EngineUnavailable)?;
    Ok(Box::new(SmolmachinesBackend::new(smolvm, Box::new(host), SmolmachinesBackend::state_dir()).with_probe()))
}
