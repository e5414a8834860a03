//! The parsed, validated `bottle.toml`: what one bottle is, in host terms.
//!
//! Parsing and validation happen together, once, here, so that the backends
//! receive values they never have to second-guess. A bottle.toml describes a
//! security boundary, so nothing is guessed: unknown keys are refused at every
//! level, and every refusal names `file:line:col`, the key and the offending
//! value (secret values excepted) using the shared
//! [`bottle_protocol::config::ConfigError`].

mod api;
mod egress;
mod git;
mod raw;
mod resources;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_protocol::config::{ConfigError, Position};

use crate::backend::BackendKind;

pub use egress::check_entry as check_egress_entry;
pub use resources::{MEMORY_MAX_MIB, MEMORY_MIN_MIB};
pub use source::{COMMAND_TIMEOUT, COMMAND_TIMEOUT_ENV, MAX_COMMAND_OUTPUT, SecretSource, SecretValue};
pub use validate::{NAME_MAX_LEN, check_name, parse_backend};

/// Where the workspace appears inside the agent unless `workdir` says otherwise.
pub const DEFAULT_WORKDIR: &str = "/workspace";

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
    /// `[agent] run_as_image_user`: run as the image's own `USER` (which may be root) instead
    /// of bottle's non-root user. An explicit opt-out, labelled on the agent and shown by `status`.
    pub run_as_image_user: bool,
    pub env: BTreeMap<String, String>,
    /// Egress allowlist entries (`host`, `*.suffix`, with optional `:port`, or CIDRs), lowercased.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub secrets: Vec<Secret>,
    pub git: GitSpec,
    pub resources: Resources,
    /// Backend named in the spec; `--backend` / `CLAUDE_BOTTLE_BACKEND` override it.
    pub backend: Option<BackendKind>,
    /// Model APIs served by the bundle's API gate (explicit `[[api]]`, or implied by the agent image).
    pub apis: Vec<ApiSpec>,
    /// Where the file names what is read or looked up only at `up` (see [`Origins`]).
    pub origins: Origins,
}

/// Where a bottle.toml wrote each thing that is checked only at `up`, because it lives on
/// the host and may change after parsing: a secret's source (`secret[0]`, `api[1].credential`,
/// `git.credentials`, at its `env`, `file` or `command`), the `image` and the `workspace`.
/// So a missing file or a failing command found then still points at its line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(BTreeMap<String, Position>);

impl Origins {
    pub fn insert(&mut self, key: impl Into<String>, at: Position) {
        self.0.insert(key.into(), at);
    }

    pub fn get(&self, key: &str) -> Option<&Position> {
        self.0.get(key)
    }
}

/// A model API the agent reaches only through the bundle's gate; its credential stays on the host
/// and in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSpec {
    pub name: String,
    /// `https://host[:port][/path]`.
    pub upstream: String,
    /// `x-api-key` or `bearer`.
    pub header: String,
    pub credential: SecretSource,
    /// The agent variable holding the placeholder (e.g. `ANTHROPIC_API_KEY`).
    pub key_env: String,
    /// The agent variable holding the gate's URL for this API (e.g. `ANTHROPIC_BASE_URL`).
    pub base_url_env: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// bottle's own agent image (shell, curl, git, python3, CA certificates), built locally.
    Default,
    /// An image reference already present in the local engine.
    Reference(String),
    /// bottle's own image with a named agent installed (`image = { agent = "claude-code" }`).
    Agent(AgentKind),
    /// A local build context (directory with a Dockerfile).
    /// `context` is absolute; `dockerfile`, when set, is relative to `context`
    /// (as the engine's build API expects) and is known to exist inside it.
    Build { context: PathBuf, dockerfile: Option<PathBuf> },
}

/// Agents bottle knows how to install and start unattended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    ClaudeCode,
}

impl AgentKind {
    pub const ALL: [AgentKind; 1] = [AgentKind::ClaudeCode];

