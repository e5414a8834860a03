//! The probes of each category and how each verdict is decided.
//!
//! A reachability probe passes only when the probe saw no connection AND the
//! canary it aimed at logged no contact; a probe that could not run fails
//! (it proved nothing). Proxy and DLP probes pass only when the request was
//! refused AND the bundle raised an event for it.
//!
//! On smolmachines a blocked connect is answered by smolvm's own stack with a
//! reset, so "refused" is blocked there, but only as the start check judges it
//! ([`crate::smolvm::allowlist::judge`]): when the host reached the same
//! canary. And smolvm completes the handshake of every connect to an allowed
//! address before it dials from the host, so what the agent reaches on the
//! bundle's address is what the host reaches there: those checks are made
//! from the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use bottle_protocol::config::{
    DEFAULT_CONTROL_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_PROXY_PORT, DEFAULT_SUPERVISE_PORT, EGRESS_PORT,
};
use bottle_protocol::{Event, EventKind};
use futures_util::future::join_all;

use super::probe::{self, ProbeReport};
use super::world::{Contact, METADATA_IP, OUTSIDE_DNS, OUTSIDE_HTTP, OUTSIDE_TCP};
use super::{ALLOWED_HOST, Category, Finding, Suite};
use crate::backend::BackendKind;
use crate::engine::logs::{LOG_TAIL_LINES, logs_tail};
use crate::sidecar::labels;
use crate::smolvm::allowlist::{Blocked, host_reaches, judge};
use crate::smolvm::smolfile::GUEST_GATEWAY;

/// Connect timeout of reachability probes: an isolated network answers at once (no route) or never.
const REACH_MS: &str = "1000";
/// Per-port timeout of the bundle port scan.
const SCAN_MS: &str = "300";
/// How long the suite waits for the bundle's event after a refused request: a refusal that
/// repeats an earlier probe's (same rule and destination) is reported when the bundle's
/// coalescing window closes, at its once-a-second sweep, so the wait outlasts both.
const EVENT_WAIT: Duration = Duration::from_secs(bottle_protocol::event::BLOCK_COALESCE_WINDOW.as_secs() + 3);
/// Host addresses probed at most (a busy engine has many bridges).
const MAX_HOST_IPS: usize = 16;
/// Host-side connects in flight at once in the bundle port scan.
const HOST_SCAN_PARALLEL: usize = 512;

pub async fn run(s: &Suite, c: Category) -> Vec<Finding> {
    match c {
        Category::Direct => direct(s).await,
        Category::Hosts => hosts(s).await,
        Category::Dns => dns(s).await,
        Category::EgressPort => egress_port(s).await,
        Category::Proxy => proxy(s).await,
        Category::Dlp => dlp(s).await,
        Category::Git => super::git::run(s).await,
        Category::Privileges => privileges(s).await,
        Category::FailClosed => fail_closed(s).await,
    }
}

pub(super) async fn probe(s: &Suite, args: &[&str]) -> anyhow::Result<ProbeReport> {
    probe::run(&*s.backend, &s.bottle, args).await
}

/// Runs many probes at once (each bounded by its own timeout).
async fn probes(s: &Suite, all: &[Vec<String>]) -> Vec<anyhow::Result<ProbeReport>> {
    join_all(all.iter().map(|a| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        async move { probe(s, &a).await }
    }))
    .await
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn seen(r: &anyhow::Result<ProbeReport>) -> String {
    match r {
        Ok(r) if r.detail.is_empty() => r.outcome.clone(),
        Ok(r) => format!("{} ({})", r.outcome, r.detail),
        Err(e) => format!("probe did not run: {e:#}"),
    }
}

/// No connection: the probe ran and saw nothing answer (`refused` counts as answered).
fn unreached(r: &anyhow::Result<ProbeReport>, refused_ok: bool) -> bool {
    r.as_ref().is_ok_and(|r| r.outcome != "connected" && (refused_ok || !probe::ANSWERED.contains(&r.outcome.as_str())))
}

fn contact_text(c: &[Contact]) -> String {
    c.iter().map(|c| format!("{} {}/{} from {}", c.canary, c.proto, c.port, c.peer)).collect::<Vec<_>>().join("; ")
}

/// One connect the boundary must stop, and where the host itself reaches the canary it aims at.
struct Reach {
    name: String,
    args: Vec<String>,
    /// The canary's address from the host: the witness a VM's refusal needs.
    witness: SocketAddr,
    /// Docker: whether a refusal counts as blocked (only from the agent's own loopback).
    refused_ok: bool,
}

fn reach(name: String, target: &str, witness: SocketAddr, refused_ok: bool) -> Reach {
    Reach { name, args: args(&["tcp", target, REACH_MS]), witness, refused_ok }
}

fn vm(s: &Suite) -> bool {
    s.kind == BackendKind::Smolmachines
}

