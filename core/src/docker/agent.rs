//! The agent container: on the internal agent network only, every way out through the bundle.
//!
//! Its proxy variables name the bundle's pinned address (with that address and the
//! agent's own loopback in `NO_PROXY`, see [`sidecar::no_proxy`]), and git is
//! pointed at the gate through `GIT_CONFIG_*` variables: those need no file in
//! the image and so work for any agent image. It gets no Docker socket, no
//! capabilities, no privilege gain, hard limits, a non-root user whatever the
//! image's `USER` says (unless `[agent] run_as_image_user` opts out), and, for
//! bottle's own image, a read-only root with tmpfs for `/tmp` and the home directory. The static
//! `bottle-probe` is bind-mounted read-only at `PROBE_IN_AGENT` so the start
//! check and the escape suite need nothing from the agent's image.

use std::collections::HashMap;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkingConfig};
use bottle_protocol::config::DEFAULT_PROXY_PORT;

use crate::backend::BackendKind;
use crate::engine::container::{Container, Guard, Limits, create_and_start, pinned};
use crate::images::{AGENT_HOME, PROBE_IN_AGENT, agent_ids};
use crate::sidecar::{self, Placement, labels};
use crate::spec::Spec;

/// Size cap for each tmpfs the agent gets.
pub const TMPFS_SIZE: &str = "512m";
/// Agent command when the spec names none: stay up so `exec` has somewhere to run.
const IDLE_COMMAND: [&str; 2] = ["sleep", "infinity"];

/// The environment that routes the agent through its bundle.
pub fn network_env(spec: &Spec, p: &Placement) -> Vec<(String, String)> {
    let proxy = format!("http://{}:{DEFAULT_PROXY_PORT}", p.bundle_ip);
    let mut env: Vec<(String, String)> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .iter()
        .map(|k| (k.to_string(), proxy.clone()))
        .collect();
    for k in ["NO_PROXY", "no_proxy"] {
        env.push((k.into(), sidecar::no_proxy(p.bundle_ip.into())));
    }
    env.extend(sidecar::gate_env(spec, p.bundle_ip.into()));
    env
}

pub async fn create_agent(
    docker: &Docker,
    spec: &Spec,
    p: &Placement,
    image: &str,
    probe: &std::path::Path,
    api_env: Vec<(String, String)>,
) -> anyhow::Result<String> {
    let container = labels::object_name(&spec.name, labels::ROLE_AGENT);
    let own_image = spec.image.is_bottles_own();
    let agent_image = matches!(spec.image, crate::spec::ImageSource::Agent(_));
    let (uid, gid) = agent_ids(spec);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(network_env(spec, p).into_iter().chain(api_env).map(|(k, v)| format!("{k}={v}")));
    if own_image {
        env.push(format!("HOME={AGENT_HOME}"));
    }
    let mut l = labels::base(BackendKind::Docker, &spec.name, labels::ROLE_AGENT);
    l.insert(labels::ALLOW.into(), serde_json::to_string(&spec.allow)?);
    l.insert(labels::WORKSPACE.into(), spec.workspace.display().to_string());
    l.insert(labels::BUNDLE_IP.into(), p.bundle_ip.to_string());
    if spec.run_as_image_user {
        l.insert(labels::IMAGE_USER.into(), "true".into());
    }
    let tmpfs = |extra: &str| format!("rw,nosuid,nodev,size={TMPFS_SIZE}{extra}");
    let mut mounts =
        HashMap::from([("/tmp".to_string(), tmpfs(",mode=1777")), ("/var/tmp".into(), tmpfs(",mode=1777"))]);
    if own_image {
        mounts.insert(AGENT_HOME.into(), tmpfs(&format!(",uid={uid},gid={gid},mode=0700")));
    }
    let cmd = if !spec.command.is_empty() {
        Some(spec.command.clone())
    } else if own_image || !image_has_command(docker, image).await? {
        Some(IDLE_COMMAND.iter().map(|s| s.to_string()).collect())
    } else {
        None
    };
    let body = ContainerCreateBody {
        image: Some(image.into()),
        hostname: Some(spec.name.clone()),
        user: (!spec.run_as_image_user).then(|| format!("{uid}:{gid}")),
        // An agent's own program (`claude`) is interactive: given a terminal it waits for its user
        // (`docker attach`), where without one it would exit at once and restart forever.
        tty: Some(agent_image),
        open_stdin: Some(agent_image),
        env: Some(env),
        cmd,
        working_dir: Some(spec.workdir.clone()),
        labels: Some(l),
        host_config: Some(HostConfig {
            network_mode: Some(p.agent_net.clone()),
            binds: Some(vec![
                format!("{}:{}:rw", spec.workspace.display(), spec.workdir),
                format!("{}:{PROBE_IN_AGENT}:ro", probe.display()),
            ]),
            readonly_rootfs: Some(own_image),
            tmpfs: Some(mounts),
            init: Some(true),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(p.agent_net.clone(), pinned(p.agent_ip.to_string()))])),
        }),
        ..Default::default()
    };
    let limits = Limits {
        memory_bytes: (spec.resources.memory_mib * 1024 * 1024) as i64,
        pids: spec.resources.pids as i64,
        nano_cpus: Some((spec.resources.cpus * 1e9) as i64),
        cpu_shares: None,
    };
    let agent = Container { owner: "agent", name: &container, body, guard: Guard::Bottle(limits) };
    create_and_start(docker, agent).await?;
    Ok(container)
}

