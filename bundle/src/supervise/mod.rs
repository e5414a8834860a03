//! supervise: the agent's channel to a human.
//!
//! The agent reports its state (`working`, `needs-input`, `done`) and asks for
//! access to destinations the allowlist refuses; the host sees both through the
//! control plane and alone decides. The split is the point: the agent-facing
//! server ([`Server`], paths in [`api`]) can only *ask* and read the verdict of a
//! request whose random id it holds, while approving, denying and listing live
//! only in [`control`], which the control plane calls after checking the host's
//! bearer token. There is no agent route that lists requests or replays events:
//! a bundle serves exactly one bottle, but request text and the event history
//! are the host's record, and the agent needs nothing beyond its own verdicts.

pub mod api;
mod desk;
mod error;
mod host;
pub mod names;
mod server;

pub use desk::{Desk, checked_ttl};
pub use host::control;
pub use server::Server;
