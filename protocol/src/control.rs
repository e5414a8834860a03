//! Control-plane messages: host → bundle, over HTTP/1.1 + JSON with a bearer token.
//!
//! Only the host holds the token and only the host can reach the control
//! address, so nothing here is ever agent-callable. Paths are constants so
//! that the bundle's router and the core's client cannot disagree.

use serde::{Deserialize, Serialize};

use crate::event::AgentState;

/// `GET`: liveness and counters → [`Health`].
pub const HEALTH: &str = "/v1/health";
/// `GET`: newline-delimited JSON [`crate::Event`]s. Query: `since=<id>` replays
/// buffered events after that id; `follow=1` keeps the stream open.
pub const EVENTS: &str = "/v1/events";
/// `GET`: the effective policy → [`PolicyView`]; `PUT`: replace the allowlist with a [`PolicyUpdate`].
pub const POLICY: &str = "/v1/policy";
/// `POST` a [`PolicyQuery`] → [`PolicyCheck`]: the proxy's own decision for that destination, now.
pub const POLICY_CHECK: &str = "/v1/policy/check";
/// `GET`: live grants → `Vec<GrantView>`; `POST` a [`GrantAdd`] → [`GrantView`];
/// `DELETE` with a [`GrantRevoke`] body → the removed `Vec<GrantView>`.
pub const GRANTS: &str = "/v1/grants";
/// Id prefix of grants the host gave with [`GRANTS`]; the rest is the grant's entry.
/// Grants from approved access requests carry the request's id instead.
pub const HOST_GRANT_PREFIX: &str = "allow:";
/// `POST` engages, `DELETE` releases the kill switch that cuts all egress at once.
pub const KILL: &str = "/v1/kill";
/// `GET`: pending access requests → `Vec<AccessRequest>`.
pub const ACCESS: &str = "/v1/access";
/// `GET`: the agent's last reported state → [`AgentStatus`].
pub const AGENT: &str = "/v1/agent";

/// `POST {ACCESS}/<id>/approve` with an [`Approve`] body.
pub fn approve_path(id: &str) -> String {
    format!("{ACCESS}/{id}/approve")
}

/// `POST {ACCESS}/<id>/deny`.
pub fn deny_path(id: &str) -> String {
    format!("{ACCESS}/{id}/deny")
}

/// Header carrying the bearer token: `Authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub bottle: String,
    pub ok: bool,
    pub kill_switch: bool,
    pub open_connections: u64,
    pub blocked_total: u64,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUpdate {
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A host-given grant: `host` is a name, `*.suffix`, IP or CIDR as in the policy; the
/// port, when given, is the only one it opens (without one a name opens 443 and 80).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantAdd {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// Seconds until the grant ends; `None` keeps it (across bundle restarts) until revoked.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Which grants to remove: with a port, the grant for exactly that entry; without one,
/// every grant for `host` whatever its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRevoke {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantSource {
    /// `bottle-core allow`.
    Host,
    /// An approved access request from the agent.
    AccessRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// [`HOST_GRANT_PREFIX`] + entry for a host grant, else the access request's id.
    pub id: String,
    /// The allow entry it adds, as written (`host` or `host:port`).
    pub entry: String,
    pub source: GrantSource,
    /// RFC 3339 end of the grant; `None` for one that lasts until revoked.
    pub expires_at: Option<String>,
    /// Whole seconds left, rounded up; `None` with `expires_at`.
    pub expires_in_secs: Option<u64>,
}

/// The allowlist the proxy applies right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub bottle: String,
    /// The policy's allow entries (from bottle.toml or the host's last `PUT`), grants not included.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Live grants; each adds its entry to `allow` until it ends.
    pub grants: Vec<GrantView>,
    /// When engaged, every destination is refused whatever the lists say.
    pub kill_switch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    pub host: String,
    pub port: u16,
}

/// One destination's verdict and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCheck {
    pub host: String,
    pub port: u16,
    pub allowed: bool,
    /// [`rule::ALLOW`] or [`rule::GRANT`] when allowed; otherwise the refusal's rule as the
    /// proxy sends it in `X-Bottle-Block` (one of [`crate::rule`]'s destination rules).
    ///
    /// [`rule::ALLOW`]: crate::rule::ALLOW
    /// [`rule::GRANT`]: crate::rule::GRANT
    pub rule: String,
    /// The allow, deny or grant entry that matched, as written; `None` when none did.
    pub entry: Option<String>,
    /// The grant that allowed it.
    pub grant: Option<GrantView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub host: String,
    pub port: Option<u16>,
    pub reason: String,
    /// RFC 3339.
    pub requested_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approve {
    /// Seconds until the grant is removed; `None` keeps it for the bundle's life.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub state: Option<AgentState>,
    pub message: String,
    pub since: Option<String>,
}

/// The body of every control-plane error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}
