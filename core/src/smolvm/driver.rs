//! Runs the `smolvm` binary: one method per machine command, each with its own
//! timeout, each failure carrying smolvm's own `Error: ...` text.
//!
//! The process boundary is this struct and nothing else: it holds the binary's
//! path and the version it reported, so tests run this exact code against a
//! stand-in executable, and the only thing they cannot check is a real VM.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::egress::{self, EgressDenial};
use super::name::MachineName;
use super::smolfile::{Smolfile, VmImage};
use super::status::{self, MachineStatus};
use super::version::Version;
use crate::backend::{ExecOutput, ExecRequest};

/// Environment variable naming the smolvm binary when it is not on PATH.
pub const SMOLVM_ENV: &str = "BOTTLE_SMOLVM";

pub const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Create may stage a `docker save` tarball of up to 8 GiB into smolvm's cache.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(600);
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(15);
pub const EGRESS_EVENTS_TIMEOUT: Duration = Duration::from_secs(15);
/// Default for `exec` when the caller gives none.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// How many denials one `egress-events` poll asks for (smolvm's own default).
pub const EGRESS_EVENTS_LIMIT: u32 = 200;
/// `exec -d` only spawns the command and prints its PID.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Prefix of the environment variables that carry a secret value from bottle to the
/// smolvm child process it runs (`--secret-env GUEST=HOST_VAR` names them).
const SECRET_VAR_PREFIX: &str = "BOTTLE_SMOLVM_SECRET_";

#[derive(Debug, thiserror::Error)]
pub enum SmolvmError {
    #[error(
        "smolvm: not found ({searched}); install smolvm 1.1.3 or newer \
         (https://github.com/smol-machines/smolvm/releases) or set {SMOLVM_ENV} to its path"
    )]
    NotFound { searched: String },
    #[error("{0}")]
    TooOld(String),
    #[error("{op}: no answer after {}; the smolvm process was killed", humantime::format_duration(*.after))]
    Timeout { op: String, after: Duration },
    #[error("{op}: could not run {bin}: {source}")]
    Spawn { op: String, bin: PathBuf, source: std::io::Error },
    /// smolvm ran and refused; `message` is its own stderr (`Error: ...`).
    #[error("{op}: exit {code}: {message}")]
    Failed { op: String, code: i32, message: String },
    #[error("{op}: {detail}")]
    Output { op: String, detail: String },
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

impl SmolvmError {
    /// Whether smolvm refused because it has no machine of that name: `vm not found: N`,
    /// or `status`'s `machine 'N' not found`.
    pub fn is_no_machine(&self) -> bool {
        let Self::Failed { message, .. } = self else { return false };
        message.starts_with("Error: vm not found: ")
            || (message.starts_with("Error: config operation failed: machine status: machine '")
                && message.ends_with("' not found"))
    }
}

/// A smolvm that is missing or too old means the backend cannot run here; any other
/// failure is the operation's.
impl From<SmolvmError> for crate::backend::Error {
    fn from(e: SmolvmError) -> Self {
        match e {
            SmolvmError::NotFound { .. } | SmolvmError::TooOld(_) => Self::BackendUnavailable(e.into()),
            e => Self::Runtime(e.into()),
        }
    }
}

/// Everything `machine create` needs.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: MachineName,
    pub smolfile: Smolfile,
    /// Where the rendered Smolfile is written for smolvm to read.
    pub smolfile_path: PathBuf,
    pub image: VmImage,
    /// `--label KEY=VALUE`s, passed only to a smolvm that has them (1.8.0+).
    pub labels: BTreeMap<String, String>,
}

/// The agent's command, started in a running machine once the start check passed.
#[derive(Debug, Clone)]
pub struct Launch {
    pub cmd: Vec<String>,
    pub workdir: String,
    /// Guest variable -> value. Handed over with `--secret-env` from the smolvm child's
    /// own environment, so the value is in no argv, no Smolfile and no smolvm record.
    pub secrets: BTreeMap<String, String>,
}

/// A `smolvm` binary whose version passed the gate.
#[derive(Debug, Clone)]
pub struct Smolvm {
    bin: PathBuf,
    version: Version,
}

