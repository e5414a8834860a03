//! The `dns` category: no resolver the agent can reach answers a name, and no name leaks to the
//! outside canary's DNS.

use std::net::Ipv4Addr;
use std::time::Duration;

use bottle_protocol::EventKind;

use super::events::EVENT_WAIT;
use super::probing::{REACH_MS, args, probe, probes, seen, vm};
use crate::sidecar::labels;
use crate::smolvm::smolfile::GUEST_GATEWAY;
use crate::verify::{Category, Finding, Suite};

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

pub(super) async fn run(s: &Suite) -> Vec<Finding> {
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
