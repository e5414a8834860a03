//! DLP throughput: a 1 MiB body through `stream()` in 64 KiB chunks with the
//! built-in rules plus 8 named secrets, and `scan` of a typical request head.
//! Baselines in the same run: one literal searched with aho-corasick (which
//! delegates to memchr's memmem: the raw memory-scan ceiling) and a plain
//! aho-corasick automaton over the anchors and raw secrets.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use bottle_bundle::dlp::Scanner;
use bottle_protocol::config::DlpConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BODY_LEN: usize = 1 << 20;
const CHUNK: usize = 64 << 10;
const ANCHORS: &[&str] = &[
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "sk-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "hooks.slack.com/services/",
    "-----BEGIN ",
    "eyJ",
];
const SECRETS: &[(&str, &str)] = &[
    ("DB_PASSWORD", "Tr0ub4dor&3-horse/staple"),
    ("STRIPE", "rk_live_51Hx9QzLkPq8W2mN4bV7c"),
    ("SESSION_KEY", "8f14e45fceea167a5a36dedd4bea2543"),
    ("SMTP", "mail-pass w0rd!"),
    ("INTERNAL_API", "int-api-7Gx2LpQ9sVw4"),
    ("VAULT_TOKEN", "hvs.CAESIJ4vGxk2T0mQn8Zb"),
    ("SIGNING", "sig:Zm9vYmFyYmF6cXV4MTIz"),
    ("LEGACY", "p@ssw0rd-2019-prod"),
];

/// Anchors everywhere, none completing a credential: the verifiers' worst case.
const ANCHOR_SOUP: &str =
    "eyJ sk- xoxb- ghp_ AKIA -----BEGIN X----- hooks.slack.com/services/ github_pat_ eyJhbGciOi.x ";

/// A file upload as GNU `base64` writes it: 76 columns, a newline after each
/// line. Every line break is a normalisation step (the worst realistic case).
fn base64_wrapped() -> Vec<u8> {
    use base64::Engine;
    let raw: Vec<u8> = body(false).iter().map(|b| b.wrapping_mul(151)).collect();
    let text = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut out: Vec<u8> = text.as_bytes().chunks(76).flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    out.truncate(BODY_LEN);
    out
}

/// Deterministic printable text: uniform over ASCII 0x20..=0x7e plus newlines,
/// or word-like (closer to prose, JSON and code).
fn body(words: bool) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(BODY_LEN + 16);
    while out.len() < BODY_LEN {
        let r = next();
        if !words {
            out.push(if r % 80 == 0 { b'\n' } else { 0x20 + (r % 95) as u8 });
            continue;
        }
        for _ in 0..1 + r % 9 {
            let c = next();
            out.push(match c % 20 {
                0 => b'A' + (c >> 8) as u8 % 26,
                1 => b'0' + (c >> 8) as u8 % 10,
                _ => b'a' + (c >> 8) as u8 % 26,
            });
        }
        out.push(b"   ,.\n:\"-"[(r >> 32) as usize % 9]);
    }
    out.truncate(BODY_LEN);
    out
}

fn request_head() -> Vec<u8> {
    let head = "POST /v1/projects/acme/builds?branch=main&since=2026-11-28T10%3A00%3A00Z&limit=50 HTTP/1.1\r\n\
        Host: api.build-service.test\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n\
        Accept: application/json, text/plain, */*\r\n\
        Accept-Language: en-US,en;q=0.9\r\n\
        Accept-Encoding: gzip, deflate, br\r\n\
        Content-Type: application/json; charset=utf-8\r\n\
        Content-Length: 1834\r\n\
        Cookie: theme=dark; lang=en; _ga=GA1.2.1234567890.1700000000\r\n\
        X-Request-Id: 3f2b9c1e-8d4a-4e6b-9f1a-2c3d4e5f6a7b\r\n\
        Origin: https://console.build-service.test\r\n\
        Referer: https://console.build-service.test/projects/acme\r\n\
        Connection: keep-alive\r\n\r\n";
    head.as_bytes().to_vec()
}

fn scanners() -> (Scanner, Scanner, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for (name, value) in SECRETS {
        writeln!(file, "{name} = \"{value}\"").unwrap();
    }
    let full = DlpConfig { secrets_file: Some(file.path().to_path_buf()), disable_builtin_patterns: false };
    let builtin = DlpConfig::default();
    (Scanner::from_config(&full).unwrap(), Scanner::from_config(&builtin).unwrap(), file)
}

fn stream_all(scanner: &Scanner, body: &[u8]) -> bool {
    let mut st = scanner.stream();
    body.chunks(CHUNK).any(|c| st.feed(c).is_some()) || st.finish().is_some()
}

fn bench(c: &mut Criterion) {
    let (full, builtin, _file) = scanners();
    eprintln!("dlp bench: {full:?}; request head {} bytes", request_head().len());
    let mut g = c.benchmark_group("dlp-body-1MiB");
    g.throughput(Throughput::Bytes(BODY_LEN as u64));
    let soup: Vec<u8> = ANCHOR_SOUP.bytes().cycle().take(BODY_LEN).collect();
    let bodies =
        [("printable", body(false)), ("words", body(true)), ("anchor-soup", soup), ("base64-76", base64_wrapped())];
    for (name, body) in bodies {
        assert!(!stream_all(&full, &body), "the benchmark body must be clean");
        g.bench_function(format!("stream-64KiB-chunks/full/{name}"), |b| {
            b.iter(|| stream_all(&full, black_box(&body)))
        });
        g.bench_function(format!("stream-64KiB-chunks/builtin-only/{name}"), |b| {
            b.iter(|| stream_all(&builtin, black_box(&body)))
        });
        let one = AhoCorasick::new(["AKIAIOSFODNN7EXAMPLE"]).unwrap();
        g.bench_function(format!("baseline/one-literal-memmem/{name}"), |b| {
            b.iter(|| one.find_iter(black_box(&body[..])).count())
        });
        let all = AhoCorasick::new(ANCHORS.iter().copied().chain(SECRETS.iter().map(|(_, v)| *v))).unwrap();
        g.bench_function(format!("baseline/aho-corasick-anchors+raw-secrets/{name}"), |b| {
            b.iter(|| all.find_iter(black_box(&body[..])).count())
        });
    }
    g.finish();

    let head = request_head();
    assert!((550..=700).contains(&head.len()), "head is {} bytes", head.len());
    assert!(full.scan(&head).is_none());
    let mut g = c.benchmark_group("dlp-request-head");
    g.throughput(Throughput::Bytes(head.len() as u64));
    g.bench_function("scan/full", |b| b.iter(|| full.scan(black_box(&head))));
    g.bench_function("scan/builtin-only", |b| b.iter(|| builtin.scan(black_box(&head))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
