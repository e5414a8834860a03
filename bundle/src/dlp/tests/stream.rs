use super::*;

fn samples() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = positives().into_iter().map(|(t, r)| (t, r.to_string())).collect();
    all.push(("s3cret-Value/with space".to_string(), "dlp:secret:API".to_string()));
    all.push(("7333637265742d56616c75652f77697468207370616365".to_string(), "dlp:secret:API".to_string()));
    all
}

fn scanner() -> (Scanner, tempfile::NamedTempFile) {
    with_secrets("API = \"s3cret-Value/with space\"")
}

/// Splits `text` at `cut` and feeds the halves; returns the rule and whether
/// it was reported by `feed` (as opposed to `finish`).
fn two_chunks(s: &Scanner, text: &[u8], cut: usize) -> Option<String> {
    let mut st = s.stream();
    st.feed(&text[..cut]).or_else(|| st.feed(&text[cut..])).or_else(|| st.finish()).map(|f| f.rule)
}

#[test]
fn a_credential_split_at_every_boundary_is_found() {
    let (s, _f) = scanner();
    for (token, want) in samples() {
        let text = format!("POST body: {token} trailing words");
        for cut in 0..=text.len() {
            assert_eq!(two_chunks(&s, text.as_bytes(), cut).as_deref(), Some(&want[..]), "{token} cut at {cut}");
        }
    }
}

#[test]
fn a_credential_fed_one_byte_at_a_time_is_found() {
    let (s, _f) = scanner();
    for (token, want) in samples() {
        for text in [token.clone(), format!("x {token} y"), format!("{}\n{token}\n", "z".repeat(5000))] {
            assert_eq!(stream_rule(&s, text.as_bytes(), 1).as_deref(), Some(&want[..]), "{token}");
            assert_eq!(stream_rule(&s, text.as_bytes(), 3).as_deref(), Some(&want[..]), "{token}");
        }
    }
}

#[test]
fn a_token_ending_the_body_is_decided_by_finish() {
    let s = builtin();
    let key = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let mut st = s.stream();
    assert_eq!(st.feed(format!("id={key}").as_bytes()), None, "the next byte could still extend the key");
    assert_eq!(st.finish().map(|f| f.rule).as_deref(), Some("dlp:aws-access-key"));
    let mut st = s.stream();
    assert_eq!(st.feed(format!("id={key}").as_bytes()), None);
    assert_eq!(st.feed(b"X"), None, "17 characters is not an access key id");
    assert_eq!(st.finish(), None);
}

#[test]
fn a_long_jwt_spread_over_many_chunks_is_found() {
    let s = builtin();
    let header = b64url_json(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
    let payload = b64url_json(&format!(r#"{{"sub":"{}"}}"#, "u".repeat(6000)));
    let text = format!("token={header}.{payload}.{}", base62(342, 3));
    for size in [1, 100, 4096, 65536] {
        assert_eq!(stream_rule(&s, text.as_bytes(), size).as_deref(), Some("dlp:jwt"), "chunk {size}");
    }
}

#[test]
fn a_near_miss_split_across_chunks_stays_clean() {
    let s = builtin();
    let text = format!("x AKIA{} ghp_{} eyJ", "IOSFODNN7EXAMPL", base62(35, 1));
    for cut in 0..=text.len() {
        assert_eq!(two_chunks(&s, text.as_bytes(), cut), None, "cut at {cut}");
    }
}

#[test]
fn memory_between_chunks_stays_bounded() {
    let (s, _f) = scanner();
    let mut st = s.stream();
    // Worst case for undecided anchors: a long run of JWT-looking headers.
    let chunk = "eyJ".repeat(20_000);
    for _ in 0..20 {
        assert_eq!(st.feed(chunk.as_bytes()), None);
        let (tail, pending, named) = st.held();
        assert!(tail <= s.tail_len, "tail {tail}");
        assert!(pending <= s.tail_len, "pending {pending}");
        assert!(named <= s.named_boundary + 12, "named view {named}");
    }
    assert_eq!(st.finish(), None);
}

/// A secret with one character escaped at its very start or end, or a line
/// break just inside either end: part of the secret is raw, part decoded,
/// and they meet at the edge of what the view changes. Every cut of the
/// stream must still see it, including cuts inside the escape and chunks of
/// one byte, near other escapes that change nothing.
#[test]
fn a_secret_escaped_at_one_edge_is_found_at_every_cut() {
    let (s, _f) = scanner();
    let want = Some("dlp:secret:API");
    let secret = "s3cret-Value/with space";
    let (first, rest) = secret.split_at(1);
    let (init, last) = secret.split_at(secret.len() - 1);
    let (a, z) = (first.as_bytes()[0], last.as_bytes()[0]);
    let forms = [
        format!("%{a:02X}{rest}"),
        format!("{init}%{z:02x}"),
        format!("\\u{a:04x}{rest}"),
        format!("{init}\\u{z:04X}"),
        format!("{first}\n  {rest}"),
        format!("{init}\r\n{last}"),
        format!("{first}%0A{rest}"),
        format!("{init}\\n{last}"),
    ];
    for form in forms {
        for text in [format!("a=%zz\\q{form}\\x%"), format!("{form}%"), format!("%{form}")] {
            for cut in 0..=text.len() {
                assert_eq!(two_chunks(&s, text.as_bytes(), cut).as_deref(), want, "{text:?} at {cut}");
            }
            assert_eq!(stream_rule(&s, text.as_bytes(), 1).as_deref(), want, "{text:?}");
        }
        // Past a long run the view has grown whole chunks; cut around the secret only.
        let text = format!("{}\n%7e{form} \\x", "z,".repeat(40_000));
        let at = text.len() - form.len() - 3;
        for cut in at - 8..text.len() {
            assert_eq!(two_chunks(&s, text.as_bytes(), cut).as_deref(), want, "{form:?} at {cut}");
        }
        for size in [4096, 65536] {
            assert_eq!(stream_rule(&s, text.as_bytes(), size).as_deref(), want, "{form:?}");
        }
    }
}
