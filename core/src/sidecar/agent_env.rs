//! What an agent is told of its bundle, on either backend: the Docker agent gets it as its
//! container's environment, a smolmachines VM in its Smolfile `env` (none of it is a secret).

use std::net::IpAddr;

use bottle_protocol::config::{DEFAULT_GIT_GATE_PORT, DEFAULT_SUPERVISE_PORT};

use crate::spec::Spec;

/// What the agent reaches without the proxy. The bundle's address:
/// git gate and supervise are spoken to directly. And loopback: a server the agent
/// starts for itself (a test suite's) lives in the agent's own network namespace, where
/// the bundle cannot reach it anyway, so sending it to the proxy only turned every local
/// test into a refusal. Nothing of the bundle or the host listens on the agent's loopback.
pub fn no_proxy(bundle_ip: IpAddr) -> String {
    format!("localhost,127.0.0.1,::1,{bundle_ip}")
}

/// Where the agent finds supervise and git-gate, and git's rewrite of every upstream to its
/// gate alias, so a push never leaves through the proxy past git-gate's rules.
pub fn gate_env(spec: &Spec, bundle_ip: IpAddr) -> Vec<(String, String)> {
    let host = match bundle_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let gate = format!("http://{host}:{DEFAULT_GIT_GATE_PORT}/");
    let mut env = vec![
        ("BOTTLE_SUPERVISE_URL".to_string(), format!("http://{host}:{DEFAULT_SUPERVISE_PORT}")),
        ("BOTTLE_GIT_GATE_URL".into(), gate.clone()),
    ];
    // `bottle:<alias>.git` for any repo, and each repo's real upstream rewritten to its gate alias.
    let mut rewrites = vec![(gate.clone(), "bottle:".to_string())];
    rewrites.extend(spec.git.repos.iter().map(|r| (format!("{gate}{}.git", r.alias), r.upstream.clone())));
    env.push(("GIT_CONFIG_COUNT".into(), rewrites.len().to_string()));
    for (i, (to, from)) in rewrites.into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), format!("url.{to}.insteadOf")));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), from));
    }
    env
}
