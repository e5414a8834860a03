//! The git-gate category: a push to a protected branch is refused before
//! anything reaches the upstream, and the credential git-gate holds is
//! invisible from inside the agent.
//!
//! The push is made by the agent image's own `git`, through the URL rewrite
//! every bottle gets, to the suite's repository whose upstream is the
//! outside canary (which advertises an empty repository). So the finding
//! rests on three independent witnesses: git's own report, git-gate's event,
//! and the canary's log, where the gate's ref request (with a credential
//! attached) must appear and a pushed pack must not.

use bottle_protocol::EventKind;
use bottle_protocol::event::GitOperation;
use sha2::{Digest, Sha256};

use super::events::{event_after, last_event_id};
use super::probing::{probe, seen};
use crate::spec::{GitSpec, RepoSpec, SecretSource};
use crate::verify::world::Contact;
use crate::verify::{ALLOWED_HOST, Category, Finding, Suite};

/// The git-gate alias of the suite's repository.
pub const VERIFY_REPO: &str = "verify";
/// The branch the suite's repository protects, and the push aims at.
pub const PROTECTED_BRANCH: &str = "main";
/// Exit status of the push script when the agent image has no git.
const NO_GIT: i64 = 97;

/// The throwaway bottle's `[git]`: only the suite's repository, upstream at the
/// outside canary, so a suite run never contacts a real upstream. Its credential
/// is the planted secret the agent must never see.
pub fn verify_git(credentials: std::path::PathBuf) -> GitSpec {
    GitSpec {
        credentials: Some(SecretSource::File(credentials)),
        repos: vec![RepoSpec {
            alias: VERIFY_REPO.into(),
            upstream: upstream_url(),
            fetch: true,
            push: vec!["agent/*".into()],
            protected: vec![PROTECTED_BRANCH.into()],
            tags: false,
            push_options: vec![],
        }],
    }
}

/// The credentials file git-gate reads for [`verify_git`].
pub fn credentials_toml(token: &str) -> String {
    format!("{VERIFY_REPO} = \"x-access-token:{token}\"\n")
}

fn upstream_url() -> String {
    format!("http://{ALLOWED_HOST}/{VERIFY_REPO}.git")
}

pub async fn run(s: &Suite) -> Vec<Finding> {
    let mut out = push_to_protected(s).await;
    out.push(credential_unseen(s).await);
    out
}

async fn push_to_protected(s: &Suite) -> Vec<Finding> {
    let name = format!("push to protected branch {PROTECTED_BRANCH}");
    let expect = "refused by git-gate, with a git event";
    if !s.owned {
        let why = "the suite pushes only to its own canary upstream, which an existing bottle lacks (run with -f)";
        return vec![Finding::not_run(Category::Git, name, expect, why)];
    }
    // The real upstream URL: the bottle's git config rewrites it to git-gate.
    let script = format!(
        "command -v git >/dev/null || exit {NO_GIT}\n\
         d=$(mktemp -d) && cd \"$d\" && git -c init.defaultBranch={b} init -q && \
         git -c user.name=verify -c user.email=verify@bottle.invalid commit -q --allow-empty -m verify && \
         git push {url} HEAD:refs/heads/{b} 2>&1",
        b = PROTECTED_BRANCH,
        url = upstream_url(),
    );
    let since = last_event_id(s).await;
    let before = s.world.outside_contacts().await.len();
    let pushed = s.backend.exec(&s.bottle, &["sh".into(), "-c".into(), script]).await;
    let pushed = match pushed {
        Ok(o) if o.exit_code == NO_GIT => {
            return vec![Finding::not_run(Category::Git, name, expect, "the agent image has no git")];
        }
        Ok(o) => o,
        Err(e) => return vec![Finding::new(Category::Git, name, expect, format!("push did not run: {e:#}"), false)],
    };
    let refused_push = |kind| match kind {
        EventKind::Git { operation: GitOperation::Push, allowed: false, refs, reason, .. } => {
            Some(format!("event git push refused {}: {reason}", refs.join(",")))
        }
        _ => None,
    };
    let event = event_after(s, since, refused_push).await;
    let contacts: Vec<Contact> = s.world.outside_contacts().await.into_iter().skip(before).collect();
    let (refused, git_said) = git_refused(pushed.exit_code, &format!("{}{}", pushed.stdout, pushed.stderr));
    let (upstream_ok, upstream_saw) = upstream_untouched(&contacts);
    vec![
        Finding::new(
            Category::Git,
            name,
            expect,
            format!("{git_said}; {}", event.clone().unwrap_or_else(|| "no event".into())),
            refused && event.is_some(),
        ),
        Finding::new(
            Category::Git,
            "upstream canary during the push",
            "asked for refs with git-gate's credential; received no push",
            upstream_saw,
            upstream_ok,
        ),
    ]
}

