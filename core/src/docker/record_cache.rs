//! The host's copy of each bundle's start-check record (see `sidecar::host_copy`), so `ls`
//! reads a file per bottle instead of an archive out of each bundle.
//!
//! The bundle's own record stays the one `up` decides by. A restarted bundle keeps its id
//! and its record, whose restart count `status` compares with the engine's
//! (`sidecar::restarts`), so the restart still shows as degraded. `up`'s start check writes
//! the copy right after the bundle's record, the re-check after a restart included; a
//! record read from a bundle that has no copy (the run folder was emptied, say) is copied
//! unless one appeared meanwhile.

use bollard::Docker;

use super::check::Record;
use crate::backend::AllowlistStatus;
use crate::sidecar::host_copy::{self, Kept};
use crate::sidecar::{labels, restarts::Checked};

/// The copy kept for bundle container `bundle_id`, if any.
pub fn load(bundle_id: &str) -> Option<Record> {
    serde_json::from_slice(&host_copy::load(bundle_id, Kept::StartCheck)?).ok()
}

/// Keeps the record `up` just wrote into bottle `name`'s bundle on the host too.
pub async fn keep(docker: &Docker, name: &str, status: &AllowlistStatus, bundle_restarts: u64) {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let Some(id) = docker.inspect_container(&container, None).await.ok().and_then(|c| c.id) else { return };
    let record = Checked { status: status.clone(), bundle_restarts };
    if let Ok(json) = serde_json::to_vec(&record) {
        host_copy::keep(&id, Kept::StartCheck, &json);
    }
}

/// Copies a record read out of bundle `bundle_id`, unless a copy exists (`up` may have just written a newer one).
pub fn adopt(bundle_id: &str, record: &Record) {
    if let Ok(json) = serde_json::to_vec(record) {
        let _ = host_copy::store(bundle_id, Kept::StartCheck, &json, false);
    }
}
