//! Shared fixtures for the DLP tests. Credentials are assembled at run time so
//! no complete token sits in the source.

mod builtin;
mod named;
mod props;
mod stream;

use std::io::Write;

use bottle_protocol::config::DlpConfig;

use super::Scanner;

pub(super) fn builtin() -> Scanner {
    Scanner::from_config(&DlpConfig::default()).unwrap()
}

/// A scanner with built-in rules and the given secrets file contents. The
/// temp file is returned so it outlives the assertions about its path.
pub(super) fn with_secrets(toml: &str) -> (Scanner, tempfile::NamedTempFile) {
    let file = secrets_file(toml);
    let cfg = DlpConfig { secrets_file: Some(file.path().to_path_buf()), disable_builtin_patterns: false };
    (Scanner::from_config(&cfg).unwrap(), file)
}

pub(super) fn secrets_file(toml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    file
}

pub(super) fn rule(s: &Scanner, data: &[u8]) -> Option<String> {
    s.scan(data).map(|f| f.rule)
}

/// Feeds `data` in chunks of `size` and then finishes.
pub(super) fn stream_rule(s: &Scanner, data: &[u8], size: usize) -> Option<String> {
    let mut st = s.stream();
    for chunk in data.chunks(size.max(1)) {
        if let Some(f) = st.feed(chunk) {
            return Some(f.rule);
        }
    }
    st.finish().map(|f| f.rule)
}

/// `len` characters cycling through a mixed-case base62 alphabet.
pub(super) fn base62(len: usize, seed: usize) -> String {
    const ALPHA: &[u8] = b"Zq3Xw9Lk2Pm8Rn7Ts6Vb5Yc4Hd1Jf0GgAaBeCiDoEuFlIrKsMtNvOxQyUzWhSj";
    (0..len).map(|i| ALPHA[(i * 7 + seed * 13) % ALPHA.len()] as char).collect()
}

pub(super) fn b64url_json(json: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub(super) fn jwt() -> String {
    let header = b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64url_json(r#"{"sub":"1234567890","name":"Jo Doe","iat":1516239022}"#);
    format!("{header}.{payload}.{}", base62(43, 5))
}

/// One sample credential per built-in rule, with its expected rule id.
pub(super) fn positives() -> Vec<(String, &'static str)> {
    vec![
        (format!("AKIA{}", "IOSFODNN7EXAMPLE"), "dlp:aws-access-key"),
        (format!("ASIA{}", "Z7Q3EXAMPLE4KEY9"), "dlp:aws-access-key"),
        (format!("ghp_{}", base62(36, 1)), "dlp:github-token"),
        (format!("gho_{}", base62(36, 2)), "dlp:github-token"),
        (format!("ghu_{}", base62(36, 3)), "dlp:github-token"),
        (format!("ghs_{}", base62(36, 4)), "dlp:github-token"),
        (format!("ghr_{}", base62(36, 5)), "dlp:github-token"),
        (format!("github_pat_11{}_{}", base62(20, 6), base62(59, 7)), "dlp:github-token"),
        (format!("sk-ant-api03-{}AA", base62(93, 8)), "dlp:anthropic-key"),
        (format!("sk-{}", base62(48, 9)), "dlp:openai-key"),
        (format!("sk-proj-{}_{}", base62(74, 10), base62(80, 11)), "dlp:openai-key"),
        (format!("xoxb-{}-{}-{}", "123456789012", "1234567890123", base62(24, 12)), "dlp:slack-token"),
        (
            format!("xoxp-{}-{}-{}-{}", "123456789012", "123456789012", "1234567890123", base62(32, 13)),
            "dlp:slack-token",
        ),
        (format!("xoxa-2-{}", base62(40, 14)), "dlp:slack-token"),
        (format!("xoxr-{}", base62(40, 15)), "dlp:slack-token"),
        (format!("xoxs-{}", base62(40, 16)), "dlp:slack-token"),
        (
            format!("https://hooks.slack.com/services/T0{}/B0{}/{}", "1234567", "7654321", base62(24, 17)),
            "dlp:slack-webhook",
        ),
        (format!("-----BEGIN RSA PRIVATE KEY-----\nMIIEow{}", base62(64, 18)), "dlp:private-key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE".to_string(), "dlp:private-key"),
        ("-----BEGIN PRIVATE KEY-----".to_string(), "dlp:private-key"),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----".to_string(), "dlp:private-key"),
        ("-----BEGIN EC PRIVATE KEY-----".to_string(), "dlp:private-key"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----".to_string(), "dlp:private-key"),
        (jwt(), "dlp:jwt"),
    ]
}
