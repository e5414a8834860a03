//! CONNECT tunnels: a real TLS origin through curl, the SNI check (python's
//! ssl as an independent client), non-TLS tunnels (a raw-socket attacker
//! against a plaintext canary origin), the web-ports rule for bare names, and
//! the kill switch cutting a tunnel that is already open, and the in-process
//! dial (egress's dialer without its loopback hop) against a canary DNS.

#[path = "../support/egress/mod.rs"]
mod egress_support;
#[path = "../support/proxy/mod.rs"]
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
    h.allow_port(o.addr.port());
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

/// Runs a python TLS client through the proxy: CONNECT `target`, then a
/// handshake sending `sni` (none when empty).
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
    t = ctx.wrap_socket(s, server_hostname=sni or None)
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
    h.allow_port(o.addr.port());
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
fn a_name_target_without_sni_is_cut() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.tls_origin();
    h.allow_port(o.addr.port());
    let target = format!("localhost:{}", o.addr.port());
    let out = python_tls(&h, &target, "");
    assert!(out.contains("200 Connection established") && out.contains("handshake-failed"), "{out}");
    let b = h.wait_block("sni-missing");
    assert_eq!((b.method.as_str(), b.target.as_str()), ("CONNECT", target.as_str()));
}

#[test]
fn a_bare_name_allows_only_the_web_ports() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.tls_origin();
    let ca = o.ca_file.display().to_string();
    let out = h.curl(&["-i", "--cacert", &ca, &o.url("/")]);
    let (status, headers) = status_and_headers(&out.stdout);
    assert_eq!((status, header(&headers, "x-bottle-block")), (403, Some("not-allowed")), "port {}", o.addr.port());
    h.allow_port(o.addr.port());
    let out = h.curl(&["--cacert", &ca, &o.url("/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tls origin ok", "{}", String::from_utf8_lossy(&out.stderr));
}

/// A plaintext origin that logs every byte it gets and answers the first read
/// the way an HTTP server answers a ClientHello: with a 400.
struct PlainCanary {
    port: u16,
    log: std::thread::JoinHandle<Vec<u8>>,
}

impl PlainCanary {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (mut got, mut buf, mut answered) = (Vec::new(), [0u8; 4096], false);
            while let Ok(n @ 1..) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                if !answered {
                    answered = true;
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                }
            }
            got
        });
        Self { port, log }
    }

    /// Everything the canary received, once the proxy has hung up.
    fn received(self) -> Vec<u8> {
        self.log.join().unwrap()
    }
}

/// A ClientHello in one record, as a hand-rolled attacker writes it.
fn client_hello(sni: Option<&str>, extra: Option<(u16, &[u8])>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let n = u16::try_from(name.len()).unwrap();
        exts.extend([0, 0]);
        exts.extend((n + 5).to_be_bytes());
        exts.extend((n + 3).to_be_bytes());
        exts.push(0);
        exts.extend(n.to_be_bytes());
        exts.extend(name.as_bytes());
    }
    if let Some((kind, data)) = extra {
        exts.extend(kind.to_be_bytes());
        exts.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
        exts.extend(data);
    }
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1, 0];
    hs.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    hs.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(u16::try_from(hs.len()).unwrap().to_be_bytes());
    record.extend(hs);
    record
}

const LEAK: &str = "GET /?leak=plaintext-marker-7f3a HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The bypass from issue 11: `CONNECT allowed:port`, a ClientHello with no
/// server name, then plaintext. Nothing, not even the hello, reaches the origin.
#[test]
fn a_hello_without_sni_then_plaintext_never_reaches_the_origin() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let canary = PlainCanary::start();
    h.allow_port(canary.port);
    let mut attack = format!("CONNECT localhost:{} HTTP/1.1\r\nHost: x\r\n\r\n", canary.port).into_bytes();
    attack.extend(client_hello(None, None));
    attack.extend(LEAK.as_bytes());
    assert_eq!(raw_exchange(h.proxy, &attack), "HTTP/1.1 200 Connection established\r\n\r\n");
    h.wait_block("sni-missing");
    assert!(canary.received().is_empty(), "the origin got bytes of a refused tunnel");
}

/// With the right SNI the hello goes out, but the plaintext behind it waits for
/// a TLS answer, which a plaintext service never gives: it is never sent.
#[test]
fn plaintext_behind_a_matching_hello_waits_for_a_tls_origin_and_is_never_sent() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let canary = PlainCanary::start();
    h.allow_port(canary.port);
    let hello = client_hello(Some("localhost"), None);
    let mut attack = format!("CONNECT localhost:{} HTTP/1.1\r\nHost: x\r\n\r\n", canary.port).into_bytes();
    attack.extend(&hello);
    attack.extend(LEAK.as_bytes());
    let reply = raw_exchange(h.proxy, &attack);
    assert_eq!(reply, "HTTP/1.1 200 Connection established\r\n\r\n", "the origin's answer came back");
    let b = h.wait_block("tunnel-origin-not-tls");
    assert_eq!(b.target, format!("localhost:{}", canary.port));
    assert_eq!(canary.received(), hello, "the origin got more than the ClientHello");
}

/// The hello's fields are the agent's to fill, so DLP reads it before it leaves.
#[test]
fn a_credential_inside_the_client_hello_is_cut() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let canary = PlainCanary::start();
    h.allow_port(canary.port);
    let key = format!("AKIA{}", "QWERTYUIOPASDFGH");
    let mut attack = format!("CONNECT localhost:{} HTTP/1.1\r\nHost: x\r\n\r\n", canary.port).into_bytes();
    attack.extend(client_hello(Some("localhost"), Some((0xfafa, key.as_bytes()))));
    assert_eq!(raw_exchange(h.proxy, &attack), "HTTP/1.1 200 Connection established\r\n\r\n");
    h.wait_block("dlp:aws-access-key");
    assert!(canary.received().is_empty());
}

