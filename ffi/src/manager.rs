//! `BottleManager`: the app's handle on bottles, one method per CLI command it needs.
//!
//! Each call goes through core's front door (`bottle_core::bottles`) as the CLI does:
//! the same backend choice (`CLAUDE_BOTTLE_BACKEND`, then the spec, then Docker), the
//! same typed errors and the same event stream, so the app and `bottle-core` can never
//! disagree about a bottle. The bottle state changes this process causes are broadcast
//! to subscribers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bottle_core::backend::{BackendKind, BottleBackend, Check, Progress};
use bottle_core::bottles::{self, Error};
use bottle_core::control_client::ControlClient;
use bottle_core::spec::Spec;
use bottle_protocol::event::{Event, EventKind};
use tokio::sync::broadcast;

use crate::error::BottleError;
use crate::events::{self, EventListener, Subscription};
use crate::notify::NotificationPolicy;
use crate::progress::{Forward, ProgressListener};
use crate::types::{BottleInfo, ControlState, DoctorCheck, PendingRequest};

/// Local state changes buffered per slow subscriber before it skips ahead.
pub const CHANGES_CAPACITY: usize = 64;

#[derive(uniffi::Object)]
pub struct BottleManager {
    policy: Arc<NotificationPolicy>,
    changes: broadcast::Sender<Event>,
    next_id: AtomicU64,
}

/// Long steps of `down` go to the log (the app shows the outcome, not each step).
struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, message: &str) {
        tracing::info!("{message}");
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl BottleManager {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            policy: Arc::default(),
            changes: broadcast::channel(CHANGES_CAPACITY).0,
            next_id: AtomicU64::new(1),
        })
    }

    pub async fn list(&self) -> Result<Vec<BottleInfo>, BottleError> {
        let all = open(None).await?.list().await.map_err(|e| e.context("listing bottles"))?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Starts the bottle described by the bottle.toml at `spec_path`, telling `progress`
    /// each step as the CLI prints it. A bottle whose start check failed is returned,
    /// not thrown: its allowlist verdict says so.
    pub async fn up(&self, spec_path: String, progress: Arc<dyn ProgressListener>) -> Result<BottleInfo, BottleError> {
        let spec = Spec::load(&PathBuf::from(&spec_path)).map_err(|e| Error::InvalidSpec(e.into()))?;
        let backend = open(spec.backend).await?;
        self.changed(&spec.name, "starting", "");
        let st = backend
            .up(&spec, &Forward(progress))
            .await
            .map_err(|e| e.context(format!("starting bottle {}", spec.name)));
        let st = st.inspect_err(|e| self.changed(&spec.name, "failed", &format!("{e:#}")))?;
        self.changed(&st.name, st.state.as_str(), &st.detail);
        Ok(st.into())
    }

    /// Stops and removes the bottle; its workspace is untouched.
    pub async fn down(&self, name: String) -> Result<(), BottleError> {
        let backend = open(None).await?;
        self.changed(&name, "stopping", "");
        backend.down(&name, &LogProgress).await?;
        self.changed(&name, "removed", "");
        Ok(())
    }

    pub async fn status(&self, name: String) -> Result<BottleInfo, BottleError> {
        let backend = open(None).await?;
        Ok(backend.status(&name).await?.into())
    }

    /// The bottle's container logs, for the app's "Open Logs".
    pub async fn logs(&self, name: String) -> Result<String, BottleError> {
        let backend = open(None).await?;
        Ok(backend.logs(&name).await?)
    }

    pub async fn pending(&self, name: String) -> Result<Vec<PendingRequest>, BottleError> {
        let all = control(&name).await?.pending().await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Approves an access request, for `ttl_secs` or (with `None`) for the bottle's life.
    pub async fn approve(&self, name: String, request_id: String, ttl_secs: Option<u64>) -> Result<(), BottleError> {
        Ok(control(&name).await?.approve(&request_id, ttl_secs).await?)
    }

    pub async fn deny(&self, name: String, request_id: String) -> Result<(), BottleError> {
        Ok(control(&name).await?.deny(&request_id).await?)
    }

    /// Engages (`true`: all egress cut at once) or releases the bottle's kill switch,
    /// through the control plane as `bottle-core kill` does.
    pub async fn set_kill_switch(&self, name: String, engaged: bool) -> Result<(), BottleError> {
        Ok(control(&name).await?.kill(engaged).await?)
    }

    /// What the bundle knows that the engine does not: the kill switch, the agent's
    /// reported state and the pending access requests.
    pub async fn control_state(&self, name: String) -> Result<ControlState, BottleError> {
        let client = control(&name).await?;
        let (live, pending) = tokio::try_join!(bottle_core::live::read(&client), client.pending())?;
        Ok(ControlState::new(live, pending))
    }

    /// What `bottle-core doctor` checks about the backend, for the doctor view.
    pub async fn doctor(&self) -> Vec<DoctorCheck> {
        let checks = match bottles::choose_from_env(None, None) {
            Ok(choice) => bottles::doctor(choice).await.checks,
            Err(e) => vec![Check::new("backend", false, format!("{e:#}"), "fix CLAUDE_BOTTLE_BACKEND")],
        };
        checks.into_iter().map(Into::into).collect()
    }

    /// Follows bottle `name`'s one event stream (buffered ones first; the backend's own, such
    /// as a VMM's denials, merged in) until cancelled or the bottle goes.
    pub async fn subscribe(
        &self,
        name: String,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<Subscription>, BottleError> {
        // Before opening the stream, so a change made meanwhile is not missed.
        let local = self.changes.subscribe();
        let stream = bottles::follow(&*open(None).await?, &name, None, true).await?;
        Ok(events::spawn(name, stream, local, listener, self.policy.clone()))
    }
}

impl BottleManager {
    /// Tells subscribers that this process changed bottle `name`'s state.
    fn changed(&self, name: &str, state: &str, detail: &str) {
        let event = Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            bottle: name.into(),
            kind: EventKind::BottleState { state: state.into(), detail: detail.into() },
        };
        // No subscriber is not an error.
        let _ = self.changes.send(event);
    }
}

/// The backend the CLI would use for this spec backend (`None`: no spec).
async fn open(spec: Option<BackendKind>) -> Result<Box<dyn BottleBackend>, BottleError> {
    Ok(bottles::open(bottles::choose_from_env(None, spec)?.kind).await?)
}

async fn control(name: &str) -> Result<ControlClient, BottleError> {
    Ok(bottles::control(&*open(None).await?, name).await?)
}
