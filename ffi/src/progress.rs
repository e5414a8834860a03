//! Progress of a long call (`up`, `down`), handed to a foreign listener step by step.
//!
//! Core reports every long step through its [`Progress`] trait, the same steps the
//! CLI prints; the app shows the latest under the bottle's row while `up` runs.

use std::sync::Arc;

use bottle_core::backend::Progress;
use bottle_protocol::display::escape_controls;

/// Implemented in Swift; called on a Rust thread, once per step, in order.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    fn on_step(&self, message: String);
}

/// Core's progress sink over a foreign listener; each step also goes to the log.
pub(crate) struct Forward(pub Arc<dyn ProgressListener>);

impl Progress for Forward {
    fn step(&self, message: &str) {
        tracing::info!("{message}");
        // A step can name an image or a path from bottle.toml: no control character reaches the menu.
        self.0.on_step(escape_controls(message));
    }
}
