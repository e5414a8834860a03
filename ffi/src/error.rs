//! The one error type every FFI call throws; in Swift, `BottleError` cases.
//!
//! Variants follow the front door's error cases (`bottle_core::bottles::Error`), as the
//! CLI's exit codes do, so the app can tell "start Docker" from "fix bottle.toml" from
//! "no such bottle" without parsing messages. Each
//! carries two texts made here, so every front end words an error the same way:
//! `message`, one sentence for the menu (what was being done, why it failed, and
//! for the engine what to do), and `chain`, every cause from outermost to root,
//! for a "details" disclosure. Swift's `"\(error)"` is the sentence (Display is exported).

use bottle_core::bottles::Error;
use bottle_protocol::display::escape_controls;

#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum BottleError {
    /// bottle.toml is missing or invalid, or an argument is malformed.
    #[error("{message}")]
    InvalidSpec { message: String, chain: Vec<String> },
    /// The container engine (or VM runtime) cannot be reached.
    #[error("{message}")]
    EngineUnavailable { message: String, chain: Vec<String> },
    /// No bottle by that name.
    #[error("{message}")]
    NotFound { message: String, chain: Vec<String> },
    /// The chosen backend is not part of this build.
    #[error("{message}")]
    BackendUnavailable { message: String, chain: Vec<String> },
    /// Anything else: a failed start, an unreachable control plane, ...
    #[error("{message}")]
    Runtime { message: String, chain: Vec<String> },
}

/// What the user can do about an engine that does not answer; the other cases name their own fix.
const ENGINE_HINT: &str = "Start Docker (Docker Desktop, OrbStack or colima), then try again.";

impl BottleError {
    /// The sentence to show.
    pub fn message(&self) -> &str {
        self.parts().0
    }

    /// Every cause, outermost first; the last is the root cause.
    pub fn chain(&self) -> &[String] {
        self.parts().1
    }

    fn parts(&self) -> (&str, &[String]) {
        match self {
            Self::InvalidSpec { message, chain }
            | Self::EngineUnavailable { message, chain }
            | Self::NotFound { message, chain }
            | Self::BackendUnavailable { message, chain }
            | Self::Runtime { message, chain } => (message, chain),
        }
    }
}

impl From<Error> for BottleError {
    fn from(e: Error) -> Self {
        type Case = fn(String, Vec<String>) -> BottleError;
        let (case, hint): (Case, _) = match &e {
            Error::InvalidSpec(_) => (|message, chain| Self::InvalidSpec { message, chain }, None),
            Error::EngineUnavailable(_) => {
                (|message, chain| Self::EngineUnavailable { message, chain }, Some(ENGINE_HINT))
            }
            Error::NotFound { .. } => (|message, chain| Self::NotFound { message, chain }, None),
            Error::BackendUnavailable(_) => (|message, chain| Self::BackendUnavailable { message, chain }, None),
            Error::BoundaryFailed(_) | Error::Runtime(_) => (|message, chain| Self::Runtime { message, chain }, None),
        };
        let chain: Vec<String> = e.into_anyhow().chain().map(|e| escape_lines(&e.to_string())).collect();
        case(sentence(&chain, hint), chain)
    }
}

impl From<anyhow::Error> for BottleError {
    fn from(e: anyhow::Error) -> Self {
        Error::Runtime(e).into()
    }
}

/// A cause can quote what a bottle sent (the agent may have shaped it): every control
/// character is escaped except the line breaks of a multi-line cause such as a parser's.
fn escape_lines(s: &str) -> String {
    s.lines().map(escape_controls).collect::<Vec<_>>().join("\n")
}

/// "What was being done: why it failed." The middle of the chain is left to `chain`;
/// only the first line of the root is kept (a parser's caret diagram is in `chain`).
fn sentence(chain: &[String], hint: Option<&str>) -> String {
    let first_line = |s: &String| s.lines().next().unwrap_or_default().trim().to_string();
    let mut text = match chain {
        [] => "Something went wrong".to_string(),
        [only] => first_line(only),
        [outer, .., root] => format!("{}: {}", first_line(outer), first_line(root)),
    };
    if let Some(c) = text.chars().next() {
        text.replace_range(..c.len_utf8(), &c.to_uppercase().to_string());
    }
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    if let Some(hint) = hint {
        text.push(' ');
        text.push_str(hint);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_case_picks_its_case_and_keeps_the_cause_chain() {
        let e: BottleError = Error::InvalidSpec(anyhow::anyhow!("inner").context("middle").context("bottle x")).into();
        assert!(matches!(&e, BottleError::InvalidSpec { .. }), "{e:?}");
        assert_eq!(e.message(), "Bottle x: inner.");
        assert_eq!(e.chain(), ["bottle x", "middle", "inner"]);
        assert_eq!(e.to_string(), e.message());
        let e: BottleError = Error::not_found("x").into();
        assert!(matches!(&e, BottleError::NotFound { .. }), "{e:?}");
        assert_eq!(e.message(), "No bottle named \"x\" (see `bottle-core ls`).");
        let e: BottleError = anyhow::anyhow!("boom").into();
        assert!(matches!(e, BottleError::Runtime { .. }));
        assert_eq!(e.message(), "Boom.");
    }

    #[test]
    fn an_engine_error_says_what_to_do() {
        let e: BottleError = Error::EngineUnavailable(anyhow::anyhow!("no socket at /var/run/docker.sock")).into();
        assert!(matches!(e, BottleError::EngineUnavailable { .. }));
        assert_eq!(e.message(), format!("No socket at /var/run/docker.sock. {ENGINE_HINT}"));
    }

    #[test]
    fn a_multi_line_root_keeps_its_first_line_in_the_sentence_and_all_of_it_in_the_chain() {
        let root = "bottle.toml:3:1: unknown key `egres`\n  |\n3 | egres = 1\n  | ^^^^^";
        let e: BottleError =
            Error::InvalidSpec(anyhow::anyhow!(root.to_string()).context("starting bottle demo")).into();
        assert_eq!(e.message(), "Starting bottle demo: bottle.toml:3:1: unknown key `egres`.");
        assert_eq!(e.chain().last().unwrap(), root);
    }

    #[test]
    fn a_control_character_in_a_cause_is_escaped() {
        let e: BottleError = anyhow::anyhow!("bad\x1b[2Kname").into();
        assert!(!e.message().contains('\x1b') && !e.chain()[0].contains('\x1b'), "{e:?}");
    }
}
