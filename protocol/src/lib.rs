//! The vocabulary that crosses process boundaries in a bottle.
//!
//! The bundle emits events and answers control-plane calls; the core renders
//! the bundle's config and consumes its events; the FFI forwards the same
//! events to Swift. Defining every one of those shapes once, here, means no
//! hand-copied twin struct can drift out of step along the way.

pub mod config;
pub mod control;
pub mod display;
pub mod event;
pub mod policy;
pub mod probe;
pub mod push_option;
pub mod rule;

pub use config::{BundleConfig, ConfigError};
pub use event::{Event, EventKind};