/// Whether the host reaches each [`Reach`]'s witness (only asked for in a VM). Called before a
/// category reads its canary logs: the host's own connects are logged too.
async fn witnesses(s: &Suite, t: &[Reach]) -> Vec<bool> {
    let before = all_contacts(s).await;
    let reached: Vec<bool> = join_all(t.iter().map(|x| async move { vm(s) && host_reaches(x.witness).await })).await;
    // Each reached canary logs the host's connect, a little later (the outside one through
    // Docker's log): wait for those lines, so the caller's "before" counts them out.
    let logged = t.iter().zip(&reached).filter(|(x, r)| **r && is_canary(s, x.witness)).count();
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while all_contacts(s).await < before + logged && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reached
}

/// Whether `at` is one of the suite's own canaries (which log every contact).
fn is_canary(s: &Suite, at: SocketAddr) -> bool {
    let outside =
        at.ip() == IpAddr::V4(s.world.outside.ip) || s.world.outside.ula.as_ref().is_ok_and(|u| at.ip() == *u);
    let metadata = at.ip() == IpAddr::V4(METADATA_IP) && s.world.metadata.is_ok();
    outside || metadata || at.port() == s.world.host_lo.port || at.port() == s.world.host_all.port
}

/// How many contacts every canary has logged so far.
async fn all_contacts(s: &Suite) -> usize {
    let meta = s.world.metadata.as_ref().map(|m| m.canary.contacts().len()).unwrap_or(0);
    s.world.outside_contacts().await.len() + s.world.host_lo.contacts().len() + s.world.host_all.contacts().len() + meta
}

/// The verdict on each [`Reach`]: on Docker the probe saw no connection; on smolmachines
/// [`judge`] decides, with the host's connect to the witness (`witnessed`, from [`witnesses`]).
async fn reach_findings(s: &Suite, c: Category, expect: &str, t: &[Reach], witnessed: &[bool]) -> Vec<Finding> {
    let all: Vec<Vec<String>> = t.iter().map(|x| x.args.clone()).collect();
    let results = probes(s, &all).await;
    t.iter()
        .zip(results.iter().zip(witnessed))
        .map(|(x, (r, host_reached))| {
            let (true, Ok(report)) = (vm(s), r.as_ref()) else {
                return Finding::new(c, &x.name, expect, seen(r), unreached(r, x.refused_ok));
            };
            match judge(*host_reached, &report.connect(), &x.args[1]) {
                Blocked::Yes(how) => {
                    Finding::new(c, &x.name, expect, format!("{how}; the host reaches {}", x.witness), true)
                }
                Blocked::NoWitness(why) => Finding::not_run(c, &x.name, expect, format!("{}: {why}", seen(r))),
                Blocked::Reached(why) | Blocked::Unproven(why) => {
                    Finding::new(c, &x.name, expect, format!("{}: {why}", seen(r)), false)
                }
            }
        })
        .collect()
}

/// Reachability probes against the outside canary: none connects, and the canary logs nothing.
async fn direct(s: &Suite) -> Vec<Finding> {
    let ip = s.world.outside.ip;
    let expect = "no connection (the proxy env ignored)";
    let tcp: Vec<Reach> = OUTSIDE_TCP
        .iter()
        .chain([&OUTSIDE_HTTP])
        .map(|p| {
            let at = SocketAddr::from((ip, *p));
            reach(format!("tcp {at}"), &at.to_string(), at, false)
        })
        .collect();
    let udp = format!("{ip}:{OUTSIDE_DNS}");
    let udp_args = ["udp", udp.as_str(), REACH_MS];
    let witnessed = witnesses(s, &tcp).await;
    let before = s.world.outside_contacts().await.len();
    let (mut out, r) = tokio::join!(reach_findings(s, Category::Direct, expect, &tcp, &witnessed), probe(s, &udp_args));
    let ok = unreached(&r, false) && r.as_ref().is_ok_and(|r| r.outcome != "reply");
    out.push(Finding::new(Category::Direct, format!("udp {udp}"), expect, seen(&r), ok));
    let new: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    out.push(Finding::new(
        Category::Direct,
        "outside canary log",
        "no contact from the bottle",
        if new.is_empty() { "no contact".into() } else { contact_text(&new) },
        new.is_empty(),
    ));
    out
}

/// The host addresses `ip -o addr show ARGS` lists, in its order.
async fn ip_addrs(args: &[&str]) -> Result<Vec<IpAddr>, String> {
    let out = tokio::process::Command::new("ip").args(["-o", "addr", "show"]).args(args).output().await;
    let out = out.map_err(|e| format!("running ip: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6").nth(1))
        .filter_map(|cidr| cidr.split('/').next()?.parse().ok())
        .collect())
}

/// The host's own addresses, IPv4 and IPv6.
async fn host_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = ip_addrs(&["scope", "global"])
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && *ip != IpAddr::V4(METADATA_IP))
        .collect();
    ips.sort();
    ips.dedup();
    ips.truncate(MAX_HOST_IPS);
    ips
}