/// Whether the agent was made to run as its image's own user (`[agent] run_as_image_user`).
pub fn runs_as_image_user(agent: Option<&bollard::models::ContainerSummary>) -> bool {
    agent.and_then(|a| a.labels.as_ref()?.get(labels::IMAGE_USER)).is_some_and(|v| v == "true")
}

/// `status`'s detail, noting an agent that runs as its image's user (possibly root).
pub fn user_note(opted_out: bool, detail: String) -> String {
    if !opted_out {
        return detail;
    }
    let note = "the agent runs as its image's own user, possibly root ([agent] run_as_image_user)";
    if detail.is_empty() { note.into() } else { format!("{detail}; {note}") }
}

/// Whether the image says what to run (an imported rootfs, or a build from one, says nothing).
async fn image_has_command(docker: &Docker, image: &str) -> anyhow::Result<bool> {
    let config = docker.inspect_image(image).await.with_context(|| format!("agent: inspecting {image}"))?.config;
    let set = |v: Option<Vec<String>>| v.is_some_and(|v| !v.is_empty());
    Ok(config.is_some_and(|c| set(c.cmd) || set(c.entrypoint)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RepoSpec;

    #[test]
    fn proxies_name_the_bundle_and_git_upstreams_are_rewritten_to_the_gate() {
        let mut spec = crate::sidecar::config::tests::spec("b");
        spec.git.repos.push(RepoSpec {
            alias: "app".into(),
            upstream: "https://git.example.test/org/app.git".into(),
            fetch: true,
            push: vec![],
            protected: vec![],
            tags: false,
            push_options: vec![],
        });
        let env: HashMap<_, _> = network_env(&spec, &crate::sidecar::network::tests::placement()).into_iter().collect();
        assert_eq!(env["https_proxy"], "http://10.213.0.2:3128");
        assert_eq!(env["NO_PROXY"], "localhost,127.0.0.1,::1,10.213.0.2");
        assert_eq!(env["no_proxy"], env["NO_PROXY"]);
        assert_eq!(env["GIT_CONFIG_COUNT"], "2");
        assert_eq!(env["GIT_CONFIG_KEY_1"], "url.http://10.213.0.2:9418/app.git.insteadOf");
        assert_eq!(env["GIT_CONFIG_VALUE_1"], "https://git.example.test/org/app.git");
    }
}
