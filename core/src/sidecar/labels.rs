//! The Docker labels that are bottle's only record of a bottle.
//!
//! Every network and container a bottle owns is labelled at creation (never
//! after), so whatever an interrupted `up` managed to create is findable by
//! name, and a restarted bottle-core sees every bottle from the engine alone.

use std::collections::HashMap;

use crate::backend::BackendKind;

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
/// Which backend owns the bottle (`docker`, `smolmachines`): both place bundles with this
/// module, and each must list and collect only its own bottles.
pub const BACKEND: &str = "dev.bottle.backend";
/// The uid of the user whose `up` made the object. Users' name locks live in folders of
/// their own, so an `up` of another user's name that is still being made is told apart
/// by this label (see `docker::state::made_by_another_user`), not by a lock.
pub const MAKER: &str = "dev.bottle.maker-uid";
/// On an agent that runs as its image's own user (`[agent] run_as_image_user`), for `status`.
pub const IMAGE_USER: &str = "dev.bottle.image-user";

pub const ROLE_AGENT_NET: &str = "agent-net";
pub const ROLE_EGRESS_NET: &str = "egress-net";
pub const ROLE_BUNDLE: &str = "bundle";
pub const ROLE_AGENT: &str = "agent";

pub fn backend_value(backend: BackendKind) -> &'static str {
    match backend {
        BackendKind::Docker => "docker",
        BackendKind::Smolmachines => "smolmachines",
    }
}

/// The labels every object of a bottle carries from creation on.
pub fn base(backend: BackendKind, name: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (NAME.to_string(), name.to_string()),
        (ROLE.to_string(), role.to_string()),
        (BACKEND.to_string(), backend_value(backend).to_string()),
        (MAKER.to_string(), rustix::process::geteuid().as_raw().to_string()),
    ])
}

/// A label filter for list calls: every bottle object of a backend, or one bottle's.
pub fn filter(backend: BackendKind, name: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match name {
        Some(n) => format!("{NAME}={n}"),
        None => NAME.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label, format!("{BACKEND}={}", backend_value(backend))])])
}

/// Object names are derived from the bottle name, so a duplicate is refused by the engine too.
pub fn object_name(bottle: &str, role: &str) -> String {
    format!("bottle-{bottle}-{role}")
}
