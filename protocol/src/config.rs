//! The bundle's one config file, written by the core and read by `bottle-bundle`.
//!
//! The schema lives here rather than in the bundle so that the core renders
//! exactly the struct the bundle parses. Every table rejects unknown keys, and
//! every error names the key, the value and the `file:line:col` it came from,
//! because a typo in an allowlist must never silently widen or narrow it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Default agent-facing ports, shared by the core (which publishes them to the
/// agent) and the bundle (which binds them).
pub const DEFAULT_PROXY_PORT: u16 = 3128;
pub const DEFAULT_GIT_GATE_PORT: u16 = 9418;
pub const DEFAULT_SUPERVISE_PORT: u16 = 9419;
pub const DEFAULT_API_GATE_PORT: u16 = 9420;
pub const DEFAULT_CONTROL_PORT: u16 = 9090;
/// egress binds this port on 127.0.0.1 only, inside the bundle.
pub const EGRESS_PORT: u16 = 9099;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    /// The bottle's name; stamped on every event.
    pub bottle: String,
    pub listen: Listen,
    pub control: Control,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub dlp: DlpConfig,
    #[serde(default)]
    pub egress: EgressConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub git: GitConfig,
    #[serde(default)]
    pub supervise: SuperviseConfig,
    #[serde(default)]
    pub api_gate: ApiGateConfig,
    /// Model APIs served by the API gate; empty means no gate.
    #[serde(default, rename = "api")]
    pub apis: Vec<ApiEntry>,
    /// Where the bundle keeps what must outlive its own process (kill switch, the host's
    /// policy, live grants, the event epoch); absent means nothing does (in-process tests).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Agent-facing forward proxy (0.0.0.0 in a container).
    pub proxy: SocketAddr,
    /// Host-only control plane. Must not be an agent-reachable address.
    pub control: SocketAddr,
    /// The one dialer. Always loopback.
    #[serde(default = "default_egress_listen")]
    pub egress: SocketAddr,
    /// Agent-facing git smart-HTTP gate; absent means no gate.
    #[serde(default)]
    pub git_gate: Option<SocketAddr>,
    /// Agent-facing supervise API; absent means none.
    #[serde(default)]
    pub supervise: Option<SocketAddr>,
    /// Agent-facing model-API gate; absent (or no `[[api]]`) means no gate.
    #[serde(default)]
    pub api_gate: Option<SocketAddr>,
}

fn default_egress_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], EGRESS_PORT))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// File holding the per-bottle bearer token for the control plane.
    pub token_file: PathBuf,
}

/// The egress allowlist. Entries: `host`, `*.suffix`, either with `:port`,
/// or a CIDR (`10.0.0.0/8`, `2001:db8::/32`) for IP-literal targets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Deny entries win over allow entries.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpConfig {
    /// TOML file of `NAME = "value"` never-leave secrets. Only the bundle reads it.
    #[serde(default)]
    pub secrets_file: Option<PathBuf>,
    /// Turn off the built-in credential patterns (the named secrets stay on).
    #[serde(default)]
    pub disable_builtin_patterns: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Upstream DNS servers, `ip:port`. Empty means the system's resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<Spanned<String>>,
    /// Static name overrides, consulted before DNS.
    #[serde(default)]
    pub hosts: BTreeMap<String, Vec<Spanned<String>>>,
    /// Destination CIDRs exempt from the private/loopback/metadata refusal.
    #[serde(default)]
    pub allow_cidrs: Vec<Spanned<String>>,
}

/// Named limits with their defaults; a slow or greedy client must not starve others.
/// At a connection cap every service sheds or refuses alike (see the bundle's `cap` module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Connections the proxy holds at once, and egress behind it.
    pub max_connections: usize,
    pub max_git_gate_connections: usize,
    pub max_api_gate_connections: usize,
    pub max_supervise_connections: usize,
    pub max_control_connections: usize,
    pub max_body_scan_bytes: u64,
}

