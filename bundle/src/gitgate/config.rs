//! The gate's validated view of `[git]`: repositories by alias, their ref
//! patterns and upstreams, the credentials only the bundle holds, and the TLS
//! roots for HTTPS upstreams.
//!
//! Everything is checked once at startup so a typo in a pattern or an URL stops
//! the bundle with a `file:line:col` error instead of silently widening what
//! an agent may push. Credential values never enter an error or a `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use bottle_protocol::config::{ConfigError, GitConfig, GitRepo, Position};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use toml::Spanned;

/// Username sent with a credential given as a bare token.
pub const TOKEN_ONLY_USER: &str = "x-access-token";

/// Every configured repository, keyed by alias, plus the shared upstream TLS setup.
pub struct Repos {
    repos: BTreeMap<String, Arc<Repo>>,
    pub tls: Arc<rustls::ClientConfig>,
    pub spool: SpoolLimits,
}

/// What one spooled push may cost the bundle: disk (bytes) and time.
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub max_bytes: u64,
    pub deadline: std::time::Duration,
}

/// Default largest spooled pack; a bigger push is refused, so one push cannot fill the bundle's disk.
pub const MAX_SPOOL_BYTES: u64 = 256 << 20;
/// Default longest a spooled push may take to arrive; an endless or trickling push is refused.
pub const SPOOL_DEADLINE_SECS: u64 = 600;

pub struct Repo {
    pub alias: String,
    pub upstream: Upstream,
    pub fetch: bool,
    pub push: Vec<Pattern>,
    pub protected: Vec<Pattern>,
    pub tags: bool,
    /// `push_options` entries, checked by [`bottle_protocol::push_option::check`].
    pub push_options: Vec<String>,
    /// Ready-made `Authorization` header value; `None` for an anonymous upstream.
    pub auth: Option<Secret>,
}

/// A parsed `http(s)://host[:port]/path` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path without a trailing slash (may be empty).
    pub path: String,
}

impl Upstream {
    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// A branch pattern: an exact branch name, or a glob where `*` matches any run of characters (`/` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn matches(&self, branch: &str) -> bool {
        glob(self.0.as_bytes(), branch.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative star matching with one backtrack point: linear enough for ref names and never recursive.
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A credential-bearing string whose `Debug` and `Display` never show it.
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Repos {
    /// Validates `[git]`. `file` and `text` are the bundle config, for error positions.
    pub fn from_config(file: &Path, text: &str, cfg: &GitConfig) -> anyhow::Result<Self> {
        let mut creds = match &cfg.credentials_file {
            Some(path) => load_credentials(path)?,
            None => BTreeMap::new(),
        };
        let mut repos = BTreeMap::new();
        for r in &cfg.repos {
            let repo = parse_repo(file, text, r)?;
            if repos.contains_key(&repo.alias) {
                return Err(ConfigError::at(file, text, "git.repo.alias", &r.alias, "duplicate alias").into());
            }
            let auth = creds.remove(&repo.alias);
            repos.insert(repo.alias.clone(), Arc::new(Repo { auth, ..repo }));
        }
        if let (Some(alias), Some(path)) = (creds.keys().next(), &cfg.credentials_file) {
            anyhow::bail!("git.credentials_file {}: key {alias:?} names no [[git.repo]] alias", path.display());
        }
        let spool = SpoolLimits {
            max_bytes: cfg.spool_max_bytes.unwrap_or(MAX_SPOOL_BYTES),
            deadline: std::time::Duration::from_secs(cfg.spool_deadline_secs.unwrap_or(SPOOL_DEADLINE_SECS)),
        };
        Ok(Self { repos, tls: Arc::new(tls_config("git.ca_file", cfg.ca_file.as_deref())?), spool })
    }

    pub fn get(&self, alias: &str) -> Option<Arc<Repo>> {
        self.repos.get(alias).cloned()
    }
}

fn parse_repo(file: &Path, text: &str, r: &GitRepo) -> Result<Repo, ConfigError> {
    let err = |key: &str, v: &Spanned<String>, msg: &str| ConfigError::at(file, text, key, v, msg);
    let alias = r.alias.get_ref();
    let alias_ok = !alias.is_empty()
        && !alias.ends_with(".git")
        && !alias.starts_with('.')
        && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !alias_ok {
        return Err(err(
            "git.repo.alias",
            &r.alias,
            "alias must be letters, digits, '.', '_' or '-', not ending in .git",
        ));
    }
    let upstream = parse_upstream(r.upstream.get_ref()).map_err(|m| err("git.repo.upstream", &r.upstream, m))?;
    let patterns = |key: &str, list: &[Spanned<String>]| {
        list.iter()
            .map(|p| check_pattern(p.get_ref()).map(|()| Pattern(p.get_ref().clone())).map_err(|m| err(key, p, m)))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Repo {
        alias: alias.clone(),
        upstream,
        fetch: r.fetch,
        push: patterns("git.repo.push", &r.push)?,
        protected: patterns("git.repo.protected", &r.protected)?,
        tags: r.tags,
        push_options: r
            .push_options
            .iter()
            .map(|o| match bottle_protocol::push_option::check(o.get_ref()) {
                Ok(()) => Ok(o.get_ref().clone()),
                Err(why) => Err(err("git.repo.push_options", o, &why)),
            })
            .collect::<Result<_, _>>()?,
        auth: None,
    })
}

fn check_pattern(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("pattern is empty");
    }
    if p.starts_with("refs/") {
        return Err("patterns name branches; drop the refs/heads/ prefix");
    }
    let bad = p.starts_with('/')
        || p.ends_with('/')
        || p.ends_with(".lock")
        || p.contains("..")
        || p.contains("//")
        || p.contains("@{")
        || p.bytes().any(|b| b <= b' ' || b == 0x7f || b"~^:?[\\".contains(&b));
    if bad { Err("not a valid branch name or glob (only '*' is special)") } else { Ok(()) }
}

pub(crate) fn parse_upstream(url: &str) -> Result<Upstream, &'static str> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("upstream must be an http:// or https:// URL");
    };
    if rest.contains(['?', '#']) || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("upstream must not carry a query, fragment or whitespace");
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.contains('@') {
        return Err("upstream must not embed credentials; put them in git.credentials_file");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed '[' in upstream host")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("upstream has no host");
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or("upstream port must be 1-65535")?,
        None if tls => 443,
        None => 80,
    };
    let path = format!("/{}", path.trim_end_matches('/'));
    let path = if path == "/" { String::new() } else { path };
    Ok(Upstream { tls, host: host.to_ascii_lowercase(), port, path })
}

