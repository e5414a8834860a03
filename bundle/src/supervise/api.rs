//! The agent-facing API: paths and JSON bodies.
//!
//! Only the bundle and the agent speak this, so it lives here rather than in
//! `bottle-protocol`; the host-side routes use `protocol::control` types.

use bottle_protocol::event::AgentState;
use serde::{Deserialize, Serialize};

/// `POST` a [`StateReport`] → `protocol::control::AgentStatus`.
pub const STATE: &str = "/v1/state";
/// `POST` an [`AccessAsk`] → [`RequestStatus`] (202 new, 200 when the same
/// host and port is already pending). There is deliberately no `GET` listing.
pub const REQUESTS: &str = "/v1/requests";
/// Longest long-poll a `GET {REQUESTS}/<id>?wait=<secs>` may ask for; longer asks are capped.
pub const MAX_WAIT_SECS: u64 = 30;

/// `GET`: one request's [`RequestStatus`]; `?wait=<secs>` holds the reply until it is decided.
pub fn request_path(id: &str) -> String {
    format!("{REQUESTS}/{id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateReport {
    pub state: AgentState,
    /// Shown to the human; control characters are stripped, length is capped.
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessAsk {
    /// One exact, fully qualified DNS name; see [`super::names::host`].
    pub host: String,
    /// `None` asks for every port of `host`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Why the agent needs it; required, because the human decides on it.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    /// Was approved; the grant has ended and left the allowlist.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStatus {
    pub id: String,
    pub host: String,
    pub port: Option<u16>,
    pub status: Status,
    /// Length of the grant; `None` while pending, after a denial, or for an unlimited grant.
    pub ttl_secs: Option<u64>,
    /// RFC 3339 end of the grant, when it has one.
    pub expires_at: Option<String>,
}
