//! Where a secret's value lives on the host, and the one reader of it.
//!
//! A value is an environment variable, a file, or the output of a host command
//! (a password manager: `security find-generic-password ... -w` on macOS, `op
//! read ...`), so an app started without a shell's variables still gets its
//! secrets. A command runs without a shell, with no stdin and its stderr
//! discarded, under [`COMMAND_TIMEOUT`]; what it prints is never quoted back,
//! since it is the secret or, on a failure, may be.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a secret's `command` may run before it is killed (a password manager may wait
/// for a fingerprint or a password dialog). [`COMMAND_TIMEOUT_ENV`] overrides it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds, overriding [`COMMAND_TIMEOUT`] for unlocks that take longer.
pub const COMMAND_TIMEOUT_ENV: &str = "BOTTLE_SECRET_COMMAND_TIMEOUT";
/// Most a command may print: a secret is a token or a small file, not a stream.
pub const MAX_COMMAND_OUTPUT: usize = 64 * 1024;
/// How often a running command is looked at while it is waited for.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Where a value lives on the host. File paths are absolute (resolved against
/// the bottle.toml's directory); they are not required to exist until `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// A program and its arguments, run on the host at `up`; its stdout is the value.
    /// A program named with a `/` is resolved against the bottle.toml's directory, others on `PATH`.
    Command(Vec<String>),
    /// A value already read: by `up`'s checks (so a command runs once per `up`) or handed
    /// over by an embedder that keeps secrets itself.
    Value(SecretValue),
}

/// A secret's value: shown by `Debug` as `<redacted>`, and with no `Display` at all.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SecretSource {
    /// Reads the value now: the one reader for never-leave secrets, git
    /// credentials and API credentials, on every backend. A trailing line break
    /// of a file or a command's output is not part of the value (`echo secret >
    /// file` writes one, and a value ending in `\n` would never match what the
    /// agent sends). The error names the source, never the value.
    pub fn read(&self) -> anyhow::Result<String> {
        let value = match self {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| anyhow::anyhow!("env var {var} is not set on the host"))?
            }
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {}", path.display(), e.kind()))?;
                trim_line_break(&text).to_string()
            }
            SecretSource::Command(argv) => run(argv, command_timeout()?)?,
            SecretSource::Value(v) => v.0.clone(),
        };
        anyhow::ensure!(!value.is_empty(), "{} gave an empty value", self.describe());
        Ok(value)
    }

    /// The source in words, for messages: never the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(var) => format!("env var {var}"),
            SecretSource::File(path) => path.display().to_string(),
            SecretSource::Command(argv) => format!("command {}", program(argv)),
            SecretSource::Value(_) => "the value given".into(),
        }
    }

    /// What the spec wrote, as a message may quote it: the variable's name, the path, the
    /// command's program.
    pub fn named(&self) -> String {
        match self {
            SecretSource::Env(var) => var.clone(),
            SecretSource::File(path) => path.display().to_string(),
            SecretSource::Command(argv) => program(argv),
            SecretSource::Value(_) => "<redacted>".into(),
        }
    }

    /// The spec key of this kind of source: `env`, `file` or `command` (`value` for one read already).
    pub fn key(&self) -> &'static str {
        match self {
            SecretSource::Env(_) => "env",
            SecretSource::File(_) => "file",
            SecretSource::Command(_) => "command",
            SecretSource::Value(_) => "value",
        }
    }
}

/// What a message may say of a command: its program, never its arguments (an argument may
/// be a vault path the user would rather not print, and the program is what they look for).
fn program(argv: &[String]) -> String {
    argv.first().cloned().unwrap_or_default()
}

