//! Subnets this user's `up`s have picked but may not have created yet.
//!
//! Picking a subnet takes the pool lock, but creating a network takes the engine
//! its bridge and firewall setup, which under load is most of a second; holding
//! the lock across it made a hundred `up`s at once create their networks one after
//! another. So a pick writes a claim here, under the lock, and the create runs
//! after the lock is let go: the next pick steers clear of the engine's networks
//! and of every live claim. A claim lives while its process does and at most
//! [`CLAIM_TTL`]; by then its network exists (and is in the engine's list) or its
//! `up` failed. Claims are a speed-up like the lock: the engine's refusal of an
//! overlapping pool is still what keeps users (who have their own folders) apart.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;

/// Longest a claim stands: far longer than a network create takes on a loaded host.
pub const CLAIM_TTL_SECS: u64 = 300;

/// The claims file, beside the pool lock it is only read and written under.
pub fn path() -> PathBuf {
    crate::paths::run_dir().join("netpool.claims")
}

/// The live claims in `file` (read under the pool lock); a missing or garbled line claims nothing.
pub fn live(file: &Path) -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse(&text, now()).into_iter().map(|c| c.subnet).collect()
}

/// Adds claims on `subnets` for this process to `file` and drops the dead ones (under the pool lock).
pub fn add(file: &Path, subnets: &[Ipv4Net]) -> anyhow::Result<()> {
    let now = now();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut claims = parse(&text, now);
    let pid = std::process::id();
    claims.extend(subnets.iter().map(|&subnet| Claim { subnet, pid, at: now }));
    let out: String = claims.iter().map(|c| format!("{} {} {}\n", c.subnet, c.pid, c.at)).collect();
    std::fs::write(file, out).map_err(|e| anyhow::anyhow!("subnet claims: writing {}: {e}", file.display()))
}

struct Claim {
    subnet: Ipv4Net,
    pid: u32,
    at: u64,
}

/// The claims of `text` still standing at `now`: younger than the TTL, by a process still alive.
fn parse(text: &str, now: u64) -> Vec<Claim> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Claim { subnet: f.next()?.parse().ok()?, pid: f.next()?.parse().ok()?, at: f.next()?.parse().ok()? })
        })
        .filter(|c| now.saturating_sub(c.at) < CLAIM_TTL_SECS && alive(c.pid))
        .collect()
}

fn alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else { return false };
    // EPERM means it exists but is another user's; claims files are per user, so that is a reused pid.
    rustix::process::test_kill_process(pid).is_ok()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stand_while_their_process_lives_and_within_the_ttl() {
        let me = std::process::id();
        let text = format!(
            "10.213.0.0/28 {me} 1000\n10.213.0.16/28 {me} {}\n10.213.0.32/28 {} 1000\nnot a claim\n",
            1000 - CLAIM_TTL_SECS,
            i32::MAX
        );
        let live: Vec<String> = parse(&text, 1000 + 5).iter().map(|c| c.subnet.to_string()).collect();
        assert_eq!(live, ["10.213.0.0/28"], "expired, dead-process and garbled lines claim nothing");
    }

    #[test]
    fn add_keeps_the_live_claims_and_appends_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claims");
        let a: Ipv4Net = "10.213.0.0/28".parse().unwrap();
        let b: Ipv4Net = "10.213.0.16/28".parse().unwrap();
        add(&file, &[a]).unwrap();
        add(&file, &[b]).unwrap();
        assert_eq!(live(&file), [a, b]);
    }
}
