//! The canaries the suite stands up on this machine, and tears down after.
//!
//! A probe that believes it was blocked proves little; a canary that logged
//! no contact proves more. So every destination a probe aims at is a
//! listener the suite owns and reads back: `bottle-probe canary` on host
//! loopback and on all host interfaces (child processes), an "outside"
//! container from the probe image on a dual-stack Docker network of its own
//! (the internet, with TCP 22/53/80/443/8080, UDP and DNS on 53, on an RFC
//! 1918 address and a ULA address), and the
//! metadata address 169.254.169.254 inside a network namespace the suite
//! creates, routed from the host by that /32 alone. Nothing here ever talks
//! to a real outside address or the machine's resolver.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Ipam, IpamConfig, NetworkCreateRequest};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use crate::engine::container::{self, Container, Guard, create_and_start};
use crate::engine::logs::logs_tail;
use crate::netpool;

/// Label on every Docker object the suite makes (value: the run id), so leftovers can be found.
pub const VERIFY_LABEL: &str = "dev.bottle.verify";
/// The metadata address clouds serve credentials on.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The host side of the metadata namespace's point-to-point link.
const METADATA_PEER: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);
/// How long a run waits for another run to release the metadata address before reporting it not-run.
const METADATA_LOCK_WAIT: Duration = Duration::from_secs(90);
/// How long a canary may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines read back from the outside canary.
const OUTSIDE_LOG_LINES: usize = 100_000;
/// The outside canary's raw TCP ports (80 serves HTTP), and its UDP/DNS port.
pub const OUTSIDE_TCP: [u16; 4] = [22, 53, 443, 8080];
pub const OUTSIDE_HTTP: u16 = 80;
pub const OUTSIDE_DNS: u16 = 53;

/// One contact a canary logged.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Contact {
    pub canary: String,
    pub proto: String,
    pub port: u16,
    pub peer: String,
    pub detail: String,
}

fn contacts_from(text: &str) -> Vec<Contact> {
    text.lines().filter_map(|l| serde_json::from_str::<Contact>(l.trim()).ok()).filter(|c| c.proto != "ready").collect()
}

/// A `bottle-probe canary` running on the host (or in the metadata namespace).
pub struct HostCanary {
    pub port: u16,
    /// Held so the canary dies with this value (`kill_on_drop`).
    _child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl HostCanary {
    /// Runs the probe's canary mode, under `wrapper` (e.g. `ip netns exec NS`) when given.
    async fn start(wrapper: &[String], probe: &Path, name: &str, bind: &str, port: u16) -> anyhow::Result<Self> {
        let mut argv: Vec<std::ffi::OsString> = wrapper.iter().map(Into::into).collect();
        argv.push(probe.into());
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["canary", name, bind, "--tcp", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("verify: starting canary {name}"))?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
        if !matches!(&ready, Ok(Ok(Some(l))) if l.contains("\"ready\"")) {
            anyhow::bail!("verify: canary {name} on {bind}:{port} did not start ({ready:?})");
        }
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let mut s = sink.lock().expect("canary log");
                s.push_str(&l);
                s.push('\n');
            }
        });
        Ok(Self { port, _child: child, log })
    }

    pub fn contacts(&self) -> Vec<Contact> {
        contacts_from(&self.log.lock().expect("canary log"))
    }
}

/// The "internet": a probe-image container on an internal network of its own.
pub struct Outside {
    pub network: String,
    pub container: String,
    pub ip: Ipv4Addr,
    /// Its ULA address, or why the engine would not make an IPv6 network here.
    pub ula: Result<Ipv6Addr, String>,
}

/// The metadata namespace and its canary.
pub struct Metadata {
    ns: String,
    veth: String,
    pub canary: HostCanary,
    _lock: std::fs::File,
}

pub struct World {
    docker: Docker,
    pub id: String,
    pub outside: Outside,
    pub host_lo: HostCanary,
    pub host_all: HostCanary,
    /// The metadata canary, or why it could not be made here.
    pub metadata: Result<Metadata, String>,
}

fn free_port(bind: &str) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((bind, 0)).context("verify: picking a free port")?.local_addr()?.port())
}

impl World {
    pub async fn start(docker: &Docker, probe_image: &str, probe: &Path, with_metadata: bool) -> anyhow::Result<Self> {
        let id = format!("{}-{:04x}", std::process::id(), rand::random::<u16>());
        let outside = start_outside(docker, &id, probe_image).await;
        let outside = match outside {
            Ok(o) => o,
            Err(e) => {
                remove_outside(docker, &id).await;
                return Err(e);
            }
        };
        let hosts = async {
            let lo = HostCanary::start(&[], probe, "host-loopback", "127.0.0.1", free_port("127.0.0.1")?).await?;
            // `::` also takes IPv4: one canary for every host address, link-local ones included.
            let all = HostCanary::start(&[], probe, "host-all", "::", free_port("::")?).await?;
            anyhow::Ok((lo, all))
        };
        let (host_lo, host_all) = match hosts.await {
            Ok(h) => h,
            Err(e) => {
                remove_outside(docker, &id).await;
                return Err(e);
            }
        };
        let metadata = if with_metadata {
            start_metadata(&id, probe).await.map_err(|e| format!("{e:#}"))
        } else {
            Err("not needed by the chosen categories".into())
        };
        Ok(Self { docker: docker.clone(), id, outside, host_lo, host_all, metadata })
    }

    /// Every contact the outside canary logged so far.
    pub async fn outside_contacts(&self) -> Vec<Contact> {
        let text = logs_tail(&self.docker, &self.outside.container, OUTSIDE_LOG_LINES).await.unwrap_or_default();
        contacts_from(&text)
    }

    pub async fn stop(self) {
        remove_outside(&self.docker, &self.id).await;
        drop(self.metadata);
    }
}

