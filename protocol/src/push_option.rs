//! Which `git push -o` options a repository forwards: the grammar of a `push_options`
//! entry and how one matches an option, shared by bottle.toml's checker and the bundle's.
//!
//! An option is matched by its name, the text before its first `=` (`ci.variable=K=V` is
//! named `ci.variable`), so an entry admits every value of the options it names. Entries
//! are narrow on purpose: the options a host acts on are dotted words, and a glob anywhere
//! but a final `.*` would make it hard to see what an entry lets through.

/// Longest entry; real option names are a few words.
pub const MAX_LEN: usize = 100;

/// Why `entry` is not a valid `push_options` entry, if it is not.
pub fn check(entry: &str) -> Result<(), String> {
    let name = entry.strip_suffix(".*").unwrap_or(entry);
    let ok = !name.is_empty()
        && entry.len() <= MAX_LEN
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a push option entry is an option name (1-{MAX_LEN} of [A-Za-z0-9._-], e.g. `ci.skip`) \
             or a name followed by `.*` (e.g. `merge_request.*`), with no `=` or other `*`"
        ))
    }
}

/// Whether the agent's `option` is admitted by `entry` (already [`check`]ed). An option
/// holding a control character is admitted by nothing: the upstream shows options back.
pub fn admits(entry: &str, option: &str) -> bool {
    if option.chars().any(char::is_control) {
        return false;
    }
    let name = option.split_once('=').map_or(option, |(n, _)| n);
    match entry.strip_suffix(".*") {
        Some(prefix) => name.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
        None => name == entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_names_or_dotted_families() {
        for ok in ["ci.skip", "merge_request.*", "topic", "a-b_c.d"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["", "*", ".*", "ci.*.x", "ci*", "ci.skip=1", "a b", ".x", "x.", "ci..*", &"a".repeat(101)] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn options_match_by_name_before_the_first_equals() {
        assert!(admits("ci.skip", "ci.skip"));
        assert!(admits("ci.variable", "ci.variable=K=V"));
        assert!(!admits("ci.skip", "ci.skipper"));
        assert!(!admits("ci", "ci.skip"));
        assert!(admits("merge_request.*", "merge_request.create"));
        assert!(admits("merge_request.*", "merge_request.target=main"));
        assert!(!admits("merge_request.*", "merge_request"));
        assert!(!admits("merge_request.*", "merge_request."));
        assert!(!admits("merge_request.*", "merge_requestx.create"));
        assert!(!admits("ci.skip", "ci.skip=\u{1b}[2K"));
    }
}
