//! The two networks of a bottle, with subnets picked from the pool.
//!
//! The agent network is `internal` (no route out) and has
//! `com.docker.network.bridge.inhibit_ipv4`, so the host does not own its
//! gateway address: on a plain internal bridge the host keeps that address
//! and an agent can connect to any host service listening on 0.0.0.0
//! through it. The egress network is an ordinary bridge that only the bundle
//! joins; it is the bundle's way out and where its control plane is published.
//!
//! The smolmachines backend is the one exception (see [`host_on_agent_net`]):
//! its VM's connections are opened by smolvm on the host, so the host must
//! own an address on the bundle's agent network to route to `<bundle-ip>`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use ipnet::Ipv4Net;

use super::labels;
use crate::backend::{BackendKind, Progress};
use crate::netpool::{self, NetPool, PoolLock};
use crate::subnet_claims;

/// Where a bottle's pieces sit. Host numbers are fixed so the bundle config can name them before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Network ids, not names: Docker 20.10 lets two networks share a name (an interrupted
    /// `up` whose create request landed late can leave one), and an id is never ambiguous.
    pub agent_net: String,
    pub agent_subnet: Ipv4Net,
    pub egress_net: String,
    pub egress_subnet: Ipv4Net,
    /// The bundle on the agent network: the agent's proxy, git gate and supervise.
    pub bundle_ip: Ipv4Addr,
    /// The bundle on its egress network: where the control plane listens.
    pub bundle_egress_ip: Ipv4Addr,
    /// The agent on the agent network.
    pub agent_ip: Ipv4Addr,
}

/// `.1` stays the (inhibited) gateway Docker's IPAM reserves; `.2` is the bundle, `.3` the agent.
pub const BUNDLE_HOST: u32 = 2;
pub const AGENT_HOST: u32 = 3;
/// How many free subnets one pick tries before giving up (each refusal is a race lost to another engine user).
pub const MAX_PICK_ATTEMPTS: usize = 16;

impl Placement {
    fn new(agent: (String, Ipv4Net), egress: (String, Ipv4Net)) -> Self {
        let ((agent_net, agent_subnet), (egress_net, egress_subnet)) = (agent, egress);
        Self {
            agent_net,
            egress_net,
            bundle_ip: netpool::host(&agent_subnet, BUNDLE_HOST),
            bundle_egress_ip: netpool::host(&egress_subnet, BUNDLE_HOST),
            agent_ip: netpool::host(&agent_subnet, AGENT_HOST),
            agent_subnet,
            egress_subnet,
        }
    }

    /// Reads the placement of an existing bottle back from its networks' labels.
    pub async fn find(docker: &Docker, backend: BackendKind, name: &str) -> anyhow::Result<Option<Self>> {
        let mut agent = None;
        let mut egress = None;
        for n in list_networks(docker, backend, Some(name)).await? {
            let l = n.labels.unwrap_or_default();
            let subnet = l.get(labels::SUBNET).and_then(|s| s.parse::<Ipv4Net>().ok()).zip(n.id);
            match l.get(labels::ROLE).map(String::as_str) {
                Some(labels::ROLE_AGENT_NET) => agent = subnet,
                Some(labels::ROLE_EGRESS_NET) => egress = subnet,
                _ => {}
            }
        }
        Ok(agent.zip(egress).map(|(a, e)| Self::new((a.1, a.0), (e.1, e.0))))
    }
}

/// Whether the host keeps its (gateway) address on the agent network of `backend`.
///
/// Docker: no. The agent is a container on that bridge, and a host address there is a
/// way to every host service listening on 0.0.0.0. smolmachines: yes. The only container
/// on the bridge is the bundle; the agent is a VM whose traffic smolvm's network stack
/// opens from the host, which can reach `<bundle-ip>` only through an address of its own
/// on the bridge. The VM's allowlist is `<bundle-ip>/32`, so the gateway address stays
/// out of the VM's reach; the bundle's egress refuses private addresses, the gateway's too.
pub fn host_on_agent_net(backend: BackendKind) -> bool {
    backend == BackendKind::Smolmachines
}

