//! Which backend a command uses, and the one place a backend is opened.
//!
//! Precedence is `--backend`, then `CLAUDE_BOTTLE_BACKEND`, then the spec's
//! `backend`, then Docker; the choice and where it came from are reported by
//! `doctor` so a surprising backend is easy to trace.

use serde::Serialize;

use crate::backend::{BackendKind, BottleBackend, Error};

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

impl ChoiceSource {
    /// The word `doctor` prints after "from".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Env => "env",
            Self::Spec => "spec",
            Self::Default => "default",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub kind: BackendKind,
    pub source: ChoiceSource,
}

impl Choice {
    /// `docker (from default)`: what `doctor` reports as its first check.
    pub fn describe(&self) -> String {
        format!("{} (from {})", kind_name(self.kind), self.source.as_str())
    }
}

/// Applies the precedence; `env` is the raw value of [`BACKEND_ENV`] (empty counts as unset).
pub fn choose(flag: Option<BackendKind>, env: Option<&str>, spec: Option<BackendKind>) -> Result<Choice, Error> {
    if let Some(kind) = flag {
        return Ok(Choice { kind, source: ChoiceSource::Flag });
    }
    if let Some(raw) = env.filter(|v| !v.is_empty()) {
        let kind = crate::spec::parse_backend(raw).ok_or_else(|| {
            Error::InvalidSpec(anyhow::anyhow!("{BACKEND_ENV}={raw:?}: expected docker or smolmachines"))
        })?;
        return Ok(Choice { kind, source: ChoiceSource::Env });
    }
    Ok(match spec {
        Some(kind) => Choice { kind, source: ChoiceSource::Spec },
        None => Choice { kind: BackendKind::Docker, source: ChoiceSource::Default },
    })
}

/// [`choose`] with the process environment.
pub fn choose_from_env(flag: Option<BackendKind>, spec: Option<BackendKind>) -> Result<Choice, Error> {
    choose(flag, std::env::var(BACKEND_ENV).ok().as_deref(), spec)
}

/// The backend chosen outside any spec (flag or environment), if any: a spec is then
/// checked against that backend's limits rather than its own `backend`'s.
pub fn forced_from_env(flag: Option<BackendKind>) -> Result<Option<BackendKind>, Error> {
    let c = choose_from_env(flag, None)?;
    Ok((c.source != ChoiceSource::Default).then_some(c.kind))
}

pub fn kind_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Docker => "docker",
        BackendKind::Smolmachines => "smolmachines",
    }
}

/// Opens the chosen backend; failing to reach its engine is [`Error::EngineUnavailable`], a
/// missing or too old smolvm is [`Error::BackendUnavailable`] (checked first: it needs no engine).
pub async fn open(kind: BackendKind) -> Result<Box<dyn BottleBackend>, Error> {
    match kind {
        BackendKind::Docker => Ok(Box::new(crate::docker::connect().await.map_err(Error::EngineUnavailable)?)),
        BackendKind::Smolmachines => smolmachines().await,
    }
}

/// Opens the backend of commands without a spec: flag, then environment, then Docker.
pub async fn open_default(flag: Option<BackendKind>) -> Result<Box<dyn BottleBackend>, Error> {
    open(choose_from_env(flag, None)?.kind).await
}

async fn smolmachines() -> Result<Box<dyn BottleBackend>, Error> {
    use crate::smolvm::{DockerHost, SmolmachinesBackend, Smolvm};
    let smolvm = Smolvm::discover(None)
        .await
        .map_err(|e| Error::BackendUnavailable(anyhow::anyhow!("the smolmachines backend needs smolvm: {e}")))?;
    let host = DockerHost::connect()
        .await
        .map_err(|e| Error::EngineUnavailable(e.context("the smolmachines backend runs its bundle on Docker")))?;
    Ok(Box::new(SmolmachinesBackend::new(smolvm, Box::new(host), SmolmachinesBackend::state_dir()).with_probe()))
}
