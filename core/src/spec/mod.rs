//! STUB (to be replaced by the spec owner): the parsed, validated `bottle.toml`.
//! Field set agreed between the spec, Docker and smolmachines owners.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backend::BackendKind;

#[derive(Debug, Clone)]
pub struct Spec {
    /// The bottle.toml this came from (for messages).
    pub source: PathBuf,
    pub name: String,
    pub image: ImageSource,
    /// Absolute host path, bind-mounted read-write into the agent. Never deleted or rewritten by bottle.
    pub workspace: PathBuf,
    /// Where the workspace appears inside the agent (default `/workspace`).
    pub workdir: String,
    /// Agent command; empty means the image's default (a long-lived shell).
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Egress allowlist entries (`host`, `*.suffix`, with optional `:port`, or CIDRs).
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub secrets: Vec<Secret>,
    pub git: GitSpec,
    pub resources: Resources,
    /// Backend named in the spec; `--backend` / `CLAUDE_BOTTLE_BACKEND` override it.
    pub backend: Option<BackendKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// bottle's own agent image (shell, curl, git, python3, CA certificates), built locally.
    Default,
    /// An image reference already present in the local engine.
    Reference(String),
    /// A local build context (directory with a Dockerfile).
    Build { context: PathBuf, dockerfile: Option<PathBuf> },
}

/// A never-leave secret, named by where its value lives on the host; the value is read at `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub from: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct GitSpec {
    /// Host-side credential source (`alias = token` values end up only in the bundle).
    pub credentials: Option<SecretSource>,
    pub repos: Vec<RepoSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub alias: String,
    pub upstream: String,
    pub fetch: bool,
    pub push: Vec<String>,
    pub protected: Vec<String>,
    pub tags: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub cpus: f64,
    pub memory_mib: u64,
    pub pids: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Self { cpus: 2.0, memory_mib: 2048, pids: 512 }
    }
}
