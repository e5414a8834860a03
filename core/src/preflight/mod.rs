//! Checking before doing: everything a spec names on the host (secrets, git and API
//! credentials, the agent image, the workspace) is read or looked up before `up` makes
//! anything, so an unset variable, a missing file, a failing command or an absent image is a
//! usage error at its `file:line:col`, not an engine error after networks exist.
//! `up --dry-run` prints the same report and stops there.
//!
//! Each secret is read once, here, and handed on as a value ([`SecretSource::Value`]): a
//! command (a password manager that may ask for a fingerprint) runs once per `up`, and the
//! bundle gets exactly what was checked. No value ever appears in a report or an error.

mod workspace;

use std::fmt;

use bollard::Docker;
use bottle_protocol::config::{ConfigError, Position};
use serde::Serialize;

use crate::backend::{BackendKind, Progress};
use crate::spec::{ImageSource, SecretSource, SecretValue, Spec};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// `up` goes on, but the user should know (a workspace the agent cannot write).
    Warning,
    /// `up` stops before making anything.
    Failed,
}

/// One thing the spec names, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `secret DEPLOY_KEY`, `api anthropic credential`, `git credentials`, `image`, `workspace`.
    pub what: String,
    /// The spec key at fault, as spec errors name it (`secret[0].command`).
    pub key: String,
    /// `file:line:col` where the spec names it.
    pub at: String,
    pub outcome: Outcome,
    /// What was found, or why it failed; never a secret's value.
    pub detail: String,
    /// What to do when it is not ok; empty otherwise.
    pub fix: String,
    #[serde(skip)]
    position: Position,
    /// What the spec wrote there (a variable's name, a path, a program), for the error.
    #[serde(skip)]
    value: String,
}

/// Everything checked for one spec.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bottle: String,
    /// No item failed (warnings allowed).
    pub ok: bool,
    pub items: Vec<Item>,
    /// The spec with every secret read, for `up` to go on with.
    #[serde(skip)]
    ready: Spec,
}

/// `up` refused before making anything: each failed check, with its position.
#[derive(Debug, thiserror::Error)]
pub struct Refused(pub Vec<ConfigError>);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n  and: ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Report {
    /// The spec `up` goes on with, once warnings are shown; the failures otherwise.
    pub fn ready(self, progress: &dyn Progress) -> Result<Spec, Refused> {
        for w in self.items.iter().filter(|i| i.outcome == Outcome::Warning) {
            progress.step(&format!("warning: {}: {}: {}; {}", w.at, w.what, w.detail, w.fix));
        }
        let failed: Vec<ConfigError> = self
            .items
            .into_iter()
            .filter(|i| i.outcome == Outcome::Failed)
            .map(|i| ConfigError {
                position: i.position,
                key: i.key,
                value: i.value,
                message: if i.fix.is_empty() { i.detail } else { format!("{}; {}", i.detail, i.fix) },
            })
            .collect();
        if failed.is_empty() { Ok(self.ready) } else { Err(Refused(failed)) }
    }
}

/// Whether `e` (anywhere in its chain) is `up` refusing a spec before making anything.
pub fn is_refusal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Refused>())
}

/// Runs every check. `engine` is where images are looked up (`None`: not here, they are
/// resolved later); `backend` decides who the agent runs as, for the workspace check.
pub async fn check(spec: &Spec, engine: Option<&Docker>, backend: BackendKind) -> Report {
    let mut ready = spec.clone();
    let mut items = Vec::new();
    for (i, s) in ready.secrets.iter_mut().enumerate() {
        items.push(read_into(spec, &format!("secret[{i}]"), &format!("secret {}", s.name), &mut s.from).await.0);
    }
    for (i, a) in ready.apis.iter_mut().enumerate() {
        let what = format!("api {} credential", a.name);
        items.push(read_into(spec, &format!("api[{i}].credential"), &what, &mut a.credential).await.0);
    }
    if let Some(source) = ready.git.credentials.as_mut() {
        let (mut item, text) = read_into(spec, "git.credentials", "git credentials", source).await;
        if let Some(Err(e)) = text.map(|t| crate::sidecar::check_git_credentials(&t, &spec.git.repos)) {
            item.outcome = Outcome::Failed;
            item.detail = format!("{e:#}");
            item.fix = "write one `alias = \"token\"` line per [[git.repo]] alias".into();
        }
        items.push(item);
    }
    items.extend(image(spec, engine).await);
    items.push(workspace::check(spec, engine, backend).await);
    Report { bottle: spec.name.clone(), ok: items.iter().all(|i| i.outcome != Outcome::Failed), items, ready }
}

