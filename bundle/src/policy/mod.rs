//! STUB (to be replaced by the policy owner): the live egress allowlist.

use std::path::Path;
use std::time::Instant;

use bottle_protocol::config::{ConfigError, PolicyConfig};
use bottle_protocol::control::PolicyUpdate;

pub struct PolicyStore;

/// The proxy's decision for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `rule` is the machine-readable reason, sent in `X-Bottle-Block`.
    Deny { rule: String },
}

impl PolicyStore {
    pub fn from_config(_file: &Path, _text: &str, _cfg: &PolicyConfig) -> Result<Self, ConfigError> {
        Ok(Self)
    }

    /// `host` is a lowercase DNS name or an IP literal (no brackets).
    pub fn decide(&self, _host: &str, _port: u16) -> Verdict {
        Verdict::Deny { rule: "not-allowed".into() }
    }

    /// Replaces the allow and deny lists atomically; returns (allow, deny) counts.
    pub fn replace(&self, _update: &PolicyUpdate) -> Result<(usize, usize), String> {
        Err("unimplemented".into())
    }

    /// Adds a temporary allow entry for an approved access request.
    pub fn grant(&self, _id: &str, _host: &str, _port: Option<u16>, _expires: Option<Instant>) -> Result<(), String> {
        Err("unimplemented".into())
    }

    /// Removes a grant; returns whether it existed.
    pub fn revoke(&self, _id: &str) -> bool {
        false
    }

    /// The current (allow, deny) entries as written, grants included in allow.
    pub fn entries(&self) -> (Vec<String>, Vec<String>) {
        (Vec::new(), Vec::new())
    }
}
