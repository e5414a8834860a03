//! The bundle container: the bottle's one way out.
//!
//! It starts on its own egress network at a pinned address (where the control
//! plane listens, published to the host's 127.0.0.1 only), then joins the
//! agent network at the pinned bundle address. Its files are uploaded into it
//! before start, owned by the bundle's user with mode 0400, so they exist in
//! exactly one place: this container. Its root filesystem stays writable for
//! that reason only; the image is `FROM scratch` with nothing to run but the bundle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, HostConfig, NetworkConnectRequest,
    NetworkingConfig, PortBinding,
};
use bottle_protocol::config::DEFAULT_CONTROL_PORT;

use super::config::{BundleFile, DIR, Rendered, SidecarOptions, TOKEN_PATH};
use super::host_copy::{self, Kept};
use super::labels;
use super::network::Placement;
use crate::backend::{BackendKind, ControlEndpoint};
use crate::control_client::ControlClient;
use crate::engine::container::{Container, Guard, Limits, create, pinned, start};
use crate::engine::logs::logs_tail;

/// The bundle's uid/gid (`nobody`): it owns its files and binds only unprivileged ports.
pub const BUNDLE_UID: u64 = 65534;
/// How long a started bundle may take to bind its listeners.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Short, because `up` waits on it: the bundle usually listens within tens of milliseconds.
const READY_POLL: Duration = Duration::from_millis(20);
/// Small fixed limits: the bundle is a proxy, not a workload. Its CPU weight is four times
/// the agent's: the agent can keep every core busy (a flood of connections to the bundle
/// included), and the bundle's answers to the agent's other requests, and the host's control
/// calls, must not wait behind that.
pub const LIMITS: Limits =
    Limits { memory_bytes: 512 * 1024 * 1024, pids: 256, nano_cpus: None, cpu_shares: Some(4 * 1024) };

fn control_port_key() -> String {
    format!("{DEFAULT_CONTROL_PORT}/tcp")
}

/// What one bundle is made of.
pub struct BundleRequest<'a> {
    pub backend: BackendKind,
    pub name: &'a str,
    pub placement: &'a Placement,
    pub image: &'a str,
    pub rendered: &'a Rendered,
    pub options: &'a SidecarOptions,
}

/// The bundle's container, on its networks (its pinned addresses taken) and with its
/// files, but not started: the agent may be created once this returns.
pub async fn create_bundle(docker: &Docker, req: BundleRequest<'_>) -> anyhow::Result<()> {
    let BundleRequest { backend, name, placement, image, rendered, options } = req;
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let mut l = labels::base(backend, name, labels::ROLE_BUNDLE);
    l.insert(labels::BUNDLE_IP.into(), placement.bundle_ip.to_string());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(l),
        exposed_ports: Some(vec![control_port_key()]),
        host_config: Some(HostConfig {
            network_mode: Some(placement.egress_net.clone()),
            port_bindings: Some(HashMap::from([(
                control_port_key(),
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
            )])),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                placement.egress_net.clone(),
                pinned(placement.bundle_egress_ip.to_string()),
            )])),
        }),
        ..Default::default()
    };
    let id =
        create(docker, Container { owner: "bundle", name: &container, body, guard: Guard::Bottle(LIMITS) }).await?;
    if let Some(token) = rendered.files.iter().find(|f| f.path == TOKEN_PATH) {
        host_copy::keep(&id, Kept::ControlToken, &token.contents);
    }
    // Joining networks and writing files touch different parts of the created container: at once.
    let files = write_files(docker, name, rendered.files.clone());
    tokio::try_join!(join_networks(docker, &container, placement, options), files)?;
    Ok(())
}

/// The agent network at the pinned bundle address, then any canary networks.
async fn join_networks(
    docker: &Docker,
    container: &str,
    placement: &Placement,
    options: &SidecarOptions,
) -> anyhow::Result<()> {
    let join = |ip: Option<String>| NetworkConnectRequest {
        container: container.to_string(),
        endpoint_config: Some(ip.map(pinned).unwrap_or_default()),
    };
    docker
        .connect_network(&placement.agent_net, join(Some(placement.bundle_ip.to_string())))
        .await
        .with_context(|| format!("bundle: joining {}", placement.agent_net))?;
    for net in &options.canary_networks {
        // Docker 20.10 publishes ports through the sandbox's gateway network, which is the
        // first non-internal network by name; an internal canary network can never take that
        // role from the egress network and send the control port somewhere nothing listens.
        let info = docker
            .inspect_network(net, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
            .with_context(|| format!("bundle: canary network {net}"))?;
        if info.internal != Some(true) {
            anyhow::bail!("bundle: canary network {net} must be created `--internal`");
        }
        docker.connect_network(net, join(None)).await.with_context(|| format!("bundle: joining {net}"))?;
    }
    Ok(())
}

/// Starts a created bundle and waits until its control plane answers the host.
pub async fn run_bundle(docker: &Docker, name: &str) -> anyhow::Result<()> {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    start(docker, "bundle", &container).await?;
    wait_ready(docker, name, &container).await
}

/// `etc/bottle/` and its files, owned by the bundle user, readable by it alone.
fn files_tar(files: &[BundleFile]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |mode: u32, size: usize, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_uid(BUNDLE_UID);
        h.set_gid(BUNDLE_UID);
        h.set_mode(mode);
        h.set_size(size as u64);
        h.set_entry_type(kind);
        h
    };
    let dir = DIR.trim_start_matches('/');
    b.append_data(&mut header(0o500, 0, tar::EntryType::Directory), format!("{dir}/"), &[][..])?;
    for f in files {
        let mut h = header(0o400, f.contents.len(), tar::EntryType::Regular);
        b.append_data(&mut h, f.path.trim_start_matches('/'), &f.contents[..])?;
    }
    Ok(b.into_inner()?)
}

