//! A container's log, for either backend: its tail, and new lines as they come.

use anyhow::Context;
use bollard::Docker;
use bollard::container::LogOutput;
use futures_util::StreamExt;

use crate::backend::{LogChunk, LogStream};

/// Lines of a container's log kept when reporting why it died.
pub const LOG_TAIL_LINES: usize = 1000;

/// The last `lines` lines of a container's stdout and stderr.
pub async fn logs_tail(docker: &Docker, container: &str, lines: usize) -> anyhow::Result<String> {
    let mut stream = stream(docker, container, Some(lines), false);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?.bytes);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// As byte chunks: `tail` lines (all of them when `None`), then, with `follow`, whatever is written next.
pub fn stream(docker: &Docker, container: &str, tail: Option<usize>, follow: bool) -> LogStream<'static> {
    let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
    let options = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&tail)
        .follow(follow)
        .build();
    let container = container.to_string();
    docker
        .logs(&container, Some(options))
        .filter_map(move |chunk| {
            let res = match chunk.with_context(|| format!("logs of {container}")) {
                Ok(LogOutput::StdErr { message }) => Some(Ok(LogChunk { stderr: true, bytes: message })),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(LogChunk { stderr: false, bytes: message }))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(e)),
            };
            std::future::ready(res)
        })
        .boxed()
}
