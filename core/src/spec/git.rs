//! `[git]` checks: repo aliases, upstream URLs, branch patterns and push options.
//!
//! An alias becomes a URL path segment on the git gate and an upstream is
//! dialled by the bundle, so both are held to a narrow grammar here; an
//! upstream carrying credentials is refused without echoing it.

use std::collections::BTreeSet;

use toml::Spanned;

use super::RepoSpec;
use super::raw::RawRepo;
use super::validate::{Checked, Checker, REDACTED};

/// Longest git alias (it is one URL path segment).
const ALIAS_MAX_LEN: usize = 100;

impl Checker<'_> {
    pub(super) fn repos(&self, raw: &[RawRepo]) -> Checked<Vec<RepoSpec>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("git.repo[{i}]");
            let alias = r.alias.get_ref();
            let ok = !alias.is_empty()
                && alias.len() <= ALIAS_MAX_LEN
                && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !alias.starts_with('.')
                && !alias.ends_with(".git");
            if !ok {
                return Err(self.bad(
                    &format!("{key}.alias"),
                    &r.alias,
                    format!("an alias is one URL path segment: 1-{ALIAS_MAX_LEN} of [A-Za-z0-9._-], not starting with `.`, without a `.git` suffix"),
                ));
            }
            if !seen.insert(alias.clone()) {
                return Err(self.bad(&format!("{key}.alias"), &r.alias, "a repo with this alias is already defined"));
            }
            self.upstream(&format!("{key}.upstream"), &r.upstream)?;
            let patterns = |field: &str, list: &[Spanned<String>]| -> Checked<Vec<String>> {
                list.iter()
                    .enumerate()
                    .map(|(j, p)| {
                        if is_branch_pattern(p.get_ref()) {
                            Ok(p.get_ref().clone())
                        } else {
                            Err(self.bad(
                                &format!("{key}.{field}[{j}]"),
                                p,
                                "not a branch name or pattern (no spaces, `..`, `~^:?[\\`, leading `-` or `/`)",
                            ))
                        }
                    })
                    .collect()
            };
            out.push(RepoSpec {
                alias: alias.clone(),
                upstream: r.upstream.get_ref().clone(),
                fetch: r.fetch,
                push: patterns("push", &r.push)?,
                protected: patterns("protected", &r.protected)?,
                tags: r.tags,
                push_options: r
                    .push_options
                    .iter()
                    .enumerate()
                    .map(|(j, o)| match bottle_protocol::push_option::check(o.get_ref()) {
                        Ok(()) => Ok(o.get_ref().clone()),
                        Err(why) => Err(self.bad(&format!("{key}.push_options[{j}]"), o, why)),
                    })
                    .collect::<Checked<_>>()?,
            });
        }
        Ok(out)
    }

    /// `http(s)://host[:port]/path`, with no credentials in it.
    fn upstream(&self, key: &str, v: &Spanned<String>) -> Checked<()> {
        let s = v.get_ref();
        let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else {
            return Err(self.bad(key, v, "expected an http:// or https:// URL"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            // The value may hold a password: show only where it is.
            return Err(self.err(
                v.span(),
                key,
                REDACTED,
                "credentials never go in the URL; use [git] credentials = { env = ... } or { file = ... }",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, after)) if after.starts_with(':') => (h, Some(&after[1..])),
                _ => ("", None),
            },
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if let Some(p) = port
            && p.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(self.bad(key, v, format!("port `{p}` is not a number from 1 to 65535")));
        }
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if !host_ok {
            return Err(self.bad(key, v, "the URL has no valid host"));
        }
        if path.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.bad(key, v, "expected a repository URL with a path, e.g. https://host/org/repo.git"));
        }
        Ok(())
    }
}

/// A git branch name or glob (`agent/*`): what `git check-ref-format --branch` would take, plus `*`.
fn is_branch_pattern(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '/'])
        && !s.ends_with(['/', '.'])
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && !s.ends_with(".lock")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_patterns_follow_git_ref_rules() {
        for ok in ["main", "agent/*", "feature-*", "release/1.2"] {
            assert!(is_branch_pattern(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "a/", "x.lock", "a~1"] {
            assert!(!is_branch_pattern(bad), "{bad}");
        }
    }
}
