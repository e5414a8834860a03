//! Binding and accepting, once for every listener of the bundle.
//!
//! `accept` fails for reasons that pass (out of file descriptors while the
//! agent holds many connections, a peer that aborted in the backlog). A
//! service whose accept loop ended on one would be gone for good: egress or
//! the control plane taken down by the agent's own connection count. So every
//! listener of the bundle goes through here, logs the failure and waits a
//! moment for descriptors to free up. Every accepted connection is held to its
//! service's [`Cap`], which decides what happens at the limit.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::cap::{BUSY, Cap, Headed};

/// Pause after a failed accept before trying again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Pending-connection queue: bursts of new connections must not be dropped by the kernel.
const LISTEN_BACKLOG: u32 = 1024;

/// A listener for `service` on `addr`; the error names both.
pub fn bind(service: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| anyhow::anyhow!("{service} listen {addr}: {e}"))
}

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

/// Serves every connection on `listener` in a task of its own, within `cap`: a connection
/// the cap refuses gets [`BUSY`], and one the cap sheds is dropped mid-`serve`.
pub async fn each<F, Fut>(listener: &TcpListener, cap: Cap, serve: F) -> anyhow::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Headed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = next(listener, cap.service()).await;
        let Some(slot) = cap.admit(peer).await else {
            let _ = stream.try_write(BUSY);
            continue;
        };
        let served = serve(stream, peer, slot.headed());
        tokio::spawn(async move {
            tokio::select! {
                () = served => {}
                () = slot.shed() => {}
            }
        });
    }
}
