//! The DLP stream scanner against a reference matcher written the slow, plain
//! way: decode the whole input byte by byte into the normalised view (see
//! `bundle/src/dlp/normal.rs` for the rules), then look for every form of
//! every named secret with `windows()`, in the view and in the bytes as sent
//! (an escape character put just before a form, `%cC...`, changes the view
//! but must not hide it). The scanner, fed in chunks whose size
//! the input picks, must find a named secret exactly when the reference does.
//! Built-in rules are checked for agreement between the stream and one
//! whole-buffer scan.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bottle_bundle::dlp::Scanner;
use bottle_protocol::config::DlpConfig;
use libfuzzer_sys::fuzz_target;

/// A space, reserved characters, non-ASCII, a backslash escape and a literal
/// `%41`, so every decoding rule has something to undo.
const SECRETS: &[(&str, &str)] =
    &[("SPACE", "Tr0ub4dor&3 horse/st\u{e4}ple"), ("ESC", "qu\"ote\\back-\u{e9}-tail"), ("PCT", "p%41ss-w0rd-Z9")];

struct Scanners {
    named: Scanner,
    builtin: Scanner,
    _dir: std::path::PathBuf,
}

fn scanners() -> &'static Scanners {
    static S: OnceLock<Scanners> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bottle-fuzz-dlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secrets.toml");
        let toml: String = SECRETS.iter().map(|(n, v)| format!("{n} = {v:?}\n")).collect();
        std::fs::write(&file, toml).unwrap();
        let named = DlpConfig { secrets_file: Some(file), disable_builtin_patterns: true };
        Scanners {
            named: Scanner::from_config(&named).unwrap(),
            builtin: Scanner::from_config(&DlpConfig::default()).unwrap(),
            _dir: dir,
        }
    })
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex4(data: &[u8], at: usize) -> Option<u32> {
    let d = data.get(at..at + 4)?;
    d.iter().try_fold(0, |acc, &b| Some(acc << 4 | hex(b)?))
}

/// Decoded line breaks are dropped like literal ones.
fn push_char(out: &mut Vec<u8>, c: char) {
    if c != '\n' && c != '\r' {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

/// The normalised view, one byte at a time, on the whole input.
fn normalise(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut i, mut after_break) = (0, false);
    while i < data.len() {
        let b = data[i];
        if after_break && (b == b' ' || b == b'\t') {
            i += 1;
            continue;
        }
        after_break = false;
        if b == b'\n' {
            after_break = true;
            i += 1;
        } else if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
        } else if b == b'%' && i + 2 < data.len() && hex(data[i + 1]).is_some() && hex(data[i + 2]).is_some() {
            let v = (hex(data[i + 1]).unwrap() << 4 | hex(data[i + 2]).unwrap()) as u8;
            if v != b'\n' && v != b'\r' {
                out.push(v);
            }
            i += 3;
        } else if b == b'\\' && i + 1 < data.len() {
            let simple = match data[i + 1] {
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                b'/' => Some('/'),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                _ => None,
            };
            if let Some(c) = simple {
                push_char(&mut out, c);
                i += 2;
            } else if data[i + 1] == b'u' && hex4(data, i + 2).is_some() {
                let first = hex4(data, i + 2).unwrap();
                let low = (data.get(i + 6..i + 8) == Some(b"\\u")).then(|| hex4(data, i + 8)).flatten();
                let (code, used) = match (first, low) {
                    (0xD800..=0xDBFF, Some(low @ 0xDC00..=0xDFFF)) => {
                        (0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00), 12)
                    }
                    _ => (first, 6),
                };
                match char::from_u32(code) {
                    Some(c) => push_char(&mut out, c),
                    None => out.extend_from_slice(&data[i..i + 6]),
                }
                i += used;
            } else {
                out.push(b);
                i += 1;
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

fn base64_core(engine: &impl Engine, secret: &[u8], align: usize) -> Vec<u8> {
    let mut data = vec![0u8; align];
    data.extend_from_slice(secret);
    let encoded = engine.encode(&data).into_bytes();
    encoded[(8 * align).div_ceil(6)..8 * (align + secret.len()) / 6].to_vec()
}

/// Whether the reference finds any named secret in `data`.
fn reference(data: &[u8]) -> bool {
    let view = normalise(data);
    let has = |form: &[u8], fold: bool| {
        form.len() >= 4
            && [data, &view].iter().any(|text| {
                text.windows(form.len()).any(|w| if fold { w.eq_ignore_ascii_case(form) } else { w == form })
            })
    };
    SECRETS.iter().any(|(_, s)| {
        let raw = s.as_bytes();
        let hexed: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        has(raw, false)
            || has(&normalise(raw), false)
            || has(s.replace(' ', "+").as_bytes(), false)
            || has(hexed.as_bytes(), true)
            || (0..3).any(|a| {
                has(&base64_core(&STANDARD_NO_PAD, raw, a), false) || has(&base64_core(&URL_SAFE_NO_PAD, raw, a), false)
            })
    })
}

fn streamed(s: &Scanner, data: &[u8], piece: usize) -> bool {
    let mut st = s.stream();
    data.chunks(piece).any(|c| st.feed(c).is_some()) || st.finish().is_some()
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else { return };
    let piece = usize::from(split) % 64 + 1;
    let s = scanners();
    let want = reference(data);
    assert_eq!(s.named.scan(data).is_some(), want, "whole scan vs reference");
    assert_eq!(streamed(&s.named, data, piece), want, "stream in {piece}-byte chunks vs reference");
    assert_eq!(streamed(&s.builtin, data, piece), s.builtin.scan(data).is_some(), "built-in rules, stream vs whole");
});
