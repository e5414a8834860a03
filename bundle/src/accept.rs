//! Accepting connections so that no failed accept ends a service.
//!
//! `accept` fails for reasons that pass (out of file descriptors while the
//! agent holds many connections, a peer that aborted in the backlog). A
//! service whose accept loop ended on one would be gone for good: egress or
//! the control plane taken down by the agent's own connection count. So every
//! listener of the bundle goes through here, logs the failure and waits a
//! moment for descriptors to free up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Pause after a failed accept before trying again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The next connection on `listener`; failed accepts are logged for `service` and retried.
pub async fn next(listener: &TcpListener, service: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(e) => {
                tracing::warn!("{service}: accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
