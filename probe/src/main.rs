//! `bottle-probe`: runs inside a bottle and reports, as one JSON line per
//! probe, what the agent can actually reach or see (`each` runs several
//! probes at once, in threads).
//!
//! The start check and the escape suite drive it from outside and decide each
//! verdict there, so
//! the probe itself never judges: it only observes. It is a static binary
//! with no resolver (IP literals only) so it needs nothing from the image.

mod canary;
mod net;
mod observe;

use std::process::ExitCode;

use bottle_protocol::probe::Report;

const USAGE: &str = "usage: bottle-probe <tcp ADDR [MS] | udp ADDR [MS] | scan IP FROM-TO [MS] | dns NAME SERVER [MS] | \
http PROXY METHOD URL [HEADER]... [--body TEXT] | connect PROXY TARGET [SNI] | caps | docker-socket | \
mounts | find-secret LEN SHA256HEX [PATH]... | canary NAME BIND [--tcp P,..] [--http P,..] [--udp P,..] [--dns P,..] | \
each PROBE ARGS... [--and PROBE ARGS...]...>";
/// Separates the probes of `each`.
const AND: &str = "--and";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "canary" {
        return match canary::Spec::parse(rest).and_then(canary::run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("bottle-probe: {msg}");
                ExitCode::from(2)
            }
        };
    }
    let reports = if cmd == "each" { each(rest) } else { run(cmd, rest).map(|r| vec![r]) };
    match reports {
        Ok(reports) => {
            for r in reports {
                println!("{}", r.to_json());
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("bottle-probe: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `each`: several probes at once, one report line each, in the order given. One
/// process for all saves the start check an exec round trip per probe.
fn each(rest: &[String]) -> Result<Vec<Report>, String> {
    let probes: Vec<&[String]> = rest.split(|a| a == AND).collect();
    if probes.iter().any(|p| p.is_empty()) {
        return Err(format!("each: an empty probe between {AND}s"));
    }
    std::thread::scope(|s| {
        let running: Vec<_> = probes.iter().map(|p| s.spawn(move || run(&p[0], &p[1..]))).collect();
        running.into_iter().map(|t| t.join().map_err(|_| "each: a probe panicked".to_string())?).collect()
    })
}

fn run(cmd: &str, rest: &[String]) -> Result<Report, String> {
    let arg = |i: usize, what: &str| rest.get(i).cloned().ok_or_else(|| format!("{cmd}: missing {what}"));
    let ms = |i: usize| {
        rest.get(i).map_or(Ok(net::DEFAULT_TIMEOUT_MS), |s| s.parse().map_err(|_| format!("bad timeout {s:?}")))
    };
    match cmd {
        "tcp" => Ok(net::tcp(&arg(0, "ADDR")?, ms(1)?)),
        "udp" => Ok(net::udp(&arg(0, "ADDR")?, ms(1)?)),
        "scan" => {
            let range = arg(1, "FROM-TO")?;
            let (from, to) = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| format!("bad port range {range:?}"))?;
            Ok(net::scan(&arg(0, "IP")?, from, to, ms(2)?))
        }
        "dns" => Ok(net::dns(&arg(0, "NAME")?, &arg(1, "SERVER")?, ms(2)?)),
        "http" => {
            let (mut headers, mut body) = (Vec::new(), None);
            let mut it = rest.iter().skip(3);
            while let Some(a) = it.next() {
                if a == "--body" {
                    body = Some(it.next().ok_or("--body needs TEXT")?.clone());
                } else {
                    headers.push(a.clone());
                }
            }
            Ok(net::http(&arg(0, "PROXY")?, &arg(1, "METHOD")?, &arg(2, "URL")?, &headers, body.as_deref()))
        }
        "connect" => Ok(net::connect(&arg(0, "PROXY")?, &arg(1, "TARGET")?, rest.get(2).map(String::as_str))),
        "caps" => Ok(observe::caps()),
        "docker-socket" => Ok(observe::docker_socket()),
        "mounts" => Ok(observe::mounts()),
        "find-secret" => {
            let len = arg(0, "LEN")?.parse().map_err(|_| "LEN must be a number".to_string())?;
            Ok(observe::find_secret(len, &arg(1, "SHA256HEX")?, &rest[2.min(rest.len())..]))
        }
        other => Err(format!("unknown probe {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_reports_every_probe_in_order_and_refuses_empty_ones() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let r = each(&args(&["tcp", &closed, "500", AND, "caps"])).unwrap();
        assert_eq!((r[0].probe.as_str(), r[0].outcome.as_str()), ("tcp", "refused"));
        assert_eq!(r[1].probe, "caps");
        assert!(each(&args(&["caps", AND])).is_err());
        assert!(each(&args(&["tcp", &closed, AND, "nope"])).is_err(), "one bad probe fails the whole call");
    }
}
