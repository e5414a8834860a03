//! Turns a [`RawSpec`] into a [`Spec`], refusing anything a backend could not
//! use safely, with the position of the value at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use bottle_protocol::config::{ConfigError, Position};
use toml::Spanned;

use super::raw::{RawAgent, RawBuild, RawEgress, RawImage, RawRepo, RawResources, RawSecret, RawSource, RawSpec};
use super::{DEFAULT_WORKDIR, GitSpec, ImageSource, RepoSpec, Resources, Secret, SecretSource, Spec};
use crate::backend::BackendKind;

/// Bottle names become part of engine resource names (containers, networks,
/// volumes) and host names, so they stay short, lowercase and DNS-safe.
pub const NAME_MAX_LEN: usize = 40;
/// Smallest and largest memory a bottle may ask for, in MiB.
pub const MEMORY_MIN_MIB: u64 = 64;
pub const MEMORY_MAX_MIB: u64 = 1024 * 1024;
/// Bounds on `cpus` and `pids`.
const CPUS_MAX: f64 = 1024.0;
const PIDS_MIN: i64 = 16;
const PIDS_MAX: i64 = 4_194_304;
/// Longest git alias (it is one URL path segment).
const ALIAS_MAX_LEN: usize = 100;
/// Proxy variables bottle sets for the agent; overriding them would only break egress.
const RESERVED_ENV: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"];
/// Shown instead of a value that must not be echoed.
const REDACTED: &str = "<redacted>";

/// Parses a backend name as written in bottle.toml, `--backend` or `CLAUDE_BOTTLE_BACKEND`.
pub fn parse_backend(s: &str) -> Option<BackendKind> {
    match s {
        "docker" => Some(BackendKind::Docker),
        "smolmachines" => Some(BackendKind::Smolmachines),
        _ => None,
    }
}

/// Checks a bottle name (from bottle.toml or the command line).
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX_LEN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a bottle name is 1-{NAME_MAX_LEN} lowercase letters, digits and `-`, starting and ending with a letter or digit"
        ))
    }
}

pub(super) struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    base: PathBuf,
}

type Checked<T> = Result<T, ConfigError>;

