//! The records and enums Swift sees, each converted from its core or protocol
//! twin with `From`, so the FFI adds no logic of its own: a field added upstream
//! fails to compile here until it is carried across.

use bottle_core::backend::{self as core, Check};
use bottle_core::bottles;
use bottle_protocol::control::AccessRequest;
use bottle_protocol::display::escape_controls;
use bottle_protocol::event as proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AllowlistVerdict {
    Verified,
    Failed,
    NotVerified,
}

impl From<core::Verdict> for AllowlistVerdict {
    fn from(v: core::Verdict) -> Self {
        match v {
            core::Verdict::Verified => Self::Verified,
            core::Verdict::Failed => Self::Failed,
            core::Verdict::NotVerified => Self::NotVerified,
        }
    }
}

/// Whether the bottle's allowlist has been seen to hold, and how.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AllowlistInfo {
    pub verdict: AllowlistVerdict,
    pub allowlist: Vec<String>,
    pub mechanism: String,
    /// RFC 3339 time of the last start check.
    pub checked_at: Option<String>,
    pub detail: String,
    /// Present when a VMM enforces the allowlist (smolmachines): what that enforcement rests on.
    pub vmm: Option<VmmInfo>,
}

impl From<core::AllowlistStatus> for AllowlistInfo {
    fn from(a: core::AllowlistStatus) -> Self {
        Self {
            verdict: a.verdict.into(),
            allowlist: a.allowlist,
            mechanism: a.mechanism,
            checked_at: a.checked_at,
            detail: escape_controls(&a.detail),
            vmm: a.vmm.map(Into::into),
        }
    }
}

/// The VMM behind an allowlist: a `tsi` network backend or an old version is
/// what made smolvm's allowlist silently not enforce, so the app shows both.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VmmInfo {
    /// `smolvm`.
    pub runtime: String,
    pub version: String,
    /// `virtio-net` or `tsi`.
    pub net_backend: String,
}

impl From<core::VmmFacts> for VmmInfo {
    fn from(v: core::VmmFacts) -> Self {
        Self { runtime: v.runtime, version: v.version, net_backend: v.net_backend }
    }
}

/// Mirrors [`bottle_core::backend::BottleState`]; see there for what each case means.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum BottleState {
    Running,
    /// `BottleInfo::detail` says why.
    Degraded,
    Stopped,
    Incomplete,
    Created,
    Failed,
    Frozen,
    /// A word the VMM reports that bottle does not know, verbatim (escaped).
    Other {
        word: String,
    },
}

impl From<core::BottleState> for BottleState {
    fn from(s: core::BottleState) -> Self {
        use core::BottleState as S;
        match s {
            S::Running => Self::Running,
            S::Degraded => Self::Degraded,
            S::Stopped => Self::Stopped,
            S::Incomplete => Self::Incomplete,
            S::Created => Self::Created,
            S::Failed => Self::Failed,
            S::Frozen => Self::Frozen,
            S::Other(word) => Self::Other { word: escape_controls(&word) },
        }
    }
}

/// The word `bottle-core ls` prints for `state`, for a front end that shows it as text.
#[uniffi::export]
pub fn bottle_state_word(state: BottleState) -> String {
    match state {
        BottleState::Running => core::BottleState::Running,
        BottleState::Degraded => core::BottleState::Degraded,
        BottleState::Stopped => core::BottleState::Stopped,
        BottleState::Incomplete => core::BottleState::Incomplete,
        BottleState::Created => core::BottleState::Created,
        BottleState::Failed => core::BottleState::Failed,
        BottleState::Frozen => core::BottleState::Frozen,
        BottleState::Other { word } => return word,
    }
    .to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BottleInfo {
    pub name: String,
    /// `docker` or `smolmachines`.
    pub backend: String,
    pub state: BottleState,
    pub detail: String,
    pub allowlist: AllowlistInfo,
}

impl From<core::BottleStatus> for BottleInfo {
    fn from(s: core::BottleStatus) -> Self {
        Self {
            name: s.name,
            backend: bottles::kind_name(s.backend).into(),
            state: s.state.into(),
            detail: escape_controls(&s.detail),
            allowlist: s.allowlist.into(),
        }
    }
}

/// An access request waiting for Approve or Deny.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingRequest {
    pub id: String,
    pub host: String,
    pub port: Option<u16>,
    pub reason: String,
    pub requested_at: String,
}

