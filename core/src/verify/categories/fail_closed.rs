//! The `fail-closed` category: with the bundle stopped, nothing gets out and the bottle says so.

use super::probing::{no_contact, probe, proxy_addr, seen, vm};
use super::reach::{outside_tcp, reach, reach_findings, witnesses};
use crate::backend::BottleState;
use crate::sidecar::labels;
use crate::smolvm::allowlist::host_reaches;
use crate::verify::world::Contact;
use crate::verify::{ALLOWED_HOST, Category, Finding, Suite};

/// Stops the bundle, then: nothing gets out, and the bottle reports itself degraded.
pub(super) async fn run(s: &Suite) -> Vec<Finding> {
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
    let mut t = outside_tcp(ip);
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
    out.push(no_contact(Category::FailClosed, "outside canary log", "no contact", &new));
    let st = s.backend.status(&s.bottle).await;
    let obs = st.as_ref().map(|st| format!("{}: {}", st.state, st.detail)).unwrap_or_else(|e| format!("{e:#}"));
    out.push(Finding::new(
        Category::FailClosed,
        "status",
        "degraded",
        obs,
        st.is_ok_and(|st| st.state == BottleState::Degraded),
    ));
    out
}
