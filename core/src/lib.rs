//! bottle's core: parses a bottle spec, runs it on a backend, and reports on it.

pub mod backend;
pub mod bottles;
pub mod cli;
pub mod control_client;
pub mod docker;
pub mod engine;
pub mod images;
pub mod live;
pub mod netpool;
pub mod paths;
pub mod preflight;
pub mod sidecar;
pub mod smolvm;
pub mod spec;
pub mod subnet_claims;
pub mod terminal;
pub mod verify;
