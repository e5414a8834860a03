//! `doctor`: what the chosen backend needs and whether each bottle's control plane answers,
//! each finding with what to fix. The CLI prints these; the app shows the same list.

use super::choice::{self, Choice};
use crate::backend::{BottleBackend, Check, Error};
use crate::control_client::ControlClient;

pub struct Findings {
    pub choice: Choice,
    /// The backend choice first, then the backend's own checks, the bottles and their control planes.
    pub checks: Vec<Check>,
    /// Why the backend could not be opened (its engine or runtime), when it could not.
    pub unopened: Option<Error>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.unopened.is_none() && self.checks.iter().all(|c| c.ok)
    }
}

/// Every finding about the backend `choice` names.
pub async fn doctor(choice: Choice) -> Findings {
    let mut checks = vec![Check::new("backend", true, choice.describe(), "")];
    let backend = match choice::open(choice.kind).await {
        Ok(backend) => backend,
        Err(e) => {
            // Why this user cannot reach the engine (missing, stale, or a socket not open to them).
            let fix = match crate::engine::endpoint::discover() {
                Ok(at) if matches!(e, Error::EngineUnavailable(_)) => crate::engine::endpoint::socket_hint(&at.host),
                _ => "run scripts/install-docker.sh (Linux) or start your Docker engine".into(),
            };
            checks.push(Check::new("engine", false, format!("{e:#}"), &fix));
            return Findings { choice, checks, unopened: Some(e) };
        }
    };
    checks.extend(backend.doctor().await);
    match backend.list().await {
        Err(e) => checks.push(Check::new("bottles", false, format!("{e:#}"), "see the error above")),
        Ok(all) => {
            checks.push(Check::new("bottles", true, format!("{} found", all.len()), ""));
            for b in all.iter().filter(|b| b.state.bundle_answers()) {
                checks.push(control_check(&*backend, &b.name).await);
            }
        }
    }
    Findings { choice, checks, unopened: None }
}

async fn control_check(backend: &dyn BottleBackend, name: &str) -> Check {
    let res = async { ControlClient::of_bottle(backend, name).await?.health().await }.await;
    let (ok, detail) = match res {
        Ok(h) if h.kill_switch => (true, format!("healthy; KILL SWITCH ENGAGED; {} blocked so far", h.blocked_total)),
        Ok(h) => (
            h.ok,
            format!(
                "{}; {} open connections, {} blocked so far",
                if h.ok { "healthy" } else { "unhealthy" },
                h.open_connections,
                h.blocked_total
            ),
        ),
        Err(e) => (false, format!("{e:#}")),
    };
    Check::new(
        &format!("control plane of {name}"),
        ok,
        detail,
        "see `bottle-core status` and `bottle-core logs` for this bottle",
    )
}
