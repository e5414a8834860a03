//! A real `bottle-bundle` process on loopback ports, with every service on,
//! for tests that need what only a process has: its memory, and its death.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The control plane's bearer token.
pub const TOKEN: &str = "process-token-0123456789abcdef";

pub struct BundleProcess {
    child: Child,
    dir: tempfile::TempDir,
    pub proxy: SocketAddr,
    pub control: SocketAddr,
    pub git_gate: SocketAddr,
    pub supervise: SocketAddr,
    pub api_gate: SocketAddr,
}

impl Drop for BundleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl BundleProcess {
    /// A bundle whose config is every service on free ports plus `extra` TOML tables.
    ///
    /// A port is picked free and let go before the bundle binds it, so another test's
    /// bundle can take it meanwhile (its egress binds port 0): a bundle that exits before
    /// it listens is started again on new ports, a bounded number of times.
    pub fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("token"), TOKEN).unwrap();
        std::fs::write(p("creds.toml"), "r = \"user:token-0123456789\"\n").unwrap();
        std::fs::write(p("secrets.toml"), "\"api.x\" = \"sk-real-0123456789abcdef\"\n").unwrap();
        for _ in 0..START_TRIES {
            let (proxy, control, git_gate, supervise, api_gate) =
                (free_port(), free_port(), free_port(), free_port(), free_port());
            let text = format!(
                "bottle = \"process\"\n{extra}\n[listen]\nproxy = \"{proxy}\"\ncontrol = \"{control}\"\negress = \"127.0.0.1:0\"\n\
                 git_gate = \"{git_gate}\"\nsupervise = \"{supervise}\"\napi_gate = \"{api_gate}\"\n\
                 [control]\ntoken_file = {:?}\n[dlp]\nsecrets_file = {:?}\n[git]\ncredentials_file = {:?}\n\
                 [[git.repo]]\nalias = \"r\"\nupstream = \"http://127.0.0.1:9/r.git\"\n\
                 [[api]]\nname = \"x\"\nupstream = \"https://127.0.0.1:9\"\nheader = \"x-api-key\"\n\
                 credential = \"api.x\"\nplaceholder = \"placeholder-0123456789\"\n",
                p("token"),
                p("secrets.toml"),
                p("creds.toml"),
            );
            std::fs::write(p("bundle.toml"), text).unwrap();
            let mut child = spawn(&p("bundle.toml"));
            if listening(&mut child, &[proxy, control, git_gate, supervise, api_gate]) {
                return Self { child, dir, proxy, control, git_gate, supervise, api_gate };
            }
        }
        panic!("bottle-bundle exited before it listened, {START_TRIES} times");
    }

    /// The test's own folder, for files the config names.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// SIGKILLs the process and starts it again on the same config, as the engine's restart policy would.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(&self.dir.path().join("bundle.toml"));
        let all = [self.proxy, self.control, self.git_gate, self.supervise, self.api_gate];
        assert!(listening(&mut self.child, &all), "bottle-bundle exited after its restart");
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// curl against the control plane with the token: (status, body).
    pub fn control(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("http://{}{path}", self.control);
        curl(&["-X", method, "-H", &format!("Authorization: Bearer {TOKEN}"), &url], body)
    }
}

/// How often [`BundleProcess::start`] starts a bundle that exited before it listened.
const START_TRIES: usize = 5;

/// Whether `child` came to listen on every one of `addrs` (false: it exited first).
fn listening(child: &mut Child, addrs: &[SocketAddr]) -> bool {
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if addrs.iter().all(|a| std::net::TcpStream::connect(a).is_ok()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("bottle-bundle did not listen on all its ports");
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bottle-bundle"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Real curl with `args`, JSON `body` when given: (status, body).
pub fn curl(args: &[&str], body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    for v in ["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"] {
        cmd.env_remove(v);
    }
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"]).args(args);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let Output { stdout, stderr, .. } = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or_else(|_| panic!("curl {args:?}: {}", String::from_utf8_lossy(&stderr))), body.into())
}
