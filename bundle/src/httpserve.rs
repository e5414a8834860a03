//! The HTTP/1.1 server every hyper service of the bundle shares: git-gate,
//! supervise, the API gate and the control plane.
//!
//! An agent that floods a service must not be able to make the bundle grow
//! until the engine kills it: a restarted bundle is a moment in which the
//! boundary is not running. So one place bounds what a connection can hold
//! (its read buffer is at most the bundle's header size, and a head has at
//! most [`MAX_HEADERS`] fields and [`Limits::header_timeout_ms`] to arrive);
//! the service's [`Cap`] bounds how many connections it holds, which together
//! bound its memory. What happens at the cap is [`crate::cap`]'s rule.

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

use bottle_protocol::config::Limits;

use crate::cap::Cap;

/// hyper's smallest allowed read buffer.
const MIN_BUF_SIZE: usize = 8192;
/// Header fields in one request head (hyper's own default, named so it cannot drift up).
pub const MAX_HEADERS: usize = 100;

/// Serves HTTP/1.1 on `listener` until accepting fails, with at most `max_connections` open.
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
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE))
        .max_header_size(limits.max_header_bytes)
        .max_headers(MAX_HEADERS);
    let http = Arc::new(http);
    crate::accept::each(listener, Cap::new(service, max_connections), move |stream, peer, headed| {
        // Streamed replies (server-sent events) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (http, handle) = (http.clone(), handle.clone());
        async move {
            let svc = service_fn(move |req| {
                headed.mark();
                let reply = handle(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            if let Err(e) = http.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%peer, "{service} connection: {e}");
            }
        }
    })
    .await
}
