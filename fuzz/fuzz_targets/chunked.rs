//! The chunked decoder on arbitrary bytes, fed whole and in pieces whose sizes
//! the input picks: both ways must agree on the decoded payload, on the
//! extension and trailer bytes handed to DLP, on where the body ends and on
//! whether it is valid.
#![no_main]

use bottle_bundle::http::Chunked;
use libfuzzer_sys::fuzz_target;

/// The decoded payload, the meta bytes, how many input bytes the body took and whether it ended.
type Decoded = (Vec<u8>, Vec<u8>, usize, bool);

fn decode<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Option<Decoded> {
    let mut c = Chunked::default();
    let (mut out, mut meta, mut used) = (Vec::new(), Vec::new(), 0);
    for piece in pieces {
        let n = c.feed(piece, |d| out.extend_from_slice(d), |m| meta.extend_from_slice(m)).ok()?;
        assert!(n <= piece.len());
        used += n;
        if c.is_done() {
            break;
        }
    }
    Some((out, meta, used, c.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let piece = usize::from(split % 16) + 1;
    let whole = decode(std::iter::once(body));
    let pieces = decode(body.chunks(piece));
    assert_eq!(whole, pieces, "piece size {piece}");
    if let Some((out, _, used, _)) = whole {
        assert!(out.len() <= used);
    }
});
