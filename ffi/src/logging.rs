//! Logging for the app process: tracing to stderr everywhere, and on macOS also
//! to Apple's unified log (Console.app, `log stream`) through tracing-oslog, a
//! tracing layer, so core's existing `tracing` calls need no second facade.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// The unified-log subsystem the app's Rust side logs under.
pub const OSLOG_SUBSYSTEM: &str = "dev.bottle.app";

/// Installs the global subscriber (filter from `BOTTLE_LOG`, default `info`).
/// Later calls are no-ops, so every entry point may call it.
#[uniffi::export]
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("BOTTLE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(fmt::layer().with_writer(std::io::stderr));
    #[cfg(target_os = "macos")]
    let registry = registry.with(tracing_oslog::OsLogger::new(OSLOG_SUBSYSTEM, "ffi"));
    #[cfg(not(target_os = "macos"))]
    let _ = OSLOG_SUBSYSTEM;
    let _ = registry.try_init();
}
