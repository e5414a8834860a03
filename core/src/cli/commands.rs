//! What each command does, one function per command: ask the front door
//! (`crate::bottles`) or the bottle's control plane, print the result. Results go to
//! stdout, progress to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use serde::Serialize;

use super::args::{Cli, Command, PolicyCommand};
use super::exit::{Exit, Failure};
use super::progress::StepPrinter;
use super::{policy, render};
use crate::backend::{BackendKind, BottleStatus, ExecRequest, LogOptions, LogSource};
use crate::bottles::{self, Error};
use crate::control_client::ControlClient;
use crate::spec::Spec;
use crate::terminal;

/// What every command is given beside its own arguments.
#[derive(Debug, Clone, Copy)]
struct Opts {
    /// `--backend`, if given.
    flag: Option<BackendKind>,
    json: bool,
}

/// Runs one parsed command; `Ok` carries the process exit code (non-zero only for `exec` and `shell`).
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let o = Opts { flag: cli.backend, json: cli.json };
    match cli.command {
        Command::Up { file, dry_run } => up(o, &file, dry_run).await,
        Command::Down { name } => down(o, &name).await,
        Command::Ls => ls(o).await,
        Command::Status { name } => status(o, &name).await,
        Command::Exec { name, interactive, tty, cmd } => {
            // Piped input always reaches the command; a terminal's only when asked (-i), as
            // with `docker exec`, so a command that reads no input does not wait on the keyboard.
            let stdin = interactive || !terminal::stdin_is_terminal();
            attached(o, &name, cmd, stdin, tty).await
        }
        Command::Shell { name } => {
            let cmd = LOGIN_SHELL.iter().map(|s| s.to_string()).collect();
            attached(o, &name, cmd, true, terminal::stdin_is_terminal()).await
        }
        Command::Logs { name, bundle, follow, tail } => {
            let source = if bundle { LogSource::Bundle } else { LogSource::Agent };
            super::logs::print(o.flag, &name, LogOptions { source, tail, follow }, o.json).await
        }
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(o, dir.as_deref()),
        Command::Events { name, follow, since } => events(o, &name, follow, since).await,
        Command::Requests { name } => requests(o, &name).await,
        Command::Approve { name, request_id, ttl } => approve(o, &name, &request_id, ttl).await,
        Command::Deny { name, request_id } => deny(o, &name, &request_id).await,
        Command::Allow { name, target, ttl } => {
            policy::allow(&control(o.flag, &name).await?, &name, target, ttl, o.json).await
        }
        Command::Revoke { name, target } => policy::revoke(&control(o.flag, &name).await?, &name, target, o.json).await,
        Command::Policy { check: Some(PolicyCommand::Check { name, target }), .. } => {
            policy::check(&control(o.flag, &name).await?, target, o.json).await
        }
        Command::Policy { name, check: None } => {
            let name = name.expect("clap requires a name without a subcommand");
            policy::show(&control(o.flag, &name).await?, o.json).await
        }
        Command::Kill { name, release } => kill(o, &name, release).await,
        Command::Gc { dry_run } => gc(o, dry_run).await,
        Command::Doctor => doctor(o).await,
        Command::Verify { name, file, only } => verify(o, name, file, &only).await,
    }
}

async fn up(o: Opts, file: &Path, dry_run: bool) -> Result<u8, Failure> {
    let spec = Spec::load_for(file, bottles::forced_from_env(o.flag)?).map_err(|e| Error::InvalidSpec(e.into()))?;
    let backend = bottles::open(bottles::choose_from_env(o.flag, spec.backend)?.kind).await?;
    if dry_run {
        let report = backend.preflight(&spec).await;
        out(&if o.json { render::json(&report) } else { render::preflight(&report) })?;
        // The failures again on stderr, each with its position, as `up` would give them.
        report.ready(&crate::backend::NoProgress).map_err(Error::from)?;
        return Ok(0);
    }
    let progress = StepPrinter::stderr();
    let res = backend.up(&spec, &progress).await;
    progress.finish();
    // A refusal already names file, line and key, and nothing was started.
    let mut st = res.map_err(|e| match e {
        Error::InvalidSpec(_) => e,
        e => e.context(format!("starting bottle {}", spec.name)),
    })?;
    crate::live::fill(&*backend, &mut st).await;
    if o.json {
        out(&render::json(&Up { status: &st, timings: progress.timings() }))?;
    } else {
        print_status(&st, false)?;
    }
    bottles::boundary_held(&st)?;
    Ok(0)
}

