use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::*;

/// Has a reserved char, a space, a slash and non-ASCII, so every encoding differs.
const SECRET: &str = "Tr0ub4dor&3 horse/stäple";
const OTHER: &str = "correct-horse-battery";

fn scanner() -> (Scanner, tempfile::NamedTempFile) {
    with_secrets(&format!("DB_PASSWORD = \"{SECRET}\"\nOTHER_TOKEN = \"{OTHER}\"\n"))
}

fn hex(data: &[u8], upper: bool) -> String {
    data.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect()
}

/// Every encoded form of `SECRET` the scanner must catch, each built by hand.
fn encoded_forms() -> Vec<String> {
    let mut forms = vec![
        SECRET.to_string(),
        "Tr0ub4dor%263%20horse%2Fst%C3%A4ple".to_string(),
        "Tr0ub4dor%263%20horse%2fst%c3%a4ple".to_string(),
        "Tr0ub4dor%263+horse%2Fst%C3%A4ple".to_string(),
        "Tr0ub4dor%263+horse%2fst%c3%a4ple".to_string(),
        SECRET.bytes().map(|b| format!("%{b:02X}")).collect(),
        SECRET.bytes().map(|b| format!("%{b:02x}")).collect(),
        hex(SECRET.as_bytes(), false),
        hex(SECRET.as_bytes(), true),
    ];
    // Base64 of the secret alone and inside larger blobs, at every alignment,
    // padded, in both alphabets.
    for prefix in ["", "u", "us", "use", "user:", "{\"password\": \""] {
        for suffix in ["", "!", "\"}", "xyz"] {
            let blob = format!("{prefix}{SECRET}{suffix}");
            forms.push(STANDARD.encode(&blob));
            forms.push(URL_SAFE.encode(&blob));
        }
    }
    forms
}

#[test]
fn every_encoding_of_a_named_secret_is_found() {
    let (s, _f) = scanner();
    for form in encoded_forms() {
        for text in [form.clone(), format!("GET /login?p={form}&x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")] {
            assert_eq!(rule(&s, text.as_bytes()).as_deref(), Some("dlp:secret:DB_PASSWORD"), "{text}");
            assert_eq!(stream_rule(&s, text.as_bytes(), 5).as_deref(), Some("dlp:secret:DB_PASSWORD"), "{text}");
        }
    }
    assert_eq!(rule(&s, STANDARD.encode(OTHER).as_bytes()).as_deref(), Some("dlp:secret:OTHER_TOKEN"));
}

#[test]
fn a_secret_inside_a_json_string_is_found_however_the_encoder_escapes_it() {
    let (s, _f) = with_secrets(r#"JSON_SECRET = "qu\"ote\\back/slash-é-😀\ttab&<x>""#);
    let forms = [
        // serde_json, JSON.stringify
        r#"qu\"ote\\back/slash-é-😀\ttab&<x>"#,
        // Python json.dumps (ensure_ascii)
        r#"qu\"ote\\back/slash-\u00e9-\ud83d\ude00\ttab&<x>"#,
        // PHP json_encode
        r#"qu\"ote\\back\/slash-\u00e9-\ud83d\ude00\ttab&<x>"#,
        // Go encoding/json
        r#"qu\"ote\\back/slash-é-😀\ttab\u0026\u003cx\u003e"#,
    ];
    for form in forms {
        let body = format!(r#"{{"note":"x","password":"{form}"}}"#);
        assert_eq!(rule(&s, body.as_bytes()).as_deref(), Some("dlp:secret:JSON_SECRET"), "{body}");
        assert_eq!(stream_rule(&s, body.as_bytes(), 4).as_deref(), Some("dlp:secret:JSON_SECRET"), "{body}");
    }
}

#[test]
fn near_misses_of_a_named_secret_pass() {
    let (s, _f) = scanner();
    let almost = &SECRET[..SECRET.len() - 1];
    let misses = [
        almost.to_string(),
        STANDARD.encode("Tr0ub4dor&3 horse/staple"),
        STANDARD.encode("a different secret entirely"),
        hex(almost.as_bytes(), false),
        "Tr0ub4dor%263%20horse%2Fstaple".to_string(),
        "TR0UB4DOR&3 HORSE/STÄPLE".to_string(),
        OTHER[..OTHER.len() - 1].to_string(),
    ];
    for text in misses {
        assert_eq!(rule(&s, text.as_bytes()), None, "{text}");
    }
}

fn load_error(toml: &str) -> (String, String) {
    let file = secrets_file(toml);
    let cfg = DlpConfig { secrets_file: Some(file.path().to_path_buf()), disable_builtin_patterns: false };
    let err = format!("{:#}", Scanner::from_config(&cfg).unwrap_err());
    (err, file.path().display().to_string())
}

#[test]
fn bad_secrets_are_rejected_naming_file_and_name_but_not_value() {
    for (toml, name) in [
        ("EMPTY = \"\"", "EMPTY"),
        ("SHORT = \"hunter2\"", "SHORT"),
        ("NUMBER = 12345678901", "NUMBER"),
        ("[TABLE]\nx = \"hunter2hunter2\"", "TABLE"),
    ] {
        let (err, path) = load_error(toml);
        assert!(err.contains(&path), "{err}");
        assert!(err.contains(name), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("12345678901"), "{err}");
    }
    let (err, path) = load_error(&format!("OK = \"{OTHER}\"\nBAD = \"hunter2hunter2"));
    assert!(err.contains(&path) && err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains(OTHER), "{err}");
    let (err, _) = load_error("\"bad name\" = \"hunter2hunter2\"");
    assert!(err.contains("bad name") && !err.contains("hunter2"), "{err}");
}

#[test]
fn a_missing_secrets_file_is_an_error_naming_it() {
    let cfg = DlpConfig { secrets_file: Some("/nonexistent/dlp-secrets.toml".into()), disable_builtin_patterns: false };
    let err = format!("{:#}", Scanner::from_config(&cfg).unwrap_err());
    assert!(err.contains("/nonexistent/dlp-secrets.toml"), "{err}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let (s, _f) = scanner();
    let shown = format!("{s:?}");
    assert!(shown.contains("named_secrets: 2"), "{shown}");
    assert!(!shown.contains("Tr0ub") && !shown.contains("horse"), "{shown}");
    let finding = s.scan(SECRET.as_bytes()).unwrap();
    assert!(!format!("{finding:?}").contains("Tr0ub"));
}

#[test]
fn secrets_work_with_builtins_disabled() {
    let file = secrets_file(&format!("DB_PASSWORD = \"{SECRET}\""));
    let cfg = DlpConfig { secrets_file: Some(file.path().to_path_buf()), disable_builtin_patterns: true };
    let s = Scanner::from_config(&cfg).unwrap();
    assert_eq!(rule(&s, SECRET.as_bytes()).as_deref(), Some("dlp:secret:DB_PASSWORD"));
    assert_eq!(rule(&s, format!("AKIA{}", "IOSFODNN7EXAMPLE").as_bytes()), None);
    assert_eq!(stream_rule(&s, hex(SECRET.as_bytes(), true).as_bytes(), 3).as_deref(), Some("dlp:secret:DB_PASSWORD"));
}