/// Reads `alias = "user:token"` / `alias = "token"` lines into ready `Authorization` values.
/// Errors name the file, position and alias, never a value.
fn load_credentials(path: &Path) -> anyhow::Result<BTreeMap<String, Secret>> {
    let ctx = format!("git.credentials_file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{ctx}: cannot read: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = Position::at(path, &text, e.span().map_or(0, |s| s.start));
        anyhow::anyhow!("{at}: not a TOML table of alias = \"user:token\" strings")
    })?;
    let mut out = BTreeMap::new();
    for (alias, value) in table {
        let Some(cred) = value.as_str().filter(|c| !c.trim().is_empty()) else {
            anyhow::bail!("{ctx}: {alias}: value must be a non-empty \"user:token\" or \"token\" string");
        };
        let cred = cred.trim();
        let pair = if cred.contains(':') { cred.to_string() } else { format!("{TOKEN_ONLY_USER}:{cred}") };
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        out.insert(alias, Secret(header));
    }
    Ok(out)
}

/// Public web roots plus the optional PEM bundle named by config key `key`.
pub(crate) fn tls_config(key: &str, ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let ctx = format!("{key} {}", path.display());
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("{ctx}: cannot read PEM certificates: {e}"))?;
        anyhow::ensure!(!certs.is_empty(), "{ctx}: no certificates found");
        for cert in certs {
            roots.add(cert).map_err(|e| anyhow::anyhow!("{ctx}: bad certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_exact_and_stars() {
        let p = |s: &str| Pattern(s.to_string());
        assert!(p("main").matches("main"));
        assert!(!p("main").matches("main2"));
        assert!(p("agent/*").matches("agent/x/y"));
        assert!(!p("agent/*").matches("agents/x"));
        assert!(p("feature-*-wip").matches("feature-a-wip"));
        assert!(!p("feature-*-wip").matches("feature-a-wipx"));
        assert!(p("*").matches("anything"));
    }

    #[test]
    fn upstream_urls_parse_or_explain() {
        let u = parse_upstream("https://Git.Example.test/org/repo.git/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (true, "git.example.test", 443, "/org/repo.git"));
        assert_eq!(u.authority(), "git.example.test");
        let u = parse_upstream("http://[::1]:8080/r").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority()), ("::1", 8080, "[::1]:8080".to_string()));
        assert!(parse_upstream("ssh://host/r").is_err());
        assert!(parse_upstream("https://user:tok@host/r").unwrap_err().contains("credentials"));
        assert!(parse_upstream("https://host:99999/r").is_err());
        assert!(parse_upstream("https:///r").is_err());
    }

    #[test]
    fn patterns_reject_refnames_and_specials() {
        assert!(check_pattern("agent/*").is_ok());
        assert!(check_pattern("refs/heads/main").is_err());
        assert!(check_pattern("a..b").is_err());
        assert!(check_pattern("a b").is_err());
        assert!(check_pattern("a[b]").is_err());
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn repo(push: &[&str], protected: &[&str], tags: bool) -> Repo {
        let pats = |l: &[&str]| l.iter().map(|p| Pattern((*p).to_string())).collect();
        Repo {
            alias: "r".into(),
            upstream: parse_upstream("http://up.test/r.git").unwrap(),
            fetch: true,
            push: pats(push),
            protected: pats(protected),
            tags,
            push_options: Vec::new(),
            auth: None,
        }
    }
}
