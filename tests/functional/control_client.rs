//! The control-plane client against a tiny hyper server on 127.0.0.1 that speaks the protocol.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bottle_core::backend::ControlEndpoint;
use bottle_core::control_client::ControlClient;
use bottle_protocol::control::{self, AccessRequest, Approve, ErrorReply, Health, PolicyUpdate};
use bottle_protocol::{Event, EventKind};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TOKEN: &str = "s3cret-control-token";

/// A response body fed chunk by chunk from a channel, so the test decides when events arrive.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// What the fake bundle saw and what it streams.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    /// Receivers for streams the next `GET /v1/events` will serve.
    streams: Mutex<VecDeque<mpsc::UnboundedReceiver<Bytes>>>,
}

fn event(id: u64, kind: EventKind) -> Event {
    Event { id, time: "2026-11-28T12:00:00Z".into(), bottle: "demo".into(), kind }
}

fn line(ev: &Event) -> Bytes {
    Bytes::from(serde_json::to_string(ev).unwrap() + "\n")
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(body.into()).unwrap();
    Response::builder().status(status).body(ChannelBody(rx)).unwrap()
}

async fn handle(fake: Arc<Fake>, req: Request<Incoming>) -> Result<Response<ChannelBody>, Infallible> {
    let auth = req.headers().get(control::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    fake.calls.lock().unwrap().push(format!("{method} {uri} {}", String::from_utf8_lossy(&body)));
    if auth != format!("Bearer {TOKEN}") {
        let err = serde_json::to_vec(&ErrorReply { error: "bad token".into() }).unwrap();
        return Ok(reply(StatusCode::UNAUTHORIZED, err));
    }
    let path = uri.path();
    Ok(match (method, path) {
        (Method::GET, control::HEALTH) => {
            let h = Health {
                bottle: "demo".into(),
                ok: true,
                kill_switch: false,
                open_connections: 2,
                blocked_total: 5,
                allow: vec!["allowed.test".into()],
                deny: vec![],
            };
            reply(StatusCode::OK, serde_json::to_vec(&h).unwrap())
        }
        (Method::GET, control::ACCESS) => {
            let r = vec![AccessRequest {
                id: "q1".into(),
                host: "pypi.org".into(),
                port: Some(443),
                reason: "pip".into(),
                requested_at: "t".into(),
            }];
            reply(StatusCode::OK, serde_json::to_vec(&r).unwrap())
        }
        (Method::GET, control::EVENTS) => {
            let rx = fake.streams.lock().unwrap().pop_front().expect("test queued a stream");
            Response::new(ChannelBody(rx))
        }
        (Method::POST, p) if p == control::approve_path("q1") || p == control::deny_path("q1") => {
            reply(StatusCode::NO_CONTENT, Bytes::new())
        }
        (Method::POST | Method::DELETE, control::KILL) | (Method::PUT, control::POLICY) => reply(StatusCode::OK, "{}"),
        _ => reply(StatusCode::NOT_FOUND, serde_json::to_vec(&ErrorReply { error: "no such request".into() }).unwrap()),
    })
}

async fn serve(fake: Arc<Fake>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let fake = fake.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(fake.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    format!("http://{addr}")
}

fn client(url: &str, token: &str) -> ControlClient {
    ControlClient::new(&ControlEndpoint { url: url.into(), token: token.into() }).unwrap()
}

#[tokio::test]
async fn health_pending_approve_deny_kill_policy_speak_the_protocol() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let c = client(&url, TOKEN);
    let h = c.health().await.unwrap();
    assert_eq!((h.bottle.as_str(), h.open_connections, h.blocked_total), ("demo", 2, 5));
    let p = c.pending().await.unwrap();
    assert_eq!(p[0].id, "q1");
    c.approve("q1", Some(60)).await.unwrap();
    c.deny("q1").await.unwrap();
    c.kill(true).await.unwrap();
    c.kill(false).await.unwrap();
    let update = PolicyUpdate { allow: vec!["allowed.test".into()], deny: vec![] };
    c.replace_policy(&update).await.unwrap();
    let calls = fake.calls.lock().unwrap().clone();
    let approve_body = serde_json::to_string(&Approve { ttl_secs: Some(60) }).unwrap();
    assert_eq!(
        calls,
        [
            "GET /v1/health ".to_string(),
            "GET /v1/access ".to_string(),
            format!("POST /v1/access/q1/approve {approve_body}"),
            "POST /v1/access/q1/deny ".to_string(),
            "POST /v1/kill ".to_string(),
            "DELETE /v1/kill ".to_string(),
            format!("PUT /v1/policy {}", serde_json::to_string(&update).unwrap()),
        ]
    );
}

#[tokio::test]
async fn errors_quote_the_bundle_but_never_the_token() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let e = client(&url, "wrong-token-value").health().await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("401 Unauthorized") && msg.contains("bad token"), "{msg}");
    assert!(!msg.contains("wrong-token-value") && !msg.contains(TOKEN), "{msg}");
    let e = client(&url, TOKEN).approve("q2", None).await.unwrap_err();
    assert!(format!("{e:#}").contains("404 Not Found: no such request"), "{e:#}");
    let e = client(&url, TOKEN).approve("../kill", None).await.unwrap_err();
    assert!(e.to_string().contains("request id"), "{e}");
    assert_eq!(fake.calls.lock().unwrap().len(), 2, "a bad id is refused before any request");
}

