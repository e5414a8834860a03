//! egress over real loopback sockets: tunnels, refusals by destination class,
//! DNS rebinding through a scripted canary nameserver, static overrides, the
//! kill switch and the connect timeout. Only 127.0.0.0/8 and ::1 are ever dialled;
//! decisions about public and other non-loopback addresses are unit-tested in
//! `egress::dialer` without a packet.

#[path = "../support/egress/mod.rs"]
mod egress_support;
#[path = "../support/skip.rs"]
mod skip;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bottle_bundle::egress::{self, EgressError};
use egress_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn refused_rule(r: Result<TcpStream, EgressError>) -> String {
    match r {
        Err(EgressError::Refused { rule }) => rule,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a tunnel"),
    }
}

async fn echo_on_loopback() -> Echo {
    Echo::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn tunnel_to_an_allowed_loopback_listener_splices_both_ways() {
    let canary = Canary::start(&[]).await;
    let echo = echo_on_loopback().await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let mut t = egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"hello through egress").await;
    let big = vec![0xa5u8; 1 << 20];
    assert_echoes(&mut t, &big).await;
    assert_eq!(b.bundle.stats.egress_tunnels.load(Ordering::Relaxed), 1);
    drop(t);
    // The count drops once egress sees the close; bounded wait.
    for _ in 0..100 {
        if b.bundle.stats.egress_tunnels.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b.bundle.stats.egress_tunnels.load(Ordering::Relaxed), 0);
    assert_eq!(echo.accepted(), 1);
}

#[tokio::test]
async fn bytes_sent_behind_the_request_head_reach_the_destination() {
    let canary = Canary::start(&[]).await;
    let echo = echo_on_loopback().await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let mut s = TcpStream::connect(b.egress).await.unwrap();
    let req = format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\nearly bytes", echo.addr.port());
    s.write_all(req.as_bytes()).await.unwrap();
    let want = b"HTTP/1.1 200 Connection Established\r\n\r\nearly bytes";
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, want);
}

#[tokio::test]
async fn loopback_literals_are_refused_unless_allow_cidrs_has_them() {
    let canary = Canary::start(&[]).await;
    let echo = echo_on_loopback().await;
    let port = echo.addr.port();
    let b = start(&canary.egress_toml("")).await;
    for (host, rule) in [
        ("127.0.0.1", "egress:loopback"),
        ("127.0.0.2", "egress:loopback"),
        ("::1", "egress:loopback"),
        ("::ffff:127.0.0.1", "egress:loopback"),
        ("::ffff:7f00:1", "egress:loopback"),
        ("0.0.0.0", "egress:unspecified"),
        ("::", "egress:unspecified"),
    ] {
        assert_eq!(refused_rule(egress::connect(b.egress, host, port).await), rule, "{host}");
    }
    assert_eq!(echo.accepted(), 0, "a refused destination was dialled");

    // The same literal passes once allow_cidrs names it, IPv4-mapped form included.
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let mut t = egress::connect(b.egress, "::ffff:127.0.0.1", port).await.unwrap();
    assert_echoes(&mut t, b"mapped").await;
    assert_eq!(refused_rule(egress::connect(b.egress, "127.0.0.2", port).await), "egress:loopback");
}

#[tokio::test]
async fn a_rebinding_name_is_checked_on_the_address_actually_dialled() {
    // First lookup: the allowed 127.0.0.1. Every later one: 127.0.0.2, where a trap listens
    // on the same port. A check-then-resolve-again dialer would reach the trap.
    let echo = echo_on_loopback().await;
    let port = echo.addr.port();
    let Ok(trap) = Echo::start(SocketAddr::from(([127, 0, 0, 2], port))).await else {
        panic!("cannot bind the trap on 127.0.0.2:{port}");
    };
    let canary = Canary::start(&[("rebind.test", &[&["127.0.0.1"], &["127.0.0.2"]])]).await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;

    let mut t = egress::connect(b.egress, "rebind.test", port).await.unwrap();
    assert_echoes(&mut t, b"first answer").await;
    assert_eq!((echo.accepted(), trap.accepted()), (1, 0));
    assert_eq!(canary.asked("rebind.test", A), 1, "one lookup per dial");

    let rule = refused_rule(egress::connect(b.egress, "rebind.test", port).await);
    assert_eq!(rule, "egress:loopback");
    assert_eq!(canary.asked("rebind.test", A), 2, "the second dial resolved again (no stale cache)");
    assert_eq!((echo.accepted(), trap.accepted()), (1, 0), "the rebound address was never dialled");
}

