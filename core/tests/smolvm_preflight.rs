//! The host-route preflight, against loopback only: a listening 127.0.0.1 port
//! (reachable) and a port that was just closed (unreachable).

use std::net::IpAddr;

use bottle_core::smolvm::BundleAddr;
use bottle_core::smolvm::preflight::{PREFLIGHT_CONNECT_TIMEOUT, check_bundle_reachable};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_listening_bundle_port_passes() {
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    check_bundle_reachable(BundleAddr { ip: LOOPBACK, proxy_port: port }, PREFLIGHT_CONNECT_TIMEOUT).await.unwrap();
    accept.await.unwrap().expect("the preflight really connected");
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
