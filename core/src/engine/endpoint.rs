//! Which engine to talk to, found the way the `docker` CLI finds it.
//!
//! Docker Desktop, OrbStack and colima do not listen on `/var/run/docker.sock`;
//! each registers a docker *context* instead, which the CLI follows and
//! bollard's defaults do not. Order: `DOCKER_HOST`, then the context named by
//! `DOCKER_CONTEXT` or by `currentContext` in `$DOCKER_CONFIG/config.json`
//! (`~/.docker`), whose `contexts/meta/<sha256 of the name>/meta.json` holds
//! `Endpoints.docker.Host`; then the default socket.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Where the engine address came from (reported by `doctor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    DockerHost,
    Context(String),
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub source: Source,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::DockerHost => write!(f, "{} (DOCKER_HOST)", self.host),
            Source::Context(c) => write!(f, "{} (docker context {c:?})", self.host),
            Source::Default => write!(f, "{} (default socket)", self.host),
        }
    }
}

/// The endpoint from the process environment and the user's docker config.
pub fn discover() -> anyhow::Result<Endpoint> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config_dir =
        var("DOCKER_CONFIG").map(PathBuf::from).or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".docker")));
    resolve(var("DOCKER_HOST"), var("DOCKER_CONTEXT"), config_dir.as_deref())
}

fn resolve(
    docker_host: Option<String>,
    context: Option<String>,
    config_dir: Option<&Path>,
) -> anyhow::Result<Endpoint> {
    if let Some(host) = docker_host {
        return Ok(Endpoint { host, source: Source::DockerHost });
    }
    let context = match (context, config_dir) {
        (Some(c), _) => Some(c),
        (None, Some(dir)) => current_context(&dir.join("config.json"))?,
        (None, None) => None,
    };
    match (context, config_dir) {
        (Some(name), Some(dir)) if name != "default" => {
            let host = context_host(dir, &name)?;
            Ok(Endpoint { host, source: Source::Context(name) })
        }
        (Some(name), None) if name != "default" => {
            anyhow::bail!(
                "docker context {name:?} is selected but there is no docker config folder (set HOME or DOCKER_CONFIG)"
            )
        }
        _ => Ok(Endpoint { host: DEFAULT_HOST.into(), source: Source::Default }),
    }
}

/// `currentContext` of a docker `config.json`; a missing file means none.
fn current_context(config: &Path) -> anyhow::Result<Option<String>> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("docker: reading {}", config.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("docker: {} is not JSON", config.display()))?;
    Ok(v.get("currentContext").and_then(|c| c.as_str()).filter(|c| !c.is_empty()).map(str::to_string))
}

fn context_host(config_dir: &Path, name: &str) -> anyhow::Result<String> {
    let digest: String = Sha256::digest(name.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let meta = config_dir.join("contexts/meta").join(digest).join("meta.json");
    let text = std::fs::read_to_string(&meta)
        .with_context(|| format!("docker context {name:?}: reading {} (see `docker context ls`)", meta.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("docker context {name:?}: {} is not JSON", meta.display()))?;
    v.pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .with_context(|| format!("docker context {name:?}: {} has no Endpoints.docker.Host", meta.display()))
}

/// What to do when a unix socket endpoint does not answer, from trying to open it as this user.
pub fn socket_hint(host: &str) -> String {
    use std::io::ErrorKind;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(path) = host.strip_prefix("unix://") else {
        return "check that the engine at that address runs and accepts this client".into();
    };
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => "the socket accepts connections but no Docker API answered: (re)start the engine".into(),
        Err(e) if e.kind() == ErrorKind::NotFound => format!(
            "{path} does not exist: start an engine (Linux: scripts/install-docker.sh as root; macOS: OrbStack, colima or Docker Desktop), or point DOCKER_HOST or `docker context use` at one"
        ),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let me = rustix::process::geteuid().as_raw();
            let (mode, group) = std::fs::metadata(path)
                .map(|m| (m.permissions().mode() & 0o777, group_name(m.gid()).unwrap_or_else(|| m.gid().to_string())))
                .unwrap_or((0, "docker".into()));
            format!(
                "your user (uid {me}) may not open {path} (mode {mode:o}, group {group}): have an admin run `usermod -aG {group} <you>`, then log in again (or `newgrp {group}`); or set DOCKER_HOST to an engine you can reach"
            )
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            format!("{path} is left from an engine that no longer runs: start the engine again")
        }
        Err(e) => format!("opening {path}: {e}"),
    }
}

/// A group's name from /etc/group (no NSS needed).
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == gid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_context(dir: &Path, name: &str, host: &str) {
        std::fs::write(dir.join("config.json"), format!(r#"{{"auths":{{}},"currentContext":"{name}"}}"#)).unwrap();
        let digest: String = Sha256::digest(name.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let meta = dir.join("contexts/meta").join(digest);
        std::fs::create_dir_all(&meta).unwrap();
        let body = format!(
            r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        );
        std::fs::write(meta.join("meta.json"), body).unwrap();
    }

    #[test]
    fn docker_host_wins_then_the_context_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "orbstack", "unix:///Users/u/.orbstack/run/docker.sock");
        let e = resolve(Some("tcp://1.2.3.4:2375".into()), None, Some(dir.path())).unwrap();
        assert_eq!(e.source, Source::DockerHost);
        let e = resolve(None, None, Some(dir.path())).unwrap();
        assert_eq!(
            e,
            Endpoint {
                host: "unix:///Users/u/.orbstack/run/docker.sock".into(),
                source: Source::Context("orbstack".into())
            }
        );
        let e = resolve(None, Some("default".into()), Some(dir.path())).unwrap();
        assert_eq!(e.source, Source::Default);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve(None, None, Some(empty.path())).unwrap().host, DEFAULT_HOST);
    }

    #[test]
    fn a_context_without_its_meta_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"currentContext":"colima"}"#).unwrap();
        let e = format!("{:#}", resolve(None, None, Some(dir.path())).unwrap_err());
        assert!(e.contains("colima") && e.contains("meta.json"), "{e}");
    }
}
