//! The `hosts` category: the host (its loopback, every address, the agent network's gateway),
//! the metadata address, private and IPv6 paths, and a neighbour bottle all stay out of reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bottle_protocol::config::{DEFAULT_CONTROL_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_PROXY_PORT};

use super::probing::{no_contact, vm};
use super::reach::{Reach, reach, reach_findings, witnesses};
use crate::smolvm::smolfile::GUEST_GATEWAY;
use crate::verify::world::{Contact, METADATA_IP, OUTSIDE_HTTP};
use crate::verify::{Category, Finding, Outcome, Suite};

/// Host addresses probed at most (a busy engine has many bridges).
const MAX_HOST_IPS: usize = 16;

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

pub(super) async fn run(s: &Suite) -> Vec<Finding> {
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
            if let (true, Err(why), Outcome::Pass | Outcome::NotRun) =
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
    out.push(no_contact(
        Category::Hosts,
        "host, outside and metadata canary logs",
        "no contact from the bottle",
        &logged,
    ));
    out
}
