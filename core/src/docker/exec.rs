//! Running a command in a container: collected (for probes and the FFI) or attached to this
//! process's streams (`exec`, `shell`).

use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::backend::{ExecOutput, ExecRequest};
use crate::terminal::{self, WindowSize};

/// Output beyond this many bytes per stream is dropped (and said so), so a chatty command cannot eat memory.
pub const MAX_EXEC_OUTPUT: usize = 8 * 1024 * 1024;

/// The engine may report an exec as running for a moment after its output ended.
const EXIT_CODE_POLLS: u32 = 50;
const EXIT_CODE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a refused resize is tried again, [`RESIZE_BACKOFF`] times the attempt apart.
const RESIZE_TRIES: u32 = 10;
const RESIZE_BACKOFF: Duration = Duration::from_millis(10);

pub async fn exec(docker: &Docker, container: &str, cmd: &[String]) -> anyhow::Result<ExecOutput> {
    let options = CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let id = docker.create_exec(container, options).await.with_context(|| format!("exec in {container}"))?.id;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&id, None).await? {
        while let Some(chunk) = output.next().await {
            let (buf, bytes) = match chunk? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => (&mut stdout, message),
                LogOutput::StdErr { message } => (&mut stderr, message),
                LogOutput::StdIn { .. } => continue,
            };
            let room = MAX_EXEC_OUTPUT.saturating_sub(buf.len());
            buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
    Ok(ExecOutput {
        exit_code: exit_code(docker, &id).await?,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Like `docker exec [-i] [-t]`: stdin is sent as it is typed, output written and flushed as
/// it arrives, untouched, and window size changes are passed on to the command's terminal.
pub async fn exec_attached(docker: &Docker, container: &str, mut req: ExecRequest) -> anyhow::Result<i64> {
    let mut sizes = req.sizes.take().filter(|_| req.tty);
    let first = match sizes.as_mut() {
        Some(sizes) => sizes.recv().await,
        None => None,
    };
    let options = ExecConfig {
        cmd: Some(req.cmd.clone()),
        attach_stdin: Some(req.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(req.tty),
        // Engines from API 1.42 on start the terminal at this size; older ones ignore it.
        console_size: first.map(|s| vec![usize::from(s.rows), usize::from(s.cols)]),
        ..Default::default()
    };
    let id = docker.create_exec(container, options).await.with_context(|| format!("exec in {container}"))?.id;
    let start = StartExecOptions { detach: false, tty: req.tty, output_capacity: None };
    let StartExecResults::Attached { mut output, mut input } = docker.start_exec(&id, Some(start)).await? else {
        anyhow::bail!("exec in {container}: the engine did not attach to the command");
    };
    // An older engine's terminal starts at 0x0: its size is set before any typed byte is
    // passed on, so a command that reads a line and then asks its size sees the right one.
    if let Some(s) = first {
        resize(docker, &id, s).await;
    }
    if let Some(mut sizes) = sizes {
        let (docker, id) = (docker.clone(), id.clone());
        tokio::spawn(async move {
            while let Some(s) = sizes.recv().await {
                resize(&docker, &id, s).await;
            }
        });
    }
    if req.stdin {
        let mut chunks = terminal::stdin_chunks();
        tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                    return;
                }
            }
            // End of file: the command's stdin closes, as with `docker exec -i`.
            let _ = input.shutdown().await;
        });
    } else {
        drop(input);
    }
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    while let Some(chunk) = output.next().await {
        match chunk.with_context(|| format!("exec in {container}: reading its output"))? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => pass_on(&mut stdout, &message).await?,
            LogOutput::StdErr { message } => pass_on(&mut stderr, &message).await?,
            LogOutput::StdIn { .. } => {}
        }
    }
    exit_code(docker, &id).await
}

/// Sets the exec's terminal size. The engine may refuse a resize while the command's
/// terminal is being made, just after `start_exec` returns, so a refusal is tried again,
/// as `docker exec -t` does; one that still fails (the command just ended) changes nothing
/// worth reporting.
async fn resize(docker: &Docker, id: &str, s: WindowSize) {
    let size = ResizeExecOptions { height: s.rows, width: s.cols };
    for attempt in 1..=RESIZE_TRIES {
        if docker.resize_exec(id, size).await.is_ok() {
            return;
        }
        tokio::time::sleep(RESIZE_BACKOFF * attempt).await;
    }
}

async fn pass_on(to: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    to.write_all(bytes).await?;
    to.flush().await
}

async fn exit_code(docker: &Docker, id: &str) -> anyhow::Result<i64> {
    for _ in 0..EXIT_CODE_POLLS {
        let info = docker.inspect_exec(id).await?;
        if info.running != Some(true) {
            return Ok(info.exit_code.unwrap_or(-1));
        }
        tokio::time::sleep(EXIT_CODE_POLL_INTERVAL).await;
    }
    anyhow::bail!("exec {id}: its output ended but the engine still reports it running")
}
