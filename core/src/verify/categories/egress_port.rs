//! The `egress-port` category: of the bundle's ports only the agent-facing ones answer, so the
//! egress dialer and the control plane are no way out.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bottle_protocol::config::{
    DEFAULT_CONTROL_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_PROXY_PORT, DEFAULT_SUPERVISE_PORT, EGRESS_PORT,
};

use super::probing::{probe, vm};
use super::reach::{Reach, reach, reach_findings, witnesses};
use crate::verify::{Category, Finding, Suite};

/// Per-port timeout of the bundle port scan.
const SCAN_MS: &str = "300";

/// Host-side connects in flight at once in the bundle port scan.
const HOST_SCAN_PARALLEL: usize = 512;

/// The egress-port-bypass probe: of every port on the bundle's address (the agent's whole
/// allowlist), only the agent-facing ones answer. In a VM the scan runs from the host, because
/// smolvm accepts the guest's connect to any port of an allowed address and only then dials it
/// from the host: what the host reaches there is exactly what the agent reaches.
pub(super) async fn run(s: &Suite) -> Vec<Finding> {
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
