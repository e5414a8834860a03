//! Turns a [`RawSpec`] into a [`Spec`], refusing anything a backend could not
//! use safely, with the position of the value at fault.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use bottle_protocol::config::{ConfigError, Position};
use toml::Spanned;

use super::raw::{RawAgent, RawEgress, RawImage, RawImageTable, RawSecret, RawSource, RawSpec};
use super::{AgentKind, DEFAULT_WORKDIR, GitSpec, ImageSource, Origins, Secret, SecretSource, Spec};
use crate::backend::BackendKind;

/// Bottle names become part of engine resource names (containers, networks,
/// volumes) and host names, so they stay short, lowercase and DNS-safe.
pub const NAME_MAX_LEN: usize = 40;
/// Proxy variables bottle sets for the agent; overriding them would only break egress.
const RESERVED_ENV: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"];
/// Shown instead of a value that must not be echoed.
pub(super) const REDACTED: &str = "<redacted>";

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
    /// The backend chosen outside the file (`--backend`, `CLAUDE_BOTTLE_BACKEND`), which
    /// wins over the file's own `backend` for backend-specific limits.
    backend: Option<BackendKind>,
    /// Filled in as values that are checked again at `up` are met (see [`Origins`]).
    origins: RefCell<Origins>,
}

pub(super) type Checked<T> = Result<T, ConfigError>;

impl<'a> Checker<'a> {
    pub fn new(file: &'a Path, text: &'a str, backend: Option<BackendKind>) -> Self {
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self { file, text, base, backend, origins: RefCell::default() }
    }

    pub(super) fn err(&self, span: Range<usize>, key: &str, value: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            position: Position::at(self.file, self.text, span.start),
            key: key.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }

    fn remember(&self, key: &str, span: Range<usize>) {
        self.origins.borrow_mut().insert(key, Position::at(self.file, self.text, span.start));
    }