pub async fn list_networks(
    docker: &Docker,
    backend: BackendKind,
    name: Option<&str>,
) -> anyhow::Result<Vec<bollard::models::Network>> {
    let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
        .filters(&labels::filter(backend, name))
        .build();
    docker.list_networks(Some(options)).await.context("docker: listing networks")
}

/// Every IPv4 subnet in use: the engine's networks and the host's routes.
pub async fn taken_subnets(docker: &Docker) -> anyhow::Result<Vec<Ipv4Net>> {
    let networks = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .context("docker: listing networks")?;
    let mut taken: Vec<Ipv4Net> = networks
        .into_iter()
        .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
        .filter_map(|c| c.subnet.and_then(|s| s.parse().ok()))
        .collect();
    taken.extend(netpool::host_routes());
    Ok(taken)
}

/// Creates both networks of bottle `name` on subnets claimed under this user's pool lock
/// (see `subnet_claims`; across users, the engine's overlap refusal decides).
pub async fn create_networks(
    docker: &Docker,
    pool: &NetPool,
    backend: BackendKind,
    name: &str,
    progress: &dyn Progress,
) -> anyhow::Result<Placement> {
    progress.step("picking subnets and creating the bottle's networks");
    let agent_net = labels::object_name(name, labels::ROLE_AGENT_NET);
    let egress_net = labels::object_name(name, labels::ROLE_EGRESS_NET);
    // Two subnets claimed at once, then both networks created side by side, outside the lock:
    // each create waits on the engine's bridge and firewall setup.
    let [first, second] = claim(docker, pool, &[]).await?;
    let agent_labels = labels::base(backend, name, labels::ROLE_AGENT_NET);
    let egress_labels = labels::base(backend, name, labels::ROLE_EGRESS_NET);
    let (agent, egress) = tokio::try_join!(
        create_one(docker, pool, &agent_labels, &agent_net, backend, first, second),
        create_one(docker, pool, &egress_labels, &egress_net, backend, second, first),
    )?;
    Ok(Placement::new(agent, egress))
}

/// Claims the `N` first subnets that no network, host route, live claim or `avoid` overlaps.
async fn claim<const N: usize>(docker: &Docker, pool: &NetPool, avoid: &[Ipv4Net]) -> anyhow::Result<[Ipv4Net; N]> {
    let _lock = PoolLock::acquire().await?;
    let file = subnet_claims::path();
    let mut taken = taken_subnets(docker).await?;
    taken.extend(subnet_claims::live(&file));
    taken.extend_from_slice(avoid);
    let picked: Vec<Ipv4Net> = pool.free(&taken).take(N).collect();
    let picked: [Ipv4Net; N] = picked.try_into().map_err(|_| pool_full(pool))?;
    subnet_claims::add(&file, &picked)?;
    Ok(picked)
}

fn pool_full(pool: &NetPool) -> anyhow::Error {
    anyhow::anyhow!(
        "network: subnet pool {} has no two free /{} left; set {} to a larger or different range",
        pool.pool,
        pool.prefix,
        netpool::POOL_ENV
    )
}

/// Creates one network on `first`, or, if the engine refuses it as taken meanwhile, on the
/// next free subnet other than `other`'s (the twin network's first pick); returns its id and subnet.
async fn create_one(
    docker: &Docker,
    pool: &NetPool,
    labels: &HashMap<String, String>,
    net: &str,
    backend: BackendKind,
    first: Ipv4Net,
    other: Ipv4Net,
) -> anyhow::Result<(String, Ipv4Net)> {
    let mut refused = vec![other];
    let mut subnet = first;
    for _ in 0..MAX_PICK_ATTEMPTS {
        match docker.create_network(request(labels, net, subnet, backend)).await {
            Ok(created) => return Ok((created.id, subnet)),
            Err(e) if is_overlap(&e) => refused.push(subnet),
            Err(e) => return Err(e).with_context(|| format!("network: creating {net} on {subnet}")),
        }
        [subnet] = claim::<1>(docker, pool, &refused).await?;
    }
    anyhow::bail!("network: creating {net}: {MAX_PICK_ATTEMPTS} subnets in a row were taken by others meanwhile")
}