impl Smolvm {
    /// Finds smolvm: `explicit` (from config) first, then `$BOTTLE_SMOLVM`, then PATH.
    pub async fn discover(explicit: Option<&Path>) -> Result<Self, SmolvmError> {
        Self::discover_in(explicit, std::env::var_os(SMOLVM_ENV), std::env::var_os("PATH")).await
    }

    /// [`Smolvm::discover`] with the environment passed in, so it can be tested
    /// without mutating the process environment.
    pub async fn discover_in(
        explicit: Option<&Path>,
        env_value: Option<OsString>,
        path: Option<OsString>,
    ) -> Result<Self, SmolvmError> {
        if let Some(p) = explicit {
            return Self::at(p.to_path_buf()).await;
        }
        if let Some(p) = env_value.filter(|p| !p.is_empty()) {
            return Self::at(PathBuf::from(p)).await;
        }
        let path = path.unwrap_or_default();
        let found = std::env::split_paths(&path).map(|d| d.join("smolvm")).find(|c| is_executable(c));
        match found {
            Some(bin) => Self::at(bin).await,
            None => Err(SmolvmError::NotFound { searched: format!("{SMOLVM_ENV} unset, not on PATH") }),
        }
    }

    /// Uses the binary at `bin`, after reading its version and gating on it.
    pub async fn at(bin: PathBuf) -> Result<Self, SmolvmError> {
        if !is_executable(&bin) {
            return Err(SmolvmError::NotFound { searched: format!("{} is not an executable file", bin.display()) });
        }
        let out = run(&bin, &["--version".into()], &[], VERSION_TIMEOUT).await?;
        let op = "smolvm --version".to_owned();
        let out = ok_or_failed(op.clone(), out)?;
        let version = Version::parse_version_output(&out.stdout)
            .map_err(|detail| SmolvmError::Output { op, detail })?
            .gate()
            .map_err(SmolvmError::TooOld)?;
        Ok(Self { bin, version })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `machine create` from a rendered Smolfile; a tarball image goes on the
    /// command line, the only place smolvm reads it as a local file.
    pub async fn create(&self, req: &CreateRequest) -> Result<(), SmolvmError> {
        let text = req.smolfile.render();
        std::fs::write(&req.smolfile_path, text).map_err(|source| SmolvmError::Io {
            op: format!("write smolfile {}", req.smolfile_path.display()),
            source,
        })?;
        let mut args = create_args(self.version, &req.name, &req.smolfile_path, &req.image);
        if self.version.has_labels() {
            for (k, v) in &req.labels {
                args.extend(["--label".into(), format!("{k}={v}").into()]);
            }
        }
        self.checked(&args, CREATE_TIMEOUT).await.map(drop)
    }

    /// Starts the agent's command in the background with `exec -d` and returns its guest PID.
    ///
    /// Why `exec -d` and not the Smolfile's `cmd`: smolvm starts `entrypoint` + `cmd` as the
    /// machine's workload inside `machine start` itself (src/cli/vm_common.rs at v1.9.3), so
    /// the agent would be running before bottle could look at the boundary, and smolvm has
    /// no hook that holds the workload back until a condition holds (init commands run
    /// before it, health checks after). `exec -d` (v1.3.0+, src/cli/machine.rs `ExecCmd`)
    /// spawns a process that outlives the exec call and merges the Smolfile's `env` into
    /// it, so the agent starts exactly when bottle says so, with the bottle's environment.
    pub async fn launch(&self, name: &MachineName, launch: &Launch) -> Result<u32, SmolvmError> {
        let mut args = machine(&["exec", "--name", name.as_str(), "-d", "-w", &launch.workdir]);
        let op = describe(&args[..5]);
        if !self.version.has_exec_detach() {
            return Err(SmolvmError::TooOld(format!(
                "{op}: smolvm {} cannot start the agent after the start check (`machine exec -d` needs {}); \
                 upgrade smolvm or leave `command` empty",
                self.version,
                Version::EXEC_DETACH
            )));
        }
        let mut envs = Vec::new();
        for (i, (k, v)) in launch.secrets.iter().enumerate() {
            let var = format!("{SECRET_VAR_PREFIX}{i}");
            args.extend(["--secret-env".into(), format!("{k}={var}").into()]);
            envs.push((var, v.clone()));
        }
        args.push("--".into());
        args.extend(launch.cmd.iter().map(OsString::from));
        let out = run(&self.bin, &args, &envs, LAUNCH_TIMEOUT).await.map_err(|e| rename(e, &op))?;
        let out = ok_or_failed(op.clone(), out)?;
        out.stdout.trim().parse().map_err(|_| SmolvmError::Output {
            op,
            detail: format!("expected the guest PID on stdout, got {:?}", out.stdout.trim()),
        })
    }

    pub async fn start(&self, name: &MachineName) -> Result<(), SmolvmError> {
        self.checked(&machine(&["start", "-n", name.as_str()]), START_TIMEOUT).await.map(drop)
    }

    pub async fn stop(&self, name: &MachineName) -> Result<(), SmolvmError> {
        self.checked(&machine(&["stop", "-n", name.as_str()]), STOP_TIMEOUT).await.map(drop)
    }

    /// Deletes without prompting (`-f`): without it smolvm asks on stdin and a
    /// closed stdin prints `Cancelled` and exits 0 having deleted nothing.
    pub async fn delete(&self, name: &MachineName) -> Result<(), SmolvmError> {
        let args = if self.version.name_is_flag() {
            machine(&["delete", "-n", name.as_str(), "-f"])
        } else {
            machine(&["delete", name.as_str(), "-f"])
        };
        self.checked(&args, DELETE_TIMEOUT).await.map(drop)
    }

    pub async fn status(&self, name: &MachineName) -> Result<MachineStatus, SmolvmError> {
        let args = machine(&["status", "-n", name.as_str(), "--json"]);
        let (op, out) = self.checked(&args, STATUS_TIMEOUT).await?;
        status::parse_status(&out.stdout).map_err(|detail| SmolvmError::Output { op, detail })
    }

    pub async fn list(&self) -> Result<Vec<MachineStatus>, SmolvmError> {
        let (op, out) = self.checked(&machine(&["ls", "--json"]), STATUS_TIMEOUT).await?;
        status::parse_list(&out.stdout).map_err(|detail| SmolvmError::Output { op, detail })
    }

    /// Runs `cmd` in the machine. A non-zero exit is the guest's and is returned,
    /// not raised, unless smolvm itself refused (no such machine, not running):
    /// those exit 1 with an empty stdout and one of smolvm's `Error:` shapes.
    pub async fn exec(&self, name: &MachineName, cmd: &[String], timeout: Duration) -> Result<ExecOutput, SmolvmError> {
        let mut args = machine(&["exec", "--name", name.as_str(), "--"]);
        let op = describe(&args[..4]);
        if cmd.is_empty() {
            return Err(SmolvmError::Output { op, detail: "no command given".into() });
        }
        args.extend(cmd.iter().map(OsString::from));
        let out = run(&self.bin, &args, &[], timeout).await.map_err(|e| rename(e, &op))?;
        if out.code == 1 && out.stdout.is_empty() && is_smolvm_refusal(&out.stderr) {
            return Err(SmolvmError::Failed { op, code: 1, message: error_text(&out.stderr) });
        }
        Ok(ExecOutput { exit_code: i64::from(out.code), stdout: out.stdout, stderr: out.stderr })
    }

    /// Runs `cmd` with this process's stdin (when asked), stdout and stderr handed to smolvm
    /// itself, and returns its exit code: the guest's, or 1 when smolvm refused (its
    /// `Error: ...` is then already on stderr). smolvm's `machine exec` has `-i`, `-t` and
    /// `--stream` from 1.1.3 (the oldest smolvm bottle runs on), and with `-t` on a terminal it
    /// puts the terminal in raw mode and sends the window size, and each change of it, to the
    /// guest's terminal itself (src/agent/client.rs at 1.9.3), so nothing is relayed here.
    pub async fn exec_attached(&self, name: &MachineName, req: &ExecRequest) -> Result<i64, SmolvmError> {
        let args = attached_args(name, req);
        let op = describe(&args[..4]);
        if req.cmd.is_empty() {
            return Err(SmolvmError::Output { op, detail: "no command given".into() });
        }
        let status = Command::new(&self.bin)
            .args(&args)
            .stdin(if req.stdin { Stdio::inherit() } else { Stdio::null() })
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|source| SmolvmError::Spawn { op, bin: self.bin.clone(), source })?;
        Ok(i64::from(status.code().unwrap_or_else(|| 128 + signal_of(&status))))
    }

