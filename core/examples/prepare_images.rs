//! Builds (or finds) the bundle image and bottle's default agent image, and prints the agent
//! image's tag on stdout. The demo uses it to run its canary from the same image before the
//! first `up`; CI can run it to warm the image cache. scripts/swift-check.sh runs it before
//! the Swift tests: they run in a chroot that has Swift but neither cargo nor debootstrap, so
//! the images those tools make must already exist when the Swift round trip calls `up`.

use bottle_core::backend::Progress;

struct Stderr;

impl Progress for Stderr {
    fn step(&self, message: &str) {
        eprintln!("==> {message}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backend = bottle_core::docker::connect().await?;
    bottle_core::images::ensure_bundle_image(backend.docker(), &Stderr).await?;
    println!("{}", bottle_core::images::ensure_agent_image(backend.docker(), &Stderr).await?);
    Ok(())
}
