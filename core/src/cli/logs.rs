//! `logs`: one side's log (the agent's or the bundle's), passed through as the program wrote it.
//!
//! Text mode writes each chunk's bytes unchanged to stdout or stderr, where the program wrote
//! them, flushed at once so `--follow` shows a line as it is logged. `--json` gives one object
//! for the whole log, or with `--follow` one object per chunk, so a script never waits for an end.

use std::io::Write;

use futures_util::StreamExt;
use serde::Serialize;

use super::commands::{out, out_bytes};
use super::exit::Failure;
use super::render;
use crate::backend::{BackendKind, LogChunk, LogOptions, LogSource};

#[derive(Serialize)]
struct Whole<'a> {
    name: &'a str,
    source: LogSource,
    logs: &'a str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    name: &'a str,
    source: LogSource,
    /// `stdout` or `stderr`.
    stream: &'static str,
    text: &'a str,
}

pub async fn print(flag: Option<BackendKind>, name: &str, opts: LogOptions, json: bool) -> Result<u8, Failure> {
    let backend = crate::bottles::open_default(flag).await?;
    let mut stream = backend.log_stream(name, opts).await?;
    let mut whole = Vec::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let chunk = tokio::select! {
            _ = &mut interrupted => return Ok(0),
            next = stream.next() => match next {
                Some(chunk) => chunk?,
                None => break,
            },
        };
        match (json, opts.follow) {
            (false, _) => pass_on(&chunk)?,
            (true, false) => whole.extend_from_slice(&chunk.bytes),
            (true, true) => {
                let text = String::from_utf8_lossy(&chunk.bytes);
                let stream = if chunk.stderr { "stderr" } else { "stdout" };
                out(&render::json_line(&Chunk { name, source: opts.source, stream, text: &text }))?;
            }
        }
    }
    if json && !opts.follow {
        out(&render::json(&Whole { name, source: opts.source, logs: &String::from_utf8_lossy(&whole) }))?;
    }
    Ok(0)
}

fn pass_on(chunk: &LogChunk) -> Result<(), Failure> {
    if !chunk.stderr {
        return out_bytes(&chunk.bytes);
    }
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(&chunk.bytes)?;
    stderr.flush()?;
    Ok(())
}
