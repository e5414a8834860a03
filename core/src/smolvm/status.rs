//! Parses `smolvm machine status --json` and `machine ls --json`.
//!
//! smolvm adds fields from release to release (cuda, labels, forkable, ...),
//! so only the fields bottle relies on are read and the rest ignored; a state
//! word bottle does not know is kept verbatim rather than guessed at.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The lifecycle state smolvm reports for a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineState {
    Created,
    Running,
    Stopped,
    /// Only smolvm's supervisor writes this.
    Failed,
    /// The VM process is alive but its agent does not answer.
    Unreachable,
    /// Paused (smolvm 1.3.0+).
    Frozen,
    Other(String),
}

impl MachineState {
    fn from_word(word: &str) -> Self {
        match word {
            "created" => Self::Created,
            "running" => Self::Running,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            "unreachable" => Self::Unreachable,
            "frozen" => Self::Frozen,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::Frozen => "frozen",
            Self::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineStatus {
    pub name: String,
    pub state: MachineState,
    /// The stored pid: absent after create or stop, possibly stale after a crash.
    pub pid: Option<u32>,
    /// Whether the machine has networking at all (the policy itself is not in the JSON).
    pub network: Option<bool>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// `--label` values given at create (smolvm 1.8.0+; empty before).
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Raw {
    name: String,
    state: String,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    network: Option<bool>,
    #[serde(default)]
    cpus: Option<u32>,
    #[serde(default)]
    memory_mib: Option<u64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl From<Raw> for MachineStatus {
    fn from(r: Raw) -> Self {
        Self {
            name: r.name,
            state: MachineState::from_word(&r.state),
            pid: r.pid,
            network: r.network,
            cpus: r.cpus,
            memory_mib: r.memory_mib,
            labels: r.labels.unwrap_or_default(),
        }
    }
}

/// One machine, from `status -n NAME --json`.
pub fn parse_status(json: &str) -> Result<MachineStatus, String> {
    serde_json::from_str::<Raw>(json)
        .map(Into::into)
        .map_err(|e| format!("smolvm machine status --json: unexpected output: {e}"))
}

/// Every machine, from `ls --json`.
pub fn parse_list(json: &str) -> Result<Vec<MachineStatus>, String> {
    serde_json::from_str::<Vec<Raw>>(json)
        .map(|v| v.into_iter().map(Into::into).collect())
        .map_err(|e| format!("smolvm machine ls --json: unexpected output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_1_9_3_shape_and_ignores_extra_fields() {
        let json = r#"{"cmd":[],"cpus":2,"created_at":1786935065,"cuda":false,"labels":{},
            "memory_mib":2048,"name":"bottle-1","network":true,"pid":48213,"state":"running"}"#;
        let s = parse_status(json).unwrap();
        assert_eq!(s.state, MachineState::Running);
        assert_eq!(s.pid, Some(48213));
        assert_eq!(s.network, Some(true));
        assert!(s.labels.is_empty());
        let labelled = parse_status(r#"{"name":"a","state":"running","labels":{"dev.bottle.name":"x"}}"#).unwrap();
        assert_eq!(labelled.labels.get("dev.bottle.name").map(String::as_str), Some("x"));
    }

    #[test]
    fn null_pid_and_unknown_state() {
        let s = parse_status(r#"{"name":"a","state":"hibernating","pid":null}"#).unwrap();
        assert_eq!(s.pid, None);
        assert_eq!(s.state, MachineState::Other("hibernating".into()));
        assert_eq!(s.state.as_str(), "hibernating");
    }

    #[test]
    fn list_and_errors() {
        assert!(parse_list("[]").unwrap().is_empty());
        let l = parse_list(r#"[{"name":"a","state":"stopped"},{"name":"b","state":"unreachable","pid":7}]"#).unwrap();
        assert_eq!(l[1].state, MachineState::Unreachable);
        assert!(parse_status("Machine 'a': running").unwrap_err().contains("unexpected output"));
    }
}
