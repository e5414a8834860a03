//! The desk: the agent's last reported state and its access requests, from
//! ask through verdict to expiry.
//!
//! It is the one place that turns those changes into events and policy
//! grants, so the agent-facing server and the host-side routes cannot drift
//! apart. Each change is made and its event emitted under one lock, so the
//! event stream shows changes in the order they happened.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bottle_protocol::config::SuperviseConfig;
use bottle_protocol::control::{AccessRequest, AgentStatus};
use bottle_protocol::event::{AgentState, EventKind};
use tokio::sync::watch;

use super::api::{AccessAsk, RequestStatus, Status};
use super::error::ApiError;
use crate::events::EventBus;
use crate::policy::PolicyStore;

/// Denied and expired requests kept so the agent can still read their verdict; older ones are forgotten.
pub const RETAIN_FINISHED: usize = 256;
/// State changes that emit an event, per [`STATE_WINDOW`]. Repeats are free; this only
/// stops an agent from flooding the event ring (and pushing block events out of replay).
pub const MAX_STATE_CHANGES: u32 = 30;
pub const STATE_WINDOW: Duration = Duration::from_secs(60);
/// Longest grant the host may give even with no `max_grant_secs`; longer needs belong in the policy.
pub const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

/// Pending access requests and the agent's last state, shared with the control plane.
pub struct Desk {
    cfg: SuperviseConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    agent: Option<AgentStatus>,
    /// Start of the current rate window and the state changes counted in it.
    window: Option<(Instant, u32)>,
    requests: HashMap<String, Record>,
    /// Ids of denied and expired requests, oldest first.
    finished: VecDeque<String>,
    next_seq: u64,
}

struct Record {
    /// Orders the pending list by arrival.
    seq: u64,
    host: String,
    port: Option<u16>,
    reason: String,
    requested_at: String,
    /// The verdict; long-polling agents wait on it.
    outcome: watch::Sender<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: Status,
    ttl_secs: Option<u64>,
    expires_at: Option<String>,
}

impl Record {
    fn view(&self, id: &str) -> RequestStatus {
        view(id, self, &self.outcome.borrow())
    }

    fn status(&self) -> Status {
        self.outcome.borrow().status
    }
}

