//! A push that only creates a branch is bounded like any other: its pack is spooled under
//! `[git] spool_max_bytes`, so an oversized one is refused, with the reason git prints, before the upstream sees
//! it, and the bundle's memory does not grow with it. Alone in its binary, so no other
//! test's allocations show in this process's peak memory.

#[path = "../support/gitgate/mod.rs"]
mod gitgate_support;

use bottle_protocol::EventKind;
use gitgate_support::{Gate, Upstream, World, credentials};

const CAP: u64 = 1 << 20;
const PUSHED: usize = 48 << 20;
/// How far the process's peak memory may rise over the push: well under what is pushed.
const MEMORY_BOUND: u64 = 16 << 20;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_oversized_create_only_push_is_refused_with_memory_bounded() {
    let world = World::new(&["r"]);
    let up = Upstream::start(&world.root());
    let repos = format!("[[git.repo]]\nalias = \"r\"\nupstream = \"{}\"\npush = [\"agent/*\"]\n", up.url("r"));
    let gate = Gate::try_start_with(&format!("spool_max_bytes = {CAP}"), &repos, &credentials(&["r"])).unwrap();
    let work = world.path("work");
    world.ok(world.dir.path(), &["clone", "-q", &gate.url("r"), "work"]);
    world.ok(&work, &["checkout", "-q", "-b", "agent/new"]);
    world.commit_random(&work, "big", PUSHED);

    // Peak memory from here on: `5` resets the process's high-water mark to its current size.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:") * 1024;
    let out = world.git_untraced(&work, &["push", "origin", "agent/new"]);
    let peak = status_kib("VmHWM:") * 1024;

    assert!(!out.ok, "{}", out.stderr);
    let shown = format!(
        "[remote rejected] agent/new -> agent/new (bottle: the pushed pack is larger than the gate's limit of {CAP} bytes)"
    );
    assert!(out.stderr.contains(&shown), "git shows the reason: {}", out.stderr);
    assert_eq!(world.upstream_ref("r", "refs/heads/agent/new"), None, "nothing reached the upstream");
    let refused = gate.bundle.events.recent().into_iter().rev().find_map(|e| match e.kind {
        EventKind::Git { allowed, reason, .. } if !reason.is_empty() => Some((allowed, reason)),
        _ => None,
    });
    let (allowed, reason) = refused.expect("a push event");
    assert!(!allowed && reason.contains(&format!("larger than the gate's limit of {CAP} bytes")), "{reason}");
    assert!(peak - before < MEMORY_BOUND, "peak rose {} bytes over a {PUSHED}-byte push", peak - before);
}
