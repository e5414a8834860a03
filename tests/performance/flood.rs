//! Floods every agent-facing service (and the control plane) of a real
//! `bottle-bundle` process the way a hostile agent would: a thousand
//! connections each sending an endless request head of about 400 KB, and
//! five hundred that send half a head and wait. While each flood is open a
//! normal request must still be answered, and the process's peak resident
//! memory must stay far below the bundle container's memory limit: a bundle
//! the engine OOM-kills is a bundle that, for a moment, enforces nothing.
#![cfg(target_os = "linux")]

#[path = "../support/process/mod.rs"]
mod process_support;

use std::net::SocketAddr;
use std::time::Duration;

use process_support::{BundleProcess, TOKEN};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections sending an endless head, per service.
const BIG_HEADS: usize = 1000;
/// Bytes each of them tries to send (the size seen OOM-killing git-gate).
const BIG_HEAD_BYTES: usize = 400 * 1024;
/// Connections holding half a head, per service.
const SLOW_HEADS: usize = 500;
/// The peak the whole process may reach: a quarter of the bundle container's 512 MiB.
const PEAK_RSS_LIMIT_KIB: u64 = 128 * 1024;
/// Longest any one step of the flood (a connect, a write, the normal request) may take.
const STEP: Duration = Duration::from_secs(10);

/// Opens the flood against `addr` and keeps it open until the returned connections are dropped.
async fn flood(addr: SocketAddr) -> Vec<TcpStream> {
    let big = tokio::spawn(async move {
        let tasks: Vec<_> = (0..BIG_HEADS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = tokio::time::timeout(STEP, TcpStream::connect(addr)).await.ok()?.ok()?;
                    let pad = vec![b'a'; 16 * 1024];
                    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: flood\r\nX-Pad: ").await;
                    let mut sent = 0;
                    while sent < BIG_HEAD_BYTES {
                        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&pad)).await {
                            Ok(Ok(())) => sent += pad.len(),
                            _ => break,
                        }
                    }
                    Some(s)
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.extend(t.await.unwrap());
        }
        held
    });
    let mut slow = Vec::new();
    for _ in 0..SLOW_HEADS {
        if let Ok(Ok(mut s)) = tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").await;
            slow.push(s);
        }
    }
    slow.extend(big.await.unwrap());
    slow
}

/// One ordinary request; the status line it got back.
async fn normal_request(addr: SocketAddr, path: &str) -> String {
    let ask = async {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut head = vec![0; 64];
        let n = s.read(&mut head).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string())
    };
    match tokio::time::timeout(STEP, ask).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "no answer in time".into(),
    }
}

#[test]
fn every_service_survives_a_head_flood_and_still_serves() {
    let mut b = BundleProcess::start("");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let services = [
        ("git-gate", b.git_gate, "/r.git/info/refs?service=git-upload-pack"),
        ("supervise", b.supervise, "/v1/agent"),
        ("api-gate", b.api_gate, "/nothing"),
        ("control", b.control, "/v1/health"),
        ("proxy", b.proxy, "http://flood.invalid/"),
    ];
    for (name, addr, path) in services {
        rt.block_on(async {
            let held = flood(addr).await;
            let line = normal_request(addr, path).await;
            assert!(
                line.starts_with("HTTP/1.1 "),
                "{name}: a normal request during the flood ({} connections held) got {line:?}",
                held.len()
            );
            drop(held);
        });
        let peak = b.peak_rss_kib();
        eprintln!("{name}: flood survived; bundle peak RSS so far {peak} KiB");
        assert!(peak < PEAK_RSS_LIMIT_KIB, "{name}: peak RSS {peak} KiB after its flood");
    }
    assert!(b.alive(), "the bundle process died in the flood");
}
