//! What went wrong in a backend operation, split by what a caller does about it.
//!
//! The CLI turns each case into its exit code and the FFI into its `BottleError` case, so
//! both keep one meaning per case without reading messages. Every case but `NotFound`
//! carries the whole cause chain, which both print.

/// The error of every [`super::BottleBackend`] operation and of [`crate::bottles`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No bottle by that name: said by the operation that looked for it.
    #[error("no bottle named {name:?} (see `bottle-core ls`)")]
    NotFound { name: String },
    /// The container engine (or the VM runtime) does not answer.
    #[error(transparent)]
    EngineUnavailable(anyhow::Error),
    /// The chosen backend cannot run here: its runtime is missing or too old.
    #[error(transparent)]
    BackendUnavailable(anyhow::Error),
    /// The bottle runs, but its boundary was not seen to hold.
    #[error(transparent)]
    BoundaryFailed(anyhow::Error),
    /// The spec, the backend choice or a name is invalid; nothing was made.
    #[error(transparent)]
    InvalidSpec(anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl Error {
    pub fn not_found(name: &str) -> Self {
        Self::NotFound { name: name.into() }
    }

    /// The same case with `context` as its outermost message.
    pub fn context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        match self {
            Self::NotFound { .. } => self,
            Self::EngineUnavailable(e) => Self::EngineUnavailable(e.context(context)),
            Self::BackendUnavailable(e) => Self::BackendUnavailable(e.context(context)),
            Self::BoundaryFailed(e) => Self::BoundaryFailed(e.context(context)),
            Self::InvalidSpec(e) => Self::InvalidSpec(e.context(context)),
            Self::Runtime(e) => Self::Runtime(e.context(context)),
        }
    }

    /// The cause chain alone, outermost first (a `NotFound` is its own one line).
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::NotFound { .. } => anyhow::anyhow!("{self}"),
            Self::EngineUnavailable(e)
            | Self::BackendUnavailable(e)
            | Self::BoundaryFailed(e)
            | Self::InvalidSpec(e)
            | Self::Runtime(e) => e,
        }
    }
}

/// A refused preflight names file, line and key of each failure, and nothing was made.
impl From<crate::preflight::Refused> for Error {
    fn from(refused: crate::preflight::Refused) -> Self {
        Self::InvalidSpec(refused.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_case_and_the_chain() {
        let e = Error::EngineUnavailable(anyhow::anyhow!("no socket")).context("listing bottles");
        assert!(matches!(e, Error::EngineUnavailable(_)));
        let chain: Vec<String> = e.into_anyhow().chain().map(|c| c.to_string()).collect();
        assert_eq!(chain, ["listing bottles", "no socket"]);
        let e = Error::not_found("demo").context("ignored");
        assert_eq!(e.into_anyhow().to_string(), "no bottle named \"demo\" (see `bottle-core ls`)");
    }
}
