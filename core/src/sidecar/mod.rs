//! Placing a bottle's sidecar bundle, shared by every backend.
//!
//! Whatever runs the agent (a Docker container, a smolvm microVM), the bundle
//! is a Docker container placed the same way: a per-bottle `internal` agent
//! network with the bundle at a pinned address, a second ordinary bridge of
//! its own for egress, its control plane published on host loopback only, and
//! its config, token and secrets written into it alone. Backends differ only
//! in how the agent reaches `<bundle-ip>` (and so whether the host keeps an
//! address on the agent network: `network::host_on_agent_net`). So what else
//! both backends need of that side lives here too: what the agent is told of
//! its bundle (`agent_env`) and `doctor`'s checks of the engine, images and pool.

pub mod agent_env;
pub mod bundle;
pub mod config;
pub mod doctor;
pub mod host_copy;
pub mod labels;
pub mod network;
pub mod objects;
pub mod restarts;

pub use agent_env::{gate_env, no_proxy};
pub use bundle::{BundleRequest, control_endpoint, create_bundle, run_bundle};
pub use config::{Rendered, SidecarOptions, api_env, check_git_credentials, new_token, render};
pub use doctor::doctor;
pub use network::{Placement, create_networks, remove_networks};
