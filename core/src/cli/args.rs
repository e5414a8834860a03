//! The command line, as clap derive types; parsing only, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use super::policy::Target;
use crate::backend::BackendKind;

#[derive(Debug, Parser)]
#[command(name = "bottle-core", version, about = "Run and inspect bottles: one AI agent, one allowlisted way out")]
pub struct Cli {
    /// Backend to use: docker or smolmachines. Overrides CLAUDE_BOTTLE_BACKEND, which overrides bottle.toml.
    #[arg(long, global = true, value_name = "BACKEND", value_parser = parse_backend_arg)]
    pub backend: Option<BackendKind>,
    /// Print machine-readable JSON on stdout instead of human text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Create and start the bottle described by a bottle.toml.
    Up {
        /// The bottle spec.
        #[arg(short = 'f', long = "file", default_value = "bottle.toml")]
        file: PathBuf,
        /// Only check: read every secret and credential, look up the image and the workspace, report, make nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop and remove a bottle (its workspace is never touched).
    Down {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// List bottles.
    Ls,
    /// Show one bottle's state and boundary verdict.
    Status {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Run a command in the bottle's agent, its output passed on as it comes, and exit with its exit code.
    Exec {
        #[arg(value_parser = parse_name)]
        name: String,
        /// Send stdin to the command (always done when stdin is not a terminal).
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Give the command a terminal of its own, sized as this one and resized with it.
        #[arg(short = 't', long)]
        tty: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Open an interactive login shell in the agent, as the agent's user.
    Shell {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Print the agent's output (or, with --bundle, the bundle's log).
    Logs {
        #[arg(value_parser = parse_name)]
        name: String,
        /// The bundle's log (proxy, git gate, supervise) instead of the agent's output.
        #[arg(long)]
        bundle: bool,
        /// Keep printing new output until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only the last N lines so far.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Print the bottle's events (blocks, git, access requests, ...).
    Events {
        #[arg(value_parser = parse_name)]
        name: String,
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only events after this id.
        #[arg(long, value_name = "ID")]
        since: Option<u64>,
    },
    /// List the agent's pending access requests.
    Requests {
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Approve an access request: its destination joins the allowlist.
    Approve {
        #[arg(value_parser = parse_name)]
        name: String,
        request_id: String,
        /// Remove the grant after this many seconds (default: for the bottle's life).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// Deny an access request.
    Deny {
        #[arg(value_parser = parse_name)]
        name: String,
        request_id: String,
    },
    /// Allow a destination now, with no access request (a host grant; it outlives bundle restarts).
    Allow {
        #[arg(value_parser = parse_name)]
        name: String,
        /// HOST or HOST:PORT, written as in the policy (`*.suffix`, an IP or a CIDR too); a name
        /// without a port opens 443 and 80.
        #[arg(value_parser = Target::parse)]
        target: Target,
        /// Remove the grant after this many seconds (default: until revoked).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// Remove the grants for a destination, host-given or approved (without a port: every port's).
    Revoke {
        #[arg(value_parser = parse_name)]
        name: String,
        #[arg(value_parser = Target::parse)]
        target: Target,
    },
    /// Show the allowlist the proxy applies now, with its grants and their ends; `policy check` tests one destination.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Policy {
        #[arg(value_parser = parse_name, required = true)]
        name: Option<String>,
        #[command(subcommand)]
        check: Option<PolicyCommand>,
    },
    /// Cut all of the bottle's egress at once (or restore it with --release).
    Kill {
        #[arg(value_parser = parse_name)]
        name: String,
        /// Release the kill switch: egress follows the allowlist again.
        #[arg(long)]
        release: bool,
    },
    /// Remove bottles that are no longer running (workspaces are never touched).
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check that the backend and the running bottles are healthy.
    Doctor,
    /// Run the sandbox-escape suite: on a throwaway bottle from a spec (-f, full suite) or on a running bottle.
    Verify {
        /// A running bottle to probe (left as it is: no fail-closed, no planted secret, no git push, no neighbour).
        #[arg(value_parser = parse_name, required_unless_present = "file", conflicts_with = "file")]
        name: Option<String>,
        /// A bottle.toml: the suite starts a throwaway copy of it (and a neighbour) and removes both after.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Only these categories (comma-separated): direct, hosts, dns, egress-port, proxy, dlp, git, privileges, fail-closed.
        #[arg(long, value_delimiter = ',', value_parser = parse_category)]
        only: Vec<crate::verify::Category>,
    },
    /// Print a shell completion script: `bottle-core completions bash > /etc/bash_completion.d/bottle-core`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `bottle-core man | man -l -`; or write every page to a folder.
    Man {
        /// Write bottle-core.1 and one page per command (bottle-core-exec.1, ...) into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum PolicyCommand {
    /// Say whether the proxy lets HOST[:PORT] (default port 443) through now, and which rule decided;
    /// exits 0 when allowed, 1 when refused.
    Check {
        #[arg(value_parser = parse_name)]
        name: String,
        #[arg(value_parser = Target::parse)]
        target: Target,
    },
}

fn parse_backend_arg(s: &str) -> Result<BackendKind, String> {
    crate::spec::parse_backend(s).ok_or_else(|| format!("unknown backend {s:?}: expected docker or smolmachines"))
}

fn parse_category(s: &str) -> Result<crate::verify::Category, String> {
    crate::verify::Category::parse(s)
}

fn parse_name(s: &str) -> Result<String, String> {
    crate::spec::check_name(s).map(|()| s.to_string())
}