    pub(super) fn bad(&self, key: &str, v: &Spanned<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.text, key, v, message)
    }

    pub fn spec(&self, raw: RawSpec) -> Checked<Spec> {
        let name = self.name(&raw.name)?;
        let image = match &raw.image {
            None => ImageSource::Default,
            Some(img) => {
                self.remember("image", img.span());
                self.image(img)?
            }
        };
        self.remember("workspace", raw.workspace.span());
        let workspace = self.existing_dir("workspace", &raw.workspace)?;
        let workdir = match &raw.workdir {
            None => DEFAULT_WORKDIR.to_string(),
            Some(w) => self.workdir(w)?,
        };
        let (mut command, env) = self.agent(&raw.agent)?;
        if let (true, ImageSource::Agent(kind)) = (command.is_empty(), &image) {
            command.push(kind.command().to_string());
        }
        let apis = self.apis(&raw.apis, &image, &env)?;
        let (allow, deny) = self.egress(&raw.egress)?;
        let secrets = self.secrets(&raw.secrets)?;
        let git = GitSpec {
            credentials: match &raw.git.credentials {
                None => None,
                Some(c) => Some(self.source("git.credentials", c.span(), c.get_ref())?),
            },
            repos: self.repos(&raw.git.repos)?,
        };
        let backend = match &raw.backend {
            None => None,
            Some(b) => Some(
                parse_backend(b.get_ref())
                    .ok_or_else(|| self.bad("backend", b, "expected `docker` or `smolmachines`"))?,
            ),
        };
        let resources = self.resources(&raw.resources, self.backend.or(backend))?;
        Ok(Spec {
            source: self.file.to_path_buf(),
            name,
            image,
            workspace,
            workdir,
            command,
            run_as_image_user: raw.agent.run_as_image_user,
            env,
            allow,
            deny,
            secrets,
            git,
            resources,
            backend,
            apis,
            origins: self.origins.take(),
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
            RawImage::Table(RawImageTable { agent: Some(agent), build, dockerfile }) => {
                if let Some(extra) = build.as_ref().or(dockerfile.as_ref()) {
                    return Err(self.bad("image.agent", extra, "give either `agent` or `build`, not both"));
                }
                AgentKind::ALL.into_iter().find(|k| k.name() == agent.get_ref()).map(ImageSource::Agent).ok_or_else(
                    || {
                        let known: Vec<&str> = AgentKind::ALL.iter().map(|k| k.name()).collect();
                        self.bad("image.agent", agent, format!("unknown agent; known: {}", known.join(", ")))
                    },
                )
            }
            RawImage::Table(RawImageTable { agent: None, build: None, .. }) => {
                Err(self.err(img.span(), "image", "", "an image table needs `build = \"dir\"` or `agent = \"name\"`"))
            }
            RawImage::Table(RawImageTable { agent: None, build: Some(build), dockerfile }) => {
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
            let source = RawSource {
                env: s.env.clone(),
                file: s.file.clone(),
                command: s.command.clone(),
                value: s.value.clone(),
            };
            let from = self.source(&key, s.name.span(), &source)?;
            out.push(Secret { name: s.name.get_ref().clone(), from });
        }
        Ok(out)
    }

    /// Exactly one of `{ env = "VAR" }`, `{ file = "path" }` or `{ command = [...] }`; a literal
    /// `value` is refused. Where the source is written is kept under `key` (see [`Origins`]).
    pub(super) fn source(&self, key: &str, span: Range<usize>, raw: &RawSource) -> Checked<SecretSource> {
        if let Some(v) = &raw.value {
            return Err(self.err(
                v.span(),
                &format!("{key}.value"),
                REDACTED,
                "secret values never go in bottle.toml (it is shared and committed); name where the value lives with `env = \"VAR\"`, `file = \"path\"` or `command = [\"program\", ...]`",
            ));
        }
        let given: Vec<&str> =
            [("env", raw.env.is_some()), ("file", raw.file.is_some()), ("command", raw.command.is_some())]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
        const ONE_OF: &str = "give exactly one of `env = \"VAR\"`, `file = \"path\"` or `command = [\"program\", ...]`";
        if given.is_empty() {
            return Err(self.err(span, key, "", ONE_OF));
        }
        if given.len() > 1 {
            // Pointed at the first one given: env, then file, then command.
            let (at, value) = match (&raw.env, &raw.file, &raw.command) {
                (Some(v), ..) | (None, Some(v), _) => (v.span(), v.get_ref().clone()),
                _ => (span, String::new()),
            };
            return Err(self.err(
                at,
                &format!("{key}.{}", given[0]),
                &value,
                format!("{ONE_OF}, not {}", given.join(" and ")),
            ));
        }
        if let Some(env) = &raw.env {
            self.remember(key, env.span());
            if !is_env_name(env.get_ref()) {
                return Err(self.bad(
                    &format!("{key}.env"),
                    env,
                    "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                ));
            }
            return Ok(SecretSource::Env(env.get_ref().clone()));
        }
        if let Some(file) = &raw.file {
            self.remember(key, file.span());
            if file.get_ref().is_empty() {
                return Err(self.bad(&format!("{key}.file"), file, "empty path"));
            }
            return Ok(SecretSource::File(self.host_path(file.get_ref())));
        }
        let command = raw.command.as_ref().expect("exactly one source is given");
        self.remember(key, command.span());
        self.command(&format!("{key}.command"), command)
    }

    /// A host command: a program and its arguments, run without a shell. A program named
    /// with a `/` is a path, resolved like the file paths; a bare name is looked up on `PATH`.
    fn command(&self, key: &str, command: &Spanned<Vec<Spanned<String>>>) -> Checked<SecretSource> {
        let Some(program) = command.get_ref().first() else {
            return Err(self.err(command.span(), key, "[]", "the command is empty: give [\"program\", \"arg\", ...]"));
        };
        if program.get_ref().trim().is_empty() {
            return Err(self.bad(&format!("{key}[0]"), program, "the program name is empty"));
        }
        if let Some((i, arg)) = command.get_ref().iter().enumerate().find(|(_, a)| a.get_ref().contains('\0')) {
            return Err(self.err(arg.span(), &format!("{key}[{i}]"), REDACTED, "contains a NUL byte"));
        }
        let mut argv: Vec<String> = command.get_ref().iter().map(|a| a.get_ref().clone()).collect();
        if argv[0].contains('/') {
            argv[0] = self.host_path(&argv[0]).to_string_lossy().into_owned();
        }
        Ok(SecretSource::Command(argv))
    }
}

pub(super) fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}
