//! The subnet pool bottle carves per-bottle networks from.
//!
//! Each bottle needs two small IPv4 subnets (its agent network and its
//! bundle's egress network) whose addresses the bundle config names before
//! any container starts, so bottle picks them itself instead of letting the
//! engine choose. A pick must never collide with an existing Docker network,
//! a host route (a VPN, a LAN) or another bottle being made at the same
//! moment: the caller picks under [`PoolLock`] (an flock shared by every bottle-core
//! process of this user, see `paths`) and claims what it picked (`subnet_claims`)
//! so the create can run after the lock is let go, and it still treats
//! the engine's "pool overlaps" refusal as "try the next one". That refusal,
//! not the lock, is what keeps two users (who have different lock folders)
//! from sharing a subnet: the engine's networks are the record.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context;
use ipnet::Ipv4Net;

/// Default pool: far from Docker's own default pools (172.17/16.., 192.168/16).
pub const DEFAULT_POOL: &str = "10.213.0.0/16";
/// Default size of one bottle network: 14 usable addresses, plenty for a gateway, a bundle and an agent.
pub const DEFAULT_PREFIX: u8 = 28;
/// Env override for the pool CIDR.
pub const POOL_ENV: &str = "BOTTLE_SUBNET_POOL";
/// Env override for the per-network prefix length.
pub const PREFIX_ENV: &str = "BOTTLE_SUBNET_PREFIX";
pub use crate::paths::{RUN_DIR_ENV, run_dir};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPool {
    pub pool: Ipv4Net,
    pub prefix: u8,
}

impl NetPool {
    pub fn new(pool: Ipv4Net, prefix: u8) -> anyhow::Result<Self> {
        if prefix < pool.prefix_len() || prefix > 29 {
            anyhow::bail!("subnet pool: prefix /{prefix} must be between the pool's /{} and /29", pool.prefix_len());
        }
        Ok(Self { pool: pool.trunc(), prefix })
    }

    /// The pool from `BOTTLE_SUBNET_POOL` / `BOTTLE_SUBNET_PREFIX`, or the defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let pool = std::env::var(POOL_ENV).unwrap_or_else(|_| DEFAULT_POOL.to_string());
        let pool: Ipv4Net =
            pool.parse().map_err(|e| anyhow::anyhow!("{POOL_ENV} = {pool:?}: not an IPv4 CIDR: {e}"))?;
        let prefix = match std::env::var(PREFIX_ENV) {
            Ok(p) => p.parse().map_err(|e| anyhow::anyhow!("{PREFIX_ENV} = {p:?}: not a prefix length: {e}"))?,
            Err(_) => DEFAULT_PREFIX,
        };
        Self::new(pool, prefix)
    }

    /// Every subnet of the pool that overlaps none of `taken`, in address order.
    pub fn free<'a>(&'a self, taken: &'a [Ipv4Net]) -> impl Iterator<Item = Ipv4Net> + 'a {
        self.pool
            .subnets(self.prefix)
            .expect("prefix checked in new")
            .filter(move |candidate| !taken.iter().any(|t| overlaps(candidate, t)))
    }
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The n-th host address of a subnet (`.1` is the gateway Docker reserves, `.2` the bundle).
pub fn host(net: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

/// Destinations of the host's IPv4 routes (from `/proc/net/route`), default routes left out:
/// a default route overlaps everything and says nothing about which addresses are in use.
pub fn host_routes() -> Vec<Ipv4Net> {
    std::fs::read_to_string("/proc/net/route").map(|t| parse_proc_route(&t)).unwrap_or_default()
}

fn parse_proc_route(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints these words in host (little-endian) byte order.
            let dest = Ipv4Addr::from(dest.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(dest, prefix).ok()).flatten()
        })
        .collect()
}

/// This user's exclusive lock held across a subnet pick and its claim (a speed-up; the engine decides).
pub struct PoolLock {
    _file: File,
}

impl PoolLock {
    /// Blocks (on a blocking thread) until the pool lock is ours.
    pub async fn acquire() -> anyhow::Result<Self> {
        let path = run_dir().join("netpool.lock");
        tokio::task::spawn_blocking(move || Ok(Self { _file: lock_file(&path, true)?.expect("blocking lock") })).await?
    }
}

/// Opens (creating) `path` and takes an exclusive flock on it; `None` if `wait` is false and it stays held for [`BUSY_GRACE`].
pub fn lock_file(path: &Path, wait: bool) -> anyhow::Result<Option<File>> {
    if let Some(dir) = path.parent() {
        crate::paths::ensure_private_dir(dir).context("lock")?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("lock: opening {}", path.display()))?;
    if wait {
        file.lock().with_context(|| format!("lock: locking {}", path.display()))?;
        return Ok(Some(file));
    }
    let deadline = std::time::Instant::now() + BUSY_GRACE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() >= deadline => return Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("lock: locking {}", path.display()));
            }
        }
    }
}

/// How long a non-waiting lock still retries. A child that any thread of this
/// process is spawning shares every open file, lock included, until it execs;
/// under load that window outlasts the `up` that dropped the lock, and the next
/// `down` would wrongly see "in progress".
const BUSY_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn free_skips_every_overlap_and_keeps_order() {
        let pool = NetPool::new(net("10.213.0.0/26"), 28).unwrap();
        let taken = [net("10.213.0.16/28"), net("10.213.0.40/29"), net("10.0.0.0/8").trunc()];
        assert_eq!(pool.free(&taken[..2]).collect::<Vec<_>>(), vec![net("10.213.0.0/28"), net("10.213.0.48/28")]);
        assert_eq!(pool.free(&taken).count(), 0, "a wider route covering the pool leaves nothing");
    }

    #[test]
    fn prefix_outside_pool_is_refused_with_both_numbers() {
        let e = NetPool::new(net("10.213.0.0/16"), 12).unwrap_err().to_string();
        assert!(e.contains("/12") && e.contains("/16"), "{e}");
    }

    #[test]
    fn proc_route_parsing_drops_default_and_reads_little_endian() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_proc_route(text), vec![net("192.168.2.0/24")]);
    }

    #[test]
    fn host_counts_from_the_network_address() {
        assert_eq!(host(&net("10.213.0.16/28"), 2), Ipv4Addr::new(10, 213, 0, 18));
    }

    #[test]
    fn second_try_lock_on_a_held_file_reports_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = lock_file(&path, false).unwrap();
        assert!(held.is_some());
        assert!(lock_file(&path, false).unwrap().is_none());
        drop(held);
        assert!(lock_file(&path, false).unwrap().is_some());
    }
}
