//! Network probes: raw TCP/UDP reachability, DNS, and requests through the proxy.
//!
//! Every probe has a deadline, so a dropped SYN shows up as `timeout` rather
//! than hanging the suite.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use bottle_protocol::probe::{Report, outcome};

pub const DEFAULT_TIMEOUT_MS: u64 = 1500;
/// Connects in flight at once during a port scan (fewer if the bottle's pids limit says so).
const SCAN_THREADS: usize = 64;
/// How much of a reply the probe keeps.
const MAX_REPLY: usize = 4096;

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    // IP literals only: the probe has no resolver on purpose.
    let bad = || format!("not an ip:port literal: {s:?}");
    s.parse::<SocketAddr>().or_else(|_| scoped_by_name(s, "/sys/class/net").ok_or_else(bad))
}

/// `[fe80::1%eth0]:80`: a link-local address scoped by interface name, since only
/// the bottle knows the index of its own interface.
fn scoped_by_name(s: &str, sys_net: &str) -> Option<SocketAddr> {
    let (addr, rest) = s.strip_prefix('[')?.split_once('%')?;
    let (ifname, port) = rest.split_once("]:")?;
    if ifname.is_empty() || !ifname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let index: u32 = std::fs::read_to_string(format!("{sys_net}/{ifname}/ifindex")).ok()?.trim().parse().ok()?;
    format!("[{addr}%{index}]:{port}").parse().ok()
}

fn io_outcome(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => outcome::REFUSED.into(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => outcome::TIMEOUT.into(),
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => outcome::UNREACHABLE.into(),
        ErrorKind::ConnectionReset => outcome::RESET.into(),
        ErrorKind::PermissionDenied => outcome::DENIED.into(),
        k => format!("error:{k:?}"),
    }
}

/// Reads until EOF, the deadline, or `MAX_REPLY` bytes.
fn read_some(s: &mut impl Read) -> (Vec<u8>, Option<std::io::Error>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REPLY {
        match s.read(&mut chunk) {
            Ok(0) => return (buf, None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return (buf, Some(e)),
        }
    }
    (buf, None)
}

fn open(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let a = parse_addr(addr)?;
    let s = TcpStream::connect_timeout(&a, timeout).map_err(|e| io_outcome(&e))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    Ok(s)
}

/// `connected` (with any banner the peer sent), `refused`, `timeout`, ...
pub fn tcp(addr: &str, ms: u64) -> Report {
    let t = Instant::now();
    match open(addr, Duration::from_millis(ms)) {
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            let (banner, _) = read_some(&mut s);
            Report::new("tcp", addr, t, outcome::CONNECTED, String::from_utf8_lossy(&banner).trim().to_string())
        }
        Err(outcome) => Report::new("tcp", addr, t, outcome, ""),
    }
}

/// Parallel connect scan of `ip` over ports `from..=to`; outcome `open:P,P,...` or `none`.
/// Bounded: at most `SCAN_THREADS` connects in flight, each with `ms` timeout.
pub fn scan(ip: &str, from: u16, to: u16, ms: u64) -> Report {
    let t = Instant::now();
    let target = format!("{ip}:{from}-{to}");
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return Report::new("scan", &target, t, "error:bad-ip", "");
    };
    let next = std::sync::atomic::AtomicU32::new(u32::from(from));
    let open = std::sync::Mutex::new(Vec::new());
    // A bottle's pids limit may refuse some threads: scan with those that start, fail only with none.
    let started = std::thread::scope(|sc| {
        let worker = || loop {
            let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if p > u32::from(to) {
                break;
            }
            let port = p as u16;
            if TcpStream::connect_timeout(&SocketAddr::new(addr, port), Duration::from_millis(ms)).is_ok() {
                open.lock().expect("scan list").push(port);
            }
        };
        (0..SCAN_THREADS).filter(|_| std::thread::Builder::new().spawn_scoped(sc, worker).is_ok()).count()
    });
    if started == 0 {
        return Report::new("scan", &target, t, "error:no-threads", "");
    }
    let mut open = open.into_inner().expect("scan list");
    open.sort_unstable();
    let outcome = if open.is_empty() {
        "none".to_string()
    } else {
        format!("open:{}", open.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
    };
    Report::new("scan", &target, t, outcome, "")
}

/// `reply` when the peer echoes a datagram back, `no-reply` otherwise.
pub fn udp(addr: &str, ms: u64) -> Report {
    let t = Instant::now();
    let result = (|| -> std::io::Result<Vec<u8>> {
        let a = parse_addr(addr).map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
        let bind: SocketAddr = if a.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("literal");
        let s = UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_millis(ms)))?;
        s.send_to(b"bottle-probe", a)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(buf[..n].to_vec())
    })();
    match result {
        Ok(reply) => Report::new("udp", addr, t, "reply", String::from_utf8_lossy(&reply).to_string()),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            Report::new("udp", addr, t, "no-reply", "")
        }
        Err(e) => Report::new("udp", addr, t, io_outcome(&e), ""),
    }
}

/// Sends one A query for `name` to `server`; `answered:rcode=N` or `no-reply`.
pub fn dns(name: &str, server: &str, ms: u64) -> Report {
    let t = Instant::now();
    let target = format!("{name}@{server}");
    let mut q = vec![0xb0, 0x77, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let result = (|| -> std::io::Result<Vec<u8>> {
        let a =
            server.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "server"))?;
        let s = UdpSocket::bind(if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        s.set_read_timeout(Some(Duration::from_millis(ms)))?;
        s.send_to(&q, a)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(buf[..n].to_vec())
    })();
    match result {
        Ok(r) if r.len() >= 4 => Report::new("dns", &target, t, format!("answered:rcode={}", r[3] & 0x0f), ""),
        Ok(_) => Report::new("dns", &target, t, "malformed", ""),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            Report::new("dns", &target, t, "no-reply", "")
        }
        Err(e) => Report::new("dns", &target, t, io_outcome(&e), ""),
    }
}

