//! Property tests for git-gate's pkt-line parser: it never panics, round-trips
//! what it encodes, asks for more on a truncated packet, and refuses bad lengths.

use bottle_bundle::gitgate::pktline::{self, MAX_PAYLOAD, MAX_PKT_LEN, Pkt, PktError};
use proptest::prelude::*;

fn pkt() -> impl Strategy<Value = Pkt> {
    prop_oneof![
        Just(Pkt::Flush),
        Just(Pkt::Delim),
        Just(Pkt::ResponseEnd),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Pkt::Data),
        (MAX_PAYLOAD - 2..=MAX_PAYLOAD, any::<u8>()).prop_map(|(n, b)| Pkt::Data(vec![b; n])),
    ]
}

fn decode_all(mut buf: &[u8]) -> Vec<Pkt> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (p, used) = pktline::decode(buf).expect("valid").expect("complete");
        out.push(p);
        buf = &buf[used..];
    }
    out
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(Some((_, used))) = pktline::decode(&bytes) {
            prop_assert!(used >= 4 && used <= bytes.len());
        }
    }

    #[test]
    fn round_trips(pkts in proptest::collection::vec(pkt(), 0..8)) {
        let mut buf = Vec::new();
        for p in &pkts {
            pktline::encode(p, &mut buf);
        }
        prop_assert_eq!(decode_all(&buf), pkts);
    }

    #[test]
    fn truncated_packets_ask_for_more(data in proptest::collection::vec(any::<u8>(), 1..200), cut in any::<prop::sample::Index>()) {
        let buf = pktline::data(&data);
        let at = cut.index(buf.len());
        prop_assert_eq!(pktline::decode(&buf[..at]), Ok(None));
    }

    #[test]
    fn rejects_out_of_range_lengths(len in prop_oneof![Just(3usize), MAX_PKT_LEN + 1..=0xffff], tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = format!("{len:04x}").into_bytes();
        buf.extend(tail);
        let err = pktline::decode(&buf).unwrap_err();
        prop_assert!(matches!(err, PktError::BadLength(3) | PktError::TooLong(_)));
    }

    #[test]
    fn rejects_non_hex_lengths(
        digits in prop::array::uniform4(prop::sample::select(b"0123456789abcdefABCDEF".to_vec())),
        at in 0..4usize,
        bad in any::<u8>().prop_filter("non-hex", |b| !b.is_ascii_hexdigit()),
    ) {
        let mut head = digits;
        head[at] = bad;
        prop_assert_eq!(pktline::decode(&head), Err(PktError::BadHex(head)));
    }
}

#[test]
fn oversized_payloads_are_split_not_corrupted() {
    let big = vec![7u8; MAX_PAYLOAD + 10];
    let buf = pktline::data(&big);
    let pkts = decode_all(&buf);
    assert_eq!(pkts.len(), 2);
    assert_eq!(pkts[0], Pkt::Data(vec![7u8; MAX_PAYLOAD]));
}
