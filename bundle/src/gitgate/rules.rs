//! The push rules: which ref updates the gate lets through, decided from the
//! receive-pack command list before a byte reaches the upstream.
//!
//! Semantics:
//! - deletions are refused; only `refs/heads/*` and `refs/tags/*` may be pushed;
//! - a branch must match a `push` pattern and no `protected` pattern;
//! - creating a branch is allowed; updating one must be a fast-forward, which the
//!   gate proves from the pushed pack ([`super::pack`]) and the upstream's own
//!   old-value check makes atomic (`git push --force` of rewritten history is refused);
//! - tags need `tags = true`, may only be created, never moved;
//! - if any command is refused, none is forwarded: the agent gets `ng` for every ref;
//! - push options go upstream only where the repository's `push_options` admit them ([`options`]).
//!
//! A fast-forward the pack cannot show (e.g. resetting a branch to a commit the
//! upstream already has) is refused too: the gate fails closed.

pub mod options;

use super::config::Repo;
use super::pktline::{self, Pkt};

/// One `<old> <new> <ref>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub old: String,
    pub new: String,
    pub refname: String,
}

/// The parsed command section of a receive-pack request.
#[derive(Debug, Default)]
pub struct Commands {
    pub list: Vec<Command>,
    pub caps: Vec<String>,
}

impl Commands {
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }
}

/// What a permitted command still needs before it may go upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Nothing,
    FastForward,
}

/// Parses the packets of the command section (everything before the first flush).
/// An empty section is git's auth probe before a large push (a lone flush) and parses to no commands.
pub fn parse_commands(pkts: &[Pkt]) -> Result<Commands, String> {
    let mut out = Commands::default();
    for pkt in pkts {
        let Pkt::Data(data) = pkt else { return Err("unexpected special packet in push commands".into()) };
        let (line, caps) = match data.iter().position(|&b| b == 0) {
            Some(i) if out.list.is_empty() => (&data[..i], Some(&data[i + 1..])),
            Some(_) => return Err("capabilities after the first push command".into()),
            None => (&data[..], None),
        };
        let line = std::str::from_utf8(line).map_err(|_| "push command is not UTF-8")?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.starts_with("shallow ") && out.list.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("malformed push command".into());
        };
        if !is_oid(old) || !is_oid(new) || old.len() != new.len() {
            return Err("malformed push command".into());
        }
        // The name is refused without being echoed: it is the agent's, and would reach the
        // operator's terminal through the event's reason.
        check_ref_format(refname).map_err(|why| format!("invalid ref name in push command: {why}"))?;
        if let Some(caps) = caps {
            let caps = std::str::from_utf8(caps).map_err(|_| "push capabilities are not UTF-8")?;
            out.caps = caps.split_whitespace().map(str::to_string).collect();
        }
        out.list.push(Command { old: old.into(), new: new.into(), refname: refname.into() });
    }
    if out.has_cap("push-cert") || out.caps.iter().any(|c| c.starts_with("push-cert=")) {
        return Err("signed pushes are not supported by the gate".into());
    }
    Ok(out)
}

/// git's own `check-ref-format` rules for a full ref name (`refs/...`), so the gate refuses
/// exactly the names git would never create, among them every name holding a control
/// character (a newline or an ANSI escape that would forge lines on the operator's terminal).
pub fn check_ref_format(name: &str) -> Result<(), &'static str> {
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("it holds a control character");
    }
    if name.contains([' ', '~', '^', ':', '?', '*', '[', '\\']) {
        return Err("it holds a space or one of ~ ^ : ? * [ \\");
    }
    if name.contains("..") || name.contains("@{") || name == "@" {
        return Err("it holds .. or @{");
    }
    if !name.starts_with("refs/") || name.ends_with('/') || name.ends_with('.') || name.contains("//") {
        return Err("it is not refs/<name> with non-empty components, or ends with .");
    }
    if name.split('/').any(|c| c.starts_with('.') || c.ends_with(".lock")) {
        return Err("a component begins with . or ends with .lock");
    }
    Ok(())
}

fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_zero(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

/// Decides one command; `Err` carries the reason the agent's git prints.
pub fn decide(repo: &Repo, cmd: &Command) -> Result<Check, String> {
    let r = &cmd.refname;
    if is_zero(&cmd.new) {
        return Err(format!("bottle: deleting {r} is not allowed"));
    }
    if let Some(tag) = r.strip_prefix("refs/tags/") {
        if !repo.tags {
            return Err(format!("bottle: pushing tags is not allowed (tag {tag})"));
        }
        if !is_zero(&cmd.old) {
            return Err(format!("bottle: tag {tag} exists; tags are never moved"));
        }
        return Ok(Check::Nothing);
    }
    let Some(branch) = r.strip_prefix("refs/heads/") else {
        return Err(format!("bottle: only branches and tags may be pushed, not {r}"));
    };
    if repo.protected.iter().any(|p| p.matches(branch)) {
        return Err(format!("bottle: {branch} is protected"));
    }
    if !repo.push.iter().any(|p| p.matches(branch)) {
        return Err(format!("bottle: {branch} is not in the push list"));
    }
    if is_zero(&cmd.old) { Ok(Check::Nothing) } else { Ok(Check::FastForward) }
}

/// Reason given to commands that were fine but rode in a push with a refused one.
pub const NOT_APPLIED: &str = "bottle: not applied; another ref in this push was refused";

/// Reason for a branch update the pack does not prove to be a fast-forward.
pub fn non_fast_forward(cmd: &Command) -> String {
    let branch = cmd.refname.strip_prefix("refs/heads/").unwrap_or(&cmd.refname);
    format!("bottle: non-fast-forward update of {branch} refused")
}

/// Re-encodes the commands for the upstream, byte-identical to what git would send.
pub fn encode_commands(pkts: &[Pkt]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pkts {
        pktline::encode(p, &mut out);
    }
    pktline::encode(&Pkt::Flush, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitgate::config::tests_support::repo;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn cmd(old: &str, new: &str, r: &str) -> Command {
        Command { old: old.into(), new: new.into(), refname: r.into() }
    }

    #[test]
    fn parses_first_line_caps_and_following_commands() {
        let pkts = vec![
            Pkt::Data(format!("{Z} {A} refs/heads/a\0report-status side-band-64k\n").into_bytes()),
            Pkt::Data(format!("{A} {A} refs/heads/b\n").into_bytes()),
        ];
        let c = parse_commands(&pkts).unwrap();
        assert_eq!(c.list.len(), 2);
        assert!(c.has_cap("side-band-64k"));
        assert_eq!(c.list[1].refname, "refs/heads/b");
        assert!(parse_commands(&[Pkt::Data(b"garbage\n".to_vec())]).is_err());
        assert!(parse_commands(&[]).unwrap().list.is_empty());
    }

    #[test]
    fn ref_names_follow_gits_check_ref_format() {
        for ok in ["refs/heads/agent/x", "refs/tags/v1.2", "refs/heads/a-b_c"] {
            assert_eq!(check_ref_format(ok), Ok(()), "{ok}");
        }
        let forged = "refs/heads/agent/x\n#1 kill switch ENGAGED\x1b[2K";
        for bad in [forged, "refs/heads/a b", "refs/heads/a..b", "refs/heads/.x", "refs/heads/x.lock", "refs/heads/x/"]
            .into_iter()
            .chain(["refs/heads/x.", "refs//x", "refs/heads/a@{1}", "heads/x", "refs/heads/a\x7f", "refs/heads/a~1"])
        {
            assert!(check_ref_format(bad).is_err(), "{bad:?}");
        }
        let pkt = Pkt::Data(format!("{Z} {A} {forged}\0report-status\n").into_bytes());
        let err = parse_commands(&[pkt]).unwrap_err();
        assert!(err.contains("control character") && !err.contains('\n') && !err.contains('\x1b'), "{err:?}");
    }

    #[test]
    fn rules_follow_the_documented_semantics() {
        let r = repo(&["agent/*", "main"], &["main"], false);
        assert_eq!(decide(&r, &cmd(Z, A, "refs/heads/agent/x")), Ok(Check::Nothing));
        assert_eq!(decide(&r, &cmd(A, A, "refs/heads/agent/x")), Ok(Check::FastForward));
        assert!(decide(&r, &cmd(A, A, "refs/heads/main")).unwrap_err().contains("main is protected"));
        assert!(decide(&r, &cmd(A, Z, "refs/heads/agent/x")).unwrap_err().contains("deleting"));
        assert!(decide(&r, &cmd(Z, A, "refs/heads/other")).unwrap_err().contains("not in the push list"));
        assert!(decide(&r, &cmd(Z, A, "refs/tags/v1")).unwrap_err().contains("tags is not allowed"));
        assert!(decide(&r, &cmd(Z, A, "refs/notes/x")).unwrap_err().contains("only branches"));
        let t = repo(&[], &[], true);
        assert_eq!(decide(&t, &cmd(Z, A, "refs/tags/v1")), Ok(Check::Nothing));
        assert!(decide(&t, &cmd(A, A, "refs/tags/v1")).unwrap_err().contains("never moved"));
    }
}
