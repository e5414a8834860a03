//! `bottle-probe canary`: the other side of a probe. The escape suite runs it
//! on hosts it creates (an "outside" container, a namespace holding the
//! metadata address, host loopback) and reads what it logged: a probe that
//! reached a canary it should not have is a boundary failure, whatever the
//! probe itself believed.
//!
//! Every contact is one JSON line on stdout: `{"canary","proto","port","peer","detail"}`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

/// Serialises log lines from many threads.
static OUT: Mutex<()> = Mutex::new(());
/// A canary never waits long on a peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Spec {
    pub name: String,
    pub bind: String,
    pub tcp: Vec<u16>,
    pub http: Vec<u16>,
    pub udp: Vec<u16>,
    pub dns: Vec<u16>,
}

impl Spec {
    /// `canary NAME BIND [--tcp P,P] [--http P] [--udp P] [--dns P]`
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let name = args.first().ok_or("canary: missing NAME")?.clone();
        let bind = args.get(1).ok_or("canary: missing BIND address")?.clone();
        let mut s = Self { name, bind, tcp: vec![], http: vec![], udp: vec![], dns: vec![] };
        let mut it = args.iter().skip(2);
        while let (Some(flag), Some(val)) = (it.next(), it.next()) {
            let ports = val
                .split(',')
                .map(|p| p.parse::<u16>().map_err(|_| format!("bad port {p:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            match flag.as_str() {
                "--tcp" => s.tcp.extend(ports),
                "--http" => s.http.extend(ports),
                "--udp" => s.udp.extend(ports),
                "--dns" => s.dns.extend(ports),
                f => return Err(format!("canary: unknown flag {f:?}")),
            }
        }
        Ok(s)
    }
}

fn log(canary: &str, proto: &str, port: u16, peer: &str, detail: &str) {
    let line = serde_json::json!({"canary": canary, "proto": proto, "port": port, "peer": peer, "detail": detail});
    let _guard = OUT.lock();
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Binds everything first (so the suite can wait for "ready"), then serves forever.
pub fn run(spec: Spec) -> Result<(), String> {
    let bind = |p: u16| format!("{}:{p}", spec.bind);
    let mut threads = Vec::new();
    for (ports, http) in [(&spec.tcp, false), (&spec.http, true)] {
        for &p in ports {
            let l = TcpListener::bind(bind(p)).map_err(|e| format!("tcp {p}: {e}"))?;
            let name = spec.name.clone();
            threads.push(std::thread::spawn(move || serve_tcp(&name, p, &l, http)));
        }
    }
    for (ports, dns) in [(&spec.udp, false), (&spec.dns, true)] {
        for &p in ports {
            let s = UdpSocket::bind(bind(p)).map_err(|e| format!("udp {p}: {e}"))?;
            let name = spec.name.clone();
            threads.push(std::thread::spawn(move || serve_udp(&name, p, &s, dns)));
        }
    }
    log(&spec.name, "ready", 0, "", "");
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn serve_tcp(name: &str, port: u16, l: &TcpListener, http: bool) {
    for conn in l.incoming().flatten() {
        let name = name.to_string();
        std::thread::spawn(move || answer_tcp(&name, port, conn, http));
    }
}

fn answer_tcp(name: &str, port: u16, mut s: TcpStream, http: bool) {
    let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    s.set_read_timeout(Some(PEER_TIMEOUT)).ok();
    if !http {
        log(name, "tcp", port, &peer, "");
        let _ = s.write_all(format!("canary {name}\n").as_bytes());
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("").to_string();
    // Whether a credential came along, never its value: the suite checks that git-gate adds it.
    let authorized = text.lines().any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
    log(name, "http", port, &peer, &format!("{line}{}", if authorized { " [authorization]" } else { "" }));
    let (content_type, body) = match advertised_service(&line) {
        Some(service) => (format!("application/x-{service}-advertisement"), empty_repo_advertisement(service)),
        None => ("text/plain".to_string(), format!("canary {name}\n").into_bytes()),
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(&[head.as_bytes(), &body].concat());
}

/// The git service a smart-HTTP `GET .../info/refs?service=git-*-pack` asks for.
fn advertised_service(request_line: &str) -> Option<&str> {
    let target = request_line.strip_prefix("GET ")?.split(' ').next()?;
    let service = target.split_once("/info/refs?service=")?.1;
    ["git-upload-pack", "git-receive-pack"].into_iter().find(|s| *s == service)
}

/// The ref advertisement of an empty repository. It lets a git client get as far as
/// sending its push through git-gate; the suite then checks that the push stopped there.
fn empty_repo_advertisement(service: &str) -> Vec<u8> {
    let pkt = |s: &str| format!("{:04x}{s}", s.len() + 4);
    let zero = "0".repeat(40);
    format!(
        "{}0000{}0000",
        pkt(&format!("# service={service}\n")),
        pkt(&format!("{zero} capabilities^{{}}\0report-status delete-refs ofs-delta agent=bottle-canary\n"))
    )
    .into_bytes()
}

fn serve_udp(name: &str, port: u16, s: &UdpSocket, dns: bool) {
    let mut buf = [0u8; 1500];
    while let Ok((n, from)) = s.recv_from(&mut buf) {
        let msg = &buf[..n];
        if dns {
            log(name, "dns", port, &from.to_string(), &query_name(msg).unwrap_or_default());
            if n >= 12 {
                // Reply NXDOMAIN to whatever was asked: the question is what matters, not the answer.
                let mut reply = msg.to_vec();
                reply[2] |= 0x80;
                reply[3] = (reply[3] & 0xf0) | 3;
                let _ = s.send_to(&reply, from);
            }
        } else {
            log(name, "udp", port, &from.to_string(), "");
            let _ = s.send_to(msg, from);
        }
    }
}

/// The first question's name of a DNS message.
pub fn query_name(msg: &[u8]) -> Option<String> {
    let mut i = 12;
    let mut labels = Vec::new();
    while i < msg.len() {
        let len = msg[i] as usize;
        if len == 0 {
            return Some(labels.join("."));
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(i + 1..i + 1 + len)?).to_string());
        i += 1 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_rejects_bad_ports() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = Spec::parse(&a(&["out", "0.0.0.0", "--tcp", "22,80", "--dns", "53"])).unwrap();
        assert_eq!((s.tcp, s.dns), (vec![22, 80], vec![53]));
        assert!(Spec::parse(&a(&["out", "0.0.0.0", "--tcp", "x"])).is_err());
    }

    #[test]
    fn advertises_an_empty_repository_to_smart_http_git_only() {
        assert_eq!(
            advertised_service("GET /v.git/info/refs?service=git-receive-pack HTTP/1.1"),
            Some("git-receive-pack")
        );
        assert_eq!(advertised_service("GET /info/refs?service=git-upload-pack HTTP/1.1"), Some("git-upload-pack"));
        assert_eq!(advertised_service("POST /v.git/git-receive-pack HTTP/1.1"), None);
        assert_eq!(advertised_service("GET /info/refs?service=evil HTTP/1.1"), None);
        let ad = String::from_utf8(empty_repo_advertisement("git-receive-pack")).unwrap();
        assert!(ad.starts_with("001f# service=git-receive-pack\n0000"), "{ad}");
        let second = &ad[35..];
        assert_eq!(usize::from_str_radix(&second[..4], 16).unwrap(), second.len() - 4, "{second:?}");
        assert!(second.ends_with("\n0000"), "{second:?}");
    }

    #[test]
    fn reads_the_question_name() {
        let mut q = vec![0u8; 12];
        q.extend_from_slice(b"\x05exfil\x07invalid\x00\x00\x01\x00\x01");
        assert_eq!(query_name(&q).as_deref(), Some("exfil.invalid"));
    }
}
