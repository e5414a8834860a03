//! Shared test support: a real bundle on 127.0.0.1:0, real origins, real curl.
//!
//! Everything listens on loopback. Origins are named `localhost` (egress
//! resolves it from /etc/hosts) and `origin.test` is mapped statically in
//! `[egress.hosts]` for when egress honours overrides; no test ever asks the
//! machine's DNS for a test name.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bottle_bundle::Services;
use bottle_bundle::state::Bundle;
use bottle_protocol::{BundleConfig, EventKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// Longest any curl call in a test may take.
pub const CURL_MAX_SECS: &str = "20";

/// A running bundle plus the runtime its services (and test origins) run on.
pub struct Harness {
    pub rt: Runtime,
    pub bundle: Arc<Bundle>,
    pub proxy: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a bundle whose config is the loopback base plus `extra` TOML tables.
    pub fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "test-token-0123456789abcdef\n").unwrap();
        let text = format!(
            "bottle = \"test\"\n\
             [listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\negress = \"127.0.0.1:0\"\n\
             [control]\ntoken_file = {token:?}\n\
             [egress]\nallow_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n\
             [egress.hosts]\n\"origin.test\" = [\"127.0.0.1\"]\n\
             {extra}\n"
        );
        let path = dir.path().join("bundle.toml");
        std::fs::write(&path, &text).unwrap();
        let config = BundleConfig::parse(&path, &text).unwrap_or_else(|e| panic!("test config: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (bundle, proxy) = rt.block_on(async {
            let bundle = Arc::new(Bundle::from_config(&path, &text, config).expect("bundle state"));
            let services = Services::bind(&bundle).await.expect("bind services");
            let proxy = services.proxy.local_addr();
            tokio::spawn(services.run(bundle.clone()));
            (bundle, proxy)
        });
        Self { rt, bundle, proxy, dir }
    }

    /// Writes a file into the harness's temp dir and returns its path.
    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Runs curl through the proxy with `args`; never consults proxy env vars or DNS.
    pub fn curl(&self, args: &[&str]) -> Output {
        let proxy = format!("http://{}", self.proxy);
        Command::new("curl")
            .args(["-sS", "--noproxy", "", "-x", &proxy, "--max-time", CURL_MAX_SECS])
            .args(args)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .output()
            .expect("run curl")
    }

    /// `EgressBlocked` events so far as (rule, method, target, request id).
    pub fn blocks(&self) -> Vec<Block> {
        self.bundle
            .events
            .recent()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::EgressBlocked { client, method, target, rule, request_id, .. } => {
                    Some(Block { client, method, target, rule, request_id })
                }
                _ => None,
            })
            .collect()
    }

    /// Waits (bounded) until an `EgressBlocked` event with `rule` exists.
    pub fn wait_block(&self, rule: &str) -> Block {
        for _ in 0..200 {
            if let Some(b) = self.blocks().into_iter().find(|b| b.rule == rule) {
                return b;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no block event with rule {rule}; have {:?}", self.blocks());
    }

    /// Allows `localhost:PORT` as well. A bare name allows ports 443 and 80
    /// only, and test origins listen on ports the kernel picks.
    pub fn allow_port(&self, port: u16) {
        self.bundle.policy.grant(&format!("test-origin-{port}"), "localhost", Some(port), None).unwrap();
    }

    pub fn http_origin(&self) -> HttpOrigin {
        self.rt.block_on(HttpOrigin::start())
    }

    pub fn tls_origin(&self) -> TlsOrigin {
        self.rt.block_on(TlsOrigin::start(self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub client: String,
    pub method: String,
    pub target: String,
    pub rule: String,
    pub request_id: String,
}

/// Splits curl `-i`/`-D -` output into (status, headers) of the last response.
pub fn status_and_headers(out: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(out);
    let head = text.split("\r\n\r\n").filter(|h| h.starts_with("HTTP/")).last().unwrap_or("").to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
    (status, headers)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A plain HTTP/1.1 origin (hyper) on 127.0.0.1 that counts its TCP connections.
///
/// Routes: `/conn` answers which connection served it; `/echo` answers with the
/// request's method, body length and framing; `/chunked` streams a chunked body;
/// `/big` is [`big_body`] with a Content-Length; anything else answers `hello from origin`.
pub struct HttpOrigin {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl HttpOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let svc = service_fn(move |req| route(req, n));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, connections }
    }

    /// `http://localhost:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn route(req: Request<Incoming>, conn: usize) -> Result<Response<BoxBody>, Infallible> {
    let full = |s: String| Full::new(Bytes::from(s)).boxed();
    let resp = match req.uri().path() {
        "/conn" => full(format!("conn={conn}")),
        "/echo" => {
            let method = req.method().to_string();
            let chunked = req.headers().get("transfer-encoding").is_some();
            let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
            full(format!("method={method} len={} sum={sum} chunked={chunked} host={host}", body.len()))
        }
        "/chunked" => Pieces(vec![Bytes::from_static(b"first-"), Bytes::from_static(b"second")]).boxed(),
        "/big" => Full::new(Bytes::from(big_body())).boxed(),
        _ => full("hello from origin".into()),
    };
    Ok(Response::new(resp))
}

/// What `/big` answers: 5 MiB in a pattern that does not repeat at any power-of-two
/// offset, so a lost, doubled or reordered piece shows.
pub fn big_body() -> Vec<u8> {
    (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
}

/// A body of several frames with no known length, so hyper sends it chunked.
struct Pieces(Vec<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready((!self.0.is_empty()).then(|| Ok(Frame::data(self.0.remove(0)))))
    }
}

/// A TLS origin (rustls, cert for `localhost` and `origin.test` from a test CA)
/// answering every request with `tls origin ok`.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the origin's certificate (for `curl --cacert`).
    pub ca_file: PathBuf,
}

impl TlsOrigin {
    async fn start(h: &Harness) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct subjects, or OpenSSL takes the leaf for a self-signed certificate.
        ca_params.distinguished_name.push(DnType::CommonName, "bottle test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_string(), "origin.test".to_string()]).unwrap();
        leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let ca_file = h.file("ca.pem", ca.pem().as_bytes());
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"tls origin ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        Self { addr, ca_file }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

/// Sends raw bytes to `addr` and returns everything read until the peer closes (bounded: 10 s).
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A value of the `name` header in a raw response.
pub fn raw_header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}
