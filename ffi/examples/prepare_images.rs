//! Builds (or finds in the cache) the images a bottle runs, on the host.
//!
//! scripts/swift-check.sh runs this before the Swift tests: they run in a chroot
//! that has Swift but neither cargo nor debootstrap, so the images those tools
//! make must already exist when the Swift round trip calls `up`.

use bottle_core::backend::Progress;
use bottle_core::images::{ensure_agent_image, ensure_bundle_image};

struct Print;

impl Progress for Print {
    fn step(&self, message: &str) {
        eprintln!("prepare-images: {message}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backend = bottle_core::docker::connect().await?;
    let agent = ensure_agent_image(backend.docker(), &Print).await?;
    let bundle = ensure_bundle_image(backend.docker(), &Print).await?;
    eprintln!("prepare-images: ready: {agent}, {bundle}");
    Ok(())
}
