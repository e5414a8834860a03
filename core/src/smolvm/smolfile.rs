//! Renders the Smolfile a bottle's VM is created from.
//!
//! Only keys that every smolvm from 1.1.3 to 1.9.3 accepts are written (smolvm
//! denies unknown keys, and the newest published parser accepts keys that
//! smolvm 1.9.3 rejects). Two traps are designed out rather than documented:
//! - an empty `allow_cidrs` means *no policy* to smolvm, so [`AllowList`] cannot
//!   be empty and there is no way to render a Smolfile without one;
//! - a `docker save` tarball named in a Smolfile's `image` is pulled from a
//!   registry, so a tarball is never written here: [`VmImage::Tarball`] goes to
//!   the command line's `--image` instead;
//! - smolvm starts `entrypoint` + `cmd` inside `machine start`, and an empty `cmd`
//!   adopts the image's own, so the Smolfile never names the agent's command: its
//!   workload is [`IDLE_WORKLOAD`], and the agent is started by `exec -d` once the
//!   start check passed (see `Smolvm::launch`);
//! - Smolfile `env` is stored in plain text in smolvm's state database, so values
//!   under secret-like names never go there (see [`split_env`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::spec::Spec;

/// Environment variables bottle sets itself; a spec may not override them.
pub const PROXY_ENV_KEYS: [&str; 6] =
    ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"];

/// The workload `machine start` runs: it holds the VM up and does nothing, so no agent
/// code runs before the start check.
pub const IDLE_WORKLOAD: [&str; 3] = ["/bin/sh", "-c", "exec sleep 2147483647"];

/// The one name in `[network] allow_hosts`. Any `allow_hosts` turns smolvm's DNS filter on
/// (crates/smolvm-network/src/stack.rs `classify_dns_query`, v1.1.3 to v1.9.3): names not
/// listed get NXDOMAIN without leaving the host, and from 1.8.1 each is logged as a
/// `resolve` denial. An RFC 2606 `.invalid` name never resolves, so it adds no address to
/// the allowlist (smolvm adds the addresses a listed name resolves to) and lets no query out.
pub const DNS_FILTER_HOST: &str = "bottle-dns-closed.invalid";

/// Most vCPUs smolvm gives a VM: it caps more to 16 with only a warning
/// (src/data/resources.rs `MAX_EFFECTIVE_CPUS`, v1.9.3), so bottle refuses more.
pub const MAX_CPUS: u8 = 16;

/// `_`-separated words of a variable name that mark its value as a secret.
const SECRET_WORDS: [&str; 9] = ["KEY", "AUTH", "PASS", "PAT", "COOKIE", "CREDENTIAL", "CREDENTIALS", "PRIVATE", "DSN"];
/// Word endings that do the same (`APIKEY`, `GITHUB_ACCESSTOKEN`, `DBPASSWORD`).
const SECRET_ENDINGS: [&str; 5] = ["APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD"];

/// Whether `name` looks like it holds a secret (`ANTHROPIC_API_KEY`, `GH_TOKEN`, ...), by
/// whole words so that `GIT_AUTHOR_NAME` or `KEYBOARD_LAYOUT` stay plain.
pub fn is_secret_like(name: &str) -> bool {
    name.to_ascii_uppercase()
        .split('_')
        .any(|w| SECRET_WORDS.contains(&w) || SECRET_ENDINGS.iter().any(|e| w.ends_with(e)))
}

/// Splits the agent's environment into what may sit in the Smolfile (and so in smolvm's
/// database) and the secret-like rest, which reaches the agent only through `--secret-env`.
pub fn split_env(env: &BTreeMap<String, String>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    env.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| !is_secret_like(k))
}

/// The bundle as the VM reaches it: its pinned IP and the egress proxy's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleAddr {
    pub ip: IpAddr,
    pub proxy_port: u16,
}

/// A non-empty set of CIDRs the VM may reach. For a bottle it is exactly the
/// bundle's address as a host route; no constructor can make it empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    only: IpNet,
}

impl AllowList {
    /// `<bundle-ip>/32` (or `/128`).
    pub fn bundle_only(ip: IpAddr) -> Self {
        Self { only: IpNet::from(ip) }
    }

    pub fn entries(&self) -> Vec<String> {
        vec![self.only.to_string()]
    }
}

impl Serialize for AllowList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries().serialize(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkTable {
    /// Always `[DNS_FILTER_HOST]`: closes the DNS channel (see [`DNS_FILTER_HOST`]).
    pub allow_hosts: Vec<String>,
    pub allow_cidrs: AllowList,
}

/// The guest's gateway under virtio-net, where smolvm's own stack answers DNS
/// (crates/smolvm-network, `classify_dns_query`, v1.1.3 to v1.9.3).
pub const GUEST_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(100, 96, 0, 1);

/// Where the VM's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmImage {
    /// A registry reference; smolvm pulls it (needs the VM's network, so it
    /// only works when the registry is reachable through the allowlist).
    Registry(String),
    /// A `docker save` tarball, passed as `--image` on the command line.
    Tarball(PathBuf),
}

