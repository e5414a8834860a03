//! The forms of a named secret to look for in the normalised view (see
//! `normal.rs`). Escaping of any kind (percent, JSON, line wrapping) is undone
//! by the view, so what is left are the encodings that change every byte:
//! hex (either case: the finder folds it) and base64 in both alphabets. An
//! agent's encoder escapes the secret as it is, so the view of its output is
//! the secret itself; a secret sent as written goes through the view too, so
//! its own view is searched as well (they differ when the secret holds `%XY`,
//! a backslash or a line break).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::literals::{Literal, MIN_LITERAL_LEN};
use super::normal::Normaliser;

/// Every literal to search for `secret`, deduplicated; none shorter than the finder accepts.
pub(super) fn variants(text: &str) -> Vec<Literal> {
    let secret = text.as_bytes();
    let mut exact = vec![secret.to_vec(), Normaliser::whole(secret)];
    // application/x-www-form-urlencoded writes a space as `+`, which the view leaves alone.
    if secret.contains(&b' ') {
        exact.push(text.replace(' ', "+").into_bytes());
    }
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for align in 0..3 {
            exact.push(base64_core(&engine, secret, align));
        }
    }
    exact.sort();
    exact.dedup();
    let hex = secret.iter().flat_map(|&b| [hex_digit(b >> 4), hex_digit(b)]).collect();
    exact
        .into_iter()
        .map(|bytes| Literal { bytes, any_case: false })
        .chain([Literal { bytes: hex, any_case: true }])
        .filter(|l| l.bytes.len() >= MIN_LITERAL_LEN)
        .collect()
}

fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef"[usize::from(n & 15)]
}

/// The base64 characters that depend only on `secret` when it starts `align`
/// bytes (mod 3) into a larger encoded blob: the edge characters that mix in
/// neighbouring bytes are dropped.
fn base64_core(engine: &impl Engine, secret: &[u8], align: usize) -> Vec<u8> {
    let mut data = vec![0u8; align];
    data.extend_from_slice(secret);
    let encoded = engine.encode(&data).into_bytes();
    let first = (8 * align).div_ceil(6);
    let last = 8 * (align + secret.len()) / 6;
    encoded[first..last].to_vec()
}