impl From<AccessRequest> for PendingRequest {
    fn from(r: AccessRequest) -> Self {
        Self {
            id: escape_controls(&r.id),
            host: escape_controls(&r.host),
            port: r.port,
            reason: escape_controls(&r.reason),
            requested_at: r.requested_at,
        }
    }
}

/// A bottle's live state from its bundle's control plane.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ControlState {
    /// All egress cut.
    pub kill_switch: bool,
    /// What the agent last reported through supervise; `None` before its first report.
    pub agent_state: Option<AgentState>,
    pub agent_message: String,
    pub pending: Vec<PendingRequest>,
}

impl ControlState {
    /// What `bottle_core::live` read, with the pending requests asked beside it.
    pub(crate) fn new(live: core::Live, pending: Vec<AccessRequest>) -> Self {
        Self {
            kill_switch: live.kill_switch,
            agent_state: live.agent.state.map(Into::into),
            agent_message: escape_controls(&live.agent.message),
            pending: pending.into_iter().map(Into::into).collect(),
        }
    }
}

/// One `doctor` finding, shown as-is by the app's doctor view.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DoctorCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub fix: String,
}

impl From<Check> for DoctorCheck {
    fn from(c: Check) -> Self {
        Self { name: c.name, ok: c.ok, detail: c.detail, fix: c.fix }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BottleEvent {
    pub id: u64,
    pub time: String,
    pub bottle: String,
    pub kind: EventKind,
    /// The event as `bottle-core events` prints it (`#id time what`), for the recent events view.
    pub line: String,
}

impl From<proto::Event> for BottleEvent {
    fn from(e: proto::Event) -> Self {
        let line = bottles::event_line::line(&e).trim_end().to_string();
        Self { id: e.id, time: escape_controls(&e.time), bottle: escape_controls(&e.bottle), kind: e.kind.into(), line }
    }
}

/// Mirrors [`bottle_protocol::EventKind`]; see there for what each field means.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum EventKind {
    EgressBlocked {
        client: String,
        method: String,
        target: String,
        rule: String,
        request_id: String,
        count: u64,
    },
    Git {
        repo: String,
        operation: GitOperation,
        allowed: bool,
        refs: Vec<String>,
        reason: String,
    },
    ApiCall {
        api: String,
        method: String,
        path: String,
        status: u16,
        allowed: bool,
        bytes_up: u64,
        bytes_down: u64,
        duration_ms: u64,
        reason: String,
    },
    AgentState {
        state: AgentState,
        message: String,
    },
    AccessRequested {
        request_id: String,
        host: String,
        port: Option<u16>,
        reason: String,
    },
    AccessDecided {
        request_id: String,
        host: String,
        port: Option<u16>,
        approved: bool,
        ttl_secs: Option<u64>,
    },
    AccessExpired {
        request_id: String,
        host: String,
        port: Option<u16>,
    },
    PolicyReloaded {
        allow: u64,
        deny: u64,
    },
    KillSwitch {
        engaged: bool,
    },
    BottleState {
        state: String,
        detail: String,
    },
}

/// Every string is escaped on the way to Swift: ref names, hosts and reasons are partly the
/// agent's, and a control character must not reach the operator's menu or notification raw.
impl From<proto::EventKind> for EventKind {
    fn from(k: proto::EventKind) -> Self {
        use proto::EventKind as P;
        let e = |s: String| escape_controls(&s);
        match k {
            P::EgressBlocked { client, method, target, rule, request_id, count, .. } => Self::EgressBlocked {
                client: e(client),
                method: e(method),
                target: e(target),
                rule: e(rule),
                request_id: e(request_id),
                count,
            },
            P::Git { repo, operation, allowed, refs, reason } => Self::Git {
                repo: e(repo),
                operation: operation.into(),
                allowed,
                refs: refs.into_iter().map(e).collect(),
                reason: e(reason),
            },
            P::ApiCall { api, method, path, status, allowed, bytes_up, bytes_down, duration_ms, reason } => {
                Self::ApiCall {
                    api: e(api),
                    method: e(method),
                    path: e(path),
                    status,
                    allowed,
                    bytes_up,
                    bytes_down,
                    duration_ms,
                    reason: e(reason),
                }
            }
            P::AgentState { state, message } => Self::AgentState { state: state.into(), message: e(message) },
            P::AccessRequested { request_id, host, port, reason } => {
                Self::AccessRequested { request_id: e(request_id), host: e(host), port, reason: e(reason) }
            }
            P::AccessDecided { request_id, host, port, approved, ttl_secs } => {
                Self::AccessDecided { request_id: e(request_id), host: e(host), port, approved, ttl_secs }
            }
            P::AccessExpired { request_id, host, port } => {
                Self::AccessExpired { request_id: e(request_id), host: e(host), port }
            }
            P::PolicyReloaded { allow, deny } => Self::PolicyReloaded { allow: allow as u64, deny: deny as u64 },
            P::KillSwitch { engaged } => Self::KillSwitch { engaged },
            P::BottleState { state, detail } => Self::BottleState { state: e(state), detail: e(detail) },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum GitOperation {
    Fetch,
    Push,
}

impl From<proto::GitOperation> for GitOperation {
    fn from(o: proto::GitOperation) -> Self {
        match o {
            proto::GitOperation::Fetch => Self::Fetch,
            proto::GitOperation::Push => Self::Push,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AgentState {
    Working,
    NeedsInput,
    Done,
}

impl From<proto::AgentState> for AgentState {
    fn from(s: proto::AgentState) -> Self {
        match s {
            proto::AgentState::Working => Self::Working,
            proto::AgentState::NeedsInput => Self::NeedsInput,
            proto::AgentState::Done => Self::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vmm_enforced_allowlist_carries_its_runtime_version_and_network_backend() {
        let status = core::AllowlistStatus {
            verdict: core::Verdict::Verified,
            allowlist: vec!["172.30.0.2/32".into()],
            mechanism: "smolvm allow_cidrs (virtio-net)".into(),
            checked_at: Some("2026-11-28T14:00:00Z".into()),
            detail: "canary refused, bundle reached".into(),
            vmm: Some(core::VmmFacts {
                runtime: "smolvm".into(),
                version: "1.9.3".into(),
                net_backend: "virtio-net".into(),
            }),
        };
        let info = AllowlistInfo::from(status.clone());
        assert_eq!(
            info.vmm,
            Some(VmmInfo { runtime: "smolvm".into(), version: "1.9.3".into(), net_backend: "virtio-net".into() })
        );
        assert_eq!(AllowlistInfo::from(core::AllowlistStatus { vmm: None, ..status }).vmm, None);
    }

    #[test]
    fn an_event_carries_the_line_the_cli_prints() {
        let e = proto::Event {
            id: 7,
            time: "2026-01-01T00:00:00Z".into(),
            bottle: "demo".into(),
            kind: proto::EventKind::KillSwitch { engaged: true },
        };
        let line = bottles::event_line::line(&e);
        let ev = BottleEvent::from(e);
        assert_eq!(format!("{}\n", ev.line), line);
        assert!(ev.line.starts_with("#7 2026-01-01T00:00:00Z kill switch ENGAGED"), "{}", ev.line);
    }

    #[test]
    fn control_state_takes_the_kill_switch_from_live_and_escapes_the_agents_message() {
        let agent = bottle_protocol::control::AgentStatus {
            state: Some(proto::AgentState::NeedsInput),
            message: "pick\x1b[2K".into(),
            since: None,
        };
        let c = ControlState::new(core::Live { kill_switch: true, grants: vec![], agent }, vec![]);
        assert!(c.kill_switch);
        assert_eq!(c.agent_state, Some(AgentState::NeedsInput));
        assert!(!c.agent_message.contains('\x1b'), "{}", c.agent_message);
    }

    #[test]
    fn a_forged_ref_name_reaches_swift_escaped() {
        let forged = "refs/heads/x\n#1 kill switch ENGAGED\x1b[2K".to_string();
        let kind = proto::EventKind::Git {
            repo: "repo".into(),
            operation: proto::GitOperation::Push,
            allowed: false,
            refs: vec![forged.clone()],
            reason: forged,
        };
        let EventKind::Git { refs, reason, .. } = EventKind::from(kind) else { panic!("not a git event") };
        for s in refs.iter().chain([&reason]) {
            assert!(!s.contains('\n') && !s.contains('\x1b'), "{s:?}");
            assert!(s.contains("\\u{a}#1"), "{s:?}");
        }
    }
}
