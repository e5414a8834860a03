//! pkt-line framing and the push command parser, as git-gate runs them on an agent's request:
//! decode packets until a flush or an error, then parse the command section. Neither may
//! panic, and every packet decoded must re-encode to the bytes it came from (hex case aside).
#![no_main]

use bottle_bundle::gitgate::pktline::{self, Pkt};
use bottle_bundle::gitgate::rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    let mut section = Vec::new();
    while let Ok(Some((pkt, used))) = pktline::decode(&data[at..]) {
        assert!(used > 0 && at + used <= data.len());
        let mut again = Vec::new();
        pktline::encode(&pkt, &mut again);
        assert!(again.eq_ignore_ascii_case(&data[at..at + used]), "re-encoding differs");
        at += used;
        if pkt == Pkt::Flush {
            break;
        }
        section.push(pkt);
    }
    if let Ok(cmds) = rules::parse_commands(&section) {
        for c in &cmds.list {
            assert!(rules::check_ref_format(&c.refname).is_ok());
            assert!(!c.refname.bytes().any(|b| b < 0x20 || b == 0x7f));
        }
    }
});
