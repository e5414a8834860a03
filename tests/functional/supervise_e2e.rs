//! End to end: a `curl` through the proxy is blocked, the agent asks through
//! supervise, the host approves on the real control plane, the same `curl`
//! succeeds, and after the grant's ttl it is blocked again.

#[path = "../support/supervise/mod.rs"]
mod supervise_support;

use bottle_bundle::Services;
use bottle_bundle::supervise::api::{REQUESTS, request_path};
use bottle_protocol::EventKind;
use bottle_protocol::control::approve_path;
use serde_json::json;
use supervise_support::{TOKEN, bundle, curl, wait_event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback origin that answers every request with `hello`.
async fn origin() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await;
            });
        }
    });
    port
}

#[tokio::test]
async fn approval_opens_the_proxy_until_the_grant_expires() {
    let port = origin().await;
    let dir = tempfile::tempdir().unwrap();
    // The origin's name resolves only through the override; the nameserver is a dead loopback port.
    let bundle = bundle(
        dir.path(),
        "[egress]\nnameservers = [\"127.0.0.1:9\"]\nallow_cidrs = [\"127.0.0.1/32\"]\n\
         [egress.hosts]\n\"origin.test\" = [\"127.0.0.1\"]\n",
    );
    let services = Services::bind(&bundle).await.unwrap();
    let proxy = format!("http://{}", services.proxy.local_addr());
    let control = format!("http://{}", services.control.local_addr());
    let supervise = format!("http://{}", services.supervise.as_ref().unwrap().local_addr());
    tokio::spawn(services.run(bundle.clone()));
    let (_, mut rx) = bundle.events.subscribe_since(0);
    let target = format!("http://origin.test:{port}/");
    let through_proxy = ["-x", proxy.as_str(), target.as_str()];

    let (code, _) = curl(&through_proxy).await;
    assert_eq!(code, 403, "not on the allowlist yet");

    let ask = json!({ "host": "origin.test", "port": port, "reason": "fetch the fixture" }).to_string();
    let (code, text) = curl(&["-X", "POST", "--data-binary", &ask, &format!("{supervise}{REQUESTS}")]).await;
    assert_eq!(code, 202, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"].as_str().unwrap().to_string();

    let auth = format!("authorization: Bearer {TOKEN}");
    let approve = format!("{control}{}", approve_path(&id));
    let (code, text) = curl(&["-X", "POST", "-H", &auth, "--data-binary", r#"{"ttl_secs":2}"#, &approve]).await;
    assert_eq!(code, 200, "{text}");
    let (code, text) = curl(&[&format!("{supervise}{}?wait=10", request_path(&id))]).await;
    assert_eq!(code, 200);
    assert!(text.contains("\"approved\""), "{text}");

    let (code, body) = curl(&through_proxy).await;
    assert_eq!((code, body.as_str()), (200, "hello"), "the grant is live without a restart");

    wait_event(&mut rx, |k| matches!(k, EventKind::AccessExpired { .. })).await;
    let (code, _) = curl(&through_proxy).await;
    assert_eq!(code, 403, "blocked again after the grant expired");
}