/// The status line's code and the `X-Bottle-Block` header, if any.
fn status_and_block(reply: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(reply);
    let status = text.split(' ').nth(1).unwrap_or("").to_string();
    let block = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-bottle-block")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (status, block)
}

/// One request through the proxy at `proxy` (absolute-URI form); outcome `status:NNN`.
pub fn http(proxy: &str, method: &str, url: &str, headers: &[String], body: Option<&str>) -> Report {
    let t = Instant::now();
    let mut s = match open(proxy, Duration::from_millis(DEFAULT_TIMEOUT_MS)) {
        Ok(s) => s,
        Err(o) => return Report::new("http", url, t, o, ""),
    };
    let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
    let mut req = format!("{method} {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Report::new("http", url, t, io_outcome(&e), "");
    }
    let (reply, err) = read_some(&mut s);
    if reply.is_empty() {
        return Report::new("http", url, t, err.map_or(outcome::CLOSED.into(), |e| io_outcome(&e)), "");
    }
    let (status, block) = status_and_block(&reply);
    Report::new("http", url, t, outcome::status(status), block)
}

/// A minimal TLS 1.2/1.3 ClientHello carrying `sni`, enough for SNI inspection.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    let list_len = name.len() + 3;
    sni_ext.extend_from_slice(&[0x00, 0x00]);
    sni_ext.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    sni_ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&sni_ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// `CONNECT target` through the proxy. Outcome `status:NNN`; with `sni`, after a 200 the
/// probe sends a ClientHello and reports `tunnel-cut` or `tunnel-open`.
pub fn connect(proxy: &str, target: &str, sni: Option<&str>) -> Report {
    let t = Instant::now();
    let probe_target = sni.map_or(target.to_string(), |s| format!("{target} sni={s}"));
    let mut s = match open(proxy, Duration::from_millis(DEFAULT_TIMEOUT_MS)) {
        Ok(s) => s,
        Err(o) => return Report::new("connect", &probe_target, t, o, ""),
    };
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Report::new("connect", &probe_target, t, io_outcome(&e), "");
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_REPLY {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let (status, block) = status_and_block(&head);
    let Some(sni) = sni.filter(|_| status == "200") else {
        return Report::new("connect", &probe_target, t, outcome::status(status), block);
    };
    if s.write_all(&client_hello(sni)).is_err() {
        return Report::new("connect", &probe_target, t, outcome::TUNNEL_CUT, "write failed");
    }
    let (reply, err) = read_some(&mut s);
    let seen = match (reply.is_empty(), err) {
        (false, _) => outcome::TUNNEL_OPEN,
        (true, Some(e)) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => outcome::TUNNEL_OPEN,
        (true, _) => outcome::TUNNEL_CUT,
    };
    Report::new("connect", &probe_target, t, seen, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_link_local_scope_may_name_the_interface() {
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir(sys.path().join("eth0")).unwrap();
        std::fs::write(sys.path().join("eth0/ifindex"), "5260\n").unwrap();
        let net = sys.path().to_str().unwrap();
        let a = scoped_by_name("[fe80::42:1%eth0]:8080", net).unwrap();
        assert_eq!(a.to_string(), "[fe80::42:1%5260]:8080");
        assert_eq!(scoped_by_name("[fe80::1%eth9]:80", net), None, "no such interface");
        assert_eq!(scoped_by_name("[fe80::1%../eth0]:80", net), None, "a name, not a path");
        assert!(parse_addr("[fe80::1%3]:80").is_ok() && parse_addr("[fe80::1%]:80").is_err());
    }

    #[test]
    fn tcp_reports_connected_with_banner_and_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"canary-1\n").unwrap();
        });
        let r = tcp(&addr, 1000);
        h.join().unwrap();
        assert_eq!((r.outcome.as_str(), r.detail.as_str()), ("connected", "canary-1"));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        assert_eq!(tcp(&closed, 1000).outcome, "refused");
    }

    #[test]
    fn udp_and_dns_see_a_replying_peer_and_a_silent_one() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = peer.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..2 {
                let (n, from) = peer.recv_from(&mut buf).unwrap();
                peer.send_to(&buf[..n], from).unwrap();
            }
        });
        assert_eq!(udp(&addr, 1000).outcome, "reply");
        // An echoed query is a DNS message with the query's header, rcode 0.
        assert_eq!(dns("probe.invalid", &addr, 1000).outcome, "answered:rcode=0");
        h.join().unwrap();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(udp(&silent.local_addr().unwrap().to_string(), 200).outcome, "no-reply");
    }

    #[test]
    fn scan_finds_exactly_the_listening_ports() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        let from = port.saturating_sub(20);
        let r = scan("127.0.0.1", from, port, 300);
        assert!(r.outcome.split(&[':', ','][..]).any(|p| p == port.to_string()), "{}", r.outcome);
    }

    #[test]
    fn client_hello_carries_the_sni_bytes() {
        let hello = client_hello("evil.test");
        assert_eq!(hello[0], 0x16);
        assert!(hello.windows(9).any(|w| w == b"evil.test"));
        assert_eq!(u16::from_be_bytes([hello[3], hello[4]]) as usize, hello.len() - 5);
    }

    #[test]
    fn reads_status_and_block_header() {
        let (s, b) = status_and_block(b"HTTP/1.1 403 Forbidden\r\nX-Bottle-Block: not-allowed\r\n\r\n");
        assert_eq!((s.as_str(), b.as_str()), ("403", "not-allowed"));
    }
}
