//! The front door of the core: what the CLI and the FFI both call, so the two can never
//! disagree about a bottle.
//!
//! It owns the decisions a front end must not make for itself: which backend a call uses
//! and how it is opened ([`choose`], [`open`]), the typed [`Error`] every operation
//! returns (each front end maps it to its own codes), a bottle's one event stream
//! ([`follow()`]: the bundle's events with the backend's own merged in) and its one-line
//! wording ([`event_line`]), a status read together with what the bundle says right now
//! ([`status`], [`list`]), and what `doctor` finds ([`doctor()`]). Backends implement
//! [`crate::backend::BottleBackend`]; front ends print or convert what comes back.

mod choice;
mod doctor;
pub mod event_line;
mod follow;

pub use crate::backend::{BottleState, Error, Result};
pub use choice::{
    BACKEND_ENV, Choice, ChoiceSource, choose, choose_from_env, forced_from_env, kind_name, open, open_default,
};
pub use doctor::{Findings, doctor};
pub use follow::{BACKEND_POLL_INTERVAL, Events, follow};

use crate::backend::{BottleBackend, BottleStatus, Verdict};
use crate::control_client::ControlClient;

/// Bottle `name`'s status, with its bundle's live view where the bundle should answer.
pub async fn status(backend: &dyn BottleBackend, name: &str) -> Result<BottleStatus> {
    let mut st = backend.status(name).await?;
    crate::live::fill(backend, &mut st).await;
    Ok(st)
}

/// Every bottle of the backend, each with its bundle's live view.
pub async fn list(backend: &dyn BottleBackend) -> Result<Vec<BottleStatus>> {
    let mut all = backend.list().await.map_err(|e| e.context("listing bottles"))?;
    crate::live::fill_all(backend, &mut all).await;
    Ok(all)
}

/// A client of bottle `name`'s control plane.
pub async fn control(backend: &dyn BottleBackend, name: &str) -> Result<ControlClient> {
    ControlClient::of_bottle(backend, name).await
}

/// [`Error::BoundaryFailed`] for a bottle whose start check failed (it is still reported).
pub fn boundary_held(st: &BottleStatus) -> Result<()> {
    if st.allowlist.verdict == Verdict::Failed {
        return Err(Error::BoundaryFailed(anyhow::anyhow!(
            "bottle {}: boundary check failed: {}",
            st.name,
            st.allowlist.detail
        )));
    }
    Ok(())
}
