//! The state every bundle service shares: config, live policy, DLP scanner,
//! egress dialer, events and the kill switch.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bottle_protocol::BundleConfig;

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
    control_token: String,
    egress_addr: RwLock<SocketAddr>,
}

/// Counters reported by the control plane's health call.
#[derive(Default)]
pub struct Stats {
    pub open_connections: AtomicU64,
    pub blocked_total: AtomicU64,
    /// Tunnels egress holds open right now; counted apart so proxy connections are not counted twice.
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
        Ok(Self {
            policy,
            dlp,
            dialer,
            events: EventBus::new(&config.bottle),
            kill: KillSwitch::default(),
            desk: Desk::new(&config.supervise),
            git,
            apis,
            stats: Stats::default(),
            control_token,
            egress_addr: RwLock::new(config.listen.egress),
            config,
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
