//! `BottleBackend`: what every backend (Docker, smolmachines) must do.
//!
//! The CLI and the FFI only ever talk to this trait, so a backend is chosen
//! once (`--backend` / `CLAUDE_BOTTLE_BACKEND`) and nothing else changes.

mod error;
mod state;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use bottle_protocol::Event;
use bottle_protocol::control::{AgentStatus, GrantView};

use crate::spec::Spec;

pub use error::{Error, Result};
pub use state::BottleState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Docker,
    Smolmachines,
}

/// Whether the bottle's allowlist has been seen to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowlistStatus {
    pub verdict: Verdict,
    pub allowlist: Vec<String>,
    /// How the boundary is enforced, e.g. `docker internal bridge + bundle proxy`.
    pub mechanism: String,
    /// RFC 3339 time of the last start check, if any.
    pub checked_at: Option<String>,
    pub detail: String,
    /// Set by backends whose allowlist a VMM enforces (smolmachines); absent for Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm: Option<VmmFacts>,
}

/// What a VMM-enforced allowlist depends on, which the mechanism string alone does not make scriptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmmFacts {
    /// `smolvm`.
    pub runtime: String,
    pub version: String,
    /// The network backend in force: `virtio-net` (enforces the allowlist) or `tsi`.
    pub net_backend: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Verified,
    Failed,
    NotVerified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleStatus {
    pub name: String,
    pub backend: BackendKind,
    pub state: BottleState,
    /// Why the bottle is degraded, or empty.
    pub detail: String,
    pub allowlist: AllowlistStatus,
    /// What the bottle's bundle says right now (see `crate::live`); absent when it was not
    /// asked (a stopped bottle) or did not answer (then `detail` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
}

/// A running bottle as its bundle's control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// Engaged: all egress is cut, whatever the allowlist's verdict says.
    pub kill_switch: bool,
    /// Grants of approved access requests, beside the allowlist.
    pub grants: Vec<GrantView>,
    /// What the agent last reported through supervise (`needs-input`, ...).
    pub agent: AgentStatus,
}

/// A command run with this process's own stdin, stdout and stderr attached (`exec`, `shell`).
#[derive(Debug)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// Send this process's stdin to the command (until end of file).
    pub stdin: bool,
    /// Run the command on a terminal of its own (its output then comes back as one stream).
    pub tty: bool,
    /// The host terminal's size, now and after each change, while `tty` is set
    /// ([`crate::terminal::window_sizes`]); `None` when there is nothing to pass on.
    pub sizes: Option<tokio::sync::mpsc::Receiver<crate::terminal::WindowSize>>,
}

/// Whose log `logs` shows: the agent's program or the bundle's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Agent,
    Bundle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub source: LogSource,
    /// Only the last this many lines of what is logged so far (all of it when `None`).
    pub tail: Option<usize>,
    /// Keep the stream open for new lines until the container stops.
    pub follow: bool,
}

/// Bytes as the program wrote them, on its stdout or its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stderr: bool,
    pub bytes: bytes::Bytes,
}

pub type LogStream<'a> = futures_util::stream::BoxStream<'a, anyhow::Result<LogChunk>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// One `doctor` finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when `ok` is false; empty otherwise.
    #[serde(default)]
    pub fix: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, detail: impl Into<String>, fix: &str) -> Self {
        Self { name: name.into(), ok, detail: detail.into(), fix: if ok { String::new() } else { fix.into() } }
    }
}

/// Reports progress on long steps (image builds, network setup, start check).
pub trait Progress: Send + Sync {
    fn step(&self, message: &str);
    /// The named step `step` took `took` (steps may overlap: some run side by side). Kept by
    /// callers that report step times, as `up --json` does, so a slower step shows in CI logs.
    fn timed(&self, _step: &'static str, _took: std::time::Duration) {}
}

/// Awaits `work` and reports how long it took as `step`.
pub async fn timed<T>(progress: &dyn Progress, step: &'static str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    progress.timed(step, started.elapsed());
    out
}

/// For calls made where nobody watches, such as `gc` removing leftovers.
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _message: &str) {}
}

/// Every operation on a named bottle says [`Error::NotFound`] itself when there is none.
#[async_trait]
pub trait BottleBackend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// Reads and looks up everything the spec names on the host, making nothing (`up`
    /// runs it first; `up --dry-run` only it).
    async fn preflight(&self, spec: &Spec) -> crate::preflight::Report;
    async fn up(&self, spec: &Spec, progress: &dyn Progress) -> Result<BottleStatus>;
    async fn down(&self, name: &str, progress: &dyn Progress) -> Result<()>;
    async fn status(&self, name: &str) -> Result<BottleStatus>;
    /// Runs `cmd` to its end and returns what it printed (as text: for probes and the FFI).
    async fn exec(&self, name: &str, cmd: &[String]) -> Result<ExecOutput>;
    /// Runs a command with this process's streams attached, its output passed on byte for
    /// byte as it comes; returns the command's exit code.
    async fn exec_attached(&self, name: &str, req: ExecRequest) -> Result<i64>;
    /// The agent's and the bundle's output so far, one after the other (for the FFI).
    async fn logs(&self, name: &str) -> Result<String>;
    /// One side's log as a stream of chunks, optionally only its tail, optionally followed.
    async fn log_stream(&self, name: &str, opts: LogOptions) -> Result<LogStream<'_>>;
    async fn list(&self) -> Result<Vec<BottleStatus>>;
    /// Where the host reaches this bottle's bundle control plane.
    async fn control_endpoint(&self, name: &str) -> Result<ControlEndpoint>;
    /// [`Self::control_endpoint`] of each of `names`, in order; a backend that can read them
    /// all from one listing says so here (`ls` of many bottles asks for all at once).
    async fn control_endpoints(&self, names: &[&str]) -> Vec<Result<ControlEndpoint>> {
        futures_util::future::join_all(names.iter().map(|n| self.control_endpoint(n))).await
    }
    /// Removes what interrupted or dead bottles left behind (or, with `dry_run`, only names it).
    async fn gc(&self, dry_run: bool) -> Result<Vec<String>>;
    /// What this backend needs (engine, images, address pool), each with what to fix.
    async fn doctor(&self) -> Vec<Check>;
    /// Events this backend sees outside the bundle (a VMM's own denials), which
    /// [`crate::bottles::follow`] merges into the bundle's stream; `None` when the bundle
    /// sees everything (Docker).
    /// The source owns what it needs, so a subscription can outlive this call.
    async fn event_source(&self, _name: &str) -> Result<Option<Box<dyn EventSource>>> {
        Ok(None)
    }
}

/// A pull-based feed of one bottle's backend-side events.
#[async_trait]
pub trait EventSource: Send {
    /// Events not returned by an earlier call (possibly none), oldest first; never blocks
    /// for long. Their ids are not the bundle's sequence, so `--since` does not apply to them.
    async fn poll(&mut self) -> anyhow::Result<Vec<Event>>;
}

/// A bundle control plane as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEndpoint {
    /// `http://ip:port`
    pub url: String,
    pub token: String,
}
