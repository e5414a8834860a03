use super::super::rules::{ANCHORS, Hay, MAX_WINDOW, Verdict};
use super::*;

/// Contexts a credential shows up in: alone, in a header, a query, JSON, a URL path.
fn contexts(token: &str) -> Vec<String> {
    vec![
        token.to_string(),
        format!("GET /x HTTP/1.1\r\nAuthorization: Bearer {token}\r\nHost: a.test\r\n\r\n"),
        format!("GET /api?key={token}&x=1 HTTP/1.1\r\n"),
        format!("{{\"token\":\"{token}\"}}"),
        format!("POST /v1/{token}/run HTTP/1.1"),
        format!("line one\n{token}\nline three"),
    ]
}

#[test]
fn every_builtin_credential_is_found_in_every_context() {
    let s = builtin();
    for (token, want) in positives() {
        for text in contexts(&token) {
            assert_eq!(rule(&s, text.as_bytes()).as_deref(), Some(want), "{text}");
        }
    }
}

#[test]
fn near_misses_pass() {
    let s = builtin();
    let misses = [
        format!("AKIA{}", &"IOSFODNN7EXAMPLE"[..15]),
        format!("AKIA{}", "IOSFODNN7EXAMPLEX"),
        format!("AKIA{}", "IOSFODNN7exAMPLE"),
        format!("XAKIA{}", "IOSFODNN7EXAMPLE"),
        format!("ghp_{}", base62(35, 1)),
        format!("xghp_{}", base62(36, 1)),
        format!("github_pat_{}", "expiration_notification_settings_for_users_all_lowercase"),
        "the task-based approach to risk-assessment is desk-bound".to_string(),
        "sk-learn-is-a-popular-machine-learning-library-for-python".to_string(),
        format!("sk-{}", base62(20, 9)),
        format!("sk-ant-{}", base62(20, 9)),
        format!("task-{}", base62(48, 9)),
        "xoxb-abcdefghijklmnopqrstuvwxyz".to_string(),
        "xoxb-1234".to_string(),
        "hooks.slack.com/services/".to_string(),
        "-----BEGIN CERTIFICATE-----\nMIIB".to_string(),
        "-----BEGIN PUBLIC KEY-----".to_string(),
        "-----BEGIN PRIVATE KEY".to_string(),
        "eyJ".to_string(),
        b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#),
        format!("{}.notjson.{}", b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#), base62(43, 1)),
        format!("{}.eyJzdWIi", b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#)),
        "eyJhbGci.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig".to_string(),
    ];
    for text in misses {
        assert_eq!(rule(&s, text.as_bytes()), None, "{text}");
        assert_eq!(stream_rule(&s, text.as_bytes(), 7), None, "{text}");
    }
}

#[test]
fn a_rejected_anchor_does_not_hide_the_next_one() {
    let s = builtin();
    let text = format!("AKIASIA{} eyJ ghp_x sk-a AKIA{}", "Z7Q3EXAMPLE4KEY9", "IOSFODNN7EXAMPLE");
    assert_eq!(rule(&s, text.as_bytes()).as_deref(), Some("dlp:aws-access-key"));
    assert_eq!(rule(&s, &text.as_bytes()[..text.len() - 20]), None);
}

#[test]
fn an_anchor_overlapping_a_rejected_one_is_found() {
    let s = builtin();
    for text in ["sk-----BEGIN RSA PRIVATE KEY-----", "xoxb-----BEGIN PRIVATE KEY-----"] {
        assert_eq!(rule(&s, text.as_bytes()).as_deref(), Some("dlp:private-key"), "{text}");
    }
}

#[test]
fn disabled_builtins_find_nothing_builtin() {
    let cfg = DlpConfig { secrets_file: None, disable_builtin_patterns: true };
    let s = Scanner::from_config(&cfg).unwrap();
    for (token, _) in positives() {
        assert_eq!(rule(&s, token.as_bytes()), None);
        assert_eq!(stream_rule(&s, token.as_bytes(), 3), None);
    }
}

/// The stream tail is sized from `MAX_WINDOW`: no verifier may stay undecided
/// once it has that many bytes, whatever follows its anchor.
#[test]
fn verifiers_decide_within_the_window() {
    let header = format!("eyJ{}", "a".repeat(1021));
    let fillers = [
        "A".repeat(MAX_WINDOW),
        "aB3".repeat(MAX_WINDOW),
        "a-_".repeat(MAX_WINDOW),
        format!("ant-{}", "x".repeat(MAX_WINDOW)),
        format!("{}.eyJ{}", "h".repeat(1021), "p".repeat(MAX_WINDOW)),
        format!("{header}.eyJ{}", "p".repeat(MAX_WINDOW)),
        format!("{}.eyJ{}.{}", &header[3..], "p".repeat(2044), "s".repeat(MAX_WINDOW)),
        "RSA PRIVATE KEY ".repeat(MAX_WINDOW),
    ];
    for (anchor, rule) in ANCHORS {
        for filler in &fillers {
            let text = format!("{anchor}{filler}");
            let hay = Hay { a: &text.as_bytes()[..MAX_WINDOW], b: &[], before: None, eof: false };
            assert_ne!(rule.verify(&hay, 0, anchor.len()), Verdict::NeedMore, "{anchor} + {}", &filler[..10]);
        }
    }
}

#[test]
fn an_undecided_anchor_is_need_more_not_a_miss() {
    let token = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let hay = Hay { a: token.as_bytes(), b: &[], before: Some(b' '), eof: false };
    assert_eq!(ANCHORS[0].1.verify(&hay, 0, 4), Verdict::NeedMore);
    let hay = Hay { a: token.as_bytes(), b: &[], before: Some(b' '), eof: true };
    assert_eq!(ANCHORS[0].1.verify(&hay, 0, 4), Verdict::Match("dlp:aws-access-key"));
}

#[test]
fn the_scanner_can_be_shared_between_tasks() {
    fn shared<T: Send + Sync>() {}
    shared::<Scanner>();
}