fn is_overlap(e: &bollard::errors::Error) -> bool {
    let s = e.to_string();
    s.contains("overlaps") || s.contains("Pool overlaps")
}

fn request(labels: &HashMap<String, String>, net: &str, subnet: Ipv4Net, backend: BackendKind) -> NetworkCreateRequest {
    let internal = labels.get(labels::ROLE).map(String::as_str) == Some(labels::ROLE_AGENT_NET);
    let mut all = labels.clone();
    all.insert(labels::SUBNET.into(), subnet.to_string());
    let mut options = HashMap::new();
    if internal && !host_on_agent_net(backend) {
        options.insert("com.docker.network.bridge.inhibit_ipv4".to_string(), "true".to_string());
    }
    NetworkCreateRequest {
        name: net.to_string(),
        driver: Some("bridge".into()),
        internal: Some(internal),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig { subnet: Some(subnet.to_string()), ..Default::default() }]),
            ..Default::default()
        }),
        options: Some(options),
        labels: Some(all),
        ..Default::default()
    }
}

/// Removes every network labelled with `name`; returns whether there was any.
pub async fn remove_networks(docker: &Docker, backend: BackendKind, name: &str) -> anyhow::Result<bool> {
    let networks = list_networks(docker, backend, Some(name)).await?;
    let found = !networks.is_empty();
    // Side by side: each removal waits on the engine's own firewall and bridge teardown.
    let removals =
        networks.iter().filter_map(|n| n.id.as_deref().map(|id| (id, n.name.as_deref().unwrap_or_default())));
    futures_util::future::try_join_all(removals.map(|(id, shown)| async move {
        match docker.remove_network(id).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("network: removing {shown}")),
        }
    }))
    .await?;
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn placement() -> Placement {
        Placement::new(
            ("agent-id".into(), "10.213.0.0/28".parse().unwrap()),
            ("egress-id".into(), "10.213.0.16/28".parse().unwrap()),
        )
    }

    #[test]
    fn placement_pins_bundle_and_agent_hosts() {
        let p = placement();
        assert_eq!(p.bundle_ip.to_string(), "10.213.0.2");
        assert_eq!(p.agent_ip.to_string(), "10.213.0.3");
        assert_eq!(p.bundle_egress_ip.to_string(), "10.213.0.18");
    }

    #[test]
    fn only_the_agent_network_is_internal_and_gatewayless() {
        let base = |role| labels::base(BackendKind::Docker, "b", role);
        let a = request(&base(labels::ROLE_AGENT_NET), "n", "10.213.0.0/28".parse().unwrap(), BackendKind::Docker);
        assert_eq!(a.internal, Some(true));
        assert_eq!(a.options.unwrap()["com.docker.network.bridge.inhibit_ipv4"], "true");
        assert_eq!(a.labels.unwrap()[labels::SUBNET], "10.213.0.0/28");
        let e = request(&base(labels::ROLE_EGRESS_NET), "n", "10.213.0.16/28".parse().unwrap(), BackendKind::Docker);
        assert_eq!(e.internal, Some(false));
        assert!(e.options.unwrap().is_empty());
    }

    #[test]
    fn smolmachines_agent_network_is_internal_but_the_host_keeps_its_address() {
        let l = labels::base(BackendKind::Smolmachines, "b", labels::ROLE_AGENT_NET);
        let a = request(&l, "n", "10.213.0.0/28".parse().unwrap(), BackendKind::Smolmachines);
        assert_eq!(a.internal, Some(true));
        assert!(a.options.unwrap().is_empty(), "no inhibit_ipv4: smolvm dials the bundle from the host");
    }
}