fn view(id: &str, r: &Record, o: &Outcome) -> RequestStatus {
    RequestStatus {
        id: id.to_string(),
        host: r.host.clone(),
        port: r.port,
        status: o.status,
        ttl_secs: o.ttl_secs,
        expires_at: o.expires_at.clone(),
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// 128 random bits from the thread's CSPRNG: ids are capabilities, so they must not be guessable.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Inner {
    /// Marks a request finished and forgets the oldest finished ones beyond [`RETAIN_FINISHED`].
    fn finish(&mut self, id: &str) {
        self.finished.push_back(id.to_string());
        while self.finished.len() > RETAIN_FINISHED {
            if let Some(old) = self.finished.pop_front() {
                self.requests.remove(&old);
            }
        }
    }

    fn pending(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.requests.iter().filter(|(_, r)| r.status() == Status::Pending)
    }
}

impl Desk {
    pub fn new(cfg: &SuperviseConfig) -> Self {
        Self { cfg: cfg.clone(), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("supervise desk poisoned")
    }

    /// Records the agent's state. An event is emitted only when state or message
    /// differ from the last report; a repeat changes nothing, not even `since`.
    pub fn report_state(&self, events: &EventBus, state: AgentState, message: String) -> Result<AgentStatus, ApiError> {
        let mut inner = self.lock();
        if let Some(cur) = &inner.agent
            && cur.state == Some(state)
            && cur.message == message
        {
            return Ok(cur.clone());
        }
        let now = Instant::now();
        let (start, count) = match inner.window {
            Some((start, count)) if now.duration_since(start) < STATE_WINDOW => (start, count),
            _ => (now, 0),
        };
        if count >= MAX_STATE_CHANGES {
            return Err(ApiError::too_many(format!(
                "state: more than {MAX_STATE_CHANGES} changes in {}s; report changes, not progress ticks",
                STATE_WINDOW.as_secs()
            )));
        }
        inner.window = Some((start, count + 1));
        let status = AgentStatus { state: Some(state), message: message.clone(), since: Some(now_rfc3339()) };
        inner.agent = Some(status.clone());
        events.emit(EventKind::AgentState { state, message });
        Ok(status)
    }

    /// What the host sees on `GET /v1/agent`.
    pub fn agent_status(&self) -> AgentStatus {
        self.lock().agent.clone().unwrap_or(AgentStatus { state: None, message: String::new(), since: None })
    }

    /// Files an already validated ask. Returns the request and whether it is new:
    /// asking again for a host and port that is still pending returns that request.
    pub fn ask(&self, events: &EventBus, ask: AccessAsk) -> Result<(RequestStatus, bool), ApiError> {
        let mut inner = self.lock();
        if let Some((id, r)) = inner.pending().find(|(_, r)| r.host == ask.host && r.port == ask.port) {
            return Ok((r.view(id), false));
        }
        let pending = inner.pending().count();
        if pending >= self.cfg.max_pending {
            return Err(ApiError::too_many(format!(
                "access request: {pending} requests already wait for the host (limit {}); wait for a verdict",
                self.cfg.max_pending
            )));
        }
        let id = new_id();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (outcome, _) = watch::channel(Outcome { status: Status::Pending, ttl_secs: None, expires_at: None });
        let record = Record {
            seq,
            host: ask.host.clone(),
            port: ask.port,
            reason: ask.reason.clone(),
            requested_at: now_rfc3339(),
            outcome,
        };
        let view = record.view(&id);
        inner.requests.insert(id.clone(), record);
        events.emit(EventKind::AccessRequested { request_id: id, host: ask.host, port: ask.port, reason: ask.reason });
        Ok((view, true))
    }

    /// One request's current verdict, or after waiting up to `wait` for a pending one to be decided.
    pub async fn status(&self, id: &str, wait: Duration) -> Option<RequestStatus> {
        let (mut rx, first) = {
            let inner = self.lock();
            let r = inner.requests.get(id)?;
            (r.outcome.subscribe(), r.view(id))
        };
        if first.status != Status::Pending || wait.is_zero() {
            return Some(first);
        }
        // Whether it was decided, timed out or forgotten, the map has the answer.
        let _ = tokio::time::timeout(wait, rx.wait_for(|o| o.status != Status::Pending)).await;
        let inner = self.lock();
        inner.requests.get(id).map(|r| r.view(id))
    }

    /// The host's queue on `GET /v1/access`, oldest first.
    pub fn pending(&self) -> Vec<AccessRequest> {
        let inner = self.lock();
        let mut list: Vec<_> = inner.pending().collect();
        list.sort_by_key(|(_, r)| r.seq);
        list.into_iter()
            .map(|(id, r)| AccessRequest {
                id: id.clone(),
                host: r.host.clone(),
                port: r.port,
                reason: r.reason.clone(),
                requested_at: r.requested_at.clone(),
            })
            .collect()
    }

    /// The grant length the host's ask turns into, after `max_grant_secs` and [`MAX_TTL_SECS`].
    fn grant_ttl(&self, asked: Option<u64>) -> Result<Option<u64>, ApiError> {
        let cap = self.cfg.max_grant_secs;
        match checked_ttl("approve", asked).map_err(ApiError::bad_request)? {
            Some(t) if cap > 0 => Ok(Some(t.min(cap))),
            None if cap > 0 => Ok(Some(cap)),
            t => Ok(t),
        }
    }

    /// The agent's open (pending or approved) request for `host` and `port`, if any: a
    /// refusal names it so the host can approve it from the block it sees.
    pub fn open_request_for(&self, host: &str, port: u16) -> Option<String> {
        let inner = self.lock();
        let open = |r: &Record| matches!(r.status(), Status::Pending | Status::Approved);
        let fits = |r: &Record| r.host == host && r.port.is_none_or(|p| p == port);
        inner.requests.iter().filter(|(_, r)| open(r) && fits(r)).max_by_key(|(_, r)| r.seq).map(|(id, _)| id.clone())
    }

    /// Approves a pending request: the grant goes live in `policy` now. Returns the
    /// verdict and, for a limited grant, when [`Desk::expire`] must run.
    pub fn approve(
        &self,
        events: &EventBus,
        policy: &PolicyStore,
        id: &str,
        ttl_secs: Option<u64>,
    ) -> Result<(RequestStatus, Option<Instant>), ApiError> {
        let ttl = self.grant_ttl(ttl_secs)?;
        let inner = self.lock();
        let r = decidable(&inner, id)?;
        let deadline = ttl.map(|t| Instant::now() + Duration::from_secs(t));
        let expires_at = ttl.map(|t| humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(t)));
        policy
            .grant(id, &r.host, r.port, deadline)
            .map_err(|e| ApiError::internal(format!("approve {id}: the allowlist refused the grant: {e}")))?;
        r.outcome.send_replace(Outcome {
            status: Status::Approved,
            ttl_secs: ttl,
            expires_at: expires_at.map(|t| t.to_string()),
        });
        let view = r.view(id);
        events.emit(decided(&view, true));
        drop(inner);
        Ok((view, deadline))
    }

    pub fn deny(&self, events: &EventBus, id: &str) -> Result<RequestStatus, ApiError> {
        let mut inner = self.lock();
        let r = decidable(&inner, id)?;
        r.outcome.send_modify(|o| o.status = Status::Denied);
        let view = r.view(id);
        events.emit(decided(&view, false));
        inner.finish(id);
        Ok(view)
    }

    /// Ends an approved grant: out of the allowlist, `AccessExpired` emitted. A
    /// request that is not (or no longer) approved is left alone; returns whether it was ended.
    pub fn expire(&self, events: &EventBus, policy: &PolicyStore, id: &str) -> bool {
        let mut inner = self.lock();
        let Some(r) = inner.requests.get(id).filter(|r| r.status() == Status::Approved) else {
            return false;
        };
        if !policy.revoke(id) {
            tracing::debug!(request_id = id, "supervise: grant was already gone from the allowlist at expiry");
        }
        r.outcome.send_modify(|o| o.status = Status::Expired);
        events.emit(EventKind::AccessExpired { request_id: id.to_string(), host: r.host.clone(), port: r.port });
        inner.finish(id);
        true
    }
}

/// The event for a decision, built from the view the requester reads back, so
/// the host's stream and the agent's answer never disagree (a denial has no TTL).
fn decided(view: &RequestStatus, approved: bool) -> EventKind {
    EventKind::AccessDecided {
        request_id: view.id.clone(),
        host: view.host.clone(),
        port: view.port,
        approved,
        ttl_secs: view.ttl_secs,
    }
}

/// A grant length the host asked for, checked against [`MAX_TTL_SECS`]; `verb` names the call in errors.
pub fn checked_ttl(verb: &str, asked: Option<u64>) -> Result<Option<u64>, String> {
    match asked {
        Some(0) => Err(format!("{verb}: ttl_secs must be at least 1")),
        Some(t) if t > MAX_TTL_SECS => {
            Err(format!("{verb}: ttl_secs {t} is longer than {MAX_TTL_SECS}; add a policy entry for lasting access"))
        }
        t => Ok(t),
    }
}

/// The request `id` if the host may still decide it.
fn decidable<'a>(inner: &'a Inner, id: &str) -> Result<&'a Record, ApiError> {
    let r = inner.requests.get(id).ok_or_else(|| ApiError::not_found(no_such_request(id)))?;
    match r.status() {
        Status::Pending => Ok(r),
        s => Err(ApiError::conflict(format!("access request {id}: already {}", format!("{s:?}").to_lowercase()))),
    }
}