impl<'a> Checker<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self { file, text, base }
    }

    fn err(&self, span: Range<usize>, key: &str, value: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            position: Position::at(self.file, self.text, span.start),
            key: key.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }

    fn bad(&self, key: &str, v: &Spanned<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.text, key, v, message)
    }

    pub fn spec(&self, raw: RawSpec) -> Checked<Spec> {
        let name = self.name(&raw.name)?;
        let image = match &raw.image {
            None => ImageSource::Default,
            Some(img) => self.image(img)?,
        };
        let workspace = self.existing_dir("workspace", &raw.workspace)?;
        let workdir = match &raw.workdir {
            None => DEFAULT_WORKDIR.to_string(),
            Some(w) => self.workdir(w)?,
        };
        let (command, env) = self.agent(&raw.agent)?;
        let (allow, deny) = self.egress(&raw.egress)?;
        let secrets = self.secrets(&raw.secrets)?;
        let git = GitSpec {
            credentials: match &raw.git.credentials {
                None => None,
                Some(c) => Some(self.source("git.credentials", c.span(), c.get_ref())?),
            },
            repos: self.repos(&raw.git.repos)?,
        };
        let resources = self.resources(&raw.resources)?;
        let backend = match &raw.backend {
            None => None,
            Some(b) => Some(
                parse_backend(b.get_ref())
                    .ok_or_else(|| self.bad("backend", b, "expected `docker` or `smolmachines`"))?,
            ),
        };
        Ok(Spec {
            source: self.file.to_path_buf(),
            name,
            image,
            workspace,
            workdir,
            command,
            env,
            allow,
            deny,
            secrets,
            git,
            resources,
            backend,
        })
    }

    fn name(&self, v: &Spanned<String>) -> Checked<String> {
        check_name(v.get_ref()).map_err(|m| self.bad("name", v, m))?;
        Ok(v.get_ref().clone())
    }

    fn image(&self, img: &Spanned<RawImage>) -> Checked<ImageSource> {
        match img.get_ref() {
            RawImage::Reference(r) => {
                let ok = !r.is_empty()
                    && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
                    && !r.starts_with(['-', '/', ':', '@']);
                if !ok {
                    return Err(self.err(
                        img.span(),
                        "image",
                        r,
                        "not an image reference (e.g. `debian:bookworm`, `ghcr.io/org/img@sha256:...`)",
                    ));
                }
                Ok(ImageSource::Reference(r.clone()))
            }
            RawImage::Build(RawBuild { build, dockerfile }) => {
                let context = self.existing_dir("image.build", build)?;
                let dockerfile = match dockerfile {
                    None => None,
                    Some(d) => {
                        let rel = PathBuf::from(d.get_ref());
                        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                            return Err(self.bad(
                                "image.dockerfile",
                                d,
                                "must be a relative path inside the build directory",
                            ));
                        }
                        if !context.join(&rel).is_file() {
                            return Err(self.bad(
                                "image.dockerfile",
                                d,
                                format!("no such file in the build directory {}", context.display()),
                            ));
                        }
                        Some(rel)
                    }
                };
                Ok(ImageSource::Build { context, dockerfile })
            }
        }
    }

    /// Resolves a host path against the bottle.toml's directory (`~/` against `$HOME`).
    fn host_path(&self, s: &str) -> PathBuf {
        match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => self.base.join(s),
        }
    }

    fn existing_dir(&self, key: &str, v: &Spanned<String>) -> Checked<PathBuf> {
        if v.get_ref().is_empty() {
            return Err(self.bad(key, v, "empty path"));
        }
        let path = self.host_path(v.get_ref());
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                std::fs::canonicalize(&path).map_err(|e| self.bad(key, v, format!("resolving {}: {e}", path.display())))
            }
            Ok(_) => Err(self.bad(key, v, format!("{} is not a directory", path.display()))),
            Err(e) => {
                Err(self.bad(key, v, format!("{}: {e} (bottle never creates it; create it first)", path.display())))
            }
        }
    }

    fn workdir(&self, v: &Spanned<String>) -> Checked<String> {
        let s = v.get_ref();
        let p = Path::new(s);
        let ok = p.is_absolute()
            && s != "/"
            && !s.contains('\0')
            && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !ok {
            return Err(self.bad("workdir", v, "must be an absolute path other than `/`, without `.` or `..`"));
        }
        Ok(s.trim_end_matches('/').to_string())
    }

    fn agent(&self, agent: &RawAgent) -> Checked<(Vec<String>, BTreeMap<String, String>)> {
        let mut command = Vec::new();
        for (i, arg) in agent.command.iter().enumerate() {
            if i == 0 && arg.get_ref().trim().is_empty() {
                return Err(self.bad("agent.command[0]", arg, "the program name is empty"));
            }
            command.push(arg.get_ref().clone());
        }
        let mut env = BTreeMap::new();
        for (k, v) in &agent.env {
            let key = format!("agent.env.{}", k.get_ref());
            if !is_env_name(k.get_ref()) {
                return Err(self.bad(&key, k, "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"));
            }
            if RESERVED_ENV.contains(&k.get_ref().to_ascii_uppercase().as_str()) {
                return Err(self.bad(&key, k, "bottle sets the proxy variables itself; remove this key"));
            }
            if v.get_ref().contains('\0') {
                return Err(self.bad(&key, v, "contains a NUL byte"));
            }
            env.insert(k.get_ref().clone(), v.get_ref().clone());
        }
        Ok((command, env))
    }

    fn egress(&self, egress: &RawEgress) -> Checked<(Vec<String>, Vec<String>)> {
        let list = |key: &str, entries: &[Spanned<String>]| -> Checked<Vec<String>> {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    super::egress::check_entry(e.get_ref()).map_err(|m| self.bad(&format!("egress.{key}[{i}]"), e, m))
                })
                .collect()
        };
        Ok((list("allow", &egress.allow)?, list("deny", &egress.deny)?))
    }

    fn secrets(&self, raw: &[RawSecret]) -> Checked<Vec<Secret>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let key = format!("secret[{i}]");
            if !is_env_name(s.name.get_ref()) {
                return Err(self.bad(&format!("{key}.name"), &s.name, "a secret name is [A-Za-z_][A-Za-z0-9_]*"));
            }
            if !seen.insert(s.name.get_ref().clone()) {
                return Err(self.bad(&format!("{key}.name"), &s.name, "a secret with this name is already defined"));
            }
            let source = RawSource { env: s.env.clone(), file: s.file.clone(), value: s.value.clone() };
            let from = self.source(&key, s.name.span(), &source)?;
            out.push(Secret { name: s.name.get_ref().clone(), from });
        }
        Ok(out)
    }

    /// `{ env = "VAR" }` or `{ file = "path" }`; a literal `value` is refused.
    fn source(&self, key: &str, span: Range<usize>, raw: &RawSource) -> Checked<SecretSource> {
        if let Some(v) = &raw.value {
            return Err(self.err(
                v.span(),
                &format!("{key}.value"),
                REDACTED,
                "secret values never go in bottle.toml (it is shared and committed); name where the value lives with `env = \"VAR\"` or `file = \"path\"`",
            ));
        }
        match (&raw.env, &raw.file) {
            (Some(env), None) => {
                if !is_env_name(env.get_ref()) {
                    return Err(self.bad(
                        &format!("{key}.env"),
                        env,
                        "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                    ));
                }
                Ok(SecretSource::Env(env.get_ref().clone()))
            }
            (None, Some(file)) => {
                if file.get_ref().is_empty() {
                    return Err(self.bad(&format!("{key}.file"), file, "empty path"));
                }
                Ok(SecretSource::File(self.host_path(file.get_ref())))
            }
            (Some(env), Some(_)) => {
                Err(self.bad(&format!("{key}.env"), env, "give exactly one of `env` or `file`, not both"))
            }
            (None, None) => Err(self.err(span, key, "", "give exactly one of `env = \"VAR\"` or `file = \"path\"`")),
        }
    }

    fn repos(&self, raw: &[RawRepo]) -> Checked<Vec<RepoSpec>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("git.repo[{i}]");
            let alias = r.alias.get_ref();
            let ok = !alias.is_empty()
                && alias.len() <= ALIAS_MAX_LEN
                && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !alias.starts_with('.')
                && !alias.ends_with(".git");
            if !ok {
                return Err(self.bad(
                    &format!("{key}.alias"),
                    &r.alias,
                    format!("an alias is one URL path segment: 1-{ALIAS_MAX_LEN} of [A-Za-z0-9._-], not starting with `.`, without a `.git` suffix"),
                ));
            }
            if !seen.insert(alias.clone()) {
                return Err(self.bad(&format!("{key}.alias"), &r.alias, "a repo with this alias is already defined"));
            }
            self.upstream(&format!("{key}.upstream"), &r.upstream)?;
            let patterns = |field: &str, list: &[Spanned<String>]| -> Checked<Vec<String>> {
                list.iter()
                    .enumerate()
                    .map(|(j, p)| {
                        if is_branch_pattern(p.get_ref()) {
                            Ok(p.get_ref().clone())
                        } else {
                            Err(self.bad(
                                &format!("{key}.{field}[{j}]"),
                                p,
                                "not a branch name or pattern (no spaces, `..`, `~^:?[\\`, leading `-` or `/`)",
                            ))
                        }
                    })
                    .collect()
            };
            out.push(RepoSpec {
                alias: alias.clone(),
                upstream: r.upstream.get_ref().clone(),
                fetch: r.fetch,
                push: patterns("push", &r.push)?,
                protected: patterns("protected", &r.protected)?,
                tags: r.tags,
            });
        }
        Ok(out)
    }

    /// `http(s)://host[:port]/path`, with no credentials in it.
    fn upstream(&self, key: &str, v: &Spanned<String>) -> Checked<()> {
        let s = v.get_ref();
        let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else {
            return Err(self.bad(key, v, "expected an http:// or https:// URL"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            // The value may hold a password: show only where it is.
            return Err(self.err(
                v.span(),
                key,
                REDACTED,
                "credentials never go in the URL; use [git] credentials = { env = ... } or { file = ... }",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, after)) if after.starts_with(':') => (h, Some(&after[1..])),
                _ => ("", None),
            },
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if let Some(p) = port
            && p.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(self.bad(key, v, format!("port `{p}` is not a number from 1 to 65535")));
        }
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if !host_ok {
            return Err(self.bad(key, v, "the URL has no valid host"));
        }
        if path.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.bad(key, v, "expected a repository URL with a path, e.g. https://host/org/repo.git"));
        }
        Ok(())
    }

    fn resources(&self, raw: &RawResources) -> Checked<Resources> {
        let mut r = Resources::default();
        if let Some(c) = &raw.cpus {
            let cpus = match c.get_ref() {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                _ => f64::NAN,
            };
            if !(cpus > 0.0 && cpus <= CPUS_MAX) {
                return Err(self.err(
                    c.span(),
                    "resources.cpus",
                    &show(c.get_ref()),
                    format!("expected a number of CPUs above 0 and at most {CPUS_MAX}"),
                ));
            }
            r.cpus = cpus;
        }
        if let Some(m) = &raw.memory {
            let mib = match m.get_ref() {
                toml::Value::Integer(i) => u64::try_from(*i).ok(),
                toml::Value::String(s) => parse_memory_mib(s),
                _ => None,
            };
            match mib {
                Some(mib) if (MEMORY_MIN_MIB..=MEMORY_MAX_MIB).contains(&mib) => r.memory_mib = mib,
                _ => {
                    return Err(self.err(
                        m.span(),
                        "resources.memory",
                        &show(m.get_ref()),
                        format!("expected MiB as an integer or a size like \"512M\", \"2G\", \"2GiB\", from {MEMORY_MIN_MIB} MiB to {MEMORY_MAX_MIB} MiB"),
                    ));
                }
            }
        }
        if let Some(p) = &raw.pids {
            if !(PIDS_MIN..=PIDS_MAX).contains(p.get_ref()) {
                return Err(self.err(
                    p.span(),
                    "resources.pids",
                    &p.get_ref().to_string(),
                    format!("expected {PIDS_MIN} to {PIDS_MAX}"),
                ));
            }
            r.pids = *p.get_ref() as u64;
        }
        Ok(r)
    }
}

