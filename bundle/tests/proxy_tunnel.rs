//! CONNECT tunnels: a real TLS origin through curl, the SNI check (python's
//! ssl as an independent client), non-TLS tunnels, and the kill switch
//! cutting a tunnel that is already open.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use support::{Harness, header, raw_exchange, status_and_headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const ALLOW_LOCALHOST: &str = "[policy]\nallow = [\"localhost\"]\n";

#[test]
fn connect_to_tls_origin_with_curl() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.tls_origin();
    let ca = o.ca_file.display().to_string();
    let out = h.curl(&["--cacert", &ca, &o.url("/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tls origin ok");
    assert!(h.blocks().is_empty(), "{:?}", h.blocks());
}

#[test]
fn blocked_connect_gets_403() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let out = h.curl(&["-i", "https://blocked.test/"]);
    assert!(!out.status.success());
    let (status, headers) = status_and_headers(&out.stdout);
    assert_eq!((status, header(&headers, "x-bottle-block")), (403, Some("not-allowed")));
    let b = h.wait_block("not-allowed");
    assert_eq!((b.method.as_str(), b.target.as_str()), ("CONNECT", "blocked.test:443"));
}

/// Runs a python TLS client through the proxy: CONNECT `target`, then a handshake sending `sni`.
fn python_tls(h: &Harness, target: &str, sni: &str) -> String {
    let script = r#"
import socket, ssl, sys
proxy_port, target, sni = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head and len(head) < 4096:
    b = s.recv(1)
    if not b: break
    head += b
print(head.split(b"\r\n")[0].decode())
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    t = ctx.wrap_socket(s, server_hostname=sni)
    t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print("handshake-ok", t.recv(4096).split(b"\r\n\r\n")[-1].decode())
except (ssl.SSLError, OSError) as e:
    print("handshake-failed", type(e).__name__)
"#;
    let out = Command::new("python3").args(["-c", script, &h.proxy.port().to_string(), target, sni]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sni_must_name_the_connect_target() {
    let h = Harness::start("[policy]\nallow = [\"localhost\", \"other.test\"]\n");
    let o = h.tls_origin();
    let target = format!("localhost:{}", o.addr.port());
    let good = python_tls(&h, &target, "localhost");
    assert_eq!(good.trim(), "HTTP/1.1 200 Connection established\nhandshake-ok tls origin ok");
    // other.test is allowed too: the cut is about the mismatch, not the policy.
    let bad = python_tls(&h, &target, "other.test");
    assert!(bad.contains("200 Connection established") && bad.contains("handshake-failed"), "{bad}");
    let b = h.wait_block("sni-mismatch");
    assert_eq!((b.method.as_str(), b.target.as_str()), ("CONNECT", target.as_str()));
}

#[test]
fn plaintext_tunnels_are_cut() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.http_origin();
    let port = o.addr.port();
    let req = format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let reply = raw_exchange(h.proxy, req.as_bytes());
    assert_eq!(reply, "HTTP/1.1 200 Connection established\r\n\r\n", "no origin bytes may come back");
    h.wait_block("tunnel-not-tls");
}

/// Opens a TLS tunnel to the origin through the proxy and completes one request in it.
async fn open_tunnel(proxy: SocketAddr, port: u16, ca_pem: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = [0u8; 39];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("tls origin ok"));
    tls
}

/// Whether the tunnel ends (EOF or error) within `limit`.
async fn ends_within(tls: &mut TlsStream<TcpStream>, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(limit, tls.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[test]
fn kill_switch_cuts_an_open_tunnel_and_refuses_new_requests() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.tls_origin();
    let ca_pem = std::fs::read(&o.ca_file).unwrap();
    let bundle = h.bundle.clone();
    h.rt.block_on(async {
        let mut tls = open_tunnel(h.proxy, o.addr.port(), &ca_pem).await;
        assert!(!ends_within(&mut tls, Duration::from_millis(300)).await, "tunnel closed before the kill switch");
        assert!(bundle.kill.set(true));
        assert!(ends_within(&mut tls, Duration::from_secs(5)).await, "tunnel survived the kill switch");
    });
    let out = h.curl(&["-i", "http://localhost:1/"]);
    let (status, headers) = status_and_headers(&out.stdout);
    assert_eq!((status, header(&headers, "x-bottle-block")), (403, Some("kill-switch")));
}

#[test]
fn idle_tunnels_are_closed() {
    let h = Harness::start(&format!("{ALLOW_LOCALHOST}[limits]\nidle_timeout_ms = 500\n"));
    let o = h.tls_origin();
    let ca_pem = std::fs::read(&o.ca_file).unwrap();
    h.rt.block_on(async {
        let mut tls = open_tunnel(h.proxy, o.addr.port(), &ca_pem).await;
        assert!(ends_within(&mut tls, Duration::from_secs(5)).await, "idle tunnel left open");
    });
}
