//! Events: the one record of everything a bottle blocked, allowed or was asked.
//!
//! Events never carry a secret or a credential. Fields that could echo agent
//! input (URLs, header values, bodies) are deliberately absent; a block names
//! the rule that fired, not the bytes that fired it.

use serde::{Deserialize, Serialize};

/// How long the bundle folds repeats of one refusal (same source, rule and destination)
/// into a single follow-up `EgressBlocked` with their `count`; a repeat inside it is
/// reported only when the window closes, which a reader waiting for its event must allow.
pub const BLOCK_COALESCE_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

/// One event, as sent on the control plane's event stream (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Rises for the bottle's whole life, across restarts of its bundle (the start's epoch
    /// in the high 32 bits, a count in the low 32); clients resume a stream with `?since=<id>`.
    pub id: u64,
    /// RFC 3339 UTC timestamp.
    pub time: String,
    /// The bottle's name.
    pub bottle: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialized with a `kind` tag so consumers can ignore kinds they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The egress proxy (or egress itself) refused a request.
    EgressBlocked {
        /// The agent-side peer address, `ip:port`.
        client: String,
        /// HTTP method, `CONNECT` for tunnels.
        method: String,
        /// Destination as `host:port`.
        target: String,
        /// Machine-readable rule id, also sent in the 403's `X-Bottle-Block` header.
        rule: String,
        /// The refusal's own id (`blk-` and 16 hex digits), also sent in the 403's
        /// `X-Bottle-Request-Id` header; a follow-up names the last refusal it counts.
        /// It names the refused HTTP request, not an access request: nothing approves it.
        request_id: String,
        /// The agent's open (pending or approved) access request for this destination,
        /// when it has one: the id `bottle-core approve` takes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_request: Option<String>,
        /// How many refusals this event stands for, so the counts of a stream add up to its
        /// refusals. The bundle coalesces repeats of one source, rule and destination: the
        /// first is an event of its own (count 1) and the repeats within its window become one
        /// follow-up carrying their number, so a flood cannot push other events out of the
        /// ring. Absent (an older sender) means 1.
        #[serde(default = "one")]
        count: u64,
    },
    /// A git fetch or push passed through git-gate (allowed or refused).
    Git {
        repo: String,
        operation: GitOperation,
        allowed: bool,
        /// Ref names involved (pushes only).
        refs: Vec<String>,
        /// Why it was refused; empty when allowed.
        reason: String,
    },
    /// One call through the model-API gate, forwarded or refused. Never carries the
    /// credential, the placeholder, the query string or any body.
    ApiCall {
        /// The `[[api]]` name (or what the agent asked for, made printable, when it named none).
        api: String,
        method: String,
        /// Upstream path, without the query.
        path: String,
        /// The status the agent got.
        status: u16,
        /// False when the gate refused the call itself.
        allowed: bool,
        /// Request body bytes sent upstream.
        bytes_up: u64,
        /// Response body bytes relayed to the agent.
        bytes_down: u64,
        duration_ms: u64,
        /// Why the gate refused or cut the call; empty otherwise.
        reason: String,
    },
    /// The agent reported a new state through supervise.
    AgentState { state: AgentState, message: String },
    /// The agent asked for access to a destination.
    AccessRequested { request_id: String, host: String, port: Option<u16>, reason: String },
    /// The host approved or denied an access request, or gave a grant of its own
    /// (`bottle-core allow`; then `request_id` is the grant's id, `allow:<entry>`).
    AccessDecided {
        request_id: String,
        host: String,
        port: Option<u16>,
        approved: bool,
        /// Seconds the grant lasts; `None` for a denial or an unlimited grant.
        ttl_secs: Option<u64>,
    },
    /// A grant left the allowlist: its time ran out, or the host revoked it.
    AccessExpired { request_id: String, host: String, port: Option<u16> },
    /// The allowlist was replaced through the control plane.
    PolicyReloaded { allow: usize, deny: usize },
    /// The kill switch was engaged (`engaged = true`) or released.
    KillSwitch { engaged: bool },
    /// The bottle itself changed state (emitted by the core, not the bundle).
    BottleState { state: String, detail: String },
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitOperation {
    Fetch,
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    Working,
    NeedsInput,
    Done,
}