/// A value as the user wrote it, without TOML quoting.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `1536`, `512M`, `512MiB`, `2G`, `2GiB`, `1T` (binary units; a bare number is MiB).
fn parse_memory_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mi" | "mib" => 1,
        "g" | "gb" | "gi" | "gib" => 1024,
        "t" | "tb" | "ti" | "tib" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A git branch name or glob (`agent/*`): what `git check-ref-format --branch` would take, plus `*`.
fn is_branch_pattern(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '/'])
        && !s.ends_with(['/', '.'])
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && !s.ends_with(".lock")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_binary_and_bare_numbers_are_mib() {
        assert_eq!(parse_memory_mib("512"), Some(512));
        assert_eq!(parse_memory_mib("512M"), Some(512));
        assert_eq!(parse_memory_mib("2G"), Some(2048));
        assert_eq!(parse_memory_mib("2GiB"), Some(2048));
        assert_eq!(parse_memory_mib("1t"), Some(1024 * 1024));
        assert_eq!(parse_memory_mib("2XB"), None);
        assert_eq!(parse_memory_mib("G"), None);
        assert_eq!(parse_memory_mib("1.5G"), None);
    }

    #[test]
    fn branch_patterns_follow_git_ref_rules() {
        for ok in ["main", "agent/*", "feature-*", "release/1.2"] {
            assert!(is_branch_pattern(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "a/", "x.lock", "a~1"] {
            assert!(!is_branch_pattern(bad), "{bad}");
        }
    }
}
