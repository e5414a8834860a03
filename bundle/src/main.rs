//! `bottle-bundle --config FILE`: runs every bundle service in one process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "bottle's sidecar bundle: the agent's only way out")]
struct Args {
    /// The bundle config (TOML) written by bottle-core.
    #[arg(long, short, env = "BOTTLE_BUNDLE_CONFIG")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    bottle_bundle::logging::init();
    bottle_bundle::run_main(&args.config).into()
}