    /// Denials the VMM recorded, oldest first; `None` when this smolvm has no
    /// `egress-events` (before 1.8.1), so "none recorded" and "cannot tell" differ.
    pub async fn egress_events(&self, name: &MachineName) -> Result<Option<Vec<EgressDenial>>, SmolvmError> {
        if !self.version.has_egress_events() {
            return Ok(None);
        }
        let limit = EGRESS_EVENTS_LIMIT.to_string();
        let args = machine(&["egress-events", "-n", name.as_str(), "--limit", &limit, "--json"]);
        let (op, out) = self.checked(&args, EGRESS_EVENTS_TIMEOUT).await?;
        egress::parse_events(&out.stdout).map(Some).map_err(|detail| SmolvmError::Output { op, detail })
    }

    async fn checked(&self, args: &[OsString], timeout: Duration) -> Result<(String, Captured), SmolvmError> {
        let op = describe(args);
        let out = run(&self.bin, args, &[], timeout).await.map_err(|e| rename(e, &op))?;
        Ok((op.clone(), ok_or_failed(op, out)?))
    }
}

/// `machine exec` argv for an attached command: `-i` to send stdin, `-t` for a terminal, and
/// `--stream` when neither (without it smolvm holds all output back until the command ends).
fn attached_args(name: &MachineName, req: &ExecRequest) -> Vec<OsString> {
    let mut args = machine(&["exec", "--name", name.as_str()]);
    let flags: &[&str] = match (req.stdin, req.tty) {
        (true, true) => &["-i", "-t"],
        (true, false) => &["-i"],
        (false, true) => &["-t"],
        (false, false) => &["--stream"],
    };
    args.extend(flags.iter().map(OsString::from));
    args.push("--".into());
    args.extend(req.cmd.iter().map(OsString::from));
    args
}

