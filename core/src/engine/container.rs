//! Every container bottle makes goes through here: the agent, the bundle and the
//! escape suite's canaries. So the lock-down is written once, and a new kind of
//! container cannot be made without choosing its [`Guard`].
//!
//! A bottle's own containers run what the agent may attack: the agent's code
//! itself, and the bundle it talks to. They get no capabilities, no privilege
//! gain and hard limits, and they come back after a daemon or host restart
//! unless `down` stopped them. Every container, a canary included, logs
//! through the engine's rotated files: the bundle logs each refusal, the agent
//! writes whatever it likes to its output, and a canary logs every contact,
//! all of it the agent's to provoke, so none may fill the host's disk.

use std::collections::HashMap;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions};

/// The engine's log driver for every container bottle makes: rotated files of
/// [`LOG_MAX_SIZE`], [`LOG_MAX_FILES`] kept. The bundle's own rate limit keeps a
/// flood from rotating real lines away in seconds.
pub const LOG_DRIVER: &str = "json-file";
pub const LOG_MAX_SIZE: &str = "10m";
pub const LOG_MAX_FILES: &str = "3";

/// A hardened container's hard limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: i64,
    pub pids: i64,
    /// CPU in billionths of a CPU; `None` leaves the engine's default (all of them).
    pub nano_cpus: Option<i64>,
    /// The share of CPU time under contention, relative to the engine's default of 1024;
    /// `None` leaves that default.
    pub cpu_shares: Option<i64>,
}

/// How far a container is locked down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guard {
    /// A bottle's own container (the agent, the bundle): hardened, within `Limits`, restarted.
    Bottle(Limits),
    /// A listener the escape suite aims its probes at: the agent never runs in it, and it
    /// lives for one run, so it gets the rotated log alone.
    Canary,
}

impl Guard {
    /// `host` with this guard's settings written over whatever it held for them.
    fn apply(self, host: HostConfig) -> HostConfig {
        let host = HostConfig { log_config: Some(rotated_log()), ..host };
        match self {
            Guard::Canary => host,
            Guard::Bottle(limits) => HostConfig {
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(limits.memory_bytes),
                pids_limit: Some(limits.pids),
                nano_cpus: limits.nano_cpus,
                cpu_shares: limits.cpu_shares,
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..host
            },
        }
    }
}

fn rotated_log() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some(LOG_DRIVER.into()),
        config: Some(HashMap::from([
            ("max-size".into(), LOG_MAX_SIZE.into()),
            ("max-file".into(), LOG_MAX_FILES.into()),
        ])),
    }
}

/// A network endpoint at a pinned address: the bundle config names its peers' addresses before either starts.
pub fn pinned(ip: String) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(ip), ..Default::default() }),
        ..Default::default()
    }
}

/// One container to make.
pub struct Container<'a> {
    /// Who makes it, as errors name it (`agent`, `bundle`, `verify`).
    pub owner: &'a str,
    pub name: &'a str,
    /// What the container is; the guard's settings are written over its host config.
    pub body: ContainerCreateBody,
    pub guard: Guard,
}

/// Makes the container, not started; returns its id.
pub async fn create(docker: &Docker, c: Container<'_>) -> anyhow::Result<String> {
    let Container { owner, name, mut body, guard } = c;
    body.host_config = Some(guard.apply(body.host_config.unwrap_or_default()));
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let created =
        docker.create_container(Some(options), body).await.with_context(|| format!("{owner}: creating {name}"))?;
    Ok(created.id)
}

/// Starts a created container.
pub async fn start(docker: &Docker, owner: &str, name: &str) -> anyhow::Result<()> {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .with_context(|| format!("{owner}: starting {name}"))
}

/// [`create`], then [`start`].
pub async fn create_and_start(docker: &Docker, c: Container<'_>) -> anyhow::Result<()> {
    let (owner, name) = (c.owner, c.name);
    create(docker, c).await?;
    start(docker, owner, name).await
}

/// Removes a container, running or not, with its anonymous volumes; one already gone is no error.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bottle_s_container_is_hardened_whatever_its_body_said() {
        let limits =
            Limits { memory_bytes: 256 << 20, pids: 128, nano_cpus: Some(500_000_000), cpu_shares: Some(2048) };
        let asked = HostConfig {
            cap_drop: Some(vec![]),
            security_opt: Some(vec![]),
            network_mode: Some("net".into()),
            ..Default::default()
        };
        let host = Guard::Bottle(limits).apply(asked);
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!((host.memory, host.pids_limit, host.nano_cpus), (Some(256 << 20), Some(128), Some(500_000_000)));
        assert_eq!(host.cpu_shares, Some(2048));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(host.log_config.unwrap().typ.as_deref(), Some(LOG_DRIVER));
        assert_eq!(host.network_mode.as_deref(), Some("net"), "the body's own settings stay");
    }

    #[test]
    fn a_canary_gets_the_rotated_log_and_nothing_else() {
        let host = Guard::Canary.apply(HostConfig::default());
        let config = host.log_config.clone().unwrap().config.unwrap();
        assert_eq!(config["max-size"], LOG_MAX_SIZE);
        assert_eq!(config["max-file"], LOG_MAX_FILES);
        assert_eq!(HostConfig { log_config: None, ..host }, HostConfig::default());
    }
}
