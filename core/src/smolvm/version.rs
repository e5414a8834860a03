//! smolvm's version, and what each version can be trusted to do.
//!
//! The allowlist is the whole point of this backend, and before 1.1.3 smolvm
//! accepted `allow_cidrs` on its default TSI network backend without enforcing
//! it: a non-allowed address stayed reachable. From 1.1.3 any egress policy
//! forces the virtio-net backend, where a blocked connection is refused. So the
//! gate is not a nicety: below 1.1.3 the bottle would have no boundary at all.

use std::fmt;

/// One smolvm release, `MAJOR.MINOR.PATCH` (pre-release suffixes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// Oldest smolvm whose egress policy is enforced (it selects virtio-net).
    pub const MIN_ENFORCING: Version = Version::new(1, 1, 3);
    /// First release that takes the machine name as `-n NAME` on create/delete.
    pub const NAME_FLAG: Version = Version::new(1, 0, 2);
    /// First release with `machine egress-events`.
    pub const EGRESS_EVENTS: Version = Version::new(1, 8, 1);
    /// First release whose `machine exec` has `-d` (spawn, print the guest PID, return).
    pub const EXEC_DETACH: Version = Version::new(1, 3, 0);
    /// First release whose `machine create` takes `--label KEY=VALUE` (read back in `ls --json`).
    pub const LABELS: Version = Version::new(1, 8, 0);

    /// Parses the output of `smolvm --version`, e.g. `smolvm 1.9.3`.
    pub fn parse_version_output(output: &str) -> Result<Self, String> {
        let line = output.lines().next().unwrap_or("").trim();
        let rest = line
            .strip_prefix("smolvm ")
            .ok_or_else(|| format!("smolvm --version: expected `smolvm X.Y.Z`, got {line:?}"))?;
        Self::parse(rest.trim())
    }

    /// Parses `X.Y.Z`, tolerating a leading `v` and a `-pre`/`+build` suffix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let core = text.trim_start_matches('v');
        let core = core.split(['-', '+', ' ']).next().unwrap_or("");
        let parts: Vec<&str> = core.split('.').collect();
        let num = |i: usize| -> Result<u32, String> {
            parts.get(i).and_then(|p| p.parse().ok()).ok_or_else(|| format!("smolvm version {text:?}: expected X.Y.Z"))
        };
        if parts.len() != 3 {
            return Err(format!("smolvm version {text:?}: expected X.Y.Z"));
        }
        Ok(Self::new(num(0)?, num(1)?, num(2)?))
    }

    /// Refuses a smolvm that would accept the allowlist without enforcing it.
    pub fn gate(self) -> Result<Self, String> {
        if self >= Self::MIN_ENFORCING {
            return Ok(self);
        }
        Err(format!(
            "smolvm {self} is too old for bottle: before {min} its network allowlist \
             (allow_cidrs) was accepted but not enforced on the default TSI backend, so the \
             agent could reach any address. From {min} an egress policy forces the \
             virtio-net backend, which refuses every connection outside the allowlist. \
             Install smolvm {min} or newer (https://github.com/smol-machines/smolvm/releases) \
             and point BOTTLE_SMOLVM at it if it is not first on PATH",
            min = Self::MIN_ENFORCING
        ))
    }

    pub fn name_is_flag(self) -> bool {
        self >= Self::NAME_FLAG
    }

    pub fn has_egress_events(self) -> bool {
        self >= Self::EGRESS_EVENTS
    }

    pub fn has_exec_detach(self) -> bool {
        self >= Self::EXEC_DETACH
    }

    pub fn has_labels(self) -> bool {
        self >= Self::LABELS
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_output() {
        assert_eq!(Version::parse_version_output("smolvm 1.9.3\n").unwrap(), Version::new(1, 9, 3));
        assert_eq!(Version::parse("v1.10.0-rc.1").unwrap(), Version::new(1, 10, 0));
        assert!(Version::parse_version_output("docker 1.2.3").is_err());
        assert!(Version::parse("1.2").is_err());
        assert!(Version::parse("1.x.3").is_err());
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 3));
        assert!(Version::new(1, 1, 3) > Version::new(1, 1, 2));
    }

    #[test]
    fn gate_refuses_below_1_1_3_and_says_why() {
        for old in ["0.8.0", "1.0.2", "1.1.2"] {
            let err = Version::parse(old).unwrap().gate().unwrap_err();
            assert!(err.contains("not enforced"), "{err}");
            assert!(err.contains("virtio-net"), "{err}");
            assert!(err.contains("Install smolvm 1.1.3 or newer"), "{err}");
        }
        for ok in ["1.1.3", "1.8.1", "1.9.3", "2.0.0"] {
            assert!(Version::parse(ok).unwrap().gate().is_ok(), "{ok}");
        }
    }

    #[test]
    fn capabilities_follow_the_release_that_added_them() {
        assert!(!Version::new(1, 0, 1).name_is_flag());
        assert!(Version::new(1, 0, 2).name_is_flag());
        assert!(!Version::new(1, 8, 0).has_egress_events());
        assert!(Version::new(1, 8, 1).has_egress_events());
        assert!(!Version::new(1, 2, 9).has_exec_detach());
        assert!(Version::new(1, 3, 0).has_exec_detach());
        assert!(!Version::new(1, 7, 7).has_labels());
        assert!(Version::new(1, 8, 0).has_labels());
    }
}