impl Limits {
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    pub const HEADER_TIMEOUT_MS: u64 = 10_000;
    pub const IDLE_TIMEOUT_MS: u64 = 300_000;
    pub const TOTAL_TIMEOUT_MS: u64 = 6 * 3600 * 1000;
    pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
    pub const MAX_CONNECTIONS: usize = 4096;
    /// A git client uses one or two connections, and each costs at most the header size while its head is read.
    pub const MAX_GIT_GATE_CONNECTIONS: usize = 256;
    pub const MAX_API_GATE_CONNECTIONS: usize = 256;
    /// The agent's supervise calls are few; long polls hold one each.
    pub const MAX_SUPERVISE_CONNECTIONS: usize = 64;
    /// The host needs a handful: an event follower, a CLI call.
    pub const MAX_CONTROL_CONNECTIONS: usize = 64;
    /// Plain-HTTP request bodies are scanned up to this many bytes; larger ones are refused.
    pub const MAX_BODY_SCAN_BYTES: u64 = 64 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: Self::MAX_HEADER_BYTES,
            header_timeout_ms: Self::HEADER_TIMEOUT_MS,
            idle_timeout_ms: Self::IDLE_TIMEOUT_MS,
            total_timeout_ms: Self::TOTAL_TIMEOUT_MS,
            connect_timeout_ms: Self::CONNECT_TIMEOUT_MS,
            max_connections: Self::MAX_CONNECTIONS,
            max_git_gate_connections: Self::MAX_GIT_GATE_CONNECTIONS,
            max_api_gate_connections: Self::MAX_API_GATE_CONNECTIONS,
            max_supervise_connections: Self::MAX_SUPERVISE_CONNECTIONS,
            max_control_connections: Self::MAX_CONTROL_CONNECTIONS,
            max_body_scan_bytes: Self::MAX_BODY_SCAN_BYTES,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// TOML file of `alias = "user:token"` (or `alias = "token"`) credentials; bundle-only.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Extra PEM CA bundle for HTTPS upstreams (tests use a local CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Largest pack git-gate spools to prove a fast-forward (default 256 MiB).
    #[serde(default)]
    pub spool_max_bytes: Option<u64>,
    /// Longest a spooled push may take to arrive, in seconds (default 600).
    #[serde(default)]
    pub spool_deadline_secs: Option<u64>,
    #[serde(default, rename = "repo")]
    pub repos: Vec<GitRepo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitRepo {
    /// What the agent sees: `http://<bundle>:9418/<alias>.git`.
    pub alias: Spanned<String>,
    /// Real upstream URL, `http(s)://host[:port]/path`.
    pub upstream: Spanned<String>,
    #[serde(default = "yes")]
    pub fetch: bool,
    /// Branch patterns (`agent/*`, `feature-*`, exact names) push may update.
    #[serde(default)]
    pub push: Vec<Spanned<String>>,
    /// Branch patterns that are never updated, whatever `push` says.
    #[serde(default)]
    pub protected: Vec<Spanned<String>>,
    #[serde(default)]
    pub tags: bool,
    /// Push options (`git push -o`) the gate forwards, by name: exact (`ci.skip`) or a
    /// `prefix.*` family (`merge_request.*`); grammar in [`crate::push_option`]. Every other
    /// option is dropped, since a host may act on one (open a merge request, skip CI).
    #[serde(default)]
    pub push_options: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuperviseConfig {
    pub max_pending: usize,
    pub max_body_bytes: usize,
    /// Longest grant the host may give, in seconds; 0 means no cap.
    pub max_grant_secs: u64,
}

impl SuperviseConfig {
    pub const MAX_PENDING: usize = 16;
    pub const MAX_BODY_BYTES: usize = 4096;
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        Self { max_pending: Self::MAX_PENDING, max_body_bytes: Self::MAX_BODY_BYTES, max_grant_secs: 0 }
    }
}

/// The API gate's shared settings: upstream TLS roots, the request body cap and its timeouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiGateConfig {
    /// Extra PEM CA bundle trusted for API upstreams besides the public roots (tests use a local CA).
    pub ca_file: Option<PathBuf>,
    /// Largest request body the gate holds for DLP before it forwards; larger ones get 413.
    pub max_body_bytes: u64,
    /// How long the agent may take to send its whole request body.
    pub body_timeout_ms: u64,
    /// How long the upstream may take to send its response head.
    pub head_timeout_ms: u64,
    /// Longest silence allowed inside a streamed response before the gate cuts it.
    pub idle_timeout_ms: u64,
}

impl ApiGateConfig {
    /// Model requests carry whole conversations and images; 32 MiB holds the biggest the APIs accept.
    pub const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
    pub const BODY_TIMEOUT_MS: u64 = 60_000;
    /// A non-streamed reply arrives only when the model has finished, which can take minutes.
    pub const HEAD_TIMEOUT_MS: u64 = 600_000;
    /// Streamed replies send `ping` events every few seconds while the model thinks.
    pub const IDLE_TIMEOUT_MS: u64 = 300_000;
}