    pub fn name(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude-code",
        }
    }

    /// The agent's own program, run when `[agent] command` is empty.
    pub fn command(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude",
        }
    }
}

impl ImageSource {
    /// bottle's own image (plain or with an agent): bottle knows its user and home, so it runs it
    /// read-only as that user with a tmpfs home.
    pub fn is_bottles_own(&self) -> bool {
        matches!(self, ImageSource::Default | ImageSource::Agent(_))
    }
}

/// A never-leave secret, named by where its value lives on the host; the value is read at `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub from: SecretSource,
}

#[derive(Debug, Clone, Default)]
pub struct GitSpec {
    /// Host-side credential source. `File`: TOML `alias = "user:token"` (or
    /// `alias = "token"`) lines, the bundle's credentials-file format. `Env`:
    /// one `token` or `user:token` used for every repo. Values end up only in the bundle.
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
    /// `git push -o` options forwarded upstream ([`bottle_protocol::push_option`]); others are dropped.
    pub push_options: Vec<String>,
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

/// Why a bottle.toml could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading bottle spec {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Names `file:line:col`, the key and the value.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Spec {
    /// The spec a bottle.toml holding only `name` and `workspace` gives, for
    /// callers that build a bottle in code (benchmarks, tests, embedders).
    /// Without it each of them spells out every field, and those copies drift
    /// from the file format's defaults whenever a field is added; a test pins
    /// it to [`Spec::parse`] of that minimal file. Like a struct literal it is
    /// not validated: `name` must pass [`check_name`] and `workspace` must be
    /// absolute. `source` is empty, as no file is behind it.
    pub fn new(name: impl Into<String>, workspace: impl Into<PathBuf>) -> Spec {
        Spec {
            source: PathBuf::new(),
            name: name.into(),
            image: ImageSource::Default,
            workspace: workspace.into(),
            workdir: DEFAULT_WORKDIR.into(),
            command: Vec::new(),
            run_as_image_user: false,
            env: BTreeMap::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            secrets: Vec::new(),
            git: GitSpec::default(),
            resources: Resources::default(),
            backend: None,
            apis: Vec::new(),
            origins: Origins::default(),
        }
    }

    /// Reads and validates a bottle.toml.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        Self::load_for(path, None)
    }

    /// [`Spec::load`] for a backend chosen outside the file (`--backend`,
    /// `CLAUDE_BOTTLE_BACKEND`), whose limits then apply instead of the file's `backend`'s.
    pub fn load_for(path: &Path, backend: Option<BackendKind>) -> Result<Spec, SpecError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        Self::parse_for(path, &text, backend)
    }

    /// Validates bottle.toml `text`. `path` names the file in messages, and its
    /// directory is the base for relative paths (`workspace`, `image.build`, secret files).
    pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
        Self::parse_for(path, text, None)
    }

    /// [`Spec::parse`] with a backend chosen outside the file (see [`Spec::load_for`]).
    pub fn parse_for(path: &Path, text: &str, backend: Option<BackendKind>) -> Result<Spec, SpecError> {
        let raw: raw::RawSpec =
            toml::from_str(text).map_err(|e| name_the_key(ConfigError::from_toml(path, text, &e)))?;
        Ok(validate::Checker::new(path, text, backend).spec(raw)?)
    }
}

/// Sharpens the key of a TOML schema error where the shared best-effort guess
/// falls short: a table header (`[[secret]]`) has no key of its own, and a
/// missing field is named by the message, not by the text at the position.
fn name_the_key(mut e: ConfigError) -> ConfigError {
    let table = e.value.starts_with('[').then(|| e.value.trim_matches(|c| c == '[' || c == ']').to_string());
    let missing = e.message.strip_prefix("missing field `").and_then(|m| m.split('`').next()).map(str::to_string);
    match (table, missing) {
        (Some(t), Some(field)) => e.key = format!("{t}.{field}"),
        (None, Some(field)) if e.value.is_empty() => e.key = field,
        (Some(t), None) if e.key.is_empty() => e.key = t,
        _ => {}
    }
    e
}