/// The 404 text for an unknown request id; a refusal's id (from a block event or the
/// 403's `X-Bottle-Request-Id`) is told apart, since it is the id people try first.
fn no_such_request(id: &str) -> String {
    if id.starts_with(crate::proxy::BLOCK_ID_PREFIX) {
        format!(
            "{id} is the id of a refused request (a block), not of an access request; approve the \
             block event's access_request when it has one (`bottle-core requests`), or allow the \
             destination with `bottle-core allow`"
        )
    } else {
        format!("access request {id}: no such request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(max_pending: usize) -> (Desk, EventBus) {
        let cfg = SuperviseConfig { max_pending, ..SuperviseConfig::default() };
        (Desk::new(&cfg), EventBus::new("b", 0))
    }

    fn ask(host: &str) -> AccessAsk {
        AccessAsk { host: host.into(), port: Some(443), reason: "docs".into() }
    }

    #[tokio::test]
    async fn long_poll_wakes_on_the_verdict() {
        let (desk, events) = desk(4);
        let desk = std::sync::Arc::new(desk);
        let (req, _) = desk.ask(&events, ask("a.test")).unwrap();
        let waiter = tokio::spawn({
            let (desk, id) = (desk.clone(), req.id.clone());
            async move { desk.status(&id, Duration::from_secs(30)).await }
        });
        // The waiter holds a receiver once it waits; bounded in count and time.
        for _ in 0..1000 {
            if desk.lock().requests[&req.id].outcome.receiver_count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(desk.lock().requests[&req.id].outcome.receiver_count(), 1, "the poll never started waiting");
        let started = Instant::now();
        desk.deny(&events, &req.id).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
        assert_eq!(got.status, Status::Denied);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn finished_requests_are_forgotten_beyond_the_retention() {
        let (desk, events) = desk(1);
        let (first, _) = desk.ask(&events, ask("first.test")).unwrap();
        desk.deny(&events, &first.id).unwrap();
        for i in 0..RETAIN_FINISHED {
            let (r, _) = desk.ask(&events, ask(&format!("h{i}.test"))).unwrap();
            desk.deny(&events, &r.id).unwrap();
        }
        assert!(desk.status(&first.id, Duration::ZERO).await.is_none());
        assert_eq!(desk.lock().requests.len(), RETAIN_FINISHED);
    }

    #[test]
    fn state_changes_are_rate_limited_but_repeats_are_free() {
        let (desk, events) = desk(1);
        let states = [AgentState::Working, AgentState::NeedsInput];
        for i in 0..MAX_STATE_CHANGES as usize {
            desk.report_state(&events, states[i % 2], String::new()).unwrap();
        }
        let last = states[(MAX_STATE_CHANGES as usize - 1) % 2];
        desk.report_state(&events, last, String::new()).unwrap();
        let e = desk.report_state(&events, AgentState::Done, String::new()).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(events.recent().len(), MAX_STATE_CHANGES as usize);
    }

    #[test]
    fn ttl_is_capped_by_max_grant_secs() {
        let cfg = SuperviseConfig { max_grant_secs: 60, ..SuperviseConfig::default() };
        let desk = Desk::new(&cfg);
        assert_eq!(desk.grant_ttl(Some(3600)).unwrap(), Some(60));
        assert_eq!(desk.grant_ttl(Some(5)).unwrap(), Some(5));
        assert_eq!(desk.grant_ttl(None).unwrap(), Some(60));
        assert!(desk.grant_ttl(Some(0)).is_err());
        let uncapped = Desk::new(&SuperviseConfig::default());
        assert_eq!(uncapped.grant_ttl(None).unwrap(), None);
        assert!(uncapped.grant_ttl(Some(u64::MAX)).is_err());
    }
}
