//! The Docker labels that are bottle's only record of a bottle.
//!
//! Every network and container a bottle owns is labelled at creation (never
//! after), so whatever an interrupted `up` managed to create is findable by
//! name, and a restarted bottle-core sees every bottle from the engine alone.

use std::collections::HashMap;

/// The bottle's name, on every object.
pub const NAME: &str = "dev.bottle.name";
/// What the object is: one of the `ROLE_*` values.
pub const ROLE: &str = "dev.bottle.role";
/// The subnet a bottle network took from the pool.
pub const SUBNET: &str = "dev.bottle.subnet";
/// The bundle's address on the agent network.
pub const BUNDLE_IP: &str = "dev.bottle.bundle-ip";
/// JSON list of the allowlist the bottle was started with.
pub const ALLOW: &str = "dev.bottle.allow";
/// The host workspace path (shown by status; never touched by `down`).
pub const WORKSPACE: &str = "dev.bottle.workspace";
/// Which backend runs the agent (`docker`, `smolmachines`).
pub const BACKEND: &str = "dev.bottle.backend";

pub const ROLE_AGENT_NET: &str = "agent-net";
pub const ROLE_EGRESS_NET: &str = "egress-net";
pub const ROLE_BUNDLE: &str = "bundle";
pub const ROLE_AGENT: &str = "agent";

pub fn base(name: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([(NAME.to_string(), name.to_string()), (ROLE.to_string(), role.to_string())])
}

/// A label filter for list calls: every bottle object, or one bottle's.
pub fn filter(name: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match name {
        Some(n) => format!("{NAME}={n}"),
        None => NAME.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// Object names are derived from the bottle name, so a duplicate is refused by the engine too.
pub fn object_name(bottle: &str, role: &str) -> String {
    format!("bottle-{bottle}-{role}")
}
