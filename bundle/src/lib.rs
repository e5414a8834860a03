//! The sidecar bundle: the bottle's only way out.
//!
//! One process runs every service against one shared [`state::Bundle`]:
//! the agent-facing proxy, git-gate and supervise; the loopback-only
//! `egress` dialer that all of them go through; and the host-only control
//! plane. See `bundle/README.md` for the threat model.

pub mod accept;
pub mod apigate;
pub mod cap;
pub mod control;
pub mod dlp;
pub mod egress;
pub mod events;
pub mod exit;
pub mod gitgate;
pub mod http;
pub mod httpserve;
pub mod kill;
pub mod logging;
pub mod persist;
pub mod policy;
pub mod proxy;
pub mod state;
pub mod supervise;

use std::path::Path;
use std::sync::Arc;

use bottle_protocol::BundleConfig;

pub use exit::Exit;

/// Loads the config, binds every listener, and serves until a fatal error.
pub fn run_main(config_path: &Path) -> Exit {
    let (config, text) = match BundleConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bottle-bundle: {e}");
            return Exit::Config;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bottle-bundle: cannot start runtime: {e}");
            return Exit::Runtime;
        }
    };
    runtime.block_on(async move {
        let bundle = match state::Bundle::from_config(config_path, &text, config) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                eprintln!("bottle-bundle: {e:#}");
                return Exit::Config;
            }
        };
        match serve(bundle).await {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("bottle-bundle: {e:#}");
                Exit::Runtime
            }
        }
    })
}

/// Binds every configured listener first (so a port clash fails fast), then serves them all.
pub async fn serve(bundle: Arc<state::Bundle>) -> anyhow::Result<()> {
    let services = Services::bind(&bundle).await?;
    services.run(bundle).await
}

/// All bound listeners of one bundle; tests bind on port 0 and read the real addresses here.
pub struct Services {
    pub egress: egress::Server,
    pub proxy: proxy::Server,
    pub control: control::Server,
    pub git_gate: Option<gitgate::Server>,
    pub supervise: Option<supervise::Server>,
    pub api_gate: Option<apigate::Server>,
}

impl Services {
    pub async fn bind(bundle: &Arc<state::Bundle>) -> anyhow::Result<Self> {
        let l = &bundle.config.listen;
        let egress = egress::Server::bind(l.egress).await?;
        let proxy = proxy::Server::bind(l.proxy).await?;
        let control = control::Server::bind(l.control).await?;
        let git_gate = match l.git_gate {
            Some(a) if !bundle.config.git.repos.is_empty() => Some(gitgate::Server::bind(a).await?),
            _ => None,
        };
        let supervise = match l.supervise {
            Some(a) => Some(supervise::Server::bind(a).await?),
            None => None,
        };
        let api_gate = match l.api_gate {
            Some(a) if !bundle.apis.is_empty() => Some(apigate::Server::bind(a).await?),
            _ => None,
        };
        // Later services dial egress at its bound address, which differs from the config when it says port 0.
        bundle.set_egress_addr(egress.local_addr());
        tracing::info!(
            proxy = %proxy.local_addr(), control = %control.local_addr(), egress = %egress.local_addr(),
            "bundle listening"
        );
        Ok(Self { egress, proxy, control, git_gate, supervise, api_gate })
    }

    pub async fn run(self, bundle: Arc<state::Bundle>) -> anyhow::Result<()> {
        let mut set = tokio::task::JoinSet::new();
        set.spawn(self.egress.run(bundle.clone()));
        set.spawn(self.proxy.run(bundle.clone()));
        set.spawn(self.control.run(bundle.clone()));
        set.spawn(events::sweep(bundle.clone()));
        if let Some(g) = self.git_gate {
            set.spawn(g.run(bundle.clone()));
        }
        if let Some(s) = self.supervise {
            set.spawn(s.run(bundle.clone()));
        }
        if let Some(a) = self.api_gate {
            set.spawn(a.run(bundle.clone()));
        }
        // Any service ending is fatal: a bundle with a dead proxy must not look healthy.
        match set.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(e.into()),
            None => Ok(()),
        }
    }
}
