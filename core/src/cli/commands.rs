//! What each command does: resolve the backend, call it or the bottle's
//! control plane, print the result. Results go to stdout, progress to stderr.

use std::io::Write;

use anyhow::Context;
use bottle_protocol::Event;
use clap::CommandFactory;
use serde::Serialize;

use super::args::{Cli, Command, PolicyCommand};
use super::backends::{self, Choice};
use super::exit::{Exit, ExitWith, Failure};
use super::progress::StepPrinter;
use super::{policy, render};
use crate::backend::{BackendKind, BottleBackend, BottleStatus, Check, ExecRequest, LogOptions, LogSource, Verdict};
use crate::control_client::ControlClient;
use crate::spec::Spec;
use crate::terminal;

/// How often `events --follow` asks a backend for events the bundle does not see.
const EVENT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one parsed command; `Ok` carries the process exit code (non-zero only for `exec` and `shell`).
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let json = cli.json;
    match cli.command {
        Command::Up { file, dry_run } => {
            let spec = Spec::load_for(&file, backends::forced_from_env(cli.backend)?).exit_with(Exit::Usage)?;
            let backend = open(backends::choose_from_env(cli.backend, spec.backend)?).await?;
            if dry_run {
                let report = backend.preflight(&spec).await;
                out(&if json { render::json(&report) } else { render::preflight(&report) })?;
                // The failures again on stderr, each with its position, as `up` would give them.
                return match report.ready(&crate::backend::NoProgress) {
                    Ok(_) => Ok(0),
                    Err(refused) => Err(Failure::new(Exit::Usage, refused)),
                };
            }
            let progress = StepPrinter::stderr();
            let res = backend.up(&spec, &progress).await;
            progress.finish();
            // A refusal already names file, line and key, and nothing was started.
            let mut st = res.map_err(|e| {
                if crate::preflight::is_refusal(&e) {
                    Failure::new(Exit::Usage, e)
                } else {
                    Failure::new(Exit::Runtime, e.context(format!("starting bottle {}", spec.name)))
                }
            })?;
            crate::live::fill(&*backend, &mut st).await;
            if json {
                out(&render::json(&Up { status: &st, timings: progress.timings() }))?;
            } else {
                print_status(&st, false)?;
            }
            boundary_held(&st)
        }
        Command::Down { name } => {
            let backend = open_default(cli.backend).await?;
            let progress = StepPrinter::stderr();
            let res = backend.down(&name, &progress).await;
            progress.finish();
            found(&*backend, &name, res).await?;
            say(&format!("removed bottle {name} (its workspace is untouched)\n"), json, &Done { name: &name })?;
            Ok(0)
        }
        Command::Ls => {
            let backend = open_default(cli.backend).await?;
            let mut all = backend.list().await.context("listing bottles")?;
            crate::live::fill_all(&*backend, &mut all).await;
            out(&if json { render::json(&all) } else { render::list(&all) })?;
            Ok(0)
        }
        Command::Status { name } => {
            let backend = open_default(cli.backend).await?;
            let mut st = found(&*backend, &name, backend.status(&name).await).await?;
            crate::live::fill(&*backend, &mut st).await;
            print_status(&st, json)?;
            boundary_held(&st)
        }
        Command::Exec { name, interactive, tty, cmd } => {
            // Piped input always reaches the command; a terminal's only when asked (-i), as
            // with `docker exec`, so a command that reads no input does not wait on the keyboard.
            let stdin = interactive || !terminal::stdin_is_terminal();
            attached(cli.backend, &name, cmd, stdin, tty).await
        }
        Command::Shell { name } => {
            let cmd = LOGIN_SHELL.iter().map(|s| s.to_string()).collect();
            attached(cli.backend, &name, cmd, true, terminal::stdin_is_terminal()).await
        }
        Command::Logs { name, bundle, follow, tail } => {
            let source = if bundle { LogSource::Bundle } else { LogSource::Agent };
            super::logs::print(cli.backend, &name, LogOptions { source, tail, follow }, json).await
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bottle-core", &mut buf);
            out_bytes(&buf)?;
            Ok(0)
        }
        Command::Man { dir: None } => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
            out_bytes(&buf)?;
            Ok(0)
        }
        Command::Man { dir: Some(dir) } => {
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))?;
            #[derive(Serialize)]
            struct Pages<'a> {
                dir: &'a std::path::Path,
            }
            say(&format!("wrote the manual pages to {}\n", dir.display()), json, &Pages { dir: &dir })?;
            Ok(0)
        }
        Command::Events { name, follow, since } => {
            let backend = open_default(cli.backend).await?;
            let endpoint = found(&*backend, &name, backend.control_endpoint(&name).await).await?;
            let mut stream = ControlClient::new(&endpoint)?.events(since, follow).await?;
            // Denials the bundle never sees (a VMM's), merged in; none for Docker.
            let mut extra = backend.event_source(&name).await?;
            let print = |ev: &Event| out(&if json { render::json_line(ev) } else { render::event(ev) });
            // One listener for the whole loop, so a Ctrl-C between two events is not lost.
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            let mut tick = tokio::time::interval(EVENT_POLL_INTERVAL);
            let mut bundle_done = false;
            while !bundle_done {
                tokio::select! {
                    _ = &mut interrupted => return Ok(0),
                    next = stream.next() => match next? {
                        Some(ev) => print(&ev)?,
                        None => bundle_done = true,
                    },
                    _ = tick.tick(), if extra.is_some() && follow => {
                        for ev in extra.as_mut().expect("checked").poll().await? {
                            print(&ev)?;
                        }
                    }
                }
            }
            if let Some(source) = extra.as_mut() {
                for ev in source.poll().await? {
                    print(&ev)?;
                }
            }
            Ok(0)
        }
        Command::Requests { name } => {
            let pending = control(cli.backend, &name).await?.pending().await?;
            out(&if json { render::json(&pending) } else { render::requests(&pending) })?;
            Ok(0)
        }
        Command::Approve { name, request_id, ttl } => {
            control(cli.backend, &name).await?.approve(&request_id, ttl).await?;
            let ttl_text = ttl.map(|t| format!(" for {t}s")).unwrap_or_default();
            say(&format!("approved {request_id} on {name}{ttl_text}\n"), json, &Done { name: &name })?;
            Ok(0)
        }
        Command::Deny { name, request_id } => {
            control(cli.backend, &name).await?.deny(&request_id).await?;
            say(&format!("denied {request_id} on {name}\n"), json, &Done { name: &name })?;
            Ok(0)
        }
        Command::Allow { name, target, ttl } => {
            policy::allow(&control(cli.backend, &name).await?, &name, target, ttl, json).await
        }
        Command::Revoke { name, target } => {
            policy::revoke(&control(cli.backend, &name).await?, &name, target, json).await
        }
        Command::Policy { check: Some(PolicyCommand::Check { name, target }), .. } => {
            policy::check(&control(cli.backend, &name).await?, target, json).await
        }
        Command::Policy { name, check: None } => {
            let name = name.expect("clap requires a name without a subcommand");
            policy::show(&control(cli.backend, &name).await?, json).await
        }
        Command::Kill { name, release } => {
            control(cli.backend, &name).await?.kill(!release).await?;
            let text = if release { "egress restored" } else { "all egress cut" };
            say(&format!("{name}: {text}\n"), json, &Done { name: &name })?;
            Ok(0)
        }
        Command::Gc { dry_run } => {
            let backend = open_default(cli.backend).await?;
            let removed = backend.gc(dry_run).await.context("collecting leftovers")?;
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
            say(&text, json, &Gc { dry_run, removed: &removed })?;
            Ok(0)
        }
        Command::Doctor => doctor(cli.backend, json).await,
        Command::Verify { name, file, only } => verify(cli.backend, name, file, &only, json).await,
    }
}

