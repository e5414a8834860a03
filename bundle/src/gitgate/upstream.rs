//! The gate's one way to an upstream: a tunnel from `egress`, TLS for https,
//! then a single-request HTTP/1.1 client connection carrying the bundle-held
//! credential. Nothing here dials a socket itself, so the gate can never reach
//! a destination egress refuses.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::config::{Repo, Upstream};
use crate::egress::{self, EgressError};
use crate::state::Bundle;

/// Request headers worth passing from the agent's git to the upstream; everything else
/// (the agent's own `Authorization`, cookies, proxies' hop headers) stays behind.
const FORWARD_REQUEST: &[&str] =
    &["accept", "accept-encoding", "accept-language", "content-type", "content-encoding", "git-protocol", "user-agent"];

/// Upstream response headers passed back; `WWW-Authenticate`, cookies and the like are dropped.
pub const FORWARD_RESPONSE: &[&str] = &["content-type", "content-encoding", "cache-control", "expires", "pragma"];

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("egress refused the upstream ({0})")]
    Refused(String),
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
}

/// Opens a client connection to `up` through egress (TLS when it is https), within the
/// bundle's connect timeout. Shared by git-gate and the API gate: neither dials a socket itself.
pub async fn dial<B>(
    bundle: &Bundle,
    tls: Arc<rustls::ClientConfig>,
    up: &Upstream,
) -> Result<hyper::client::conn::http1::SendRequest<B>, UpstreamError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let connect_timeout = Duration::from_millis(bundle.config.limits.connect_timeout_ms);
    tokio::time::timeout(connect_timeout, async {
        let tcp = egress::connect(bundle.egress_addr(), &up.host, up.port).await.map_err(|e| match e {
            EgressError::Refused { rule } => UpstreamError::Refused(rule),
            other => UpstreamError::Unreachable(other.to_string()),
        })?;
        let io: Box<dyn Io> = if up.tls {
            let name = rustls::pki_types::ServerName::try_from(up.host.clone())
                .map_err(|e| UpstreamError::Unreachable(format!("bad TLS name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("TLS: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream connection: {e}");
            }
        });
        Ok::<_, UpstreamError>(sender)
    })
    .await
    .map_err(|_| UpstreamError::Timeout(connect_timeout))?
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Sends one request (`path_and_query` is appended to the upstream's path) and returns the response head.
pub async fn send<B>(
    bundle: &Bundle,
    tls: Arc<rustls::ClientConfig>,
    repo: &Repo,
    method: hyper::Method,
    path_and_query: &str,
    agent_headers: &HeaderMap,
    body: B,
) -> Result<Response<Incoming>, UpstreamError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limits = &bundle.config.limits;
    let up = &repo.upstream;
    let mut sender = dial(bundle, tls, up).await?;

    let mut req = Request::builder().method(method).uri(format!("{}{path_and_query}", up.path));
    let headers = req.headers_mut().expect("fresh builder");
    for name in FORWARD_REQUEST {
        for v in agent_headers.get_all(*name) {
            headers.append(*name, v.clone());
        }
    }
    headers.insert(header::HOST, HeaderValue::from_str(&up.authority()).expect("validated authority"));
    if let Some(auth) = &repo.auth {
        let mut v = HeaderValue::from_str(auth.expose()).expect("base64 header value");
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
    }
    let req = req.body(body).map_err(|e| UpstreamError::Unreachable(format!("request: {e}")))?;
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    tokio::time::timeout(idle, sender.send_request(req))
        .await
        .map_err(|_| UpstreamError::Timeout(idle))?
        .map_err(|e| UpstreamError::Unreachable(format!("HTTP: {e}")))
}
