//! The receive-pack report the gate writes itself when it refuses a push, so
//! the agent's git prints `! [remote rejected] <ref> (<reason>)` exactly as if
//! the upstream had refused, without the upstream ever seeing the push.

use super::pktline::{self, MAX_PAYLOAD, Pkt};
use super::rules::Commands;

/// Band numbers of `side-band-64k`.
const BAND_DATA: u8 = 1;
const BAND_PROGRESS: u8 = 2;

/// Builds the whole response body: `unpack ok`, then `ng <ref> <reason>` for each command.
/// `reasons` pairs with `cmds.list`. A progress line is added when the client can show it.
pub fn refusal(cmds: &Commands, reasons: &[String], summary: &str) -> Vec<u8> {
    let mut status = Vec::new();
    pktline::encode(&Pkt::Data(b"unpack ok\n".to_vec()), &mut status);
    for (cmd, reason) in cmds.list.iter().zip(reasons) {
        let line = format!("ng {} {}\n", cmd.refname, reason.replace('\n', " "));
        pktline::encode(&Pkt::Data(line.into_bytes()), &mut status);
    }
    pktline::encode(&Pkt::Flush, &mut status);
    if !cmds.has_cap("report-status") && !cmds.has_cap("report-status-v2") {
        // The client asked for no report; git then only learns the push failed from the progress band, if any.
        status.clear();
    }
    if !cmds.has_cap("side-band-64k") {
        return status;
    }
    let mut out = Vec::new();
    if !cmds.has_cap("quiet") {
        band(BAND_PROGRESS, format!("{summary}\n").as_bytes(), &mut out);
    }
    band(BAND_DATA, &status, &mut out);
    pktline::encode(&Pkt::Flush, &mut out);
    out
}

fn band(n: u8, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_PAYLOAD - 1) {
        let mut p = Vec::with_capacity(chunk.len() + 1);
        p.push(n);
        p.extend_from_slice(chunk);
        pktline::encode(&Pkt::Data(p), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitgate::rules::Command;

    fn cmds(caps: &[&str]) -> Commands {
        Commands {
            list: vec![Command { old: "0".repeat(40), new: "1".repeat(40), refname: "refs/heads/main".into() }],
            caps: caps.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn plain_report_lists_each_ref() {
        let body = refusal(&cmds(&["report-status"]), &["bottle: main is protected".into()], "s");
        assert_eq!(body, b"000eunpack ok\n0031ng refs/heads/main bottle: main is protected\n0000".to_vec());
    }

    #[test]
    fn sideband_wraps_the_report_in_band_one() {
        let body = refusal(&cmds(&["report-status", "side-band-64k"]), &["x".into()], "bottle: refused");
        let (first, used) = pktline::decode(&body).unwrap().unwrap();
        assert_eq!(first, Pkt::Data(b"\x02bottle: refused\n".to_vec()));
        let (second, _) = pktline::decode(&body[used..]).unwrap().unwrap();
        let Pkt::Data(d) = second else { panic!("data expected") };
        assert_eq!(d[0], 1);
        assert!(d[1..].starts_with(b"000eunpack ok\n"));
        assert!(body.ends_with(b"0000"));
    }
}