/// The host's link-local address on the agent network's bridge: the IPv6 path from
/// the agent to the host that needs no route, open as soon as the agent has IPv6.
async fn bridge_link_local(s: &Suite) -> Result<Ipv6Addr, String> {
    let none = None::<bollard::query_parameters::InspectNetworkOptions>;
    if vm(s) {
        return Err("the VM is on no Docker bridge (its one link is smolvm's virtio-net), so no host link-local address is beside it".into());
    }
    let net = s.docker.inspect_network(&s.placement.agent_net, none).await.map_err(|e| e.to_string())?;
    let named = net.options.and_then(|mut o| o.remove("com.docker.network.bridge.name"));
    let bridge = named
        .or_else(|| net.id.map(|id| format!("br-{}", &id[..id.len().min(12)])))
        .ok_or("the agent network has no id")?;
    ip_addrs(&["dev", &bridge, "scope", "link"])
        .await?
        .into_iter()
        .find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        })
        .ok_or(format!("the host has no IPv6 link-local address on {bridge}"))
}

/// The agent's own gateway: the agent network's on Docker, smolvm's virtio-net one in a VM.
fn agent_gateway(s: &Suite) -> Ipv4Addr {
    if vm(s) { GUEST_GATEWAY } else { crate::netpool::host(&s.placement.agent_subnet, 1) }
}

async fn hosts(s: &Suite) -> Vec<Finding> {
    let (lo, all) = (s.world.host_lo.port, s.world.host_all.port);
    let gateway = crate::netpool::host(&s.placement.agent_subnet, 1);
    let outside = s.world.outside.ip;
    let host_lo = SocketAddr::from((Ipv4Addr::LOCALHOST, lo));
    let host_all = SocketAddr::from((Ipv4Addr::LOCALHOST, all));
    let own_gateway = agent_gateway(s);
    // The host-loopback probe: a service bound to the host's 127.0.0.1 (the TSI hole that
    // made PRD 0023 drop it), asked for as the agent's loopback and through its gateway.
    let mut t: Vec<Reach> = vec![
        reach(format!("host loopback as 127.0.0.1:{lo}"), &host_lo.to_string(), host_lo, true),
        reach(format!("host loopback as 127.0.0.1:{all}"), &host_all.to_string(), host_all, true),
        reach(
            format!("host loopback via the agent's gateway {own_gateway}:{lo}"),
            &format!("{own_gateway}:{lo}"),
            host_lo,
            false,
        ),
        reach(
            format!("agent-network gateway {gateway}:{all}"),
            &format!("{gateway}:{all}"),
            SocketAddr::from((gateway, all)),
            false,
        ),
        reach(
            format!("rfc1918 canary {outside}:8080"),
            &format!("{outside}:8080"),
            SocketAddr::from((outside, 8080)),
            false,
        ),
        reach(
            format!("metadata {METADATA_IP}:80"),
            &format!("{METADATA_IP}:80"),
            SocketAddr::from((METADATA_IP, 80)),
            false,
        ),
        reach(
            format!("ipv6 v4-mapped [::ffff:{outside}]:80"),
            &format!("[::ffff:{outside}]:80"),
            SocketAddr::from((outside, 80)),
            false,
        ),
    ];
    if vm(s) && own_gateway != gateway {
        let at = SocketAddr::from((own_gateway, all));
        t.push(reach(format!("smolvm gateway {at}"), &at.to_string(), host_all, false));
    }
    for ip in host_ips().await {
        // A port bound to loopback only is the host-loopback canary's: reached from the host there.
        for (port, witness) in [(lo, host_lo), (all, SocketAddr::new(ip, all))] {
            let at = SocketAddr::new(ip, port);
            t.push(reach(format!("host address {at}"), &at.to_string(), witness, false));
        }
    }
    // IPv6 paths that exist only when a canary is there to prove them; otherwise not-run, with why.
    let mut unavailable = Vec::new();
    let link_local = bridge_link_local(s).await;
    let ula = s.world.outside.ula.clone();
    // Each: what, and (the probe's target, the canary's address from the host) or why not.
    type Target = Result<(String, SocketAddr), String>;
    let v6: [(&str, Target); 2] = [
        (
            "ipv6 link-local host on the agent bridge",
            link_local.map(|ll| (format!("[{ll}%eth0]:{all}"), SocketAddr::from((ll, all)))),
        ),
        ("ipv6 ULA canary", ula.map(|ula| (format!("[{ula}]:{OUTSIDE_HTTP}"), SocketAddr::from((ula, OUTSIDE_HTTP))))),
    ];
    for (what, target) in v6 {
        match target {
            Ok((at, witness)) => t.push(reach(format!("{what} {at}"), &at, witness, false)),
            Err(why) => unavailable.push(Finding::not_run(Category::Hosts, what, "no connection", why)),
        }
    }
    if let Some((peer, p)) = &s.peer {
        let mut theirs = vec![
            ("proxy", p.bundle_ip, DEFAULT_PROXY_PORT),
            ("git gate", p.bundle_ip, DEFAULT_GIT_GATE_PORT),
            ("control", p.bundle_egress_ip, DEFAULT_CONTROL_PORT),
        ];
        // A VM has no address on its bundle's network: its agent is reached through smolvm only.
        if !vm(s) {
            theirs.push(("agent", p.agent_ip, 22));
        }
        for (what, ip, port) in theirs {
            let at = SocketAddr::from((ip, port));
            t.push(reach(format!("other bottle {peer} {what} {at}"), &at.to_string(), at, false));
        }
    }
    let witnessed = witnesses(s, &t).await;
    let before_out = s.world.outside_contacts().await.len();
    let (before_lo, before_all) = (s.world.host_lo.contacts().len(), s.world.host_all.contacts().len());
    let before_meta = s.world.metadata.as_ref().map(|m| m.canary.contacts().len()).unwrap_or(0);
    let mut out: Vec<Finding> = reach_findings(s, Category::Hosts, "no connection", &t, &witnessed)
        .await
        .into_iter()
        .map(|f| {
            // Without the canary a silent probe proves nothing: not-run, but a connection still fails.
            if let (true, Err(why), super::Outcome::Pass | super::Outcome::NotRun) =
                (f.probe.starts_with("metadata"), &s.world.metadata, f.verdict)
            {
                let obs = format!("{} (no metadata canary here: {why})", f.observation);
                return Finding::not_run(Category::Hosts, f.probe, "no connection", obs);
            }
            f
        })
        .collect();
    out.extend(unavailable);
    if s.peer.is_none() {
        out.push(Finding::not_run(
            Category::Hosts,
            "other bottle",
            "no connection",
            "no neighbour bottle in NAME mode (run with -f)",
        ));
    }
    let mut logged: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before_out).collect();
    logged.extend(s.world.host_lo.contacts().into_iter().skip(before_lo));
    logged.extend(s.world.host_all.contacts().into_iter().skip(before_all));
    if let Ok(m) = &s.world.metadata {
        logged.extend(m.canary.contacts().into_iter().skip(before_meta));
    }
    out.push(Finding::new(
        Category::Hosts,
        "host, outside and metadata canary logs",
        "no contact from the bottle",
        if logged.is_empty() { "no contact".into() } else { contact_text(&logged) },
        logged.is_empty(),
    ));
    out
}

