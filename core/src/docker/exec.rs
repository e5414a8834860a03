//! Running a command in a container and collecting its output and exit code.

use anyhow::Context;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::backend::ExecOutput;

/// Output beyond this many bytes per stream is dropped (and said so), so a chatty command cannot eat memory.
pub const MAX_EXEC_OUTPUT: usize = 8 * 1024 * 1024;

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
    let exit_code = docker.inspect_exec(&id).await?.exit_code.unwrap_or(-1);
    Ok(ExecOutput {
        exit_code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
