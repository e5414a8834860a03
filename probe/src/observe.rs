//! Local observations: privileges, sockets, mounts, and whether a credential
//! is visible anywhere the agent can read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use bottle_protocol::probe::Report;

/// Capabilities that would let the agent reshape its own network or escape.
const DANGEROUS_CAPS: &[(u32, &str)] = &[
    (1, "DAC_OVERRIDE"),
    (12, "NET_ADMIN"),
    (13, "NET_RAW"),
    (16, "SYS_MODULE"),
    (19, "SYS_PTRACE"),
    (21, "SYS_ADMIN"),
];
const DOCKER_SOCKETS: &[&str] =
    &["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock"];
/// Filesystems that are per-container, not a host path.
const VIRTUAL_FS: &[&str] = &["proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay", "devtmpfs"];
/// Bounds on the credential search so it always ends quickly.
const MAX_SCAN_BYTES: usize = 16 * 1024 * 1024;
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn status_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
}

/// `none` or `held:NAME,...` over the effective and bounding sets.
pub fn caps() -> Report {
    let t = Instant::now();
    let set = |field: &str| status_field(field).and_then(|h| u64::from_str_radix(&h, 16).ok()).unwrap_or(u64::MAX);
    let (eff, bnd) = (set("CapEff:"), set("CapBnd:"));
    let held: Vec<&str> =
        DANGEROUS_CAPS.iter().filter(|(bit, _)| (eff | bnd) & (1u64 << bit) != 0).map(|(_, n)| *n).collect();
    let nnp = status_field("NoNewPrivs:").unwrap_or_default();
    let outcome = if held.is_empty() { "none".to_string() } else { format!("held:{}", held.join(",")) };
    Report::new("caps", "self", t, outcome, format!("CapEff={eff:x} CapBnd={bnd:x} NoNewPrivs={nnp}"))
}

/// `absent` or `present:PATH,...`.
pub fn docker_socket() -> Report {
    let t = Instant::now();
    let found: Vec<&str> = DOCKER_SOCKETS.iter().copied().filter(|p| Path::new(p).exists()).collect();
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let outcome = if found.is_empty() { "absent".to_string() } else { format!("present:{}", found.join(",")) };
    Report::new("docker-socket", "fs", t, outcome, format!("DOCKER_HOST={host}"))
}

/// Read-write mounts backed by a real (host) filesystem: `rw:MOUNTPOINT,...` or `none`.
pub fn mounts() -> Report {
    let t = Instant::now();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let rw = writable_host_mounts(&text);
    let outcome = if rw.is_empty() { "none".to_string() } else { format!("rw:{}", rw.join(",")) };
    Report::new("mounts", "mountinfo", t, outcome, "")
}

fn writable_host_mounts(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next().unwrap_or("");
        let (Some(mountpoint), Some(opts)) = (pre.get(4), pre.get(5)) else { continue };
        if opts.split(',').any(|o| o == "rw") && !VIRTUAL_FS.contains(&fstype) {
            out.push((*mountpoint).to_string());
        }
    }
    out
}

/// Searches process environments and command lines, and files under `paths`, for any
/// window of `len` bytes whose SHA-256 is `sha256hex`. The secret itself is never passed in.
pub fn find_secret(len: usize, sha256hex: &str, paths: &[String]) -> Report {
    let t = Instant::now();
    let want = sha256hex.to_ascii_lowercase();
    let mut sources: Vec<PathBuf> = Vec::new();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                sources.push(p.path().join("environ"));
                sources.push(p.path().join("cmdline"));
            }
        }
    }
    for p in paths {
        collect_files(Path::new(p), &mut sources, 0);
    }
    let (mut scanned, mut hits) = (0usize, Vec::new());
    for src in &sources {
        if scanned >= MAX_SCAN_BYTES {
            break;
        }
        let Ok(data) = std::fs::read(src) else { continue };
        scanned += data.len();
        if len > 0 && data.windows(len).any(|w| hex(&Sha256::digest(w)) == want) {
            hits.push(src.display().to_string());
        }
    }
    let outcome = if hits.is_empty() { "absent" } else { "found" };
    Report::new("find-secret", &format!("{} sources", sources.len()), t, outcome, hits.join(","))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 12 || dir.starts_with("/proc") || dir.starts_with("/sys") {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
    if meta.is_file() && meta.len() <= MAX_FILE_BYTES {
        out.push(dir.to_path_buf());
    } else if meta.is_dir() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            collect_files(&e.path(), out, depth + 1);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_credential_by_hash_only_where_it_is() {
        let dir = std::env::temp_dir().join(format!("bottle-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let secret = b"ghp_0123456789abcdefghijklmnopqrstuvwxyz";
        std::fs::write(dir.join("sub/clean.txt"), b"nothing to see").unwrap();
        let digest = hex(&Sha256::digest(secret));
        let arg = [dir.display().to_string()];
        assert_eq!(find_secret(secret.len(), &digest, &arg).outcome, "absent");
        std::fs::write(dir.join("sub/leak.txt"), [b"token=".as_slice(), secret].concat()).unwrap();
        let r = find_secret(secret.len(), &digest, &arg);
        assert_eq!(r.outcome, "found");
        assert!(r.detail.ends_with("sub/leak.txt"), "{}", r.detail);
        assert!(!r.detail.contains("ghp_"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_rw_host_backed_mounts_count() {
        let info = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 22 8:1 /home/u/proj /workspace rw,relatime - ext4 /dev/sda1 rw
25 22 8:1 /etc/x /etc/hosts ro,relatime - ext4 /dev/sda1 rw
26 22 0:30 / /tmp rw - tmpfs tmpfs rw";
        assert_eq!(writable_host_mounts(info), vec!["/workspace".to_string()]);
    }

    #[test]
    fn caps_reports_a_known_shape() {
        let r = caps();
        assert!(r.outcome == "none" || r.outcome.starts_with("held:"), "{}", r.outcome);
    }
}
