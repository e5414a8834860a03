//! Before a VM starts: can the host reach the bundle at all?
//!
//! Under virtio-net the VM's connections are opened by smolvm on the host, so
//! the VM reaches `<bundle-ip>` only if the host routes to the container's IP.
//! Docker Desktop on macOS does not; without this check the agent would boot
//! into a VM whose every request times out, which looks like a broken proxy
//! rather than a missing route.
//!
//! It checks the answer, not just the connect: a host without a route to
//! `<bundle-ip>` hands it to its default gateway, and on networks with a
//! transparent proxy something there accepts any TCP connection (seen here).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::smolfile::BundleAddr;

/// How long the host waits for the bundle's proxy port to accept and answer.
pub const PREFLIGHT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A name no allowlist holds (RFC 2606): the bottle's proxy refuses it itself, without dialing.
pub const PREFLIGHT_PROBE_HOST: &str = "bottle-preflight.invalid";
/// Most bytes of the proxy's answer read while looking for its block header.
const MAX_ANSWER_BYTES: usize = 8192;
/// The header only the bottle's proxy puts on a refusal.
const BLOCK_HEADER: &str = "x-bottle-block:";

/// Connects from the host to the bundle's proxy port and asks it for a name it
/// must refuse, or says how to fix the route. A bare TCP connect is not enough:
/// without a route of its own, the host sends `<bundle-ip>` to its default
/// gateway, and whatever answers there is not the bundle.
pub async fn check_bundle_reachable(bundle: BundleAddr, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::new(bundle.ip, bundle.proxy_port);
    let why = match tokio::time::timeout(timeout, ask(addr)).await {
        Ok(Ok(head)) if is_bottle_refusal(&head) => return Ok(()),
        Ok(Ok(head)) => format!(
            "something answered, but not the bottle's proxy (no X-Bottle-Block refusal of {PREFLIGHT_PROBE_HOST}; \
             answer began {:?}): the host's route to {} leads elsewhere",
            head.lines().next().unwrap_or(""),
            bundle.ip
        ),
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

/// One proxy request; returns the answer's head (or as much as came before the peer closed).
async fn ask(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "GET http://{PREFLIGHT_PROBE_HOST}/ HTTP/1.1\r\nHost: {PREFLIGHT_PROBE_HOST}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_ANSWER_BYTES && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn is_bottle_refusal(head: &str) -> bool {
    head.starts_with("HTTP/1.1 403") && head.lines().any(|l| l.to_ascii_lowercase().starts_with(BLOCK_HEADER))
}
