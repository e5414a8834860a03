//! Renders the Smolfile a bottle's VM is created from.
//!
//! Only keys that every smolvm from 1.1.3 to 1.9.3 accepts are written (smolvm
//! denies unknown keys, and the newest published parser accepts keys that
//! smolvm 1.9.3 rejects). Two traps are designed out rather than documented:
//! - an empty `allow_cidrs` means *no policy* to smolvm, so [`AllowList`] cannot
//!   be empty and there is no way to render a Smolfile without one;
//! - a `docker save` tarball named in a Smolfile's `image` is pulled from a
//!   registry, so a tarball is never written here: [`VmImage::Tarball`] goes to
//!   the command line's `--image` instead.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::spec::Spec;

/// Environment variables bottle sets itself; a spec may not override them.
pub const PROXY_ENV_KEYS: [&str; 6] =
    ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"];

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
    pub allow_cidrs: AllowList,
}

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
    pub command: Vec<String>,
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
            command: spec.command.clone(),
            env: spec.env.clone(),
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
    /// The Smolfile for one bottle: the agent's command, its environment with
    /// the proxy pointed at the bundle, and an allowlist of the bundle alone.
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
            entrypoint: Vec::new(),
            cmd: input.command.clone(),
            env: render_env(&input.env, bundle).map_err(ctx)?,
            workdir: input.workdir.clone(),
            cpus,
            memory,
            net: true,
            volumes,
            network: NetworkTable { allow_cidrs: AllowList::bundle_only(bundle.ip) },
        })
    }

    pub fn render(&self) -> String {
        // Serializing plain strings, integers, bools and arrays cannot fail.
        toml::to_string(self).expect("smolfile: every field is TOML-serializable")
    }
}

/// smolvm takes whole vCPUs (a `u8`); a fractional spec is refused rather than
/// silently rounded, so the user sees what the VM actually gets.
fn whole_cpus(cpus: f64) -> Result<u8, String> {
    if cpus.fract() == 0.0 && (1.0..=f64::from(u8::MAX)).contains(&cpus) {
        // Checked whole and in range just above.
        Ok(cpus as u8)
    } else {
        Err(format!("resources.cpus = {cpus}: smolvm gives whole vCPUs, use an integer from 1 to 255"))
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
    // The git gate and supervise live on the bundle IP too and are spoken to
    // directly, so the bundle itself is exempt from the proxy.
    let no_proxy = format!("localhost,127.0.0.1,::1,{}", bundle.ip);
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
            command: vec![],
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
        for bad in [0.0, 1.5, 256.0, -1.0, f64::NAN] {
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
