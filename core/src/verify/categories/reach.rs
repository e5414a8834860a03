//! Connects the boundary must stop, and how each verdict is reached.
//!
//! On Docker the probe saw no connection and the canary logged none. On
//! smolmachines a refusal is smolvm's own reset, so it counts as blocked only
//! with a witness: the host reaching the same canary ([`judge`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;

use super::events::EVENT_WAIT;
use super::probing::{REACH_MS, args, probes, seen, unreached, vm};
use crate::smolvm::allowlist::{Blocked, host_reaches, judge};
use crate::verify::world::{METADATA_IP, OUTSIDE_HTTP, OUTSIDE_TCP};
use crate::verify::{Category, Finding, Suite};

/// One connect the boundary must stop, and where the host itself reaches the canary it aims at.
pub(super) struct Reach {
    name: String,
    args: Vec<String>,
    /// The canary's address from the host: the witness a VM's refusal needs.
    witness: SocketAddr,
    /// Docker: whether a refusal counts as blocked (only from the agent's own loopback).
    refused_ok: bool,
}

/// A connect to each TCP port of the outside canary at `ip`.
pub(super) fn outside_tcp(ip: Ipv4Addr) -> Vec<Reach> {
    let ports = OUTSIDE_TCP.iter().chain([&OUTSIDE_HTTP]);
    ports
        .map(|p| {
            let at = SocketAddr::from((ip, *p));
            reach(format!("tcp {at}"), &at.to_string(), at, false)
        })
        .collect()
}

pub(super) fn reach(name: String, target: &str, witness: SocketAddr, refused_ok: bool) -> Reach {
    Reach { name, args: args(&["tcp", target, REACH_MS]), witness, refused_ok }
}

/// Whether the host reaches each [`Reach`]'s witness (only asked for in a VM). Called before a
/// category reads its canary logs: the host's own connects are logged too.
pub(super) async fn witnesses(s: &Suite, t: &[Reach]) -> Vec<bool> {
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
pub(super) async fn reach_findings(
    s: &Suite,
    c: Category,
    expect: &str,
    t: &[Reach],
    witnessed: &[bool],
) -> Vec<Finding> {
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
