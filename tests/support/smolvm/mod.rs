//! Shared by the smolvm test files: a per-test instance of the smolvm test
//! double (tests/doubles/smolvm) with its own state, log and version.
//!
//! Each instance is a wrapper named `smolvm` that sets the double's
//! environment and execs it, so tests never touch the process environment and
//! can run in parallel.

#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub struct Double {
    pub dir: TempDir,
    pub bin: PathBuf,
    pub log: PathBuf,
    pub state: PathBuf,
}

/// The real python3 interpreter, not a version manager's shim (pyenv's adds ~150 ms to
/// every call, and a bottle `up` makes a dozen).
fn python3() -> &'static str {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output();
        out.ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "python3".into())
    })
}

pub fn double_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/doubles/smolvm")
}

/// Whether this process may make network namespaces (the double's `start` and `exec`
/// need root); prints why a test skips when not.
pub fn root_or_skip() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout).unwrap_or_default();
    let root = String::from_utf8_lossy(&out).trim() == "0";
    if !root {
        crate::skip::skipped("the smolvm test double makes real network namespaces and needs root");
    }
    root
}

impl Double {
    pub fn new(version: &str) -> Self {
        Self::with(version, "", "")
    }

    /// A double whose VMM also lets `leak` (comma-separated CIDRs) through: a broken policy.
    pub fn leaking(version: &str, leak: &str) -> Self {
        Self::with(version, leak, "")
    }

    /// `leak` as in [`Double::leaking`]; `dns_upstream` (`ip:port`) is where the guest
    /// gateway's DNS forwards when smolvm's DNS filter is off (real smolvm: 1.1.1.1).
    pub fn with(version: &str, leak: &str, dns_upstream: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin_dir = dir.path().join("bin");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let log = dir.path().join("argv.jsonl");
        let bin = bin_dir.join("smolvm");
        let script = format!(
            "#!/bin/sh\nexport SMOLVM_DOUBLE_VERSION='{version}' SMOLVM_DOUBLE_STATE='{}' \
             SMOLVM_DOUBLE_LOG='{}' SMOLVM_DOUBLE_LEAK='{leak}' SMOLVM_DOUBLE_DNS_UPSTREAM='{dns_upstream}' \
             SMOLVM_DOUBLE_ARGV0=\"$0\"\nexec '{}' '{}' \"$@\"\n",
            state.display(),
            log.display(),
            python3(),
            double_script().display()
        );
        write_executable(&bin, &script);
        Self { dir, bin, log, state }
    }

    /// Every argv the double received, in order (without the program name).
    pub fn calls(&self) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
            })
            .collect()
    }

    /// The calls after the version probe, as space-joined strings.
    pub fn machine_calls(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| c.first().is_some_and(|w| w == "machine")).map(|c| c.join(" ")).collect()
    }
}

/// Ends every VMM, workload and guest namespace the double made for this test, even
/// when the test failed half-way (a machine nobody stopped).
impl Drop for Double {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.bin).arg("_cleanup").output();
    }
}

/// Writes an executable script at `p` without ever holding it open for writing in
/// this process: tests run on threads, and a child another thread forks meanwhile
/// would inherit that descriptor until its exec, making an exec of `p` fail with
/// ETXTBSY ("Text file busy"). So `install` (a child of its own) writes it.
pub fn write_executable(p: &Path, text: &str) {
    let source = p.with_extension("src");
    std::fs::write(&source, text).unwrap();
    let out = std::process::Command::new("install").arg("-m").arg("0755").arg(&source).arg(p).output().unwrap();
    assert!(out.status.success(), "install {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
}

/// Two addresses local to the host but not to the double's guest (a veth pair of this
/// test's own, in 198.18.0.0/15, the RFC 2544 benchmarking range): where a stand-in
/// bundle and canary listen, so the guest reaches them only through the VMM's relay.
/// The link, and with it the addresses, is deleted on drop.
pub struct HostAddrs {
    link: String,
    pub bundle: std::net::Ipv4Addr,
    pub canary: std::net::Ipv4Addr,
}

impl HostAddrs {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = (std::process::id() % 4096) * 16 + n % 16;
        let link = format!("bvt{tag:x}");
        let (hi, lo) = (18 + (tag >> 14) % 2, ((tag >> 6) & 0xff) as u8);
        let base = ((tag & 0x3f) * 4) as u8;
        let bundle = std::net::Ipv4Addr::new(198, hi as u8, lo, base + 1);
        let canary = std::net::Ipv4Addr::new(198, hi as u8, lo, base + 2);
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let _ = std::process::Command::new("ip").args(["link", "del", &link]).output();
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &format!("{link}p")]);
        ip(&["addr", "add", &format!("{bundle}/32"), "dev", &link]);
        ip(&["addr", "add", &format!("{canary}/32"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        Self { link, bundle, canary }
    }
}

impl Drop for HostAddrs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.link]).output();
    }
}

/// Imports a one-file image as `tag` (`docker import`, with `LABEL label` when given): an
/// agent image the double exports and never boots, so no image build is needed.
pub fn import_image(tag: &str, label: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("rootfs.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let data = b"an agent image stand-in\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/agent-image", &data[..]).unwrap();
    b.finish().unwrap();
    let mut cmd = std::process::Command::new("docker");
    cmd.arg("import");
    if let Some(l) = label {
        cmd.args(["--change", &format!("LABEL {l}")]);
    }
    let out = cmd.arg(&tar_path).arg(tag).output().unwrap();
    assert!(out.status.success(), "docker import: {}", String::from_utf8_lossy(&out.stderr));
}
