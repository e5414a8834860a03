//! The Docker engine, as both backends use it.
//!
//! Whatever runs the agent, the bundle is a Docker container, so the
//! smolmachines backend needs the engine as much as the Docker backend does:
//! finding it (`endpoint`), making containers on it (`container`, the one
//! place their hardening is written) and reading their logs (`logs`) live
//! here, beside neither backend.

pub mod container;
pub mod endpoint;
pub mod logs;

use bollard::Docker;

/// The engine the `docker` CLI would use (see [`endpoint`]), at an API version both sides speak.
pub async fn connect() -> anyhow::Result<Docker> {
    let at = endpoint::discover()?;
    let answered = match Docker::connect_with_host(&at.host) {
        Ok(docker) => docker.negotiate_version().await,
        Err(e) => Err(e),
    };
    answered.map_err(|e| {
        anyhow::Error::new(e).context(format!("docker: no engine answers at {at}; {}", endpoint::socket_hint(&at.host)))
    })
}