/// What the renderer needs from a [`Spec`], plus what only the caller knows.
#[derive(Debug, Clone, PartialEq)]
pub struct SmolfileInput {
    pub name: String,
    pub workdir: String,
    /// Host directory mounted read-write at `workdir`; `None` for no mount.
    pub workspace: Option<PathBuf>,
    /// Only what may be stored in plain text: [`SmolfileInput::from_spec`] leaves the
    /// secret-like variables out.
    pub env: BTreeMap<String, String>,
    pub cpus: f64,
    pub memory_mib: u64,
}

impl SmolfileInput {
    pub fn from_spec(spec: &Spec) -> Self {
        Self {
            name: spec.name.clone(),
            workdir: spec.workdir.clone(),
            workspace: Some(spec.workspace.clone()),
            env: split_env(&spec.env).0,
            cpus: spec.resources.cpus,
            memory_mib: spec.resources.memory_mib,
        }
    }
}

/// The Smolfile, field for field as smolvm reads it. Field order is the order
/// written, so the output is stable for golden tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Smolfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub cpus: u8,
    pub memory: u32,
    pub net: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    pub network: NetworkTable,
}

impl Smolfile {
    /// The Smolfile for one bottle: an idle workload, the agent's environment with
    /// the proxy pointed at the bundle, an allowlist of the bundle alone and DNS closed.
    pub fn for_bottle(input: &SmolfileInput, bundle: BundleAddr, image: &VmImage) -> Result<Self, String> {
        let ctx = |msg: String| format!("smolfile for bottle {:?}: {msg}", input.name);
        let cpus = whole_cpus(input.cpus).map_err(ctx)?;
        let memory = u32::try_from(input.memory_mib)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| ctx(format!("resources.memory_mib = {}: must be 1..={}", input.memory_mib, u32::MAX)))?;
        if !input.workdir.starts_with('/') || input.workdir.contains(':') {
            return Err(ctx(format!("workdir = {:?}: must be an absolute path without ':'", input.workdir)));
        }
        let volumes = match &input.workspace {
            None => Vec::new(),
            Some(host) => {
                let host_s = host
                    .to_str()
                    .filter(|s| s.starts_with('/') && !s.contains(':'))
                    .ok_or_else(|| ctx(format!("workspace = {host:?}: must be an absolute UTF-8 path without ':'")))?;
                vec![format!("{host_s}:{}", input.workdir)]
            }
        };
        Ok(Self {
            image: match image {
                VmImage::Registry(r) => Some(r.clone()),
                VmImage::Tarball(_) => None,
            },
            entrypoint: IDLE_WORKLOAD[..2].iter().map(|s| s.to_string()).collect(),
            cmd: vec![IDLE_WORKLOAD[2].to_owned()],
            env: render_env(&input.env, bundle).map_err(ctx)?,
            workdir: input.workdir.clone(),
            cpus,
            memory,
            net: true,
            volumes,
            network: NetworkTable {
                allow_hosts: vec![DNS_FILTER_HOST.to_owned()],
                allow_cidrs: AllowList::bundle_only(bundle.ip),
            },
        })
    }

    pub fn render(&self) -> String {
        // Serializing plain strings, integers, bools and arrays cannot fail.
        toml::to_string(self).expect("smolfile: every field is TOML-serializable")
    }
}

/// smolvm takes whole vCPUs, at most [`MAX_CPUS`]; anything else is refused rather than
/// rounded or capped, so the user sees what the VM actually gets.
pub fn whole_cpus(cpus: f64) -> Result<u8, String> {
    if cpus.fract() == 0.0 && (1.0..=f64::from(MAX_CPUS)).contains(&cpus) {
        // Checked whole and in range just above.
        Ok(cpus as u8)
    } else {
        Err(format!("resources.cpus = {cpus}: smolvm gives whole vCPUs, use an integer from 1 to {MAX_CPUS}"))
    }
}

