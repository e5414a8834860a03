//! The state every bundle service shares: config, live policy, DLP scanner,
//! egress dialer, events and the kill switch.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bottle_protocol::{BundleConfig, EventKind};

use crate::persist::{self, Found, Saved};
use crate::{apigate, dlp, egress, events::EventBus, gitgate, kill::KillSwitch, policy::PolicyStore, supervise::Desk};

pub struct Bundle {
    pub config: BundleConfig,
    pub policy: PolicyStore,
    pub dlp: dlp::Scanner,
    pub dialer: egress::Dialer,
    pub events: EventBus,
    pub kill: KillSwitch,
    pub desk: Desk,
    /// git-gate's validated repositories and credentials.
    pub git: gitgate::Repos,
    /// The API gate's validated APIs and their credentials.
    pub apis: apigate::Apis,
    pub stats: Stats,
    /// What outlives this process; written by [`Bundle::save_state`].
    state: persist::Store,
    control_token: String,
    egress_addr: RwLock<SocketAddr>,
}

/// Counters reported by the control plane's health call.
#[derive(Default)]
pub struct Stats {
    pub open_connections: AtomicU64,
    pub blocked_total: AtomicU64,
    /// Tunnels open through egress's loopback listener (git-gate, the API gate); the
    /// proxy's in-process tunnels are among its `open_connections`.
    pub egress_tunnels: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

impl Bundle {
    /// Builds the shared state. `file` and `text` give config errors their positions.
    pub fn from_config(file: &Path, text: &str, config: BundleConfig) -> anyhow::Result<Self> {
        let policy = PolicyStore::from_config(file, text, &config.policy)?;
        let dlp = dlp::Scanner::from_config(&config.dlp)?;
        let dialer = egress::Dialer::from_config(file, text, &config.egress, &config.limits)?;
        let git = gitgate::Repos::from_config(file, text, &config.git)?;
        let apis = apigate::Apis::from_config(file, text, &config)?;
        let control_token = std::fs::read_to_string(&config.control.token_file)
            .with_context(|| format!("control.token_file {}", config.control.token_file.display()))?
            .trim()
            .to_string();
        anyhow::ensure!(
            control_token.len() >= 16,
            "control.token_file {}: token must be at least 16 characters",
            config.control.token_file.display()
        );
        let (state, found) = persist::Store::open(config.state_file.as_deref());
        let bundle = Self {
            policy,
            dlp,
            dialer,
            events: EventBus::new(&config.bottle, found.next_epoch()),
            kill: KillSwitch::default(),
            desk: Desk::new(&config.supervise),
            git,
            apis,
            stats: Stats::default(),
            state,
            control_token,
            egress_addr: RwLock::new(config.listen.egress),
            config,
        };
        bundle.restore(found)?;
        Ok(bundle)
    }

    /// Puts back what a previous start saved, and records this start's epoch before any
    /// event carries it. Anything that does not come back whole engages the kill switch.
    fn restore(&self, found: Found) -> anyhow::Result<()> {
        let lost = match &found {
            Found::First => None,
            Found::Unreadable(why) => Some(why.clone()),
            Found::Restored(saved) => self.put_back(saved).err(),
        };
        if lost.is_some() {
            self.kill.set(true);
        }
        self.save_state().context("the bundle cannot keep its state, so a restart could undo the kill switch")?;
        let file = self.config.state_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let detail = match (&found, lost) {
            (Found::First, _) => return Ok(()),
            (_, Some(why)) => format!(
                "the bundle restarted (epoch {}) and could not restore its state from {file} ({why}): \
                 the kill switch is engaged until the host releases it",
                self.events.epoch()
            ),
            (_, None) => {
                let (policy, grants) = self.policy.saved();
                format!(
                    "the bundle restarted (epoch {}); restored from {file}: kill switch {}, {}, {} live grant(s)",
                    self.events.epoch(),
                    if self.kill.engaged() { "engaged" } else { "off" },
                    if policy.is_some() { "the host's policy" } else { "the config's policy" },
                    grants.len()
                )
            }
        };
        tracing::warn!("{detail}");
        self.events.emit(EventKind::BottleState { state: "bundle-restarted".into(), detail });
        Ok(())
    }

    fn put_back(&self, saved: &Saved) -> Result<(), String> {
        self.kill.set(saved.kill_switch);
        if let Some(update) = &saved.policy {
            self.policy.replace(update).map_err(|e| format!("saved policy: {e}"))?;
        }
        saved.grants.iter().try_for_each(|g| self.policy.restore_grant(g))
    }

    /// Writes the kill switch, the host's policy and the live grants where the next start
    /// finds them. Callers save before they answer, so a change the host saw acknowledged
    /// survives a crash right after.
    pub fn save_state(&self) -> anyhow::Result<()> {
        self.state.save(|| {
            let (policy, grants) = self.policy.saved();
            Saved { epoch: self.events.epoch(), kill_switch: self.kill.engaged(), policy, grants }
        })
    }

    /// Where egress actually listens (differs from the config when it asked for port 0).
    pub fn egress_addr(&self) -> SocketAddr {
        *self.egress_addr.read().expect("egress addr poisoned")
    }

    pub fn set_egress_addr(&self, addr: SocketAddr) {
        *self.egress_addr.write().expect("egress addr poisoned") = addr;
    }

    /// Constant-time comparison of a presented control-plane token.
    pub fn control_token_matches(&self, presented: &str) -> bool {
        let (a, b) = (self.control_token.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
