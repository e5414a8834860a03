//! The one error type every FFI call throws; in Swift, `BottleError` cases.
//!
//! Variants follow the CLI's exit codes, so the app can tell "start Docker"
//! from "fix bottle.toml" from "no such bottle" without parsing messages. The
//! message is the whole cause chain on one line, as the CLI would print it.

use bottle_core::cli::{Exit, Failure};

#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum BottleError {
    /// bottle.toml is missing or invalid, or an argument is malformed.
    #[error("{0}")]
    InvalidSpec(String),
    /// The container engine (or VM runtime) cannot be reached.
    #[error("{0}")]
    EngineUnavailable(String),
    /// No bottle by that name.
    #[error("{0}")]
    NotFound(String),
    /// The chosen backend is not part of this build.
    #[error("{0}")]
    BackendUnavailable(String),
    /// Anything else: a failed start, an unreachable control plane, ...
    #[error("{0}")]
    Runtime(String),
}

impl From<Failure> for BottleError {
    fn from(f: Failure) -> Self {
        let message = format!("{:#}", f.error);
        match f.exit {
            Exit::Usage => Self::InvalidSpec(message),
            Exit::EngineUnavailable => Self::EngineUnavailable(message),
            Exit::NotFound => Self::NotFound(message),
            Exit::BackendUnavailable => Self::BackendUnavailable(message),
            Exit::Ok | Exit::Runtime | Exit::BoundaryFailed => Self::Runtime(message),
        }
    }
}

impl From<anyhow::Error> for BottleError {
    fn from(e: anyhow::Error) -> Self {
        Failure::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pick_the_case_and_keep_the_cause_chain() {
        let e: BottleError = Failure::new(Exit::NotFound, anyhow::anyhow!("inner").context("bottle x")).into();
        assert!(matches!(&e, BottleError::NotFound(m) if m == "bottle x: inner"), "{e:?}");
        let e: BottleError = Failure::new(Exit::EngineUnavailable, anyhow::anyhow!("no socket")).into();
        assert!(matches!(e, BottleError::EngineUnavailable(_)));
        let e: BottleError = anyhow::anyhow!("boom").into();
        assert!(matches!(e, BottleError::Runtime(_)));
    }
}
