//! The `direct` category: the agent ignores its proxy variables and dials the outside itself.

use super::probing::{REACH_MS, no_contact, probe, seen, unreached};
use super::reach::{outside_tcp, reach_findings, witnesses};
use crate::verify::world::{Contact, OUTSIDE_DNS};
use crate::verify::{Category, Finding, Suite};

/// Reachability probes against the outside canary: none connects, and the canary logs nothing.
pub(super) async fn run(s: &Suite) -> Vec<Finding> {
    let ip = s.world.outside.ip;
    let expect = "no connection (the proxy env ignored)";
    let tcp = outside_tcp(ip);
    let udp = format!("{ip}:{OUTSIDE_DNS}");
    let udp_args = ["udp", udp.as_str(), REACH_MS];
    let witnessed = witnesses(s, &tcp).await;
    let before = s.world.outside_contacts().await.len();
    let (mut out, r) = tokio::join!(reach_findings(s, Category::Direct, expect, &tcp, &witnessed), probe(s, &udp_args));
    let ok = unreached(&r, false) && r.as_ref().is_ok_and(|r| r.outcome != "reply");
    out.push(Finding::new(Category::Direct, format!("udp {udp}"), expect, seen(&r), ok));
    let new: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    out.push(no_contact(Category::Direct, "outside canary log", "no contact from the bottle", &new));
    out
}
