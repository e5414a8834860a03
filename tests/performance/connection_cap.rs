//! A hyper service of a real `bottle-bundle` process at its connection cap
//! (the control plane, capped at two): a connection that has not sent a
//! request makes room for a newcomer, and when every connection is mid-request
//! the newcomer is told 503 at once instead of waiting in a queue.

#[path = "../support/process/mod.rs"]
mod process_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use process_support::{BundleProcess, TOKEN};

const CAP: &str = "[limits]\nmax_control_connections = 2\n";

fn get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// The whole answer to a request (the connection is closed after it).
fn answer(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// An event follower: a request whose response stays open.
fn follower(addr: SocketAddr) -> TcpStream {
    let mut s = get(addr, "/v1/events?follow=1");
    let mut head = [0; 64];
    let n = s.read(&mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "follow: {:?}", String::from_utf8_lossy(&head[..n]));
    s
}

#[test]
fn every_connection_mid_request_means_503_for_the_next() {
    let b = BundleProcess::start(CAP);
    let followers = [follower(b.control), follower(b.control)];
    let refused = answer(get(b.control, "/v1/health"));
    assert!(refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{refused:?}");
    assert!(refused.contains("Retry-After: 1\r\n"), "{refused:?}");
    let [first, _second] = followers;
    drop(first);
    // The slot frees once the bundle sees the follower gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = answer(get(b.control, "/v1/health"));
        if health.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot was never given back: {health:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_connection_without_a_request_makes_room_for_the_next() {
    let b = BundleProcess::start(CAP);
    let mut idle = TcpStream::connect(b.control).unwrap();
    // Accepted in order, so the idle one is the oldest.
    std::thread::sleep(Duration::from_millis(100));
    let _follower = follower(b.control);
    let health = answer(get(b.control, "/v1/health"));
    assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(idle.read(&mut [0; 16]).unwrap(), 0, "the connection without a request was closed to make room");
}
