//! The CLI's exit codes, one per kind of failure a script may want to tell apart.
//!
//! Documented in docs/cli.md; the numbers are an interface and never change meaning.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// Anything else that went wrong while running a command.
    Runtime = 1,
    /// Bad arguments or an invalid bottle.toml.
    Usage = 2,
    /// The container engine (or VM runtime) cannot be reached.
    EngineUnavailable = 3,
    /// No bottle by that name.
    NotFound = 4,
    /// The bottle runs, but its boundary check failed.
    BoundaryFailed = 5,
    /// The chosen backend cannot run here: its runtime is missing or too old (smolvm < 1.1.3).
    BackendUnavailable = 6,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self { exit, error: error.into() }
    }

    /// Whether the error is only that stdout's reader went away (`| head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        self.error
            .chain()
            .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self { exit: Exit::Runtime, error }
    }
}

/// Each case of the front door's error has its own code; the cause chain is printed whole.
impl From<crate::bottles::Error> for Failure {
    fn from(e: crate::bottles::Error) -> Self {
        use crate::bottles::Error as E;
        let exit = match &e {
            E::NotFound { .. } => Exit::NotFound,
            E::EngineUnavailable(_) => Exit::EngineUnavailable,
            E::BackendUnavailable(_) => Exit::BackendUnavailable,
            E::BoundaryFailed(_) => Exit::BoundaryFailed,
            E::InvalidSpec(_) => Exit::Usage,
            E::Runtime(_) => Exit::Runtime,
        };
        Self::new(exit, e.into_anyhow())
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self { exit: Exit::Runtime, error: error.into() }
    }
}

/// The error and every cause, one per line, as printed once by `main`.
pub struct Report<'a>(pub &'a anyhow::Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chain = self.0.chain();
        if let Some(top) = chain.next() {
            write!(f, "error: {top}")?;
        }
        for cause in chain {
            write!(f, "\n  caused by: {cause}")?;
        }
        Ok(())
    }
}
