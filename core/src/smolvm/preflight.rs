//! Before a VM starts: can the host reach the bundle at all?
//!
//! Under virtio-net the VM's connections are opened by smolvm on the host, so
//! the VM reaches `<bundle-ip>` only if the host routes to the container's IP.
//! Docker Desktop on macOS does not; without this check the agent would boot
//! into a VM whose every request times out, which looks like a broken proxy
//! rather than a missing route.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::smolfile::BundleAddr;

/// How long the host waits for the bundle's proxy port to accept.
pub const PREFLIGHT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects from the host to the bundle's proxy port, or says how to fix it.
pub async fn check_bundle_reachable(bundle: BundleAddr, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::new(bundle.ip, bundle.proxy_port);
    let why = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", timeout.as_millis()),
    };
    Err(format!(
        "preflight: the host cannot reach the bundle's proxy at {addr} ({why}). The smolvm VM \
         reaches the bundle through the host, so the host must route to container IPs. Fixes: \
         on macOS use OrbStack (it routes to container IPs; Docker Desktop does not) or colima \
         with a routable address (`colima start --network-address`, plus a host route to the \
         bundle's subnet through it); on Linux use Docker Engine, whose bridge networks the \
         host routes to directly"
    ))
}