async fn down(o: Opts, name: &str) -> Result<u8, Failure> {
    let backend = bottles::open_default(o.flag).await?;
    let progress = StepPrinter::stderr();
    let res = backend.down(name, &progress).await;
    progress.finish();
    res?;
    say(&format!("removed bottle {name} (its workspace is untouched)\n"), o.json, &Done { name })?;
    Ok(0)
}

async fn ls(o: Opts) -> Result<u8, Failure> {
    let all = bottles::list(&*bottles::open_default(o.flag).await?).await?;
    out(&if o.json { render::json(&all) } else { render::list(&all) })?;
    Ok(0)
}

async fn status(o: Opts, name: &str) -> Result<u8, Failure> {
    let st = bottles::status(&*bottles::open_default(o.flag).await?, name).await?;
    print_status(&st, o.json)?;
    bottles::boundary_held(&st)?;
    Ok(0)
}

/// `shell`'s command: bash as a login shell where the image has it, else sh. Run through
/// `sh` because the agent's uid may have no passwd entry, and so no login shell on record.
const LOGIN_SHELL: [&str; 3] =
    ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"];

/// `exec` and `shell`: the command runs with this process's streams; exits with its code.
async fn attached(o: Opts, name: &str, cmd: Vec<String>, stdin: bool, tty: bool) -> Result<u8, Failure> {
    let backend = bottles::open_default(o.flag).await?;
    let sizes = if tty { terminal::window_sizes()? } else { None };
    // Raw only with a TTY in the agent: that terminal then echoes and edits lines, not this one.
    let raw = if tty { terminal::RawMode::enable()? } else { None };
    let res = backend.exec_attached(name, ExecRequest { cmd, stdin, tty, sizes }).await;
    drop(raw);
    Ok(u8::try_from(res?).unwrap_or(Exit::Runtime as u8))
}

fn completions(shell: clap_complete::Shell) -> Result<u8, Failure> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "bottle-core", &mut buf);
    out_bytes(&buf)?;
    Ok(0)
}

/// The manual page on stdout, or with `dir` every page written there.
fn man(o: Opts, dir: Option<&Path>) -> Result<u8, Failure> {
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
        out_bytes(&buf)?;
        return Ok(0);
    };
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing manual pages to {}", dir.display()))?;
    #[derive(Serialize)]
    struct Pages<'a> {
        dir: &'a Path,
    }
    say(&format!("wrote the manual pages to {}\n", dir.display()), o.json, &Pages { dir })?;
    Ok(0)
}

/// The bottle's one event stream (see `bottles::follow`), until it ends or Ctrl-C.
async fn events(o: Opts, name: &str, follow: bool, since: Option<u64>) -> Result<u8, Failure> {
    let backend = bottles::open_default(o.flag).await?;
    let mut stream = bottles::follow(&*backend, name, since, follow).await?;
    // One listener for the whole loop, so a Ctrl-C between two events is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(0),
            next = stream.next() => match next? {
                Some(ev) => out(&if o.json { render::json_line(&ev) } else { bottles::event_line::line(&ev) })?,
                None => return Ok(0),
            },
        }
    }
}

async fn requests(o: Opts, name: &str) -> Result<u8, Failure> {
    let pending = control(o.flag, name).await?.pending().await?;
    out(&if o.json { render::json(&pending) } else { render::requests(&pending) })?;
    Ok(0)
}

async fn approve(o: Opts, name: &str, request_id: &str, ttl: Option<u64>) -> Result<u8, Failure> {
    control(o.flag, name).await?.approve(request_id, ttl).await?;
    let ttl_text = ttl.map(|t| format!(" for {t}s")).unwrap_or_default();
    say(&format!("approved {request_id} on {name}{ttl_text}\n"), o.json, &Done { name })?;
    Ok(0)
}

async fn deny(o: Opts, name: &str, request_id: &str) -> Result<u8, Failure> {
    control(o.flag, name).await?.deny(request_id).await?;
    say(&format!("denied {request_id} on {name}\n"), o.json, &Done { name })?;
    Ok(0)
}

