//! Test rig for git-gate: a real `git http-backend` upstream that demands a
//! credential only the gate knows, a bundle running egress + git-gate on
//! loopback, and a real `git` CLI with an isolated home.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bottle_bundle::state::Bundle;
use bottle_bundle::{egress, gitgate};
use bottle_protocol::BundleConfig;

/// The only credential the upstream accepts; the agent never holds it.
pub const UPSTREAM_USER: &str = "gate-user";
pub const UPSTREAM_TOKEN: &str = "tok-9f3c1e7d5b2a4c6e8f0a";
/// Longest any single git command may run in a test.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the upstream gets to print its port.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the gate logged in this test process.
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .try_init();
        buf
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `git http-backend` server; killed on drop.
pub struct Upstream {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl Upstream {
    pub fn start(root: &Path) -> Self {
        Self::spawn(root, None)
    }

    /// Serves HTTPS with the PEM certificate chain and key at `tls`.
    pub fn start_tls(root: &Path, tls: (&Path, &Path)) -> Self {
        Self::spawn(root, Some(tls))
    }

    fn spawn(root: &Path, tls: Option<(&Path, &Path)>) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/gitgate/upstream.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg("--root").arg(root).arg("--credential").arg(format!("{UPSTREAM_USER}:{UPSTREAM_TOKEN}"));
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start python3 upstream");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).expect("upstream printed no port");
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("PORT line");
        Self { child, port, root: root.to_path_buf() }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}.git", self.port)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundle serving egress and git-gate on loopback, on its own runtime.
pub struct Gate {
    pub bundle: Arc<Bundle>,
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Gate {
    /// `repos` is the `[[git.repo]]` tables; `credentials` the credentials file text.
    pub fn start(repos: &str, credentials: &str) -> Self {
        Self::try_start(repos, credentials).expect("gate starts")
    }

    pub fn try_start(repos: &str, credentials: &str) -> anyhow::Result<Self> {
        Self::try_start_with("", repos, credentials)
    }

    /// Like [`Gate::try_start`], with extra keys for the `[git]` table (e.g. `ca_file`).
    pub fn try_start_with(git: &str, repos: &str, credentials: &str) -> anyhow::Result<Self> {
        log_buffer();
        let dir = tempfile::tempdir()?;
        let token = dir.path().join("token");
        std::fs::write(&token, "control-token-0123456789")?;
        let creds = dir.path().join("credentials.toml");
        std::fs::write(&creds, credentials)?;
        let file = dir.path().join("bundle.toml");
        let text = format!(
            "bottle = \"t\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\negress = \"127.0.0.1:0\"\n\
             git_gate = \"127.0.0.1:0\"\n[control]\ntoken_file = {token:?}\n[policy]\nallow = [\"127.0.0.0/8\"]\n\
             [egress]\nallow_cidrs = [\"127.0.0.0/8\"]\n[git]\ncredentials_file = {creds:?}\n{git}\n{repos}"
        );
        std::fs::write(&file, &text)?;
        let (config, text) = BundleConfig::load(&file)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let bundle = Arc::new(Bundle::from_config(&file, &text, config)?);
        let addr = runtime.block_on(async {
            let eg = egress::Server::bind("127.0.0.1:0".parse().unwrap()).await?;
            let gate = gitgate::Server::bind("127.0.0.1:0".parse().unwrap()).await?;
            bundle.set_egress_addr(eg.local_addr());
            let addr = gate.local_addr();
            tokio::spawn(eg.run(bundle.clone()));
            tokio::spawn(gate.run(bundle.clone()));
            Ok::<_, anyhow::Error>(addr)
        })?;
        Ok(Self { bundle, addr, runtime: Some(runtime), _dir: dir })
    }

    pub fn url(&self, alias: &str) -> String {
        format!("http://{}/{alias}.git", self.addr)
    }

    /// Every event, as JSON lines.
    pub fn events_json(&self) -> String {
        self.bundle.events.recent().iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The output of one git command.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs git with an isolated home, no prompts, no proxies, bounded by [`GIT_TIMEOUT`],
/// tracing its HTTP traffic (so a test can show what the agent's side saw).
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> Out {
    run_git(dir, home, args, true)
}

fn run_git(dir: &Path, home: &Path, args: &[&str], trace: bool) -> Out {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    if trace {
        cmd.env("GIT_TRACE_CURL", "1");
    }
    let child = cmd
        .args(args)
        .current_dir(dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.test")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.test")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run git");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(GIT_TIMEOUT) {
        Ok(o) => o.expect("git output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("git {args:?} did not finish within {GIT_TIMEOUT:?}");
        }
    };
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch area: a home for git, a bare upstream `r.git` seeded with one commit on `main`.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new(repos: &[&str]) -> Self {
        let w = Self { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(w.root()).unwrap();
        std::fs::create_dir_all(w.home()).unwrap();
        let seed = w.path("seed");
        std::fs::create_dir_all(&seed).unwrap();
        w.ok(&seed, &["init", "-q", "-b", "main"]);
        std::fs::write(seed.join("README"), "hello\n").unwrap();
        w.ok(&seed, &["add", "README"]);
        w.ok(&seed, &["commit", "-q", "-m", "seed"]);
        for r in repos {
            let bare = w.root().join(format!("{r}.git"));
            w.ok(&w.root(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
            w.ok(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        }
        w
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn root(&self) -> PathBuf {
        self.path("upstream")
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> Out {
        git(dir, &self.home(), args)
    }

    /// Runs git without the HTTP trace, whose copy of every byte sent would otherwise sit in
    /// this process's memory.
    pub fn git_untraced(&self, dir: &Path, args: &[&str]) -> Out {
        run_git(dir, &self.home(), args, false)
    }

    /// Runs git and requires success.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.git(dir, args);
        assert!(out.ok, "git {args:?} failed:\n{}", out.stderr);
        out
    }

    /// The upstream's value of `refname` in bare repo `repo`, if any.
    pub fn upstream_ref(&self, repo: &str, refname: &str) -> Option<String> {
        let bare = self.root().join(format!("{repo}.git"));
        let out = self.git(&bare, &["rev-parse", "--verify", "-q", refname]);
        out.ok.then(|| out.stdout.trim().to_string())
    }

    /// Commits a new file in `work` and returns the new HEAD.
    pub fn commit(&self, work: &Path, name: &str) -> String {
        self.commit_bytes(work, name, format!("{name}\n").as_bytes())
    }

    /// Commits `len` incompressible bytes, so the push exceeds git's post buffer and is streamed.
    pub fn commit_random(&self, work: &Path, name: &str, len: usize) -> String {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        self.commit_bytes(work, name, &bytes)
    }

    fn commit_bytes(&self, work: &Path, name: &str, bytes: &[u8]) -> String {
        std::fs::write(work.join(name), bytes).unwrap();
        self.ok(work, &["add", name]);
        self.ok(work, &["commit", "-q", "-m", name]);
        self.ok(work, &["rev-parse", "HEAD"]).stdout.trim().to_string()
    }
}

/// The credentials file that lets the gate into the upstream as alias `alias`.
pub fn credentials(aliases: &[&str]) -> String {
    aliases.iter().map(|a| format!("{a} = \"{UPSTREAM_USER}:{UPSTREAM_TOKEN}\"\n")).collect()
}
