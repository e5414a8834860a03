//! What a running bottle's bundle says right now: the kill switch, the live grants and the
//! agent's last reported state.
//!
//! Backends report what the engine or the VMM knows; these three live only in the bundle, so
//! they are read from its control plane, for either backend, in this one place. A bottle
//! whose control plane does not answer is not guessed about: its status says so.

use crate::backend::{BottleBackend, BottleStatus, Live};
use crate::control_client::ControlClient;

/// Reads the bundle's view into `status.live`; for a bottle whose bundle should answer but
/// does not, `detail` says so instead.
pub async fn fill(backend: &dyn BottleBackend, status: &mut BottleStatus) {
    if !status.state.bundle_answers() {
        return;
    }
    match ask(backend, &status.name).await {
        Ok(live) => status.live = Some(live),
        Err(e) => {
            let note = format!("its control plane did not answer, so the kill switch and grants are unknown: {e:#}");
            status.detail = if status.detail.is_empty() { note } else { format!("{}; {note}", status.detail) };
        }
    }
}

/// Bundles asked at once by [`fill_all`]: one at a time, `ls` would grow by a control-plane
/// round trip per bottle.
const FILL_PARALLEL: usize = 16;

/// [`fill`] for every bottle of a list.
pub async fn fill_all(backend: &dyn BottleBackend, all: &mut [BottleStatus]) {
    use futures_util::StreamExt;
    futures_util::stream::iter(all.iter_mut()).for_each_concurrent(FILL_PARALLEL, |s| fill(backend, s)).await;
}

async fn ask(backend: &dyn BottleBackend, name: &str) -> anyhow::Result<Live> {
    read(&ControlClient::of_bottle(backend, name).await?).await
}

/// The three from one bundle's control plane, asked at once.
pub async fn read(client: &ControlClient) -> anyhow::Result<Live> {
    let (health, grants, agent) = tokio::try_join!(client.health(), client.grants(), client.agent())?;
    Ok(Live { kill_switch: health.kill_switch, grants, agent })
}