/// Whether git itself reported the push refused for the protected branch, and its line saying so.
fn git_refused(exit_code: i64, output: &str) -> (bool, String) {
    let line = output.lines().find(|l| l.contains("rejected")).unwrap_or_else(|| output.lines().last().unwrap_or(""));
    let refused = exit_code != 0 && line.contains("remote rejected") && line.contains("protected");
    (refused, format!("exit {exit_code}: {}", line.trim()))
}

/// The canary saw git-gate ask for the refs, credential attached, and saw no pack arrive.
fn upstream_untouched(contacts: &[Contact]) -> (bool, String) {
    let http: Vec<&Contact> = contacts.iter().filter(|c| c.proto == "http").collect();
    let asked = http.iter().any(|c| {
        c.detail.starts_with("GET ")
            && c.detail.contains("/info/refs?service=git-receive-pack")
            && c.detail.ends_with("[authorization]")
    });
    let pushed = http.iter().any(|c| c.detail.starts_with("POST ") && c.detail.contains("git-receive-pack"));
    let saw = if http.is_empty() {
        "no request".into()
    } else {
        http.iter().map(|c| c.detail.as_str()).collect::<Vec<_>>().join("; ")
    };
    (asked && !pushed, saw)
}

async fn credential_unseen(s: &Suite) -> Finding {
    let (probe_name, expect) = ("credential in env, files, process list", "absent");
    let Some(p) = &s.planted else {
        return Finding::not_run(Category::Git, probe_name, expect, "no planted credential in NAME mode (run with -f)");
    };
    let hash: String = Sha256::digest(p.unseen.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let len = p.unseen.len().to_string();
    let a = ["find-secret", &len, &hash, &s.workdir, "/etc", "/home", "/tmp", "/var/tmp", "/opt", "/root", "/run"];
    let r = probe(s, &a).await;
    let ok = r.as_ref().is_ok_and(|r| r.outcome == "absent");
    Finding::new(Category::Git, probe_name, expect, seen(&r), ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(detail: &str) -> Contact {
        Contact { canary: "outside".into(), proto: "http".into(), port: 80, peer: "x".into(), detail: detail.into() }
    }

    const ASKED: &str = "GET /verify.git/info/refs?service=git-receive-pack HTTP/1.1 [authorization]";

    #[test]
    fn a_refusal_counts_only_when_git_names_the_protected_branch() {
        let rejected = " ! [remote rejected] HEAD -> main (bottle: main is protected)\nerror: failed to push";
        assert!(git_refused(1, rejected).0);
        assert!(!git_refused(0, rejected).0, "exit 0 means the push went through");
        assert!(!git_refused(1, "fatal: unable to access 'http://allowed.test/verify.git/'").0);
        assert!(!git_refused(0, "To http://allowed.test/verify.git\n * [new branch] HEAD -> main").0);
    }

    #[test]
    fn the_upstream_must_be_asked_with_a_credential_and_never_pushed_to() {
        assert!(upstream_untouched(&[http(ASKED)]).0);
        assert!(!upstream_untouched(&[]).0, "a gate that never asked proves nothing");
        let anonymous = ASKED.trim_end_matches(" [authorization]");
        assert!(!upstream_untouched(&[http(anonymous)]).0, "the gate must add its credential");
        let leaked = http("POST /verify.git/git-receive-pack HTTP/1.1 [authorization]");
        let (ok, saw) = upstream_untouched(&[http(ASKED), leaked]);
        assert!(!ok && saw.contains("POST"), "{saw}");
    }
}