/// `machine create` argv for `version`: the name moved from a positional to
/// `-n` in 1.0.2, and each form is a usage error (exit 2) on the other side.
pub fn create_args(version: Version, name: &MachineName, smolfile: &Path, image: &VmImage) -> Vec<OsString> {
    let mut args = if version.name_is_flag() {
        machine(&["create", "-n", name.as_str(), "-s"])
    } else {
        machine(&["create", name.as_str(), "--smolfile"])
    };
    args.push(smolfile.into());
    if version >= Version::MIN_ENFORCING {
        // Already what a policy selects; said explicitly so a change of
        // default in some later smolvm cannot move the VM back onto TSI.
        args.extend(["--net-backend".into(), "virtio-net".into()]);
    }
    if let VmImage::Tarball(tar) = image {
        args.push("--image".into());
        args.push(tar.into());
    }
    args
}

fn machine(rest: &[&str]) -> Vec<OsString> {
    std::iter::once("machine").chain(rest.iter().copied()).map(OsString::from).collect()
}

fn describe(args: &[OsString]) -> String {
    let words: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    format!("smolvm {}", words.join(" "))
}

fn rename(e: SmolvmError, op: &str) -> SmolvmError {
    match e {
        SmolvmError::Timeout { after, .. } => SmolvmError::Timeout { op: op.to_owned(), after },
        SmolvmError::Spawn { bin, source, .. } => SmolvmError::Spawn { op: op.to_owned(), bin, source },
        other => other,
    }
}