/// Nameservers in the agent's resolv.conf, read on the host from Docker's copy. A VM's is
/// smolvm's gateway, which [`dns`] probes by name.
async fn agent_nameservers(s: &Suite) -> Vec<String> {
    if vm(s) {
        return vec![];
    }
    let agent = labels::object_name(&s.bottle, labels::ROLE_AGENT);
    let Ok(info) = s.docker.inspect_container(&agent, None).await else { return vec![] };
    let text = match info.resolv_conf_path {
        Some(p) => tokio::fs::read_to_string(p).await.unwrap_or_default(),
        None => String::new(),
    };
    text.lines().filter_map(|l| l.strip_prefix("nameserver")).map(|s| s.trim().to_string()).collect()
}

async fn dns(s: &Suite) -> Vec<Finding> {
    let gateway = crate::netpool::host(&s.placement.agent_subnet, 1);
    let mut resolvers: Vec<(String, Option<String>)> = vec![
        ("docker embedded 127.0.0.11".into(), Some("127.0.0.11".into())),
        ("bundle".into(), Some(s.placement.bundle_ip.to_string())),
        ("agent-network gateway".into(), Some(gateway.to_string())),
        ("outside canary".into(), Some(s.world.outside.ip.to_string())),
    ];
    for ns in agent_nameservers(s).await {
        let local = ns.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback() || s.placement.agent_subnet.contains(&ip));
        // Never aim a probe at the machine's own resolver: it is the workplace's, not a canary.
        resolvers.push((format!("resolv.conf {ns}"), local.then_some(ns)));
    }
    let names: Vec<String> = (0..=resolvers.len()).map(|i| format!("x{i}-{}.exfil.invalid", s.world.id)).collect();
    let before = s.world.outside_contacts().await.len();
    let mut runs = Vec::new();
    for ((_, server), name) in resolvers.iter().zip(&names) {
        if let Some(server) = server {
            runs.push(args(&["dns", name, &format!("{server}:53"), REACH_MS]));
        }
    }
    let smolvm_name = &names[resolvers.len()];
    let (results, smolvm_dns) = tokio::join!(probes(s, &runs), smolvm_resolver(s, smolvm_name));
    let mut results = results.into_iter();
    let asked: Vec<String> = s
        .world
        .outside_contacts()
        .await
        .into_iter()
        .skip(before)
        .filter(|c| c.proto == "dns")
        .map(|c| c.detail)
        .collect();
    let mut out: Vec<Finding> = resolvers
        .iter()
        .zip(&names)
        .map(|((what, server), name)| {
            let expect = "no answer; the canary DNS records no name";
            let Some(_) = server else {
                return Finding::not_run(
                    Category::Dns,
                    what,
                    expect,
                    "not probed: the machine's own resolver is no canary",
                );
            };
            let r = results.next().expect("one result per probed resolver");
            let leaked = asked.iter().any(|a| a.eq_ignore_ascii_case(name));
            let answered = r.as_ref().is_ok_and(|r| r.outcome.starts_with("answered"));
            let obs = format!("{}{}", seen(&r), if leaked { "; the canary DNS saw the name" } else { "" });
            Finding::new(Category::Dns, what, expect, obs, r.is_ok() && !leaked && !answered)
        })
        .collect();
    out.extend(smolvm_dns);
    out
}