fn trim_line_break(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

fn command_timeout() -> anyhow::Result<Duration> {
    match std::env::var(COMMAND_TIMEOUT_ENV) {
        Err(_) => Ok(COMMAND_TIMEOUT),
        Ok(v) => {
            v.trim().parse::<u64>().ok().filter(|s| *s > 0).map(Duration::from_secs).ok_or_else(|| {
                anyhow::anyhow!("{COMMAND_TIMEOUT_ENV}={v:?}: expected a whole number of seconds above 0")
            })
        }
    }
}

/// Runs `argv` (no shell), waits up to `timeout`, and returns its stdout less one trailing
/// line break. The command runs in a process group of its own, so a timeout kills whatever
/// it started too and nothing is left holding its output open.
pub fn run(argv: &[String], timeout: Duration) -> anyhow::Result<String> {
    use std::os::unix::process::CommandExt;
    let name = program(argv);
    let Some((prog, args)) = argv.split_first() else { anyhow::bail!("command is empty") };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| anyhow::anyhow!("command {name}: cannot start it: {}", e.kind()))?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = (&mut stdout).take(MAX_COMMAND_OUTPUT as u64 + 1).read_to_end(&mut out);
        let _ = tx.send(read.map(|_| out));
    });
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        anyhow::anyhow!(
            "command {name}: still running after {}s, killed (see {COMMAND_TIMEOUT_ENV})",
            timeout.as_secs()
        )
    };
    // Killed while its leader is not yet reaped, so the group id is still this command's.
    let kill_group = |child: &std::process::Child| {
        let _ =
            rustix::process::kill_process_group(rustix::process::Pid::from_child(child), rustix::process::Signal::KILL);
    };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(&child);
            let _ = child.wait();
            return Err(timed_out());
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    // Something it started may still hold the pipe open: that counts against the same deadline.
    let out = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(read) => read.map_err(|e| anyhow::anyhow!("command {name}: reading its output: {}", e.kind()))?,
        Err(_) => {
            kill_group(&child);
            return Err(timed_out());
        }
    };
    // Checked first: a command cut off by its closed pipe then dies of SIGPIPE.
    anyhow::ensure!(out.len() <= MAX_COMMAND_OUTPUT, "command {name}: printed more than {MAX_COMMAND_OUTPUT} bytes");
    match status.code() {
        Some(0) => {}
        Some(code) => anyhow::bail!("command {name}: exited with status {code} (its output is not shown)"),
        None => anyhow::bail!("command {name}: ended by a signal (its output is not shown)"),
    }
    let text = String::from_utf8(out).map_err(|_| anyhow::anyhow!("command {name}: its output is not UTF-8 text"))?;
    Ok(trim_line_break(&text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_command_s_output_less_one_line_break_is_the_value() {
        assert_eq!(run(&argv(&["printf", "s3cret\n\n"]), COMMAND_TIMEOUT).unwrap(), "s3cret\n");
        assert_eq!(run(&argv(&["printf", "s3cret\r\n"]), COMMAND_TIMEOUT).unwrap(), "s3cret");
    }

    #[test]
    fn a_failure_names_program_and_status_never_the_output() {
        let e = run(&argv(&["sh", "-c", "echo leaked-value; echo leaked-err >&2; exit 3"]), COMMAND_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("command sh") && e.contains("status 3"), "{e}");
        assert!(!e.contains("leaked"), "{e}");
        let e = run(&argv(&["/nonexistent/bottle-getter"]), COMMAND_TIMEOUT).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/bottle-getter") && e.contains("cannot start"), "{e}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let started = Instant::now();
        let e = run(&argv(&["sh", "-c", "sleep 30 & sleep 30"]), Duration::from_millis(300)).unwrap_err().to_string();
        assert!(e.contains("still running after") && e.contains(COMMAND_TIMEOUT_ENV), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10), "a grandchild holding the pipe must not stall it");
    }

    #[test]
    fn too_much_output_is_refused() {
        let e = run(&argv(&["head", "-c", "70000", "/dev/zero"]), COMMAND_TIMEOUT).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn a_value_is_never_shown_by_debug() {
        let s = SecretSource::Value(SecretValue::new("hunter2"));
        assert_eq!(format!("{s:?}"), "Value(<redacted>)");
        assert_eq!(s.read().unwrap(), "hunter2");
    }
}
