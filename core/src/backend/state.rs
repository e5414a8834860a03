//! `BottleState`: where a bottle is in its life, as its backend reports it.
//!
//! One enum for every backend, so the CLI, `live` and the FFI match on cases instead of
//! comparing words. In `--json` it is the word the CLI has always printed, so scripts
//! reading `state` see no change.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum BottleState {
    /// Agent and bundle run, and the boundary was seen to hold.
    Running,
    /// Up, but not as `up` left it (one side stopped, or the boundary not seen to hold
    /// since a restart); the status's `detail` says why.
    Degraded,
    /// Both sides stopped.
    Stopped,
    /// Left half-made by an interrupted `up`, or one still in progress (Docker).
    Incomplete,
    /// Made but never started (smolmachines).
    Created,
    /// Given up on by the VMM's supervisor (smolmachines).
    Failed,
    /// Paused by the VMM (smolmachines, smolvm 1.3.0+).
    Frozen,
    /// A word the VMM reports that bottle does not know, kept verbatim rather than guessed at.
    Other(String),
}

impl BottleState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Running => "running",
            Self::Degraded => "degraded",
            Self::Stopped => "stopped",
            Self::Incomplete => "incomplete",
            Self::Created => "created",
            Self::Failed => "failed",
            Self::Frozen => "frozen",
            Self::Other(word) => word,
        }
    }

    /// Whether the bottle's bundle is expected to answer on its control plane.
    pub fn bundle_answers(&self) -> bool {
        matches!(self, Self::Running | Self::Degraded)
    }
}

impl From<String> for BottleState {
    fn from(word: String) -> Self {
        match word.as_str() {
            "running" => Self::Running,
            "degraded" => Self::Degraded,
            "stopped" => Self::Stopped,
            "incomplete" => Self::Incomplete,
            "created" => Self::Created,
            "failed" => Self::Failed,
            "frozen" => Self::Frozen,
            _ => Self::Other(word),
        }
    }
}

impl From<BottleState> for String {
    fn from(s: BottleState) -> Self {
        s.as_str().to_owned()
    }
}

impl std::fmt::Display for BottleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_word_is_the_one_the_cli_always_printed() {
        for s in [BottleState::Running, BottleState::Degraded, BottleState::Incomplete, BottleState::Other("x".into())]
        {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<BottleState>(&json).unwrap(), s);
        }
        assert_eq!(BottleState::from("hibernating".to_string()), BottleState::Other("hibernating".into()));
    }
}
