//! The accept loop the agent-facing hyper servers share (supervise, the API gate).
//!
//! One place sets what an agent can hold open: a connection cap (further
//! connections wait in the listen backlog), the bundle's header size and
//! header read time, so a second server cannot drift to weaker bounds.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use bottle_protocol::config::Limits;

/// hyper's smallest allowed read buffer.
const MIN_BUF_SIZE: usize = 8192;

/// Serves HTTP/1.1 on `listener` until accepting fails, at most `max_connections` at once.
pub async fn serve<H, Fut, B>(
    listener: &TcpListener,
    service: &'static str,
    max_connections: usize,
    limits: &Limits,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE))
        .max_header_size(limits.max_header_bytes);
    let http = Arc::new(http);
    loop {
        let permit = slots.clone().acquire_owned().await?;
        let (stream, peer) = crate::accept::next(listener, service).await;
        // Streamed replies (server-sent events) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (http, handle) = (http.clone(), handle.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let reply = handle(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            if let Err(e) = http.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%peer, "{service} connection: {e}");
            }
            drop(permit);
        });
    }
}
