//! Limits that keep one client from starving the others: the header deadline
//! against slow-loris clients and the connection cap.

#[path = "../support/proxy/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::Harness;

#[test]
fn slow_loris_clients_are_cut_while_others_are_served() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nheader_timeout_ms = 1000\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let stop = Arc::new(AtomicBool::new(false));
    let head = b"GET http://localhost:1/ HTTP/1.1\r\nX-Slow: ".to_vec();
    let dribblers: Vec<_> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(h.proxy).unwrap();
            let (stop, head) = (stop.clone(), head.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                // One byte every 100 ms: each read is quick, the head never completes.
                for b in head.iter().chain(std::iter::repeat(&b'a')).take(200) {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = [0u8; 64];
                let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
                (closed, started.elapsed())
            })
        })
        .collect();
    for _ in 0..3 {
        let out = h.curl(&[&o.url("/")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from origin",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for d in dribblers {
        let (closed, took) = d.join().unwrap();
        assert!(closed, "a slow-loris connection was left open");
        assert!(took < Duration::from_secs(15), "cut only after {took:?}");
    }
    stop.store(true, Ordering::Relaxed);
}

/// Connects to the proxy and opens a tunnel to `port`: a connection that has sent its request.
fn tunnel_held_open(proxy: std::net::SocketAddr, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.write_all(format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = [0; 64];
    let n = s.read(&mut reply).unwrap();
    assert!(reply[..n].starts_with(b"HTTP/1.1 200"), "tunnel refused: {:?}", String::from_utf8_lossy(&reply[..n]));
    s
}

fn wait_open_connections(h: &Harness, want: impl Fn(u64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !want(h.bundle.stats.open_connections.load(Ordering::Relaxed)) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn connections_over_the_cap_get_503_when_every_one_has_sent_a_request() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nmax_connections = 3\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let held: Vec<_> = (0..3).map(|_| tunnel_held_open(h.proxy, o.addr.port())).collect();
    wait_open_connections(&h, |n| n == 3, "held connections never counted");
    let out = h.curl(&["-s", "-i", &o.url("/")]);
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("Retry-After: 1"), "{reply}");
    drop(held);
    wait_open_connections(&h, |n| n == 0, "closed connections still counted");
    assert_eq!(String::from_utf8_lossy(&h.curl(&[&o.url("/")]).stdout), "hello from origin");
}

#[test]
fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nmax_connections = 3\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let mut idle = TcpStream::connect(h.proxy).unwrap();
    wait_open_connections(&h, |n| n == 1, "the idle connection never counted");
    let tunnels: Vec<_> = (0..2).map(|_| tunnel_held_open(h.proxy, o.addr.port())).collect();
    wait_open_connections(&h, |n| n == 3, "held connections never counted");
    assert_eq!(String::from_utf8_lossy(&h.curl(&[&o.url("/")]).stdout), "hello from origin");
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(idle.read(&mut [0; 16]).unwrap(), 0, "the connection without a request was closed to make room");
    for mut t in tunnels {
        t.set_nonblocking(true).unwrap();
        let still_open = matches!(t.read(&mut [0; 16]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(still_open, "a tunnel that had sent its request was shed");
    }
}