#[tokio::test]
async fn event_stream_reassembles_lines_skips_unknown_kinds_and_follows() {
    let fake = Arc::new(Fake::default());
    let (tx, rx) = mpsc::unbounded_channel();
    fake.streams.lock().unwrap().push_back(rx);
    let url = serve(fake.clone()).await;
    let mut stream = client(&url, TOKEN).events(Some(3), true).await.unwrap();

    let first = event(4, EventKind::KillSwitch { engaged: true });
    let bytes = line(&first);
    // One event split across two chunks, then an unknown kind, then a blank line.
    tx.send(bytes.slice(..10)).unwrap();
    tx.send(bytes.slice(10..)).unwrap();
    tx.send(Bytes::from_static(b"{\"id\":5,\"time\":\"t\",\"bottle\":\"demo\",\"kind\":\"from_the_future\"}\n\n"))
        .unwrap();
    assert_eq!(stream.next().await.unwrap(), Some(first));

    // Following: the next event arrives only after the stream was already open.
    let second = event(6, EventKind::PolicyReloaded { allow: 2, deny: 0 });
    tx.send(line(&second)).unwrap();
    assert_eq!(stream.next().await.unwrap(), Some(second));
    drop(tx);
    assert_eq!(stream.next().await.unwrap(), None);
    assert_eq!(fake.calls.lock().unwrap()[0], "GET /v1/events?since=3&follow=1 ");
}

#[tokio::test]
async fn a_garbage_line_is_an_error() {
    let fake = Arc::new(Fake::default());
    let (tx, rx) = mpsc::unbounded_channel();
    fake.streams.lock().unwrap().push_back(rx);
    let url = serve(fake.clone()).await;
    let mut stream = client(&url, TOKEN).events(None, false).await.unwrap();
    tx.send(Bytes::from_static(b"not json\n")).unwrap();
    drop(tx);
    assert!(stream.next().await.is_err());
    assert_eq!(fake.calls.lock().unwrap()[0], "GET /v1/events ");
}

#[test]
fn endpoint_must_be_plain_http_host_port() {
    for bad in ["https://127.0.0.1:1", "127.0.0.1:1", "http://", "http://u:p@127.0.0.1:1", "http://h:1/x"] {
        assert!(ControlClient::new(&ControlEndpoint { url: bad.into(), token: TOKEN.into() }).is_err(), "{bad}");
    }
}