#[test]
fn plaintext_tunnels_are_cut() {
    let h = Harness::start(ALLOW_LOCALHOST);
    let o = h.http_origin();
    h.allow_port(o.addr.port());
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
    h.allow_port(o.addr.port());
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
    h.allow_port(o.addr.port());
    let ca_pem = std::fs::read(&o.ca_file).unwrap();
    h.rt.block_on(async {
        let mut tls = open_tunnel(h.proxy, o.addr.port(), &ca_pem).await;
        assert!(ends_within(&mut tls, Duration::from_secs(5)).await, "idle tunnel left open");
    });
}

/// Sends `CONNECT target` to the proxy and reads the reply head.
async fn connect_through(proxy: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        match tokio::time::timeout(egress_support::WAIT, s.read(&mut b)).await.expect("no reply head") {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// The proxy dials with egress's dialer in its own process; the floor still
/// holds. A name on the allowlist that the test's canary DNS resolves inside
/// is refused with the dialer's rule before any 200, and nothing is dialled.
#[tokio::test]
async fn in_process_dials_refuse_allowed_names_that_resolve_inside() {
    let echo = egress_support::Echo::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = echo.addr.port();
    let canary = egress_support::Canary::start(&[
        ("meta.test", &[&["169.254.169.254"]]),
        ("mixed.test", &[&["127.0.0.1", "10.0.0.1"]]),
        ("six.test", &[&["127.0.0.1", "fd00:ec2::254"]]),
    ])
    .await;
    let policy = format!("[policy]\nallow = [\"meta.test:{port}\", \"mixed.test:{port}\", \"six.test:{port}\"]\n");
    let b =
        egress_support::start(&format!("{}\n{policy}", canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]"))).await;
    for (name, rule) in
        [("meta.test", "egress:metadata"), ("mixed.test", "egress:private"), ("six.test", "egress:metadata")]
    {
        let (_, head) = connect_through(b.proxy, &format!("{name}:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403 "), "{name}: {head}");
        assert_eq!(support::raw_header(&head, "x-bottle-block"), Some(rule), "{name}: {head}");
        assert!(canary.asked(name, egress_support::A) >= 1, "{name} was not resolved by the test's DNS");
    }
    assert_eq!(echo.accepted(), 0, "an address that was refused got dialled");
}

/// One pump, agent ↔ origin: several MiB each way at once, byte for byte, and
/// a half-close from the agent reaches the origin while the origin is still
/// sending. egress's loopback listener is pointed at a closed port, so
/// this can only pass on the in-process path.
#[tokio::test]
async fn in_process_tunnels_relay_exact_bytes_both_ways_through_a_half_close() {
    const SERVER_HELLO: &[u8] = &[0x16, 3, 3, 0, 4, 2, 0, 0, 0];
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = origin.local_addr().unwrap().port();
    let canary = egress_support::Canary::start(&[("relay.test", &[&["127.0.0.1"]])]).await;
    let policy = format!("[policy]\nallow = [\"relay.test:{port}\"]\n");
    let b =
        egress_support::start(&format!("{}\n{policy}", canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]"))).await;
    b.bundle.set_egress_addr(SocketAddr::from(([127, 0, 0, 1], 1)));

    let hello = client_hello(Some("relay.test"), None);
    let upload: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8 ^ (i >> 12) as u8).collect();
    let download: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 241) as u8 ^ (i >> 14) as u8).collect();
    let (hello_len, sent_down) = (hello.len(), download.clone());
    let origin = tokio::spawn(async move {
        let (mut s, _) = origin.accept().await.unwrap();
        let mut got_hello = vec![0u8; hello_len];
        s.read_exact(&mut got_hello).await.unwrap();
        s.write_all(SERVER_HELLO).await.unwrap();
        let (mut r, mut w) = s.split();
        // Send while the agent is still uploading; read until its half-close arrives.
        let send = async {
            w.write_all(&sent_down[..1 << 20]).await.unwrap();
            (w, &sent_down[1 << 20..])
        };
        let mut got = Vec::new();
        let ((mut w, rest), read) = tokio::join!(send, r.read_to_end(&mut got));
        read.unwrap();
        // The agent has stopped sending; this direction must still carry everything.
        w.write_all(rest).await.unwrap();
        w.shutdown().await.unwrap();
        (got_hello, got)
    });

    let (s, head) = connect_through(b.proxy, &format!("relay.test:{port}")).await;
    assert_eq!(head, "HTTP/1.1 200 Connection established\r\n\r\n");
    let (mut r, mut w) = s.into_split();
    w.write_all(&hello).await.unwrap();
    let mut first = vec![0u8; SERVER_HELLO.len()];
    r.read_exact(&mut first).await.unwrap();
    assert_eq!(first, SERVER_HELLO);
    let upload_then_close = async {
        w.write_all(&upload).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let all = async { tokio::join!(upload_then_close, r.read_to_end(&mut back)) };
    let ((), read) = tokio::time::timeout(Duration::from_secs(30), all).await.expect("tunnel stalled");
    read.unwrap();
    let (got_hello, got_up) = tokio::time::timeout(Duration::from_secs(5), origin).await.unwrap().unwrap();
    assert_eq!(got_hello, hello, "the origin got another ClientHello");
    assert!(got_up == upload, "agent → origin differs ({} of {} bytes)", got_up.len(), upload.len());
    assert!(back == download, "origin → agent differs ({} of {} bytes)", back.len(), download.len());
}
