//! The allowlist entry grammar and host normalization, in one place.
//!
//! The core checks a bottle.toml's entries with it (so a bad entry fails at
//! the line the user wrote) and the bundle matches destinations with it (so
//! what the core accepted is exactly what the proxy enforces).

mod entry;
mod host;

pub use entry::{Entry, WEB_PORTS};
pub use host::{Host, MAX_NAME_LEN, canonical};