impl Default for ApiGateConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            max_body_bytes: Self::MAX_BODY_BYTES,
            body_timeout_ms: Self::BODY_TIMEOUT_MS,
            head_timeout_ms: Self::HEAD_TIMEOUT_MS,
            idle_timeout_ms: Self::IDLE_TIMEOUT_MS,
        }
    }
}

/// One `[[api]]`: the agent calls `http://<gate>/<name>/...` with `placeholder` as its
/// credential, and the gate calls `upstream` with the real one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiEntry {
    /// One URL path segment, e.g. `anthropic`.
    pub name: Spanned<String>,
    /// `https://host[:port][/path]`, e.g. `https://api.anthropic.com`.
    pub upstream: Spanned<String>,
    /// `x-api-key` (the header holds the key) or `bearer` (`Authorization: Bearer <token>`).
    pub header: Spanned<String>,
    /// Name of the never-leave secret in `dlp.secrets_file` that holds the real credential,
    /// so DLP guards it on every path out by construction.
    pub credential: Spanned<String>,
    /// What the agent holds instead of the credential; random per bottle, not a secret.
    pub placeholder: Spanned<String>,
}

/// A position in a config file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Position {
    /// Turns a byte offset into `file:line:col`.
    pub fn at(file: &Path, text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self { file: file.to_path_buf(), line, col }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A config error that names where it is, which key, and the offending value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{position}: {key} = {value:?}: {message}")]
pub struct ConfigError {
    pub position: Position,
    pub key: String,
    pub value: String,
    pub message: String,
}

impl ConfigError {
    /// Builds an error for a spanned value found at `key`.
    pub fn at(file: &Path, text: &str, key: &str, value: &Spanned<String>, message: impl Into<String>) -> Self {
        Self {
            position: Position::at(file, text, value.span().start),
            key: key.to_string(),
            value: value.get_ref().clone(),
            message: message.into(),
        }
    }

    /// Maps a TOML syntax or schema error, keeping its position and the text it points at.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let span = err.span().unwrap_or(0..0);
        let value = text.get(span.clone()).unwrap_or("").to_string();
        let message = err.message().to_string();
        let key = key_at(text, span.start);
        Self { position: Position::at(file, text, span.start), key, value, message }
    }
}

/// Best-effort dotted key for the line holding `offset`: the enclosing table plus the line's key.
fn key_at(text: &str, offset: usize) -> String {
    let upto = &text[..offset.min(text.len())];
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    let line = text[line_start..line_end].trim();
    let table = upto[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    let own = line.split('=').next().unwrap_or("").trim();
    let own = if line.starts_with('[') { "" } else { own };
    match (table, own.is_empty()) {
        (Some(t), false) => format!("{t}.{own}"),
        (Some(t), true) => t,
        (None, _) => own.to_string(),
    }
}

impl BundleConfig {
    /// Parses the config text; `file` is used only for error positions.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))
    }

    /// Reads and parses a config file.
    pub fn load(file: &Path) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            position: Position { file: file.to_path_buf(), line: 0, col: 0 },
            key: String::new(),
            value: String::new(),
            message: format!("cannot read config: {e}"),
        })?;
        Ok((Self::parse(file, &text)?, text))
    }

    /// Renders the config as TOML (used by the core).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("bundle config always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "bottle = \"b\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\n[control]\ntoken_file = \"/t\"\n";

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = BundleConfig::parse(Path::new("b.toml"), MINIMAL).unwrap();
        assert_eq!(c.listen.egress, default_egress_listen());
        assert_eq!(c.limits.max_header_bytes, Limits::MAX_HEADER_BYTES);
    }

    #[test]
    fn unknown_key_names_key_value_and_position() {
        let text = format!("{MINIMAL}[policy]\nallow = []\nalow = [\"x\"]\n");
        let e = BundleConfig::parse(Path::new("b.toml"), &text).unwrap_err();
        assert_eq!((e.position.line, e.position.col), (9, 1));
        assert_eq!(e.key, "policy.alow");
        assert_eq!(e.value, "alow");
        assert!(e.to_string().starts_with("b.toml:9:1: policy.alow"), "{e}");
    }

    #[test]
    fn round_trips_through_toml() {
        let c = BundleConfig::parse(Path::new("b.toml"), MINIMAL).unwrap();
        let again = BundleConfig::parse(Path::new("b.toml"), &c.to_toml()).unwrap();
        assert_eq!(again.bottle, "b");
    }
}
