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
/// `PUT`: replace the allowlist with a [`PolicyUpdate`].
pub const POLICY: &str = "/v1/policy";
/// `POST` engages, `DELETE` releases the kill switch that cuts all egress at once.
pub const KILL: &str = "/v1/kill";
/// `GET`: pending access requests → `Vec<AccessRequest>`.
pub const ACCESS: &str = "/v1/access";
/// `GET`: the agent's last reported state → [`AgentStatus`].
pub const AGENT: &str = "/v1/agent";
/// `GET`: the live grants of approved access requests, with their ends → `Vec<Grant>`.
pub const GRANTS: &str = "/v1/grants";

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

/// A grant an approved access request added to the allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The access request it came from.
    pub id: String,
    /// The allow entry as written: `host` or `host:port`.
    pub entry: String,
    /// RFC 3339 UTC; `None` lasts for the bundle's life.
    pub expires_at: Option<String>,
}

/// The body of every control-plane error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}