/// Waits until the control plane answers a health call the way every later host call
/// reaches it: through its published loopback port, with the token (the bundle binds every
/// listener before serving any, so this means all are bound). The engine's port forwarder
/// accepts before the bundle listens, so only an answer counts; and the bundle's own address
/// is no way to ask, as Docker Desktop and colima do not route the host to containers.
/// Fails early with the bundle's own last words if it exits.
async fn wait_ready(docker: &Docker, name: &str, container: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = anyhow::anyhow!("not asked yet");
    while start.elapsed() < READY_TIMEOUT {
        let info = docker.inspect_container(container, None).await?;
        let state = info.state.clone().unwrap_or_default();
        if state.running != Some(true) {
            let logs = logs_tail(docker, container, 20).await.unwrap_or_default();
            anyhow::bail!("bundle: {container} exited (code {:?}) before listening:\n{logs}", state.exit_code);
        }
        let asked = async {
            let endpoint = endpoint(docker, name, info.id.as_deref(), published_port(&info)).await?;
            ControlClient::new(&endpoint)?.health().await
        };
        match asked.await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(READY_POLL).await;
    }
    anyhow::bail!("bundle: {container}'s control plane did not answer the host within {READY_TIMEOUT:?}: {last:#}")
}

/// The host's way to the bundle's control plane: the published loopback port, and the
/// token from its host copy (read out of the bundle, and copied, when there is none).
pub async fn control_endpoint(docker: &Docker, name: &str) -> anyhow::Result<ControlEndpoint> {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let info = docker.inspect_container(&container, None).await.with_context(|| format!("bottle {name}: no bundle"))?;
    endpoint(docker, name, info.id.as_deref(), published_port(&info)).await
}

/// The host's loopback port the engine forwards to the bundle's control plane, once started.
fn published_port(info: &ContainerInspectResponse) -> Option<u16> {
    let bindings = info.network_settings.as_ref()?.ports.as_ref()?.get(&control_port_key())?.as_ref()?;
    bindings.iter().find_map(|b| b.host_port.as_deref()?.parse().ok())
}

/// [`control_endpoint`] of every bottle in `names` from one listing of the engine's bundle
/// containers (`ls` of a hundred bottles would otherwise inspect each), in the same order.
pub async fn control_endpoints(
    docker: &Docker,
    backend: BackendKind,
    names: &[&str],
) -> anyhow::Result<Vec<anyhow::Result<ControlEndpoint>>> {
    let bundles: HashMap<String, ContainerSummary> = super::objects::containers(docker, backend, None)
        .await?
        .into_iter()
        .filter(|c| super::objects::role(c) == Some(labels::ROLE_BUNDLE))
        .filter_map(|c| Some((c.labels.as_ref()?.get(labels::NAME)?.clone(), c)))
        .collect();
    Ok(futures_util::future::join_all(names.iter().map(|name| listed_endpoint(docker, &bundles, name))).await)
}

/// [`control_endpoint`] of bottle `name` from a listing of bundle containers by bottle name.
async fn listed_endpoint(
    docker: &Docker,
    bundles: &HashMap<String, ContainerSummary>,
    name: &str,
) -> anyhow::Result<ControlEndpoint> {
    let bundle = bundles.get(name).with_context(|| format!("bottle {name}: no bundle"))?;
    let published = bundle.ports.iter().flatten().find(|p| p.private_port == DEFAULT_CONTROL_PORT && p.ip.is_some());
    endpoint(docker, name, bundle.id.as_deref(), published.and_then(|p| p.public_port)).await
}

/// The endpoint of bottle `name`'s bundle, container `id`, published on host port `port`.
async fn endpoint(docker: &Docker, name: &str, id: Option<&str>, port: Option<u16>) -> anyhow::Result<ControlEndpoint> {
    let port =
        port.with_context(|| format!("bottle {name}: the bundle's control port is not published (is it running?)"))?;
    let kept = id.and_then(|id| host_copy::load(id, Kept::ControlToken)).and_then(|t| String::from_utf8(t).ok());
    let token = match kept {
        Some(token) => token,
        None => {
            let container = labels::object_name(name, labels::ROLE_BUNDLE);
            let token = read_file(docker, &container, TOKEN_PATH).await?;
            if let Some(id) = id {
                let _ = host_copy::store(id, Kept::ControlToken, token.as_bytes(), false);
            }
            token
        }
    };
    Ok(ControlEndpoint { url: format!("http://127.0.0.1:{port}"), token })
}

/// Writes (replaces) small files in `/etc/bottle` of a created bundle: its config at `up`, the
/// start-check record after.
pub async fn write_files(docker: &Docker, name: &str, files: Vec<BundleFile>) -> anyhow::Result<()> {
    let container = labels::object_name(name, labels::ROLE_BUNDLE);
    let tar = tokio::task::spawn_blocking(move || files_tar(&files)).await??;
    let upload = bollard::query_parameters::UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(&container, Some(upload), bollard::body_full(tar.into()))
        .await
        .with_context(|| format!("bundle: writing files into {container}"))
}

/// Reads one small file out of a container (works on stopped containers too).
pub async fn read_file(docker: &Docker, container: &str, path: &str) -> anyhow::Result<String> {
    use futures_util::TryStreamExt;
    let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default().path(path).build();
    let chunks: Vec<bytes::Bytes> = docker
        .download_from_container(container, Some(options))
        .try_collect()
        .await
        .with_context(|| format!("bundle: reading {path} from {container}"))?;
    let tar = chunks.concat();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut entry = archive.entries()?.next().with_context(|| format!("bundle: {path} missing in {container}"))??;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut entry, &mut out)?;
    Ok(out)
}
