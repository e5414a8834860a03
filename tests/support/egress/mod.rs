//! Shared fixtures for the egress and control tests: a whole bundle on loopback
//! ports, a scripted canary DNS server, and TCP echo listeners as destinations.
//! Everything listens on 127.0.0.0/8; nothing here sends a packet elsewhere.

#![allow(dead_code)] // each test crate uses a different subset

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_bundle::{Services, state::Bundle};
use bottle_protocol::BundleConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

pub const TOKEN: &str = "control-token-for-tests-0123456789";
/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Running {
    pub bundle: Arc<Bundle>,
    pub proxy: SocketAddr,
    pub egress: SocketAddr,
    pub control: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Starts every bundle service on 127.0.0.1:0. `extra` is appended to the config
/// (`[egress]`, `[limits]` tables...).
pub async fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_path = toml::Value::String(token_file.display().to_string());
    let text = format!(
        "bottle = \"t\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\negress = \"127.0.0.1:0\"\n\
         [control]\ntoken_file = {token_path}\n{extra}"
    );
    let file = dir.path().join("bundle.toml");
    let config = BundleConfig::parse(&file, &text).unwrap();
    let bundle = Arc::new(Bundle::from_config(&file, &text, config).unwrap());
    let services = Services::bind(&bundle).await.unwrap();
    let (proxy, egress, control) =
        (services.proxy.local_addr(), services.egress.local_addr(), services.control.local_addr());
    tokio::spawn(services.run(bundle.clone()));
    Running { bundle, proxy, egress, control, _dir: dir }
}

/// A DNS server answering A/AAAA queries from a script, recording what it was asked.
/// Each name maps to a list of answer sets: the n-th query of a type gets the n-th
/// set (the last one repeats). Unknown names get NXDOMAIN. Answers have TTL 0.
pub struct Canary {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
}

pub const A: u16 = 1;
pub const AAAA: u16 = 28;

impl Canary {
    pub async fn start(script: &[(&str, &[&[&str]])]) -> Self {
        let script: HashMap<String, Vec<Vec<IpAddr>>> = script
            .iter()
            .map(|(name, sets)| {
                let sets = sets.iter().map(|s| s.iter().map(|ip| ip.parse().unwrap()).collect()).collect();
                (name.to_string(), sets)
            })
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                let Some((name, qtype, question_end)) = parse_query(&buf[..n]) else { continue };
                let seen = {
                    let mut log = log.lock().unwrap();
                    let seen = log.iter().filter(|(q, t)| *q == name && *t == qtype).count();
                    log.push((name.clone(), qtype));
                    seen
                };
                let answers = script.get(&name).map(|sets| {
                    let set = &sets[seen.min(sets.len() - 1)];
                    set.iter().copied().filter(|ip| ip.is_ipv4() == (qtype == A)).collect::<Vec<_>>()
                });
                let reply = answer(&buf[..question_end], qtype, answers.as_deref());
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        Self { addr, asked }
    }

    /// How many queries of `qtype` for `name` arrived.
    pub fn asked(&self, name: &str, qtype: u16) -> usize {
        self.asked.lock().unwrap().iter().filter(|(q, t)| q == name && *t == qtype).count()
    }

    /// The `[egress]` config table pointing at this canary.
    pub fn egress_toml(&self, rest: &str) -> String {
        format!("[egress]\nnameservers = [\"{}\"]\n{rest}", self.addr)
    }
}

/// (lowercase name without the final dot, qtype, offset just past the question).
fn parse_query(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// A reply to `query` (header + question): the answers, or NXDOMAIN for `None`.
fn answer(query: &[u8], qtype: u16, answers: Option<&[IpAddr]>) -> Vec<u8> {
    let rd = query[2] & 0x01;
    let rcode = if answers.is_none() { 3 } else { 0 };
    let answers = answers.unwrap_or(&[]);
    let mut out = vec![query[0], query[1], 0x84 | rd, 0x80 | rcode, 0, 1];
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..]);
    for ip in answers {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        match ip {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&[0, 4]);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&[0, 16]);
                out.extend_from_slice(&v6.octets());
            }
        }
    }
    out
}

/// A TCP echo server that counts the connections it accepted.
pub struct Echo {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Ok(Self { addr, accepted })
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Writes `msg` into a tunnel and expects it echoed back.
pub async fn assert_echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back)).await.expect("echo timed out").unwrap();
    assert_eq!(back, msg);
}

/// Waits until the peer closes `s` (EOF or reset); panics after [`WAIT`].
pub async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("tunnel stayed open") {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// A loopback listener whose accept queue is full, so a new connect hangs in SYN_SENT.
/// Returns the listener and the connections that filled it (both must stay alive).
pub async fn full_backlog() -> (TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("filling the backlog: {e}"),
            Err(_) => return (listener, held),
        }
    }
    panic!("the accept queue of {addr} never filled");
}
