//! The forms a named secret may take on the wire. An agent (or a library it
//! drives) rarely sends a secret verbatim: URLs and forms percent-encode it,
//! JSON strings escape it, basic-auth and config blobs carry it base64'd (often
//! inside a larger blob), and debugging tools print it as hex. Each form is a
//! plain literal, so the whole set is searched in one pass.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Every literal to search for `secret`, deduplicated.
pub(super) fn variants(text: &str) -> Vec<Vec<u8>> {
    let secret = text.as_bytes();
    let mut out = vec![secret.to_vec()];
    for style in [Json::Minimal, Json::AsciiOnly, Json::Php, Json::HtmlSafe] {
        out.push(json(text, style));
    }
    for upper in [true, false] {
        out.push(percent(secret, upper, false, |b| !unreserved(b)));
        out.push(percent(secret, upper, true, |b| !unreserved(b)));
        out.push(percent(secret, upper, false, |_| true));
        out.push(hex(secret, upper));
    }
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for align in 0..3 {
            out.push(base64_core(&engine, secret, align));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_digit(n: u8, upper: bool) -> u8 {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    digits[usize::from(n & 15)]
}

/// Percent-encodes the bytes `encode` selects; `form` writes a space as `+`
/// (application/x-www-form-urlencoded).
fn percent(secret: &[u8], upper: bool, form: bool, encode: fn(u8) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(secret.len() * 3);
    for &b in secret {
        if form && b == b' ' {
            out.push(b'+');
        } else if encode(b) {
            out.extend([b'%', hex_digit(b >> 4, upper), hex_digit(b, upper)]);
        } else {
            out.push(b);
        }
    }
    out
}

/// How common encoders escape a JSON string beyond the mandatory `"`, `\`
/// and control characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Json {
    /// serde_json, JavaScript's `JSON.stringify`.
    Minimal,
    /// Python's `json.dumps`: non-ASCII as `\uXXXX` (UTF-16, lowercase hex).
    AsciiOnly,
    /// PHP's `json_encode`: like `AsciiOnly`, and `/` as `\/`.
    Php,
    /// Go's `encoding/json`: `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`.
    HtmlSafe,
}

/// The secret as it appears inside a JSON string literal.
fn json(text: &str, style: Json) -> Vec<u8> {
    let ascii = matches!(style, Json::AsciiOnly | Json::Php);
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style == Json::Php => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if style == Json::HtmlSafe => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 || (ascii && !c.is_ascii()) => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

fn hex(secret: &[u8], upper: bool) -> Vec<u8> {
    secret.iter().flat_map(|&b| [hex_digit(b >> 4, upper), hex_digit(b, upper)]).collect()
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
