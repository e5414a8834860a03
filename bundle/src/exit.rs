//! Process exit codes of `bottle-bundle`, documented in the README.

/// Why the bundle stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// A service failed at run time (for example a listener could not bind).
    Runtime = 1,
    /// The config file is missing or invalid; the message names key, value and position.
    Config = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}