/// Reads `source` (off the async threads: a command may run for a while) and, on success,
/// replaces it with the value read. Returns the item and the value, for checks of its content.
async fn read_into(spec: &Spec, key: &str, what: &str, source: &mut SecretSource) -> (Item, Option<String>) {
    let given = source.clone();
    let read = tokio::task::spawn_blocking(move || given.read())
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("reading it stopped unexpectedly")));
    let mut item = item(spec, &format!("{key}.{}", source.key()), key, what, &source.named());
    match read {
        Ok(text) => {
            item.detail = format!("read from {}", source.describe());
            *source = SecretSource::Value(SecretValue::new(text.clone()));
            (item, Some(text))
        }
        Err(e) => {
            item.outcome = Outcome::Failed;
            item.detail = format!("{e:#}");
            item.fix = match source {
                SecretSource::Env(_) => {
                    "set it where `up` runs (an app started from the Dock or Finder gets no shell variables: use `command`)"
                }
                SecretSource::File(_) => "create the file, or point `file` at the right one",
                SecretSource::Command(_) => "run the command yourself to see why",
                SecretSource::Value(_) => "give a non-empty value",
            }
            .into();
            (item, None)
        }
    }
}

/// An item that is ok until told otherwise, placed where the spec wrote `origin` (an implied
/// API credential has no line of its own: it comes from `image`).
fn item(spec: &Spec, key: &str, origin: &str, what: &str, value: &str) -> Item {
    let position = spec.origins.get(origin).or_else(|| spec.origins.get("image")).cloned().unwrap_or(Position {
        file: spec.source.clone(),
        line: 0,
        col: 0,
    });
    Item {
        what: what.into(),
        key: key.into(),
        at: position.to_string(),
        outcome: Outcome::Ok,
        detail: String::new(),
        fix: String::new(),
        position,
        value: value.into(),
    }
}

/// The agent image: a reference must already be in the engine (bottle pulls from no
/// registry); bottle's own images and builds are made by `up` itself.
async fn image(spec: &Spec, engine: Option<&Docker>) -> Option<Item> {
    let engine = engine?;
    let mut it = item(spec, "image", "image", "image", "");
    it.detail = match &spec.image {
        ImageSource::Reference(r) => {
            it.value = r.clone();
            if !crate::images::image_exists(engine, r).await {
                it.outcome = Outcome::Failed;
                it.fix = "build it or `docker load` it first".into();
                format!("{r} is not in the local engine, and bottle pulls from no registry")
            } else {
                format!("{r} is in the local engine")
            }
        }
        ImageSource::Default if crate::images::image_exists(engine, &crate::images::agent_tag()).await => {
            "bottle's agent image is in the local engine".into()
        }
        ImageSource::Default => "bottle's agent image: `up` builds it (minutes, the first time)".into(),
        ImageSource::Agent(kind) => format!("bottle's agent image with {}: `up` builds what is missing", kind.name()),
        ImageSource::Build { context, .. } => format!("`up` builds it from {}", context.display()),
    };
    Some(it)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_secret_is_read_once_into_a_value_and_failures_keep_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bottle.toml");
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(dir.path().join("ok"), "from-file\n").unwrap();
        let text = "name = \"p\"\nworkspace = \"ws\"\n\
                    [[secret]]\nname = \"A\"\nfile = \"ok\"\n\
                    [[secret]]\nname = \"B\"\ncommand = [\"printf\", \"from-command\"]\n\
                    [[secret]]\nname = \"C\"\nenv = \"BOTTLE_PREFLIGHT_TEST_UNSET\"\n";
        let spec = Spec::parse(&path, text).unwrap();
        let report = check(&spec, None, BackendKind::Smolmachines).await;
        assert!(!report.ok);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("from-file") && !json.contains("from-command"), "{json}");
        let Refused(errors) = report.clone().ready(&crate::backend::NoProgress).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].position.line, errors[0].position.col), (11, 7), "{}", errors[0]);
        assert_eq!(errors[0].key, "secret[2].env");
        assert!(errors[0].to_string().contains("BOTTLE_PREFLIGHT_TEST_UNSET is not set"), "{}", errors[0]);
        let ready = report.ready;
        assert_eq!(ready.secrets[0].from.read().unwrap(), "from-file");
        assert!(matches!(ready.secrets[1].from, SecretSource::Value(_)));
        assert_eq!(ready.secrets[1].from.read().unwrap(), "from-command");
    }
}
