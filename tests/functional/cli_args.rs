//! Argument parsing and backend choice of `bottle-core`, checked as data (no backend involved).

use std::path::PathBuf;

use bottle_core::backend::BackendKind;
use bottle_core::bottles::{ChoiceSource, choose};
use bottle_core::cli::{Cli, Command, Exit, Failure};
use clap::Parser;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("bottle-core").chain(args.iter().copied()))
}

#[test]
fn up_defaults_to_bottle_toml_and_takes_dash_f() {
    assert_eq!(parse(&["up"]).unwrap().command, Command::Up { file: PathBuf::from("bottle.toml"), dry_run: false });
    assert_eq!(
        parse(&["up", "-f", "x/b.toml"]).unwrap().command,
        Command::Up { file: PathBuf::from("x/b.toml"), dry_run: false }
    );
}

#[test]
fn global_flags_work_before_and_after_the_command() {
    let c = parse(&["--backend", "smolmachines", "ls", "--json"]).unwrap();
    assert_eq!((c.backend, c.json, c.command), (Some(BackendKind::Smolmachines), true, Command::Ls));
    let c = parse(&["status", "demo", "--backend", "docker"]).unwrap();
    assert_eq!(c.backend, Some(BackendKind::Docker));
    assert!(!c.json);
    let e = parse(&["--backend", "podman", "ls"]).unwrap_err();
    assert!(e.to_string().contains("expected docker or smolmachines"), "{e}");
}

#[test]
fn exec_takes_the_command_after_double_dash_verbatim() {
    let c = parse(&["exec", "demo", "--", "curl", "-sS", "--proxy", "x", "http://allowed.test/"]).unwrap();
    assert_eq!(
        c.command,
        Command::Exec {
            name: "demo".into(),
            interactive: false,
            tty: false,
            cmd: ["curl", "-sS", "--proxy", "x", "http://allowed.test/"].map(String::from).to_vec()
        }
    );
    assert!(parse(&["exec", "demo"]).is_err(), "a command is required");
    let c = parse(&["exec", "-it", "demo", "--", "bash", "-i"]).unwrap();
    assert_eq!(
        c.command,
        Command::Exec { name: "demo".into(), interactive: true, tty: true, cmd: vec!["bash".into(), "-i".into()] }
    );
}

#[test]
fn logs_take_bundle_follow_and_tail() {
    assert_eq!(
        parse(&["logs", "demo", "--bundle", "--follow", "--tail", "20"]).unwrap().command,
        Command::Logs { name: "demo".into(), bundle: true, follow: true, tail: Some(20) }
    );
    assert_eq!(
        parse(&["logs", "demo"]).unwrap().command,
        Command::Logs { name: "demo".into(), bundle: false, follow: false, tail: None }
    );
    assert!(parse(&["logs", "demo", "--tail", "-1"]).is_err());
}

/// `-f` is a bottle.toml wherever it exists (`up`, `verify`); following is `--follow` only,
/// so `-f` can never mean "file" to one command and "follow" to the next.
#[test]
fn dash_f_means_file_in_every_command() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, seen: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_short() == Some('f') {
                assert_eq!(arg.get_long(), Some("file"), "{path}: -f is --{:?}", arg.get_long());
                seen.push(path.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), seen);
        }
    }
    let mut seen = Vec::new();
    walk(&Cli::command(), "bottle-core", &mut seen);
    assert_eq!(seen, ["bottle-core up", "bottle-core verify"]);
    assert!(parse(&["events", "demo", "-f"]).is_err());
}

#[test]
fn every_flag_has_help_text() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
            let id = arg.get_id().as_str();
            if !["help", "version"].contains(&id) {
                assert!(arg.get_help().is_some(), "{path} --{id} has no help text");
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&Cli::command(), "bottle-core");
}

