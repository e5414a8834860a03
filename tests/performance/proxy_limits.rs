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

#[test]
fn connections_over_the_cap_get_503() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nmax_connections = 3\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let held: Vec<_> = (0..3).map(|_| TcpStream::connect(h.proxy).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.bundle.stats.open_connections.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "held connections never counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = h.curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &o.url("/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.bundle.stats.open_connections.load(Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "closed connections still counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(String::from_utf8_lossy(&h.curl(&[&o.url("/")]).stdout), "hello from origin");
}
