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
    if status.state.bundle_answers() {
        let live = async { read(&ControlClient::of_bottle(backend, &status.name).await?).await };
        show(status, live.await);
    }
}

/// A bundle's view into `status`, or what kept it from answering into its `detail`.
fn show(status: &mut BottleStatus, live: anyhow::Result<Live>) {
    match live {
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

/// [`fill`] for every bottle of a list, with their endpoints asked of the backend at once.
pub async fn fill_all(backend: &dyn BottleBackend, all: &mut [BottleStatus]) {
    use futures_util::StreamExt;
    let mut asked: Vec<&mut BottleStatus> = all.iter_mut().filter(|s| s.state.bundle_answers()).collect();
    let names: Vec<&str> = asked.iter().map(|s| s.name.as_str()).collect();
    let endpoints = backend.control_endpoints(&names).await;
    let reads = asked.iter_mut().zip(endpoints).map(|(status, endpoint)| async move {
        let live = async { read(&ControlClient::new(&endpoint?)?).await };
        show(status, live.await)
    });
    futures_util::stream::iter(reads).for_each_concurrent(FILL_PARALLEL, |read| read).await;
}

/// The three from one bundle's control plane, asked at once.
pub async fn read(client: &ControlClient) -> anyhow::Result<Live> {
    let (health, grants, agent) = tokio::try_join!(client.health(), client.grants(), client.agent())?;
    Ok(Live { kill_switch: health.kill_switch, grants, agent })
}
