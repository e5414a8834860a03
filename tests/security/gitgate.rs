//! git-gate end to end: the real git CLI against the gate, the gate against a
//! real `git http-backend` upstream that only accepts the bundle's credential.

#[path = "../support/gitgate/mod.rs"]
mod gitgate_support;
#[path = "../support/tls/mod.rs"]
mod tls_support;

use std::time::{Duration, Instant};

use bottle_protocol::{EventKind, event::GitOperation};
use gitgate_support::{Gate, UPSTREAM_TOKEN, Upstream, World, credentials};

fn repo_table(alias: &str, upstream: &str, extra: &str) -> String {
    format!("[[git.repo]]\nalias = \"{alias}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

/// A world with upstream `r`, its server, and a gate whose repo `r` pushes `agent/*` and protects `main`.
fn setup(extra: &str) -> (World, Upstream, Gate) {
    let world = World::new(&["r"]);
    let up = Upstream::start(&world.root());
    let gate = Gate::start(&repo_table("r", &up.url("r"), extra), &credentials(&["r"]));
    (world, up, gate)
}

/// Like [`setup`] with [`RULES`], and extra keys for the gate's `[git]` table.
fn setup_with(git: &str) -> (World, Upstream, Gate) {
    let world = World::new(&["r"]);
    let up = Upstream::start(&world.root());
    let gate = Gate::try_start_with(git, &repo_table("r", &up.url("r"), RULES), &credentials(&["r"])).unwrap();
    (world, up, gate)
}

const RULES: &str = "push = [\"agent/*\", \"main\"]\nprotected = [\"main\"]";

fn clone(world: &World, gate: &Gate, alias: &str, dir: &str) -> std::path::PathBuf {
    world.ok(world.dir.path(), &["clone", "-q", &gate.url(alias), dir]);
    world.path(dir)
}

fn git_events(gate: &Gate) -> Vec<(GitOperation, bool, Vec<String>, String)> {
    gate.bundle
        .events
        .recent()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Git { operation, allowed, refs, reason, .. } => Some((operation, allowed, refs, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn clone_and_fetch_pass_through_with_the_bundle_credential() {
    let (world, _up, gate) = setup(RULES);
    let work = clone(&world, &gate, "r", "work");
    let head = world.ok(&work, &["rev-parse", "HEAD"]).stdout;
    assert_eq!(Some(head.trim().to_string()), world.upstream_ref("r", "main"));

    // A new upstream commit arrives through `git fetch` via the gate (also without `.git`).
    let other = world.path("other");
    world.ok(world.dir.path(), &["clone", "-q", world.root().join("r.git").to_str().unwrap(), "other"]);
    let newer = world.commit(&other, "upstream-change");
    world.ok(&other, &["push", "-q", "origin", "main"]);
    let plain = format!("http://{}/r", gate.addr);
    world.ok(&work, &["fetch", "-q", &plain, "main"]);
    assert_eq!(world.ok(&work, &["rev-parse", "FETCH_HEAD"]).stdout.trim(), newer);

    let events = git_events(&gate);
    assert!(events.iter().filter(|e| e.0 == GitOperation::Fetch && e.1).count() >= 2, "{events:?}");
}

#[test]
fn push_to_an_allowed_branch_updates_the_upstream() {
    let (world, _up, gate) = setup(RULES);
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/feature"]);
    let first = world.commit(&work, "one");
    world.ok(&work, &["push", "-q", "origin", "agent/feature"]);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/feature"), Some(first));

    // A fast-forward update is proven from the (spooled) pack and goes through.
    let second = world.commit(&work, "two");
    // Bigger than git's 1 MiB post buffer: git probes first, then streams the pack chunked.
    let third = world.commit_random(&work, "three", 3 * 1024 * 1024);
    world.ok(&work, &["push", "-q", "origin", "agent/feature"]);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/feature"), Some(third));
    assert_ne!(second, world.upstream_ref("r", "refs/heads/agent/feature").unwrap());

    let pushes: Vec<_> = git_events(&gate).into_iter().filter(|e| e.0 == GitOperation::Push).collect();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert!(pushes.iter().all(|e| e.1 && e.2 == ["refs/heads/agent/feature"]), "{pushes:?}");
}

#[test]
fn push_to_a_protected_branch_is_refused_with_the_reason() {
    let (world, _up, gate) = setup(RULES);
    let before = world.upstream_ref("r", "main");
    let work = clone(&world, &gate, "r", "work");
    world.commit(&work, "sneaky");
    let out = world.git(&work, &["push", "origin", "main"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("[remote rejected] main -> main (bottle: main is protected)"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "main"), before);
    let refused = git_events(&gate).into_iter().find(|e| e.0 == GitOperation::Push).unwrap();
    assert_eq!(
        (refused.1, refused.2, refused.3.as_str()),
        (false, vec!["refs/heads/main".into()], "bottle: main is protected")
    );
}

#[test]
fn branch_outside_the_push_list_and_deletions_are_refused() {
    let (world, _up, gate) = setup(RULES);
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/x"]);
    world.commit(&work, "x");
    world.ok(&work, &["push", "-q", "origin", "agent/x"]);
    let pushed = world.upstream_ref("r", "refs/heads/agent/x");
    assert!(pushed.is_some());

    let out = world.git(&work, &["push", "origin", ":agent/x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("(bottle: deleting refs/heads/agent/x is not allowed)"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/x"), pushed);

    let out = world.git(&work, &["push", "origin", "HEAD:elsewhere"]);
    assert!(out.stderr.contains("(bottle: elsewhere is not in the push list)"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/elsewhere"), None);
}

#[test]
fn forced_non_fast_forward_is_refused_and_mixed_pushes_apply_nothing() {
    let (world, _up, gate) = setup(RULES);
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/x"]);
    world.commit(&work, "a");
    world.ok(&work, &["push", "-q", "origin", "agent/x"]);
    let upstream_x = world.upstream_ref("r", "refs/heads/agent/x");

    // Rewrite history and force it: refused, upstream unchanged.
    world.ok(&work, &["commit", "-q", "--amend", "-m", "rewritten"]);
    let out = world.git(&work, &["push", "--force", "origin", "agent/x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("(bottle: non-fast-forward update of agent/x refused)"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/x"), upstream_x);

    // An allowed new branch riding with a refused ref is not applied either.
    world.ok(&work, &["checkout", "-q", "-b", "agent/y"]);
    world.commit(&work, "y");
    let out = world.git(&work, &["push", "--force", "origin", "agent/x", "agent/y"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("agent/y -> agent/y (bottle: not applied; another ref"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/y"), None);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/x"), upstream_x);
}

#[test]
fn tags_are_refused_unless_enabled_and_never_moved() {
    let world = World::new(&["r", "t"]);
    let up = Upstream::start(&world.root());
    let repos = repo_table("r", &up.url("r"), RULES) + &repo_table("t", &up.url("t"), "tags = true");
    let gate = Gate::start(&repos, &credentials(&["r", "t"]));

    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["tag", "v1"]);
    let out = world.git(&work, &["push", "origin", "v1"]);
    assert!(out.stderr.contains("(bottle: pushing tags is not allowed (tag v1))"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/tags/v1"), None);

    let tw = clone(&world, &gate, "t", "tw");
    world.ok(&tw, &["tag", "v1"]);
    world.ok(&tw, &["push", "-q", "origin", "v1"]);
    let v1 = world.upstream_ref("t", "refs/tags/v1");
    assert!(v1.is_some());
    world.commit(&tw, "later");
    world.ok(&tw, &["tag", "-f", "v1"]);
    let out = world.git(&tw, &["push", "--force", "origin", "v1"]);
    assert!(out.stderr.contains("(bottle: tag v1 exists; tags are never moved)"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("t", "refs/tags/v1"), v1);
}

#[test]
fn unknown_alias_is_a_clear_404() {
    let (world, _up, gate) = setup(RULES);
    let out = world.git(world.dir.path(), &["clone", &gate.url("nope"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: no repository \"nope\" is configured for this bottle"), "{}", out.stderr);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
}

#[test]
fn disallowed_fetch_is_refused() {
    let (world, _up, gate) = setup("fetch = false");
    let out = world.git(world.dir.path(), &["clone", &gate.url("r"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: fetching r is not allowed"), "{}", out.stderr);
    let ev = git_events(&gate);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].0, ev[0].1), (GitOperation::Fetch, false));
}

#[test]
fn upstream_down_fails_fast_with_a_clear_error() {
    let world = World::new(&[]);
    // A port nothing listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gate = Gate::start(&repo_table("r", &format!("http://127.0.0.1:{port}/r.git"), ""), "");
    let started = Instant::now();
    let out = world.git(world.dir.path(), &["clone", &gate.url("r"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: upstream unreachable"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    let ev = git_events(&gate);
    assert!(ev.iter().any(|e| !e.1 && e.3.contains("unreachable")), "{ev:?}");
}

#[test]
fn upstream_rejecting_the_credential_leaks_nothing_of_it() {
    let world = World::new(&["r"]);
    let up = Upstream::start(&world.root());
    let gate = Gate::start(&repo_table("r", &up.url("r"), ""), "r = \"gate-user:wrong-token-123456\"\n");
    let out = world.git(world.dir.path(), &["clone", &gate.url("r"), "x"]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("bottle: upstream refused the bundle's credentials for r (HTTP 401)"),
        "{}",
        out.stderr
    );
    for hidden in ["upstream-secret-realm", "WWW-Authenticate", "wrong-token-123456", "upstream: bad credentials"] {
        assert!(!out.stderr.contains(hidden), "{hidden} leaked:\n{}", out.stderr);
    }
}

#[test]
fn the_credential_appears_nowhere_the_agent_or_host_sees() {
    let (world, _up, gate) = setup(RULES);
    let work = clone(&world, &gate, "r", "work");
    let mut seen = String::new();
    world.ok(&work, &["checkout", "-q", "-b", "agent/z"]);
    world.commit(&work, "z");
    for args in [&["push", "origin", "agent/z"][..], &["push", "origin", "HEAD:main"], &["fetch", "origin"]] {
        let out = world.git(&work, args);
        seen += &out.stdout;
        seen += &out.stderr;
    }
    // GIT_TRACE_CURL shows every header the agent's git sent and received.
    assert!(seen.contains("<= Recv header"), "trace missing:\n{seen}");
    seen += &gate.events_json();
    let logs = gitgate_support::logs();
    assert!(logs.contains(r#""kind":"git""#), "gate logs were not captured:\n{logs}");
    seen += &logs;
    let encoded = base64_of(&format!("{}:{UPSTREAM_TOKEN}", gitgate_support::UPSTREAM_USER));
    for secret in [UPSTREAM_TOKEN, encoded.as_str()] {
        assert!(!seen.contains(secret), "credential leaked");
    }
    assert_eq!(
        world.upstream_ref("r", "refs/heads/agent/z"),
        Some(world.git(&work, &["rev-parse", "HEAD"]).stdout.trim().to_string())
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn bad_config_names_key_value_and_position() {
    // Line 18 of the rig's config, column 12: where the upstream value starts.
    let err = Gate::try_start("[[git.repo]]\nalias = \"r\"\nupstream = \"ftp://x.test/r\"\n", "").err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("bundle.toml:18:12: git.repo.upstream = \"ftp://x.test/r\""), "{msg}");
    let err = Gate::try_start(&repo_table("r", "http://x.test/r", "push = [\"refs/heads/a\"]"), "").err().unwrap();
    assert!(format!("{err:#}").contains("git.repo.push = \"refs/heads/a\""), "{err:#}");
    let err = Gate::try_start(&repo_table("r", "http://x.test/r", ""), "other = \"secret-value-1\"\n").err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("\"other\" names no [[git.repo]] alias") && !msg.contains("secret-value-1"), "{msg}");
}

#[test]
fn egress_refusal_is_a_403_naming_the_rule() {
    // An upstream on a private address: the real egress refuses it before any connection is made,
    // so the gate can reach nothing egress would refuse.
    let world = World::new(&["r"]);
    let gate = Gate::start(&repo_table("r", "http://10.254.254.254/r.git", RULES), &credentials(&["r"]));
    let out = world.git(world.dir.path(), &["clone", &gate.url("r"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: egress refused the upstream (egress:private) for r"), "{}", out.stderr);
    assert!(out.stderr.contains("403"), "{}", out.stderr);
    let ev = git_events(&gate);
    assert!(ev.iter().any(|e| !e.1 && e.3.contains("egress:private")), "{ev:?}");
}

#[test]
fn kill_switch_cuts_git_off() {
    let (world, _up, gate) = setup(RULES);
    gate.bundle.kill.set(true);
    let out = world.git(world.dir.path(), &["clone", &gate.url("r"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: the kill switch is engaged"), "{}", out.stderr);
}

#[test]
fn https_upstream_is_verified_against_the_configured_ca() {
    let world = World::new(&["r"]);
    let (ca, cert, key) = tls_support::local_ca(world.dir.path(), &["127.0.0.1"]);
    let up = Upstream::start_tls(&world.root(), (&cert, &key));
    let url = format!("https://127.0.0.1:{}/r.git", up.port);
    let repos = repo_table("r", &url, RULES);

    let gate = Gate::try_start_with(&format!("ca_file = {ca:?}"), &repos, &credentials(&["r"])).unwrap();
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/tls"]);
    let head = world.commit(&work, "over-tls");
    world.ok(&work, &["push", "-q", "origin", "agent/tls"]);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/tls"), Some(head));

    // Without the CA the public roots do not vouch for the upstream: refused, clearly.
    let untrusted = Gate::start(&repos, &credentials(&["r"]));
    let out = world.git(world.dir.path(), &["clone", &untrusted.url("r"), "x"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("bottle: upstream unreachable: TLS"), "{}", out.stderr);
}

/// A fast-forward push bigger than the spool limit is refused with the limit named, and
/// nothing reaches the upstream.
#[test]
fn a_push_larger_than_the_spool_limit_is_refused() {
    let (world, _up, gate) = setup_with("spool_max_bytes = 200000");
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/big"]);
    world.commit(&work, "one");
    world.ok(&work, &["push", "-q", "origin", "agent/big"]);
    let first = world.upstream_ref("r", "refs/heads/agent/big");
    world.commit_random(&work, "big", 1024 * 1024);
    let out = world.git(&work, &["push", "origin", "agent/big"]);
    assert!(!out.ok, "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/big"), first);
    let refused = git_events(&gate).into_iter().rfind(|e| e.0 == GitOperation::Push).unwrap();
    assert!(!refused.1 && refused.3.contains("larger than the gate's limit of 200000 bytes"), "{refused:?}");
}

/// An endless push (the commands, a pack header, then nothing) is refused when the spool
/// deadline runs out, with a 408 naming it: a branch update and a branch creation alike.
#[test]
fn an_endless_push_is_refused_at_the_spool_deadline() {
    use std::io::{Read, Write};
    let (_world, _up, gate) = setup_with("spool_deadline_secs = 2");
    for old in ["1".repeat(40), "0".repeat(40)] {
        let new = "2".repeat(40);
        let line = format!("{old} {new} refs/heads/agent/x\0report-status\n");
        let cmds = format!("{:04x}{line}0000PACK", line.len() + 4);
        let mut s = std::net::TcpStream::connect(gate.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!(
            "POST /r.git/git-receive-pack HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-git-receive-pack-request\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{cmds}\r\n",
            cmds.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "old {old}: {answer}");
        assert!(answer.contains("did not arrive within 2s"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    }
}

/// Makes bare repo `repo` log, for every push it receives, the push options it was given:
/// a `count=` line (`none` when git leaves the count unset), then each option.
fn log_push_options(world: &World, repo: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bare = world.root().join(format!("{repo}.git"));
    let hook = bare.join("hooks/pre-receive");
    let script = "#!/bin/sh\ncat >/dev/null\n{ echo \"count=${GIT_PUSH_OPTION_COUNT:-none}\"; i=0\n\
                  while [ \"$i\" -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do eval \"printf '%s\\n' \\\"\\$GIT_PUSH_OPTION_$i\\\"\"; \
                  i=$((i + 1)); done; } >>push-options.log\n";
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    bare.join("push-options.log")
}

/// Admitted push options reach the upstream as sent; the others never do, and the push's
/// event names them.
#[test]
fn only_admitted_push_options_reach_the_upstream() {
    let (world, _up, gate) = setup(&format!("{RULES}\npush_options = [\"ci.skip\", \"merge_request.*\"]"));
    let log = log_push_options(&world, "r");
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/opts"]);
    let head = world.commit(&work, "opts");
    let push = ["push", "-o", "ci.skip", "-o", "merge_request.target=main", "-o", "ci.variable=X=1"];
    world.ok(&work, &[&push[..], &["-o", "integrations.skip_ci", "origin", "agent/opts"]].concat());
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/opts"), Some(head));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "count=2\nci.skip\nmerge_request.target=main\n");
    let pushed = git_events(&gate).into_iter().rfind(|e| e.0 == GitOperation::Push).unwrap();
    assert!(pushed.1, "{pushed:?}");
    assert!(pushed.3.contains("dropped: \"ci.variable=X=1\", \"integrations.skip_ci\""), "{pushed:?}");
    assert!(gitgate_support::logs().contains("integrations.skip_ci"), "the bundle's log names them too");
}

/// Where a repo admits no push option, the gate does not advertise the capability (git
/// itself then refuses `push -o`), and a client that sends options anyway has them dropped.
#[test]
fn push_options_are_dropped_where_none_are_admitted() {
    use std::io::{Read, Write};
    let (world, _up, gate) = setup(RULES);
    let log = log_push_options(&world, "r");
    let work = clone(&world, &gate, "r", "work");
    world.ok(&work, &["checkout", "-q", "-b", "agent/honest"]);
    world.commit(&work, "honest");
    let out = world.git(&work, &["push", "-o", "merge_request.create", "origin", "agent/honest"]);
    assert!(!out.ok && out.stderr.contains("does not support push options"), "{}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/honest"), None);
    assert!(!log.exists(), "nothing reached the upstream");

    // A hand-made push announcing options the gate never advertised: a branch at main's
    // commit (which the upstream has, so an empty pack does), with two options.
    let main = world.upstream_ref("r", "main").unwrap();
    let empty_pack = std::process::Command::new("git").args(["pack-objects", "-q", "--stdout"]).output().unwrap();
    assert!(empty_pack.status.success());
    let zero = "0".repeat(40);
    let line = format!("{zero} {main} refs/heads/agent/raw\0report-status push-options\n");
    let mut body = format!("{:04x}{line}0000", line.len() + 4).into_bytes();
    for option in ["ci.skip", "merge_request.merge_when_pipeline_succeeds"] {
        body.extend(format!("{:04x}{option}", option.len() + 4).into_bytes());
    }
    body.extend(b"0000");
    body.extend(empty_pack.stdout);
    let mut s = std::net::TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /r.git/git-receive-pack HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-git-receive-pack-request\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("ok refs/heads/agent/raw"), "{answer}");
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/raw"), Some(main));
    let got = std::fs::read_to_string(&log).unwrap();
    assert!(got == "count=0\n" || got == "count=none\n", "the upstream got no option: {got:?}");
    let pushed = git_events(&gate).into_iter().rfind(|e| e.0 == GitOperation::Push).unwrap();
    assert!(pushed.1 && pushed.3.contains("\"ci.skip\", \"merge_request.merge_when_pipeline_succeeds\""), "{pushed:?}");
}