/// `shell`'s command: bash as a login shell where the image has it, else sh. Run through
/// `sh` because the agent's uid may have no passwd entry, and so no login shell on record.
const LOGIN_SHELL: [&str; 3] =
    ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"];

/// `exec` and `shell`: the command runs with this process's streams; exits with its code.
async fn attached(
    flag: Option<BackendKind>,
    name: &str,
    cmd: Vec<String>,
    stdin: bool,
    tty: bool,
) -> Result<u8, Failure> {
    let backend = open_default(flag).await?;
    let sizes = if tty { terminal::window_sizes()? } else { None };
    // Raw only with a TTY in the agent: that terminal then echoes and edits lines, not this one.
    let raw = if tty { terminal::RawMode::enable()? } else { None };
    let res = backend.exec_attached(name, ExecRequest { cmd, stdin, tty, sizes }).await;
    drop(raw);
    let code = found(&*backend, name, res).await?;
    Ok(u8::try_from(code).unwrap_or(Exit::Runtime as u8))
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

async fn open(choice: Choice) -> Result<Box<dyn BottleBackend>, Failure> {
    backends::open(choice.kind).await
}

/// Opens the backend for commands without a spec: flag, then environment, then Docker.
pub(super) async fn open_default(flag: Option<BackendKind>) -> Result<Box<dyn BottleBackend>, Failure> {
    open(backends::choose_from_env(flag, None)?).await
}

async fn control(flag: Option<BackendKind>, name: &str) -> Result<ControlClient, Failure> {
    let backend = open_default(flag).await?;
    let endpoint = found(&*backend, name, backend.control_endpoint(name).await).await?;
    Ok(ControlClient::new(&endpoint)?)
}

/// Turns a backend error about `name` into [`Exit::NotFound`] when no such bottle exists
/// (public so the FFI reports a missing bottle the same way).
pub async fn found<T>(backend: &dyn BottleBackend, name: &str, res: anyhow::Result<T>) -> Result<T, Failure> {
    match res {
        Ok(v) => Ok(v),
        Err(e) => match backend.list().await {
            Ok(all) if !all.iter().any(|b| b.name == name) => {
                Err(Failure::new(Exit::NotFound, anyhow::anyhow!("no bottle named {name:?} (see `bottle-core ls`)")))
            }
            _ => Err(e.context(format!("bottle {name}")).into()),
        },
    }
}

fn print_status(st: &BottleStatus, json: bool) -> Result<(), Failure> {
    out(&if json { render::json(st) } else { render::status(st) })
}

/// A bottle whose start check failed is still reported, but the exit code says so.
fn boundary_held(st: &BottleStatus) -> Result<u8, Failure> {
    if st.allowlist.verdict == Verdict::Failed {
        return Err(Failure::new(
            Exit::BoundaryFailed,
            anyhow::anyhow!("bottle {}: boundary check failed: {}", st.name, st.allowlist.detail),
        ));
    }
    Ok(0)
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
    flag: Option<BackendKind>,
    name: Option<String>,
    file: Option<std::path::PathBuf>,
    only: &[crate::verify::Category],
    json: bool,
) -> Result<u8, Failure> {
    use crate::verify::{Target, verify};
    let forced = backends::forced_from_env(flag)?;
    let spec = file.as_deref().map(|f| Spec::load_for(f, forced)).transpose().exit_with(Exit::Usage)?;
    let choice = backends::choose_from_env(flag, spec.as_ref().and_then(|s| s.backend))?;
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
    out(&if json { render::json(&report) } else { report.table() })?;
    if report.ok() {
        Ok(0)
    } else {
        Err(Failure::new(
            Exit::BoundaryFailed,
            anyhow::anyhow!("verify: {} probe(s) failed on {}", report.failed, report.bottle),
        ))
    }
}

async fn doctor(flag: Option<BackendKind>, json: bool) -> Result<u8, Failure> {
    let choice = backends::choose_from_env(flag, None)?;
    let source =
        serde_json::to_value(choice.source).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let mut checks =
        vec![Check::new("backend", true, format!("{} (from {source})", backends::kind_name(choice.kind)), "")];
    let mut exit = Exit::Ok;
    match open(choice).await {
        Err(f) => {
            // Why this user cannot reach the engine (missing, stale, or a socket not open to them).
            let fix = match crate::docker::endpoint::discover() {
                Ok(at) if f.exit == Exit::EngineUnavailable => crate::docker::endpoint::socket_hint(&at.host),
                _ => "run scripts/install-docker.sh (Linux) or start your Docker engine".into(),
            };
            checks.push(Check::new("engine", false, format!("{:#}", f.error), &fix));
            exit = f.exit;
        }
        Ok(backend) => {
            let found = backend.doctor().await;
            if found.iter().any(|c| !c.ok) {
                exit = Exit::Runtime;
            }
            checks.extend(found);
            match backend.list().await {
                Err(e) => {
                    checks.push(Check::new("bottles", false, format!("{e:#}"), "see the error above"));
                    exit = Exit::Runtime;
                }
                Ok(all) => {
                    checks.push(Check::new("bottles", true, format!("{} found", all.len()), ""));
                    for b in all.iter().filter(|b| crate::live::LIVE_STATES.contains(&b.state.as_str())) {
                        let c = control_check(&*backend, &b.name).await;
                        if !c.ok {
                            exit = Exit::Runtime;
                        }
                        checks.push(c);
                    }
                }
            }
        }
    }
    #[derive(Serialize)]
    struct Doctor<'a> {
        backend: Choice,
        ok: bool,
        checks: &'a [Check],
    }
    let report = Doctor { backend: choice, ok: exit == Exit::Ok, checks: &checks };
    out(&if json { render::json(&report) } else { render::checks(&checks) })?;
    if exit == Exit::Ok { Ok(0) } else { Err(Failure::new(exit, anyhow::anyhow!("doctor found problems"))) }
}

async fn control_check(backend: &dyn BottleBackend, name: &str) -> Check {
    let res = async {
        let client = ControlClient::new(&backend.control_endpoint(name).await?)?;
        client.health().await
    }
    .await;
    let (ok, detail) = match res {
        Ok(h) if h.kill_switch => (true, format!("healthy; KILL SWITCH ENGAGED; {} blocked so far", h.blocked_total)),
        Ok(h) => (
            h.ok,
            format!(
                "{}; {} open connections, {} blocked so far",
                if h.ok { "healthy" } else { "unhealthy" },
                h.open_connections,
                h.blocked_total
            ),
        ),
        Err(e) => (false, format!("{e:#}")),
    };
    Check::new(
        &format!("control plane of {name}"),
        ok,
        detail,
        "see `bottle-core status` and `bottle-core logs` for this bottle",
    )
}
