//! Validation of what the agent writes for a human to read: host names it
//! asks for, and free text (reasons, state messages).
//!
//! Host names are held to strict DNS rules because the human approves what
//! they read: one exact, fully qualified, lowercase ASCII name, so that what is
//! shown is exactly what enters the allowlist. Wildcards, userinfo, URLs and
//! ports-in-the-name are refused with a message saying what to send instead.
//! IP literals are refused too: a grant should name a service the human can
//! recognise, and IP destinations belong in the policy as CIDRs, written by
//! the host. Text is stripped of control and bidi-override characters, which
//! could forge lines or reorder what the human sees, then capped in length.

use std::net::IpAddr;

/// RFC 1035 limits.
pub const MAX_HOST_LEN: usize = 253;
pub const MAX_LABEL_LEN: usize = 63;
/// Enough to explain a need in a sentence or three, short enough to read.
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Checks an asked-for host name and returns its lowercase form.
pub fn host(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("host is empty; ask for one exact host name such as api.example.com".into());
    }
    if raw.len() > MAX_HOST_LEN {
        return Err(format!("host is {} characters long; at most {MAX_HOST_LEN} are allowed", raw.len()));
    }
    let refuse = |why: &str| Err(format!("host {raw:?}: {why}"));
    if raw.contains("://") || raw.contains('/') {
        return refuse("send a bare host name, not a URL");
    }
    if raw.contains('@') {
        return refuse("userinfo (user@) is not accepted; send a bare host name");
    }
    if raw.contains('*') {
        return refuse("wildcards are not accepted; ask for one exact host name");
    }
    if raw.starts_with('[') || raw.parse::<IpAddr>().is_ok() {
        return refuse("IP literals are not accepted; ask for a host name");
    }
    if raw.contains(':') {
        return refuse("put the port in the port field, not in the host");
    }
    if !raw.is_ascii() {
        return refuse("use the ASCII (punycode, xn--) form of international names");
    }
    let name = raw.to_ascii_lowercase();
    if name.ends_with('.') {
        return refuse("drop the trailing dot");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return refuse("empty label (leading dot or two dots in a row)");
        }
        if label.len() > MAX_LABEL_LEN {
            return refuse(&format!("label {label:?} is longer than {MAX_LABEL_LEN} characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return refuse("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return refuse(&format!("label {label:?} starts or ends with '-'"));
        }
    }
    if labels.len() < 2 {
        return refuse("ask for a fully qualified name such as api.example.com");
    }
    // A numeric last label is an IP literal in another spelling (`127.1`, `10.0.0.1`).
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return refuse("IP literals are not accepted; ask for a host name");
    }
    Ok(name)
}

/// Cleans free text for a human: newlines and tabs become spaces, other
/// control and bidi-override characters are dropped, ends are trimmed.
/// Too long after cleaning is an error naming `field` and the limit.
pub fn text(field: &str, raw: &str, max_chars: usize) -> Result<String, String> {
    let cleaned: String = raw
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() || is_bidi_control(c) => None,
            c => Some(c),
        })
        .collect();
    let cleaned = cleaned.trim();
    let n = cleaned.chars().count();
    if n > max_chars {
        return Err(format!("{field} is {n} characters long; at most {max_chars} are allowed"));
    }
    Ok(cleaned.to_string())
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_lowercases_them() {
        assert_eq!(host("api.example.com").unwrap(), "api.example.com");
        assert_eq!(host("Registry.NPMjs.org").unwrap(), "registry.npmjs.org");
        assert_eq!(host("xn--bcher-kva.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(host("a-1.b2.test").unwrap(), "a-1.b2.test");
    }

    #[test]
    fn refuses_each_bad_shape_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("*.example.com", "wildcard"),
            ("user@example.com", "userinfo"),
            ("https://example.com", "URL"),
            ("example.com/path", "URL"),
            ("example.com:443", "port field"),
            ("10.0.0.1", "IP literal"),
            ("127.1", "IP literal"),
            ("::1", "IP literal"),
            ("[::1]", "IP literal"),
            ("localhost", "fully qualified"),
            ("example.com.", "trailing dot"),
            (".example.com", "empty label"),
            ("a..example.com", "empty label"),
            ("-a.example.com", "'-'"),
            ("a_b.example.com", "only letters"),
            ("bücher.example", "punycode"),
            ("exa mple.com", "only letters"),
        ];
        for (raw, why) in cases {
            let e = host(raw).unwrap_err();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
        let long_label = format!("{}.example.com", "a".repeat(MAX_LABEL_LEN + 1));
        assert!(host(&long_label).unwrap_err().contains("longer than 63"));
        let long_name = format!("{}.com", "abcdefgh.".repeat(28));
        assert!(host(&long_name).unwrap_err().contains("at most 253"));
    }

    #[test]
    fn text_strips_controls_and_bidi_and_caps_length() {
        assert_eq!(text("m", " a\nb\tc\u{7}d\u{202e}e\u{1b}[31m ", 100).unwrap(), "a b cde[31m");
        assert_eq!(text("m", &"é".repeat(5), 5).unwrap(), "ééééé");
        assert_eq!(
            text("reason", &"x".repeat(6), 5).unwrap_err(),
            "reason is 6 characters long; at most 5 are allowed"
        );
    }
}