#[test]
fn events_approve_deny_take_their_options() {
    assert_eq!(
        parse(&["events", "demo", "--follow", "--since", "41"]).unwrap().command,
        Command::Events { name: "demo".into(), follow: true, since: Some(41) }
    );
    assert_eq!(
        parse(&["events", "demo"]).unwrap().command,
        Command::Events { name: "demo".into(), follow: false, since: None }
    );
    assert_eq!(
        parse(&["approve", "demo", "req-7", "--ttl", "600"]).unwrap().command,
        Command::Approve { name: "demo".into(), request_id: "req-7".into(), ttl: Some(600) }
    );
    assert_eq!(
        parse(&["deny", "demo", "req-7"]).unwrap().command,
        Command::Deny { name: "demo".into(), request_id: "req-7".into() }
    );
    assert!(parse(&["approve", "demo", "req-7", "--ttl", "soon"]).is_err());
    assert!(parse(&["approve", "demo", "req-7", "--ttl", "0"]).is_err(), "a zero-second grant is refused");
}

#[test]
fn every_command_parses() {
    for args in [
        &["down", "demo"][..],
        &["ls"],
        &["logs", "demo", "--json"],
        &["requests", "demo"],
        &["kill", "demo", "--release"],
        &["shell", "demo"],
        &["completions", "zsh"],
        &["man"],
        &["man", "--dir", "out"],
        &["gc", "--dry-run"],
        &["doctor", "--json"],
        &["verify", "demo", "--only", "direct,hosts"],
        &["verify", "-f", "bottle.toml", "--json"],
    ] {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

#[test]
fn verify_takes_a_name_or_a_spec_and_known_categories() {
    assert!(parse(&["verify"]).is_err(), "a target is required");
    assert!(parse(&["verify", "demo", "-f", "bottle.toml"]).is_err(), "not both");
    let e = parse(&["verify", "demo", "--only", "direct,teleport"]).unwrap_err().to_string();
    assert!(e.contains("teleport") && e.contains("fail-closed"), "{e}");
}

#[test]
fn bottle_names_are_checked_on_the_command_line() {
    for bad in ["Demo", "-x", "a_b", "demo-"] {
        let e = parse(&["status", "--", bad]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}: {e}");
    }
}

#[test]
fn backend_precedence_is_flag_then_env_then_spec_then_docker() {
    use BackendKind::{Docker, Smolmachines};
    let c = choose(Some(Docker), Some("smolmachines"), Some(Smolmachines)).unwrap();
    assert_eq!((c.kind, c.source), (Docker, ChoiceSource::Flag));
    let c = choose(None, Some("smolmachines"), Some(Docker)).unwrap();
    assert_eq!((c.kind, c.source), (Smolmachines, ChoiceSource::Env));
    let c = choose(None, Some(""), Some(Smolmachines)).unwrap();
    assert_eq!((c.kind, c.source), (Smolmachines, ChoiceSource::Spec));
    let c = choose(None, None, None).unwrap();
    assert_eq!((c.kind, c.source), (Docker, ChoiceSource::Default));
    let f = Failure::from(choose(None, Some("lxc"), None).unwrap_err());
    assert_eq!(f.exit, Exit::Usage);
    assert!(f.error.to_string().contains("CLAUDE_BOTTLE_BACKEND=\"lxc\""), "{}", f.error);
}

#[test]
fn allow_revoke_and_policy_take_a_destination() {
    use bottle_core::cli::{PolicyCommand, Target};
    let t = |host: &str, port| Target { host: host.into(), port };
    assert_eq!(
        parse(&["allow", "demo", "pypi.org:443", "--ttl", "60"]).unwrap().command,
        Command::Allow { name: "demo".into(), target: t("pypi.org", Some(443)), ttl: Some(60) }
    );
    assert!(parse(&["allow", "demo", "pypi.org", "--ttl", "0"]).is_err(), "a zero ttl is refused");
    assert!(parse(&["allow", "demo", "pypi.org:0"]).unwrap_err().to_string().contains("is not a port"));
    assert_eq!(
        parse(&["revoke", "demo", "[::1]:80"]).unwrap().command,
        Command::Revoke { name: "demo".into(), target: t("::1", Some(80)) }
    );
    assert_eq!(parse(&["policy", "demo"]).unwrap().command, Command::Policy { name: Some("demo".into()), check: None });
    assert_eq!(
        parse(&["policy", "check", "demo", "a.test"]).unwrap().command,
        Command::Policy {
            name: None,
            check: Some(PolicyCommand::Check { name: "demo".into(), target: t("a.test", None) })
        }
    );
    assert!(parse(&["policy"]).is_err(), "policy needs a bottle");
    assert!(parse(&["policy", "check", "demo"]).is_err(), "check needs a destination");
}