struct Captured {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs smolvm with `envs` added to its own environment (and so in no argv).
async fn run(
    bin: &Path,
    args: &[OsString],
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<Captured, SmolvmError> {
    let op = describe(args);
    let child = Command::new(bin)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SmolvmError::Spawn { op: op.clone(), bin: bin.to_path_buf(), source })?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|source| SmolvmError::Spawn { op: op.clone(), bin: bin.to_path_buf(), source })?,
        Err(_) => return Err(SmolvmError::Timeout { op, after: timeout }),
    };
    Ok(Captured {
        // Killed by a signal: reported like a shell would, 128 + N.
        code: out.status.code().unwrap_or_else(|| 128 + signal_of(&out.status)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> i32 {
    0
}

fn ok_or_failed(op: String, out: Captured) -> Result<Captured, SmolvmError> {
    if out.code == 0 {
        Ok(out)
    } else {
        Err(SmolvmError::Failed { op, code: out.code, message: error_text(&out.stderr) })
    }
}

/// Where smolvm's `Error: ` line starts. It need not be the first line: from v1.7.0 a
/// smolvm whose file is not named `smolvm` first prints a `note: no packed assets ...`
/// line (src/main.rs), and warnings may come before it too.
fn error_line(stderr: &str) -> Option<usize> {
    if stderr.starts_with("Error: ") {
        return Some(0);
    }
    stderr.find("\nError: ").map(|i| i + 1)
}

/// smolvm's message: from its `Error: ` line on (the reason may span lines),
/// dropping notes printed before it; clap usage errors are passed whole.
fn error_text(stderr: &str) -> String {
    let text = stderr[error_line(stderr).unwrap_or(0)..].trim();
    if text.is_empty() { "(no message on stderr)".to_owned() } else { text.to_owned() }
}

/// Whether an exec's exit 1 is smolvm refusing (no such machine, not running) rather
/// than the guest command's own exit status.
fn is_smolvm_refusal(stderr: &str) -> bool {
    error_line(stderr).is_some_and(|i| {
        let t = &stderr[i..];
        t.starts_with("Error: vm not found: ") || t.starts_with("Error: agent operation failed: ")
    })
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[OsString]) -> Vec<String> {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn create_argv_follows_the_version() {
        let n = MachineName::new("bottle-a").unwrap();
        let tar = VmImage::Tarball("/t/agent.tar".into());
        let old = create_args(Version::new(1, 0, 1), &n, Path::new("/s/Smolfile"), &VmImage::Registry("x".into()));
        assert_eq!(words(&old), ["machine", "create", "bottle-a", "--smolfile", "/s/Smolfile"]);
        let new = create_args(Version::new(1, 9, 3), &n, Path::new("/s/Smolfile"), &tar);
        assert_eq!(
            words(&new),
            [
                "machine",
                "create",
                "-n",
                "bottle-a",
                "-s",
                "/s/Smolfile",
                "--net-backend",
                "virtio-net",
                "--image",
                "/t/agent.tar"
            ]
        );
    }

    #[test]
    fn attached_exec_asks_smolvm_for_stdin_a_terminal_or_streaming() {
        let n = MachineName::new("bottle-a").unwrap();
        let req = |stdin, tty| ExecRequest { cmd: vec!["sh".into()], stdin, tty, sizes: None };
        let flags = |stdin, tty| words(&attached_args(&n, &req(stdin, tty)))[4..].join(" ");
        assert_eq!(words(&attached_args(&n, &req(true, true)))[..4], ["machine", "exec", "--name", "bottle-a"]);
        assert_eq!(flags(true, true), "-i -t -- sh");
        assert_eq!(flags(true, false), "-i -- sh");
        assert_eq!(flags(false, true), "-t -- sh");
        assert_eq!(flags(false, false), "--stream -- sh");
    }

    #[test]
    fn a_missing_machine_is_told_apart_from_other_refusals() {
        let failed = |message: &str| SmolvmError::Failed { op: "op".into(), code: 1, message: message.into() };
        assert!(failed("Error: vm not found: bottle-a").is_no_machine());
        assert!(failed("Error: config operation failed: machine status: machine 'bottle-a' not found").is_no_machine());
        assert!(!failed("Error: agent operation failed: connect: machine 'bottle-a' is not running.").is_no_machine());
    }

    #[test]
    fn error_text_keeps_smolvm_message_and_drops_notes() {
        let stderr = "note: no packed assets found for 'x'\nError: vm not found: a\n";
        assert_eq!(error_text(stderr), "Error: vm not found: a");
        assert_eq!(error_text("error: unexpected argument '-n' found\n"), "error: unexpected argument '-n' found");
        assert_eq!(error_text(""), "(no message on stderr)");
    }

    #[test]
    fn a_refusal_is_found_below_notes_and_warnings() {
        let noted = "note: no packed assets found for 'smolvm-1.9.3'\nError: vm not found: bottle-a\n";
        assert!(is_smolvm_refusal(noted));
        let warned = "warning: x\nnote: y\nError: agent operation failed: connect: machine 'a' is not running.\n";
        assert!(is_smolvm_refusal(warned));
        assert!(!is_smolvm_refusal("curl: (7) Failed to connect\n"), "the guest's own stderr");
        assert!(!is_smolvm_refusal("guest says: Error: vm not found: x\n"), "only at a line start");
    }
}
