//! `[resources]` checks: CPU, memory and process limits with their bounds.
//!
//! Memory is accepted as MiB or with a binary unit because both are common in
//! engine flags; anything ambiguous (fractions, unknown units) is refused.

use super::Resources;
use super::raw::RawResources;
use super::validate::{Checked, Checker};
use crate::backend::BackendKind;

/// Smallest and largest memory a bottle may ask for, in MiB.
pub const MEMORY_MIN_MIB: u64 = 64;
pub const MEMORY_MAX_MIB: u64 = 1024 * 1024;
/// Bounds on `cpus` and `pids`.
const CPUS_MAX: f64 = 1024.0;
const PIDS_MIN: i64 = 16;
const PIDS_MAX: i64 = 4_194_304;

impl Checker<'_> {
    /// `backend` is the one the bottle will run on, when known: smolmachines takes only
    /// whole vCPUs up to 16 (smolvm's src/data/resources.rs caps more with a warning).
    /// Its other refusals are met by the limits every backend has: memory of at least
    /// 64 MiB (smolvm's own minimum) and at most 1 TiB (below its `u32` MiB).
    pub(super) fn resources(&self, raw: &RawResources, backend: Option<BackendKind>) -> Checked<Resources> {
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
            if backend == Some(BackendKind::Smolmachines) {
                crate::smolvm::smolfile::whole_cpus(cpus).map_err(|m| {
                    let m = m.split_once(": ").map_or(m.as_str(), |(_, why)| why).to_owned();
                    self.err(c.span(), "resources.cpus", &show(c.get_ref()), format!("on smolmachines, {m}"))
                })?;
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
}