async fn kill(o: Opts, name: &str, release: bool) -> Result<u8, Failure> {
    control(o.flag, name).await?.kill(!release).await?;
    let text = if release { "egress restored" } else { "all egress cut" };
    say(&format!("{name}: {text}\n"), o.json, &Done { name })?;
    Ok(0)
}

async fn gc(o: Opts, dry_run: bool) -> Result<u8, Failure> {
    let backend = bottles::open_default(o.flag).await?;
    let removed = backend.gc(dry_run).await.map_err(|e| e.context("collecting leftovers"))?;
    #[derive(Serialize)]
    struct Gc<'a> {
        dry_run: bool,
        removed: &'a [String],
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let text = if removed.is_empty() {
        "nothing to remove\n".to_string()
    } else {
        format!("{verb}: {}\n", removed.join(", "))
    };
    say(&text, o.json, &Gc { dry_run, removed: &removed })?;
    Ok(0)
}

/// `up --json`: the status, and how long each of `up`'s steps took (milliseconds).
#[derive(Serialize)]
struct Up<'a> {
    #[serde(flatten)]
    status: &'a BottleStatus,
    timings: std::collections::BTreeMap<String, u64>,
}

/// The `--json` reply of commands that only act.
#[derive(Serialize)]
struct Done<'a> {
    name: &'a str,
}

async fn control(flag: Option<BackendKind>, name: &str) -> Result<ControlClient, Failure> {
    Ok(bottles::control(&*bottles::open_default(flag).await?, name).await?)
}

fn print_status(st: &BottleStatus, json: bool) -> Result<(), Failure> {
    out(&if json { render::json(st) } else { render::status(st) })
}

pub(super) fn say<T: Serialize>(text: &str, json: bool, value: &T) -> Result<(), Failure> {
    out(&if json { render::json(value) } else { text.to_string() })
}

/// Writes to stdout; a closed pipe surfaces as an io error that `main` treats as success.
pub(super) fn out(text: &str) -> Result<(), Failure> {
    out_bytes(text.as_bytes())
}

pub(super) fn out_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// The escape suite; exit 5 ([`Exit::BoundaryFailed`]) when any probe failed.
async fn verify(
    o: Opts,
    name: Option<String>,
    file: Option<PathBuf>,
    only: &[crate::verify::Category],
) -> Result<u8, Failure> {
    use crate::verify::{Target, verify};
    let forced = bottles::forced_from_env(o.flag)?;
    let spec =
        file.as_deref().map(|f| Spec::load_for(f, forced)).transpose().map_err(|e| Error::InvalidSpec(e.into()))?;
    let choice = bottles::choose_from_env(o.flag, spec.as_ref().and_then(|s| s.backend))?;
    let target = match (&spec, &name) {
        (Some(spec), _) => Target::Spec(spec),
        (None, Some(name)) => Target::Bottle(name),
        (None, None) => {
            return Err(Failure::new(Exit::Usage, anyhow::anyhow!("verify: name a bottle or give -f bottle.toml")));
        }
    };
    let progress = StepPrinter::stderr();
    let res = verify(choice.kind, target, only, &progress).await;
    progress.finish();
    let report = res.context("verify")?;
    out(&if o.json { render::json(&report) } else { report.table() })?;
    if report.ok() {
        Ok(0)
    } else {
        Err(Failure::new(
            Exit::BoundaryFailed,
            anyhow::anyhow!("verify: {} probe(s) failed on {}", report.failed, report.bottle),
        ))
    }
}

/// What the chosen backend needs, as `bottles::doctor` finds it; the exit code is the
/// engine's or runtime's when the backend could not be opened, 1 for any other problem.
async fn doctor(o: Opts) -> Result<u8, Failure> {
    let findings = bottles::doctor(bottles::choose_from_env(o.flag, None)?).await;
    #[derive(Serialize)]
    struct Doctor<'a> {
        backend: bottles::Choice,
        ok: bool,
        checks: &'a [crate::backend::Check],
    }
    let report = Doctor { backend: findings.choice, ok: findings.ok(), checks: &findings.checks };
    out(&if o.json { render::json(&report) } else { render::checks(&findings.checks) })?;
    let exit = match findings.unopened {
        Some(e) => Failure::from(e).exit,
        None if report.ok => return Ok(0),
        None => Exit::Runtime,
    };
    Err(Failure::new(exit, anyhow::anyhow!("doctor found problems")))
}