/// Even a panicking test leaves no namespace or veth behind.
impl Drop for Metadata {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.veth]).output();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn names(id: &str) -> (String, String) {
    // Sorts before any bottle's egress network: Docker 20.10 picks a container's gateway
    // network by name, and the bundle must keep its own.
    let network = format!("bottle-0verify-{id}");
    let container = format!("{network}-outside");
    (network, container)
}

async fn start_outside(docker: &Docker, id: &str, image: &str) -> anyhow::Result<Outside> {
    let (network, container) = names(id);
    let labels = HashMap::from([(VERIFY_LABEL.to_string(), id.to_string())]);
    let ipv4_only = NetworkCreateRequest {
        name: network.clone(),
        internal: Some(true),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let dual_stack = NetworkCreateRequest {
        enable_ipv6: Some(true),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig { subnet: Some(ula_subnet(id)), ..Default::default() }]),
            ..Default::default()
        }),
        ..ipv4_only.clone()
    };
    // A host without IPv6 still gets the IPv4 canary; the ULA probe then says why it did not run.
    let ipv6 = match docker.create_network(dual_stack).await {
        Ok(_) => Ok(()),
        Err(e) => {
            docker.create_network(ipv4_only).await.with_context(|| format!("verify: creating network {network}"))?;
            Err(format!("the engine made no IPv6 network: {e}"))
        }
    };
    let tcp = OUTSIDE_TCP.map(|p| p.to_string()).join(",");
    // `::` takes IPv4 too (as v4-mapped), so one canary serves both address families.
    let cmd = ["canary", "outside", "::", "--tcp", &tcp, "--http", &OUTSIDE_HTTP.to_string()];
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).chain(["--dns".into(), OUTSIDE_DNS.to_string()]).collect();
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(cmd),
        labels: Some(labels),
        host_config: Some(HostConfig { network_mode: Some(network.clone()), ..Default::default() }),
        ..Default::default()
    };
    create_and_start(docker, Container { owner: "verify", name: &container, body, guard: Guard::Canary }).await?;
    let inspect = docker.inspect_container(&container, None).await?;
    let endpoint = inspect.network_settings.and_then(|n| n.networks).and_then(|mut n| n.remove(&network));
    let endpoint = endpoint.with_context(|| format!("verify: {container} is not on {network}"))?;
    let ip = endpoint
        .ip_address
        .and_then(|ip| ip.parse().ok())
        .with_context(|| format!("verify: {container} got no address"))?;
    let ula = ipv6.and_then(|()| {
        let v6 = endpoint.global_ipv6_address.unwrap_or_default();
        v6.parse().map_err(|_| format!("{container} got no IPv6 address ({v6:?})"))
    });
    for _ in 0..100 {
        let logs = logs_tail(docker, &container, 10).await.unwrap_or_default();
        if logs.contains("\"ready\"") {
            return Ok(Outside { network, container, ip, ula });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("verify: the outside canary {container} did not become ready in 5 s")
}

/// A /64 in fd62:b077::/32 drawn from the run id, so concurrent runs do not collide.
fn ula_subnet(id: &str) -> String {
    let h = Sha256::digest(id.as_bytes());
    format!("fd62:b077:{:02x}{:02x}:{:02x}{:02x}::/64", h[0], h[1], h[2], h[3])
}

async fn remove_outside(docker: &Docker, id: &str) {
    let (network, container) = names(id);
    let _ = container::remove(docker, &container).await;
    let _ = docker.remove_network(&network).await;
}

async fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ip").args(args).output().await.context("verify: running ip")?;
    if !out.status.success() {
        anyhow::bail!("verify: ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A namespace holding 169.254.169.254 with a canary on :80, reached from the host over one veth.
/// Host-wide lock: two suites cannot both own the metadata address.
async fn start_metadata(id: &str, probe: &Path) -> anyhow::Result<Metadata> {
    let lock_path = netpool::run_dir().join("verify-metadata.lock");
    let deadline = tokio::time::Instant::now() + METADATA_LOCK_WAIT;
    let lock = loop {
        if let Some(l) = netpool::lock_file(&lock_path, false)? {
            break l;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("verify: another verify run held the metadata address for {METADATA_LOCK_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ns = format!("bottle-verify-{id}");
    let tag: String = id.chars().filter(char::is_ascii_alphanumeric).rev().take(8).collect();
    let (veth, inner) = (format!("bvh{tag}"), format!("bvn{tag}"));
    let (peer, meta) = (format!("{METADATA_PEER}/32"), format!("{METADATA_IP}/32"));
    let steps: Vec<Vec<&str>> = vec![
        vec!["netns", "add", &ns],
        vec!["link", "add", &veth, "type", "veth", "peer", "name", &inner],
        vec!["link", "set", &inner, "netns", &ns],
        vec!["addr", "add", &peer, "peer", &meta, "dev", &veth],
        vec!["link", "set", &veth, "up"],
        vec!["-n", &ns, "addr", "add", &meta, "peer", &peer, "dev", &inner],
        vec!["-n", &ns, "link", "set", &inner, "up"],
        vec!["-n", &ns, "link", "set", "lo", "up"],
    ];
    let made = async {
        for s in &steps {
            ip(s).await?;
        }
        let program = ["ip".to_string(), "netns".into(), "exec".into(), ns.clone()];
        HostCanary::start(&program, probe, "metadata", &METADATA_IP.to_string(), 80).await
    }
    .await;
    match made {
        Ok(canary) => Ok(Metadata { ns, veth, canary, _lock: lock }),
        Err(e) => {
            let _ = ip(&["link", "del", &veth]).await;
            let _ = ip(&["netns", "del", &ns]).await;
            Err(e)
        }
    }
}
