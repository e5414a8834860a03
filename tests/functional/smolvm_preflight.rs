//! The host-route preflight, against loopback only: a server answering as the
//! bottle's proxy does (reachable), one answering otherwise (a wrong route),
//! and a port that was just closed (unreachable).

use std::net::IpAddr;

use bottle_core::smolvm::BundleAddr;
use bottle_core::smolvm::preflight::{PREFLIGHT_CONNECT_TIMEOUT, check_bundle_reachable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A one-shot loopback server that answers the first request with `answer`.
async fn answering(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    (port, served)
}

#[tokio::test]
async fn the_bottle_proxy_refusing_the_probe_passes() {
    let (port, served) =
        answering("HTTP/1.1 403 Forbidden\r\nX-Bottle-Block: policy:not-allowed\r\ncontent-length: 0\r\n\r\n").await;
    check_bundle_reachable(BundleAddr { ip: LOOPBACK, proxy_port: port }, PREFLIGHT_CONNECT_TIMEOUT).await.unwrap();
    let request = served.await.unwrap();
    assert!(request.starts_with("GET http://bottle-preflight.invalid/ HTTP/1.1\r\n"), "{request}");
}

#[tokio::test]
async fn something_else_answering_is_not_the_bundle() {
    // What a transparent proxy on the default route does for an address the host has no route to.
    let (port, _served) = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
    let err = check_bundle_reachable(BundleAddr { ip: LOOPBACK, proxy_port: port }, PREFLIGHT_CONNECT_TIMEOUT)
        .await
        .unwrap_err();
    assert!(err.contains("something answered, but not the bottle's proxy"), "{err}");
    assert!(err.contains("OrbStack"), "{err}");
}

#[tokio::test]
async fn a_closed_port_fails_and_names_the_fixes() {
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = check_bundle_reachable(BundleAddr { ip: LOOPBACK, proxy_port: port }, PREFLIGHT_CONNECT_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        err.starts_with(&format!("preflight: the host cannot reach the bundle's proxy at 127.0.0.1:{port}")),
        "{err}"
    );
    for fix in ["OrbStack", "colima", "Docker Engine", "Docker Desktop does not"] {
        assert!(err.contains(fix), "missing {fix:?}: {err}");
    }
}