#[tokio::test]
async fn a_name_with_any_refused_answer_is_refused_whole() {
    let echo = echo_on_loopback().await;
    let canary =
        Canary::start(&[("mixed.test", &[&["127.0.0.1", "10.0.0.1"]]), ("six.test", &[&["127.0.0.1", "fd00::1"]])])
            .await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    assert_eq!(refused_rule(egress::connect(b.egress, "mixed.test", echo.addr.port()).await), "egress:private");
    assert_eq!(refused_rule(egress::connect(b.egress, "six.test", echo.addr.port()).await), "egress:private");
    assert_eq!(canary.asked("six.test", AAAA), 1, "AAAA answers are classified too");
    assert_eq!(echo.accepted(), 0);
}

#[tokio::test]
async fn static_hosts_override_dns_and_are_checked_like_dns_answers() {
    let echo = echo_on_loopback().await;
    let canary = Canary::start(&[("pinned.test", &[&["10.9.9.9"]])]).await;
    let hosts = "allow_cidrs = [\"127.0.0.1/32\"]\n[egress.hosts]\n\"pinned.test\" = [\"127.0.0.1\"]\n\"inside.test\" = [\"127.0.0.5\"]\n";
    let b = start(&canary.egress_toml(hosts)).await;
    let mut t = egress::connect(b.egress, "Pinned.Test", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"pinned").await;
    assert_eq!(refused_rule(egress::connect(b.egress, "inside.test", echo.addr.port()).await), "egress:loopback");
    assert_eq!(canary.asked("pinned.test", A) + canary.asked("inside.test", A), 0, "overrides never reach DNS");
}

#[tokio::test]
async fn unknown_names_are_refused_as_unresolvable() {
    let canary = Canary::start(&[("empty.test", &[&[]])]).await;
    let b = start(&canary.egress_toml("")).await;
    assert_eq!(refused_rule(egress::connect(b.egress, "nx.test", 80).await), "egress:unresolvable");
    assert_eq!(refused_rule(egress::connect(b.egress, "empty.test", 80).await), "egress:unresolvable");
    assert!(canary.asked("nx.test", A) >= 1, "the canary was asked");
}

#[tokio::test]
async fn the_kill_switch_cuts_open_tunnels_and_refuses_new_ones() {
    let canary = Canary::start(&[]).await;
    let echo = echo_on_loopback().await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let mut t = egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"before").await;
    assert!(b.bundle.kill.set(true));
    assert_closed(&mut t).await;
    assert_eq!(refused_rule(egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await), "kill-switch");
    assert!(b.bundle.kill.set(false));
    let mut t = egress::connect(b.egress, "127.0.0.1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"after release").await;
}

#[tokio::test]
async fn a_destination_that_never_answers_gets_504_after_the_connect_timeout() {
    let (listener, _held) = full_backlog().await;
    let port = listener.local_addr().unwrap().port();
    let canary = Canary::start(&[]).await;
    let b = start(&format!(
        "{}\n[limits]\nconnect_timeout_ms = 300\n",
        canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")
    ))
    .await;
    let started = std::time::Instant::now();
    match egress::connect(b.egress, "127.0.0.1", port).await {
        Err(EgressError::Unreachable(m)) => assert!(m.contains("504"), "{m}"),
        other => panic!("expected 504, got {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn a_closed_port_is_502() {
    let canary = Canary::start(&[]).await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"127.0.0.1/32\"]")).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    match egress::connect(b.egress, "127.0.0.1", closed).await {
        Err(EgressError::Unreachable(m)) => assert!(m.contains("502"), "{m}"),
        other => panic!("expected 502, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn only_connect_is_spoken_and_only_on_loopback() {
    let canary = Canary::start(&[]).await;
    let b = start(&canary.egress_toml("")).await;
    for (req, status) in
        [("GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", "405"), ("CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", "400")]
    {
        let mut s = TcpStream::connect(b.egress).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut reply)).await.unwrap().unwrap();
        assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{req:?} -> {reply:?}");
    }
    let e = egress::Server::bind("0.0.0.0:0".parse().unwrap()).await.err().unwrap();
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[tokio::test]
async fn ipv6_literals_and_aaaa_answers_tunnel_when_allowed() {
    let Ok(echo) = Echo::start("[::1]:0".parse().unwrap()).await else {
        skip::skipped("this machine has no IPv6 loopback");
        return;
    };
    let canary = Canary::start(&[("six.test", &[&["::1"]])]).await;
    let b = start(&canary.egress_toml("allow_cidrs = [\"::1/128\"]")).await;
    let mut t = egress::connect(b.egress, "::1", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"bracketed literal").await;
    let mut t = egress::connect(b.egress, "six.test", echo.addr.port()).await.unwrap();
    assert_echoes(&mut t, b"aaaa answer").await;
    assert_eq!((canary.asked("six.test", A), canary.asked("six.test", AAAA)), (1, 1));
    assert_eq!(echo.accepted(), 2);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_gets_408() {
    let canary = Canary::start(&[]).await;
    let b = start(&format!("{}\n[limits]\nheader_timeout_ms = 200\n", canary.egress_toml(""))).await;
    let mut s = TcpStream::connect(b.egress).await.unwrap();
    s.write_all(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
}
