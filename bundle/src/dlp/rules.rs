//! The built-in credential rules: literal anchors found by one automaton, and a
//! hand-written verifier per rule that runs only at an anchor hit. Keeping the
//! per-byte hot path to a literal search (no regex) is what makes line-rate
//! scanning possible; the verifiers then reject near-misses cheaply.

use bottle_protocol::rule::dlp;

/// One anchor literal and the rule that verifies it.
pub(super) const ANCHORS: &[(&str, Rule)] = &[
    ("AKIA", Rule::Aws),
    ("ASIA", Rule::Aws),
    ("ghp_", Rule::GithubClassic),
    ("gho_", Rule::GithubClassic),
    ("ghu_", Rule::GithubClassic),
    ("ghs_", Rule::GithubClassic),
    ("ghr_", Rule::GithubClassic),
    ("github_pat_", Rule::GithubFineGrained),
    ("sk-", Rule::SkKey),
    ("xoxb-", Rule::Slack),
    ("xoxp-", Rule::Slack),
    ("xoxa-", Rule::Slack),
    ("xoxr-", Rule::Slack),
    ("xoxs-", Rule::Slack),
    ("hooks.slack.com/services/", Rule::SlackWebhook),
    ("-----BEGIN ", Rule::PrivateKey),
    ("eyJ", Rule::Jwt),
];

/// Longest run of token characters a verifier reads; real tokens are shorter.
pub(super) const TOKEN_SCAN_MAX: usize = 256;
/// Longest PEM label (`RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, ...) accepted.
const PEM_LABEL_MAX: usize = 48;
/// Longest JWT header segment accepted; real headers are a few hundred chars.
pub(super) const JWT_HEADER_MAX: usize = 1024;
/// A payload segment this long is accepted without seeing the signature, so the
/// verifier window (and the stream tail) stays bounded.
pub(super) const JWT_PAYLOAD_SCAN: usize = 2048;
const JWT_SEGMENT_MIN: usize = 10;
const GITHUB_CLASSIC_LEN: usize = 36;
const GITHUB_FINE_GRAINED_MIN: usize = 40;
const AWS_KEY_TAIL: usize = 16;
const SK_KEY_MIN: usize = 32;
const SLACK_TOKEN_MIN: usize = 20;

/// The furthest byte (exclusive, from the anchor start) any verifier reads. A
/// stream keeps this many bytes so an undecided anchor can be decided later.
pub(super) const MAX_WINDOW: usize = 3 + JWT_HEADER_MAX + 1 + JWT_PAYLOAD_SCAN + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Aws,
    GithubClassic,
    GithubFineGrained,
    SkKey,
    Slack,
    SlackWebhook,
    PrivateKey,
    Jwt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Match(&'static str),
    NoMatch,
    /// The input ended before the verifier could decide; a stream retries later.
    NeedMore,
}

/// A read-only view of up to two byte runs (a stream's kept tail, then the new
/// chunk), so verifiers can look across a chunk boundary without copying.
pub(super) struct Hay<'a> {
    pub a: &'a [u8],
    pub b: &'a [u8],
    /// The byte just before `a`, when the stream had one.
    pub before: Option<u8>,
    /// No more bytes will follow `b`.
    pub eof: bool,
}

impl Hay<'_> {
    pub fn whole(data: &[u8]) -> Hay<'_> {
        Hay { a: data, b: &[], before: None, eof: true }
    }

    fn get(&self, i: usize) -> Option<u8> {
        match self.a.get(i) {
            Some(&x) => Some(x),
            None => self.b.get(i - self.a.len()).copied(),
        }
    }

    fn prev(&self, pos: usize) -> Option<u8> {
        if pos == 0 { self.before } else { self.get(pos - 1) }
    }

    /// The verdict for running out of input.
    fn end(&self) -> Verdict {
        if self.eof { Verdict::NoMatch } else { Verdict::NeedMore }
    }

    /// Whether `lit` is at `pos`; `Err` carries the verdict when input ran out.
    fn has(&self, pos: usize, lit: &[u8]) -> Result<bool, Verdict> {
        for (i, &want) in lit.iter().enumerate() {
            match self.get(pos + i) {
                Some(b) if b == want => {}
                Some(_) => return Ok(false),
                None => return Err(self.end()),
            }
        }
        Ok(true)
    }

    /// Length of the run of `class` bytes at `pos`, capped at `max`. At the end
    /// of a finished input the run simply stops there.
    fn run(&self, pos: usize, max: usize, class: fn(u8) -> bool) -> Result<usize, Verdict> {
        for n in 0..max {
            match self.get(pos + n) {
                Some(b) if class(b) => {}
                Some(_) => return Ok(n),
                None if self.eof => return Ok(n),
                None => return Err(Verdict::NeedMore),
            }
        }
        Ok(max)
    }
}

const UPPER: u8 = 1;
const LOWER: u8 = 2;
const DIGIT: u8 = 4;

fn kind(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => UPPER,
        b'a'..=b'z' => LOWER,
        b'0'..=b'9' => DIGIT,
        _ => 0,
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn slack_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn webhook_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/'
}

fn pem_label_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
}

/// A token starts only where the previous byte cannot be part of it, so
/// `task-force` never looks like `sk-...`. Using the token's own class also
/// keeps scanning linear: an anchor inside another hit's run is rejected at
/// once, so no byte is re-read by many verifiers (`xoxb-xoxb-xoxb-...`).
fn at_boundary(hay: &Hay, pos: usize, class: fn(u8) -> bool) -> bool {
    hay.prev(pos).is_none_or(|b| !class(b))
}

