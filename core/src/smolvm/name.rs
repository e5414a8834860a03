//! Machine names, checked by smolvm's own rules before smolvm sees them.
//!
//! smolvm rejects a bad name only after it has parsed the Smolfile, with a
//! message about a machine the user never named; checking here first lets the
//! error name the bottle and the exact rule that failed.

use std::fmt;

/// Longest machine name smolvm accepts.
pub const MAX_MACHINE_NAME_LEN: usize = 128;

/// A name smolvm will accept for `machine create`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MachineName(String);

impl MachineName {
    pub fn new(name: &str) -> Result<Self, String> {
        let Some(first) = name.chars().next() else {
            return Err("machine name: must not be empty".into());
        };
        if name.len() > MAX_MACHINE_NAME_LEN {
            return Err(format!(
                "machine name {name:?}: {} characters, at most {MAX_MACHINE_NAME_LEN} allowed",
                name.len()
            ));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(format!("machine name {name:?}: must start with a letter or digit"));
        }
        if name.ends_with('-') {
            return Err(format!("machine name {name:?}: must not end with '-'"));
        }
        if name.contains("--") {
            return Err(format!("machine name {name:?}: must not contain '--'"));
        }
        if let Some(bad) = name.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-' && *c != '_') {
            return Err(format!("machine name {name:?}: invalid character {bad:?} (allowed: A-Z a-z 0-9 _ -)"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The machine that runs bottle `bottle`: a fixed prefix keeps bottle's
    /// machines apart from any the user made by hand.
    pub fn for_bottle(bottle: &str) -> Result<Self, String> {
        Self::new(&format!("bottle-{bottle}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bottle name back from a machine name, if it is one of bottle's.
    pub fn bottle_name(&self) -> Option<&str> {
        self.0.strip_prefix("bottle-")
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_smolvm_valid_names() {
        for ok in ["a", "bottle-1", "my_vm", "123", "A-b_c-9", &"x".repeat(128)] {
            assert!(MachineName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_each_rule_with_its_reason() {
        let cases = [
            ("", "empty"),
            ("-a", "start with"),
            ("_a", "start with"),
            ("a-", "end with"),
            ("a--b", "'--'"),
            ("a.b", "'.'"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("é", "start with"),
        ];
        for (bad, why) in cases {
            let err = MachineName::new(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = "x".repeat(129);
        assert!(MachineName::new(&long).unwrap_err().contains("at most 128"));
    }

    #[test]
    fn bottle_prefix_round_trips() {
        let m = MachineName::for_bottle("demo").unwrap();
        assert_eq!(m.as_str(), "bottle-demo");
        assert_eq!(m.bottle_name(), Some("demo"));
        assert!(MachineName::for_bottle("-x").is_err());
    }
}