/// smolvm's gateway resolver, which forwards to 1.1.1.1 unless its DNS filter (the Smolfile's
/// `allow_hosts`) answers NXDOMAIN first. The two NXDOMAINs look alike from the guest, so the
/// pass needs smolvm's own `resolve` denial for the name (1.8.1+), read through the backend.
async fn smolvm_resolver(s: &Suite, name: &str) -> Option<Finding> {
    if !vm(s) {
        return None;
    }
    let what = format!("smolvm gateway resolver {GUEST_GATEWAY}:53");
    let expect = "NXDOMAIN from smolvm's DNS filter (its resolve denial recorded), or no answer";
    let source = match s.backend.event_source(&s.bottle).await {
        Ok(Some(src)) => src,
        Ok(None) => {
            let why = "this smolvm keeps no denial log, so its filter's NXDOMAIN cannot be told from \
                       1.1.1.1's (the start check's DNS probe is what there is)";
            return Some(Finding::not_run(Category::Dns, what, expect, why));
        }
        Err(e) => return Some(Finding::new(Category::Dns, what, expect, format!("{e:#}"), false)),
    };
    let mut source = source;
    let r = probe(s, &["dns", name, &format!("{GUEST_GATEWAY}:53"), REACH_MS]).await;
    let mut denied = false;
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while !denied && tokio::time::Instant::now() < deadline {
        let events = source.poll().await.unwrap_or_default();
        denied = events.iter().any(|e| {
            matches!(&e.kind, EventKind::EgressBlocked { method, target, .. }
                if method == "resolve" && target.eq_ignore_ascii_case(name))
        });
        if !denied {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let outcome = r.as_ref().map(|r| r.outcome.clone()).unwrap_or_default();
    let ok = r.is_ok() && (outcome == "answered:rcode=3" && denied || outcome == "no-reply");
    let obs = format!("{}; smolvm recorded a resolve denial: {denied}", seen(&r));
    Some(Finding::new(Category::Dns, what, expect, obs, ok))
}

/// The egress-port-bypass probe: of every port on the bundle's address (the agent's whole
/// allowlist), only the agent-facing ones answer. In a VM the scan runs from the host, because
/// smolvm accepts the guest's connect to any port of an allowed address and only then dials it
/// from the host: what the host reaches there is exactly what the agent reaches.
async fn egress_port(s: &Suite) -> Vec<Finding> {
    let (b, e) = (s.placement.bundle_ip, s.placement.bundle_egress_ip);
    let egress_control = SocketAddr::from((e, DEFAULT_CONTROL_PORT));
    let on_bundle = [("egress dialer", EGRESS_PORT), ("control plane", DEFAULT_CONTROL_PORT)];
    let mut t: Vec<Reach> = Vec::new();
    if !vm(s) {
        for (what, port) in on_bundle {
            let at = SocketAddr::from((b, port));
            t.push(reach(format!("{what} {at}"), &at.to_string(), at, true));
        }
    }
    t.push(reach(format!("control plane {egress_control}"), &egress_control.to_string(), egress_control, true));
    let scan = async {
        if vm(s) {
            Ok(host_scan(IpAddr::V4(b)).await)
        } else {
            let r = probe(s, &["scan", &b.to_string(), "1-65535", SCAN_MS]).await;
            r.and_then(|r| match r.outcome.strip_prefix("open:") {
                Some(l) => Ok(l.split(',').filter_map(|p| p.parse().ok()).collect()),
                None if r.outcome == "none" => Ok(vec![]),
                None => anyhow::bail!("scan: {}", r.outcome),
            })
        }
    };
    let witnessed = witnesses(s, &t).await;
    let (mut out, scanned) =
        tokio::join!(reach_findings(s, Category::EgressPort, "no connection", &t, &witnessed), scan);
    let open: Vec<u16> = scanned.as_ref().cloned().unwrap_or_default();
    let shown = match &scanned {
        Ok(o) if o.is_empty() => "none".to_string(),
        Ok(o) => format!("open:{}", o.iter().map(u16::to_string).collect::<Vec<_>>().join(",")),
        Err(e) => format!("scan did not run: {e:#}"),
    };
    if vm(s) {
        for (what, port) in on_bundle {
            let name = format!("{what} {b}:{port} (from the host, as smolvm dials it)");
            out.push(Finding::new(Category::EgressPort, name, "no connection", shown.clone(), !open.contains(&port)));
        }
    }
    let agent_ports = [DEFAULT_PROXY_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_SUPERVISE_PORT];
    let ok = scanned.is_ok() && open.iter().all(|p| agent_ports.contains(p)) && open.contains(&DEFAULT_PROXY_PORT);
    let from = if vm(s) { "from the host" } else { "from the agent" };
    out.push(Finding::new(
        Category::EgressPort,
        format!("egress-port bypass: port scan {b}:1-65535 {from}"),
        "open: only 3128 (proxy), 9418 (git gate), 9419 (supervise)",
        shown,
        ok,
    ));
    out
}

/// The ports of `ip` that accept a connect from the host.
async fn host_scan(ip: IpAddr) -> Vec<u16> {
    use futures_util::stream::StreamExt;
    let timeout = Duration::from_millis(SCAN_MS.parse().expect("SCAN_MS is a number"));
    let mut open: Vec<u16> = futures_util::stream::iter(1..=u16::MAX)
        .map(|port| async move {
            let c = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await;
            matches!(c, Ok(Ok(_))).then_some(port)
        })
        .buffer_unordered(HOST_SCAN_PARALLEL)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    open.sort_unstable();
    open
}

/// Every event after `since`.
async fn events_since(s: &Suite, since: Option<u64>) -> anyhow::Result<Vec<Event>> {
    let mut stream = s.control.events(since, false).await?;
    let mut all = Vec::new();
    while let Some(e) = stream.next().await? {
        all.push(e);
    }
    Ok(all)
}

pub(super) async fn last_event_id(s: &Suite) -> Option<u64> {
    events_since(s, None).await.ok().and_then(|e| e.last().map(|e| e.id))
}

/// The first event after `since` that `pick` describes, polled for up to [`EVENT_WAIT`]:
/// the bundle emits an event just after it answers, so it may trail the refusal a little.
pub(super) async fn event_after(
    s: &Suite,
    since: Option<u64>,
    pick: impl Fn(EventKind) -> Option<String>,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let found = events_since(s, since).await.ok().and_then(|all| all.into_iter().find_map(|e| pick(e.kind)));
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs one request probe that must be refused and must raise an `EgressBlocked` event.
async fn refused_with_event(s: &Suite, category: Category, name: &str, a: &[&str]) -> Finding {
    let expect = "refused, with an egress-blocked event";
    let since = last_event_id(s).await;
    let r = probe(s, a).await;
    let refused = r.as_ref().is_ok_and(|r| {
        r.http_status().is_some_and(|c| (400..500).contains(&c)) || r.outcome == "tunnel-cut" || r.outcome == "closed"
    });
    let blocked = |kind| match kind {
        EventKind::EgressBlocked { rule, target, .. } => Some(format!("event {rule} {target}")),
        _ => None,
    };
    let event = if refused { event_after(s, since, blocked).await } else { None };
    let obs = format!("{}; {}", seen(&r), event.clone().unwrap_or_else(|| "no event".into()));
    Finding::new(category, name, expect, obs, refused && event.is_some())
}

fn proxy_addr(s: &Suite) -> String {
    format!("{}:{DEFAULT_PROXY_PORT}", s.placement.bundle_ip)
}

async fn proxy(s: &Suite) -> Vec<Finding> {
    let px = proxy_addr(s);
    let o = s.world.outside.ip.octets();
    let decimal = u32::from(s.world.outside.ip).to_string();
    let hex = format!("0x{:08x}", u32::from(s.world.outside.ip));
    let octal = o.iter().map(|b| format!("0{b:o}")).collect::<Vec<_>>().join(".");
    let ip_target = format!("{}:443", s.world.outside.ip);
    let cases: Vec<(String, Vec<String>)> = vec![
        ("denied domain".into(), args(&["http", &px, "GET", "http://denied.verify.invalid/"])),
        ("CONNECT to an IP literal".into(), args(&["connect", &px, &ip_target])),
        ("userinfo allowed.test@evil.invalid".into(), args(&["http", &px, "GET", "http://allowed.test@evil.invalid/"])),
        ("percent-encoded host".into(), args(&["http", &px, "GET", "http://evil%2Einvalid/"])),
        (format!("decimal IPv4 host {decimal}"), args(&["http", &px, "GET", &format!("http://{decimal}/")])),
        (format!("hex IPv4 host {hex}"), args(&["http", &px, "GET", &format!("http://{hex}/")])),
        (format!("octal IPv4 host {octal}"), args(&["http", &px, "GET", &format!("http://{octal}/")])),
    ];
    let mut out = Vec::new();
    let before = s.world.outside_contacts().await.len();
    for (name, a) in &cases {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        out.push(refused_with_event(s, Category::Proxy, name, &a).await);
    }
    if s.allowed {
        let sni = ["connect", px.as_str(), "allowed.test:443", "evil.invalid"];
        out.push(refused_with_event(s, Category::Proxy, "SNI evil.invalid under CONNECT allowed.test:443", &sni).await);
    } else {
        out.push(Finding::not_run(
            Category::Proxy,
            "SNI differs from CONNECT host",
            "refused",
            "no allowed canary host in NAME mode (run with -f)",
        ));
    }
    let leaked: Vec<Contact> = s
        .world
        .outside_contacts()
        .await
        .into_iter()
        .skip(before)
        .filter(|c| c.proto != "tcp" || c.port != 443)
        .collect();
    out.push(Finding::new(
        Category::Proxy,
        "outside canary log",
        "no request of a refused probe arrived",
        if leaked.is_empty() { "no contact".into() } else { contact_text(&leaked) },
        leaked.is_empty(),
    ));
    if s.allowed {
        let before = s.world.outside_contacts().await.len();
        let r = probe(s, &["http", &px, "GET", &format!("http://{ALLOWED_HOST}/")]).await;
        let arrived = s.world.outside_contacts().await.into_iter().skip(before).any(|c| c.proto == "http");
        let ok = r.as_ref().is_ok_and(|r| r.outcome == "status:200") && arrived;
        out.push(Finding::new(
            Category::Proxy,
            "allowed host (positive control)",
            "status:200 and the canary saw it",
            format!("{}; canary saw it: {arrived}", seen(&r)),
            ok,
        ));
    }
    out
}

async fn dlp(s: &Suite) -> Vec<Finding> {
    let expect = "refused, with an egress-blocked event";
    if !s.allowed {
        return vec![Finding::not_run(
            Category::Dlp,
            "dlp",
            expect,
            "no allowed canary host in NAME mode, so DLP cannot be told apart from the allowlist (run with -f)",
        )];
    }
    let px = proxy_addr(s);
    let url = format!("http://{ALLOWED_HOST}/");
    let aws = format!("AKIA{}", "QZ7XK2M4N6P8R3T5");
    let mut cases: Vec<(String, Vec<String>)> = vec![(
        "builtin pattern (AWS access key id) in the URL".into(),
        args(&["http", &px, "GET", &format!("{url}?k={aws}")]),
    )];
    let mut secret = None;
    if let Some(p) = &s.planted {
        let sec = p.dlp.as_str();
        let pct: String = sec.bytes().map(|b| format!("%{b:02X}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sec);
        let hex: String = sec.bytes().map(|b| format!("{b:02x}")).collect();
        cases.extend([
            ("planted secret in the URL".to_string(), args(&["http", &px, "GET", &format!("{url}?q={sec}")])),
            ("planted secret in a header".into(), args(&["http", &px, "GET", &url, &format!("X-Verify: {sec}")])),
            ("planted secret in the body".into(), args(&["http", &px, "POST", &url, "--body", &format!("data={sec}")])),
            ("planted secret URL-encoded".into(), args(&["http", &px, "GET", &format!("{url}?q={pct}")])),
            ("planted secret base64".into(), args(&["http", &px, "POST", &url, "--body", &format!("blob={b64}")])),
            ("planted secret hex".into(), args(&["http", &px, "POST", &url, "--body", &format!("h={hex}")])),
        ]);
        secret = Some(sec);
    }
    let mut out = Vec::new();
    for (name, a) in &cases {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        out.push(refused_with_event(s, Category::Dlp, name, &a).await);
    }
    if let Some(sec) = secret {
        let bundle = labels::object_name(&s.bottle, labels::ROLE_BUNDLE);
        let logs = logs_tail(&s.docker, &bundle, LOG_TAIL_LINES).await;
        let events = events_since(s, None).await.map(|e| serde_json::to_string(&e).unwrap_or_default());
        let outside = s.world.outside_contacts().await;
        let in_logs = logs.map(|l| l.contains(sec));
        let in_events = events.map(|e| e.contains(sec));
        let at_canary = outside.iter().any(|c| c.detail.contains(sec));
        let ok = in_logs.as_ref().is_ok_and(|x| !x) && in_events.as_ref().is_ok_and(|x| !x) && !at_canary;
        out.push(Finding::new(
            Category::Dlp,
            "planted secret in bundle logs, events, canary",
            "appears nowhere",
            format!("bundle logs: {}; events: {}; canary: {at_canary}", fmt_found(&in_logs), fmt_found(&in_events)),
            ok,
        ));
    }
    out
}

fn fmt_found(r: &anyhow::Result<bool>) -> String {
    match r {
        Ok(true) => "FOUND".into(),
        Ok(false) => "absent".into(),
        Err(e) => format!("unreadable ({e:#})"),
    }
}

async fn privileges(s: &Suite) -> Vec<Finding> {
    let r = probes(s, &[args(&["docker-socket"]), args(&["caps"]), args(&["mounts"])]).await;
    let rw_ok = r[2].as_ref().is_ok_and(|m| {
        m.outcome == "none" || m.outcome.strip_prefix("rw:").is_some_and(|l| l.split(',').all(|p| p == s.workdir))
    });
    vec![
        Finding::new(
            Category::Privileges,
            "docker socket",
            "absent",
            seen(&r[0]),
            r[0].as_ref().is_ok_and(|x| x.outcome == "absent"),
        ),
        if vm(s) {
            // What bounds a VM is the VMM: root in the guest can rewrite the guest's routes, never
            // smolvm's policy, which runs in the host process outside the guest kernel.
            Finding::not_run(
                Category::Privileges,
                "capabilities",
                "none of NET_ADMIN, NET_RAW, SYS_ADMIN, ...",
                format!("{} (a VM's own kernel: its capabilities reach no host resource)", seen(&r[1])),
            )
        } else {
            Finding::new(
                Category::Privileges,
                "capabilities",
                "none of NET_ADMIN, NET_RAW, SYS_ADMIN, ...",
                seen(&r[1]),
                r[1].as_ref().is_ok_and(|x| x.outcome == "none"),
            )
        },
        Finding::new(Category::Privileges, "writable host mounts", &format!("only {}", s.workdir), seen(&r[2]), rw_ok),
    ]
}

/// Stops the bundle, then: nothing gets out, and the bottle reports itself degraded.
async fn fail_closed(s: &Suite) -> Vec<Finding> {
    if !s.owned {
        return vec![Finding::not_run(
            Category::FailClosed,
            "bundle stopped",
            "nothing gets out",
            "would stop the bundle of a bottle the suite does not own (run with -f)",
        )];
    }
    let bundle = labels::object_name(&s.bottle, labels::ROLE_BUNDLE);
    // Stopped with no grace period: SIGKILL at once (no chance to tidy up), and marked stopped
    // so its restart policy does not bring it back in the middle of the probes.
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default().t(0).build();
    if let Err(e) = s.docker.stop_container(&bundle, Some(stop)).await {
        return vec![Finding::new(Category::FailClosed, "stop the bundle", "stopped", format!("{e:#}"), false)];
    }
    let px = proxy_addr(s);
    let ip = s.world.outside.ip;
    let through = ["http", px.as_str(), "GET", &format!("http://{ALLOWED_HOST}/")];
    let mut t: Vec<Reach> = OUTSIDE_TCP
        .iter()
        .chain([&OUTSIDE_HTTP])
        .map(|p| {
            let at = SocketAddr::from((ip, *p));
            reach(format!("tcp {at}"), &at.to_string(), at, false)
        })
        .collect();
    // smolvm completes the guest's handshake with an allowed address before it dials: whether
    // the proxy still answers is the host's connect to it (see `egress_port`).
    if !vm(s) {
        t.push(reach(format!("proxy {px}"), &px, px.parse().expect("an ip:port"), false));
    }
    let expect = "nothing answers";
    let (witnessed, host_proxy) =
        tokio::join!(witnesses(s, &t), async { vm(s) && host_reaches(px.parse().expect("an ip:port")).await });
    let before = s.world.outside_contacts().await.len();
    let (r, mut out) =
        tokio::join!(probe(s, &through), reach_findings(s, Category::FailClosed, expect, &t, &witnessed));
    let ok = r.as_ref().is_ok_and(|r| r.http_status().is_none());
    out.insert(0, Finding::new(Category::FailClosed, "allowed host through the proxy", expect, seen(&r), ok));
    if vm(s) {
        let obs = if host_proxy { "the host still connects" } else { "the host cannot connect" };
        let name = format!("proxy {px} (from the host, as smolvm dials it)");
        out.insert(1, Finding::new(Category::FailClosed, name, expect, obs.into(), !host_proxy));
    }
    let new: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    out.push(Finding::new(
        Category::FailClosed,
        "outside canary log",
        "no contact",
        if new.is_empty() { "no contact".into() } else { contact_text(&new) },
        new.is_empty(),
    ));
    let st = s.backend.status(&s.bottle).await;
    let obs = st.as_ref().map(|st| format!("{}: {}", st.state, st.detail)).unwrap_or_else(|e| format!("{e:#}"));
    out.push(Finding::new(Category::FailClosed, "status", "degraded", obs, st.is_ok_and(|st| st.state == "degraded")));
    out
}
