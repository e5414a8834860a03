//! `bottle-core`, the headless CLI: parses arguments, runs one command through the
//! front door (`crate::bottles`), prints the result, and maps failures to documented exit
//! codes (docs/cli.md). Errors are printed once, here, with their whole cause chain.

mod args;
mod commands;
mod exit;
mod logs;
mod policy;
mod progress;
mod render;

use std::process::ExitCode;

use clap::Parser;

pub use crate::backend::Check;
pub use args::{Cli, Command, PolicyCommand, Target};
pub use exit::{Exit, Failure, Report};
pub use progress::StepPrinter;

/// Renderers for the read commands' output, public so their formats are tested as data.
pub mod output {
    pub use super::policy::{table as policy, verdict as policy_check};
    pub use super::render::{checks, json, json_line, list, preflight, requests, status};
    pub use crate::bottles::event_line::line as event;
}

/// The diagnostic log (`BOTTLE_LOG`) is the only thing bottle colours. Left to itself it would
/// colour even into a pipe or a file, so colour is kept for a person at a terminal who has not
/// set `NO_COLOR` (<https://no-color.org>: any non-empty value) and has not asked for `--json`.
/// clap colours its own help and errors only on a terminal and honours `NO_COLOR` too.
fn colour_on_stderr(json: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    use std::io::IsTerminal;
    !json && no_color.is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Ok.into() };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr(cli.json, std::env::var_os("NO_COLOR").as_deref()))
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("BOTTLE_LOG"))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Exit::Runtime.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) if f.is_broken_pipe() => Exit::Ok.into(),
        Err(f) => {
            eprintln!("{}", Report(&f.error));
            f.exit.into()
        }
    }
}