fn render_env(env: &BTreeMap<String, String>, bundle: BundleAddr) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(env.len() + PROXY_ENV_KEYS.len());
    for (k, v) in env {
        if PROXY_ENV_KEYS.contains(&k.as_str()) {
            return Err(format!("env.{k}: set by bottle to the bundle's proxy; remove it from the spec"));
        }
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(format!("env.{k}: names must be non-empty without '=' and neither may contain NUL"));
        }
        out.push(format!("{k}={v}"));
    }
    let proxy = match bundle.ip {
        IpAddr::V4(ip) => format!("http://{ip}:{}", bundle.proxy_port),
        IpAddr::V6(ip) => format!("http://[{ip}]:{}", bundle.proxy_port),
    };
    let no_proxy = crate::sidecar::no_proxy(bundle.ip);
    for (k, v) in PROXY_ENV_KEYS.iter().zip([&proxy, &proxy, &no_proxy, &proxy, &proxy, &no_proxy]) {
        out.push(format!("{k}={v}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SmolfileInput {
        SmolfileInput {
            name: "t".into(),
            workdir: "/workspace".into(),
            workspace: None,
            env: BTreeMap::new(),
            cpus: 2.0,
            memory_mib: 2048,
        }
    }

    const BUNDLE: BundleAddr = BundleAddr { ip: IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 0, 2)), proxy_port: 8080 };

    #[test]
    fn allowlist_is_the_bundle_host_route() {
        let sf = Smolfile::for_bottle(&input(), BUNDLE, &VmImage::Registry("alpine".into())).unwrap();
        assert_eq!(sf.network.allow_cidrs.entries(), ["10.9.0.2/32"]);
        let v6 = AllowList::bundle_only("fd00::2".parse().unwrap());
        assert_eq!(v6.entries(), ["fd00::2/128"]);
        assert!(sf.render().contains("allow_cidrs = [\"10.9.0.2/32\"]"));
    }

    #[test]
    fn tarball_never_lands_in_the_smolfile() {
        let sf = Smolfile::for_bottle(&input(), BUNDLE, &VmImage::Tarball("/tmp/agent.tar".into())).unwrap();
        let text = sf.render();
        assert!(!text.contains("image"), "{text}");
        assert!(!text.contains("agent.tar"), "{text}");
    }

    #[test]
    fn refuses_fractional_or_zero_cpus_and_bad_memory() {
        for bad in [0.0, 1.5, 17.0, 256.0, -1.0, f64::NAN] {
            let mut i = input();
            i.cpus = bad;
            let err = Smolfile::for_bottle(&i, BUNDLE, &VmImage::Registry("a".into())).unwrap_err();
            assert!(err.contains("resources.cpus"), "{err}");
        }
        for bad in [0, u64::from(u32::MAX) + 1] {
            let mut i = input();
            i.memory_mib = bad;
            let err = Smolfile::for_bottle(&i, BUNDLE, &VmImage::Registry("a".into())).unwrap_err();
            assert!(err.contains("resources.memory_mib"), "{err}");
        }
    }

    #[test]
    fn the_workload_is_idle_and_dns_is_closed() {
        let sf = Smolfile::for_bottle(&input(), BUNDLE, &VmImage::Registry("a".into())).unwrap();
        let text = sf.render();
        assert!(text.contains(r#"entrypoint = ["/bin/sh", "-c"]"#), "{text}");
        assert!(text.contains(r#"cmd = ["exec sleep 2147483647"]"#), "{text}");
        assert!(text.contains(r#"allow_hosts = ["bottle-dns-closed.invalid"]"#), "{text}");
    }

    #[test]
    fn secret_like_values_stay_out_of_the_smolfile() {
        let env: BTreeMap<String, String> = [
            ("ANTHROPIC_API_KEY", "sk-1"),
            ("gh_token", "t"),
            ("LANG", "C"),
            ("DB_PASSWORD", "p"),
            ("GIT_AUTHOR_NAME", "a"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let (plain, secret) = split_env(&env);
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["GIT_AUTHOR_NAME", "LANG"]);
        assert_eq!(secret.keys().collect::<Vec<_>>(), ["ANTHROPIC_API_KEY", "DB_PASSWORD", "gh_token"]);
        let mut spec = Spec::new("s", "/w");
        spec.env = env;
        let text = Smolfile::for_bottle(&SmolfileInput::from_spec(&spec), BUNDLE, &VmImage::Registry("a".into()))
            .unwrap()
            .render();
        assert!(!text.contains("sk-1") && !text.contains("API_KEY"), "{text}");
    }

    #[test]
    fn spec_may_not_override_the_proxy() {
        let mut i = input();
        i.env.insert("https_proxy".into(), "http://evil.invalid:1".into());
        let err = Smolfile::for_bottle(&i, BUNDLE, &VmImage::Registry("a".into())).unwrap_err();
        assert!(err.contains("env.https_proxy"), "{err}");
    }

    #[test]
    fn refuses_paths_that_break_the_volume_syntax() {
        let mut i = input();
        i.workspace = Some("/a:b".into());
        assert!(Smolfile::for_bottle(&i, BUNDLE, &VmImage::Registry("a".into())).unwrap_err().contains("workspace"));
        let mut i = input();
        i.workdir = "rel".into();
        assert!(Smolfile::for_bottle(&i, BUNDLE, &VmImage::Registry("a".into())).unwrap_err().contains("workdir"));
    }
}