/// Matches once `min` bytes of `class` are seen that include every kind in
/// `need` (an entropy floor that keeps prose and identifiers out).
fn token(hay: &Hay, pos: usize, min: usize, class: fn(u8) -> bool, need: u8, rule: &'static str) -> Verdict {
    let mut seen = 0;
    for n in 0..TOKEN_SCAN_MAX {
        match hay.get(pos + n) {
            Some(b) if class(b) => {
                seen |= kind(b);
                if n + 1 >= min && seen & need == need {
                    return Verdict::Match(rule);
                }
            }
            Some(_) => return Verdict::NoMatch,
            None => return hay.end(),
        }
    }
    Verdict::NoMatch
}

impl Rule {
    /// Decides whether the anchor of length `anchor_len` at `pos` starts a credential.
    pub fn verify(self, hay: &Hay, pos: usize, anchor_len: usize) -> Verdict {
        let body = pos + anchor_len;
        match self {
            Rule::Aws => aws(hay, pos, body),
            Rule::GithubClassic if at_boundary(hay, pos, word) => {
                token(hay, body, GITHUB_CLASSIC_LEN, alnum, 0, dlp::GITHUB_TOKEN)
            }
            Rule::GithubFineGrained if at_boundary(hay, pos, word) => {
                token(hay, body, GITHUB_FINE_GRAINED_MIN, word, UPPER | DIGIT, dlp::GITHUB_TOKEN)
            }
            Rule::SkKey if at_boundary(hay, pos, b64url) => sk_key(hay, body),
            Rule::Slack if at_boundary(hay, pos, slack_char) => {
                token(hay, body, SLACK_TOKEN_MIN, slack_char, DIGIT, dlp::SLACK_TOKEN)
            }
            Rule::SlackWebhook => token(hay, body, SLACK_TOKEN_MIN, webhook_char, DIGIT, dlp::SLACK_WEBHOOK),
            Rule::PrivateKey => private_key(hay, body),
            Rule::Jwt if at_boundary(hay, pos, b64url) => jwt(hay, pos),
            _ => Verdict::NoMatch,
        }
    }
}

/// `AKIA`/`ASIA` plus exactly 16 of `[A-Z0-9]`, delimited on both sides.
fn aws(hay: &Hay, pos: usize, body: usize) -> Verdict {
    if !at_boundary(hay, pos, alnum) {
        return Verdict::NoMatch;
    }
    match hay.run(body, AWS_KEY_TAIL + 1, alnum) {
        Err(v) => v,
        Ok(AWS_KEY_TAIL) => match hay.run(body, AWS_KEY_TAIL, upper_alnum) {
            Ok(AWS_KEY_TAIL) => Verdict::Match(dlp::AWS_ACCESS_KEY),
            Ok(_) => Verdict::NoMatch,
            Err(v) => v,
        },
        Ok(_) => Verdict::NoMatch,
    }
}

/// `sk-ant-...` (Anthropic) before the broader `sk-...` (OpenAI, incl. `sk-proj-`).
fn sk_key(hay: &Hay, body: usize) -> Verdict {
    match hay.has(body, b"ant-") {
        Err(v) => v,
        Ok(true) => token(hay, body + 4, SK_KEY_MIN, b64url, UPPER | LOWER, dlp::ANTHROPIC_KEY),
        Ok(false) => token(hay, body, SK_KEY_MIN, b64url, UPPER | LOWER, dlp::OPENAI_KEY),
    }
}

/// `-----BEGIN <label>-----` where the label ends in `PRIVATE KEY` (or `PRIVATE KEY BLOCK`).
fn private_key(hay: &Hay, body: usize) -> Verdict {
    let len = match hay.run(body, PEM_LABEL_MAX + 1, pem_label_char) {
        Ok(n) if n <= PEM_LABEL_MAX => n,
        Ok(_) => return Verdict::NoMatch,
        Err(v) => return v,
    };
    match hay.has(body + len, b"-----") {
        Err(v) => v,
        Ok(false) => Verdict::NoMatch,
        Ok(true) => {
            let ends_with =
                |suffix: &[u8]| len >= suffix.len() && hay.has(body + len - suffix.len(), suffix) == Ok(true);
            if ends_with(b"PRIVATE KEY") || ends_with(b"PRIVATE KEY BLOCK") {
                Verdict::Match(dlp::PRIVATE_KEY)
            } else {
                Verdict::NoMatch
            }
        }
    }
}

/// `eyJ<header>.eyJ<payload>.<signature>`: two base64url JSON objects and a dot.
fn jwt(hay: &Hay, pos: usize) -> Verdict {
    let header = match hay.run(pos, JWT_HEADER_MAX + 1, b64url) {
        Ok(n) if (JWT_SEGMENT_MIN..=JWT_HEADER_MAX).contains(&n) => n,
        Ok(_) => return Verdict::NoMatch,
        Err(v) => return v,
    };
    let payload_at = pos + header + 1;
    match hay.has(pos + header, b".eyJ") {
        Err(v) => return v,
        Ok(false) => return Verdict::NoMatch,
        Ok(true) => {}
    }
    let payload = match hay.run(payload_at, JWT_PAYLOAD_SCAN, b64url) {
        Ok(n) => n,
        Err(v) => return v,
    };
    if payload == JWT_PAYLOAD_SCAN {
        return Verdict::Match(dlp::JWT);
    }
    if payload < JWT_SEGMENT_MIN {
        return Verdict::NoMatch;
    }
    match hay.has(payload_at + payload, b".") {
        Err(v) => v,
        Ok(true) => Verdict::Match(dlp::JWT),
        Ok(false) => Verdict::NoMatch,
    }
}
