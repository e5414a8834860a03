//! DLP: stops credentials and named never-leave secrets from leaving the
//! sandbox in request heads, CONNECT targets and plain-HTTP bodies. It sits on
//! every request, so it is built for line rate: built-in rules are a literal
//! anchor search plus a cheap verifier per hit, and named secrets are a
//! sampled literal search for their raw, hex and base64 forms. Those forms are
//! looked for in a normalised view of the bytes (percent and JSON escapes
//! undone, line breaks dropped: `normal.rs`), so a secret matches however its
//! characters were escaped or its encoding was wrapped, and in the bytes as
//! sent, so an escape character put just before one (`%`, `\`) cannot hide it
//! either. A body stream searches the bytes as sent only where the view can
//! differ from them for a form (around decoded escapes, and for forms that
//! hold escape characters), not in every chunk twice. A `Finding`
//! carries only the rule id; matched bytes never leave this module.

mod anchors;
mod literals;
mod normal;
mod rules;
mod secrets;
mod stream;
mod variants;

#[cfg(test)]
mod tests;

use bottle_protocol::config::DlpConfig;
use bottle_protocol::rule;

use anchors::Anchors;
use literals::{Literal, Literals};
use normal::Normaliser;
use rules::{ANCHORS, Hay, MAX_WINDOW, Verdict};
pub use stream::StreamScanner;

pub struct Scanner {
    /// Built-in rule anchors; `None` when the config turns them off.
    anchors: Option<Anchors>,
    /// Every form of every named secret (`variants.rs`), searched in the view.
    named: Option<Forms>,
    /// The forms the view may lose anywhere (`normal::view_keeps`), so a body
    /// stream searches them in all the bytes as sent; the others only where the
    /// view decoded an escape, and where chunks meet.
    hideable: Option<Forms>,
    /// `dlp:secret:<NAME>` per named secret.
    secret_rules: Vec<String>,
    /// A match spanning a chunk boundary starts at most this far before it.
    boundary: usize,
    /// Bytes a stream keeps between chunks.
    tail_len: usize,
    /// A form spanning a chunk boundary of the normalised view starts at most
    /// this far before it.
    named_boundary: usize,
}

/// Some forms of the named secrets, searched as one set.
struct Forms {
    literals: Literals,
    /// For each literal, the index of its secret in `secret_rules`.
    owners: Vec<usize>,
}

impl Forms {
    fn new(forms: impl Iterator<Item = (Literal, usize)>) -> Option<Self> {
        let (patterns, owners): (Vec<_>, Vec<_>) = forms.unzip();
        (!patterns.is_empty()).then(|| Forms { literals: Literals::new(patterns), owners })
    }
}

/// A DLP hit. Carries the rule id only, never the matched bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// e.g. `dlp:aws-access-key`, `dlp:secret:NAME`.
    pub rule: String,
}

/// Shows the shape of the scanner, never the secrets it holds.
impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("builtin_patterns", &self.anchors.is_some())
            .field("named_secrets", &self.secret_rules.len())
            .field("forms", &self.named.as_ref().map_or(0, |f| f.owners.len()))
            .finish()
    }
}

impl Scanner {
    pub fn from_config(cfg: &DlpConfig) -> anyhow::Result<Self> {
        let anchor_literals: Vec<&str> = ANCHORS.iter().map(|(lit, _)| *lit).collect();
        let anchors = if cfg.disable_builtin_patterns { None } else { Some(Anchors::new(&anchor_literals)?) };
        let secrets = match &cfg.secrets_file {
            Some(path) => secrets::load(path)?,
            None => Vec::new(),
        };
        let forms: Vec<_> = secrets
            .iter()
            .enumerate()
            .flat_map(|(i, secret)| variants::variants(&secret.value).into_iter().map(move |f| (f, i)))
            .collect();
        let hideable = Forms::new(forms.iter().filter(|(f, _)| !normal::view_keeps(&f.bytes)).cloned());
        let named = Forms::new(forms.into_iter());
        let longest_anchor =
            if anchors.is_some() { ANCHORS.iter().map(|(a, _)| a.len()).max().unwrap_or(0) } else { 0 };
        let max_form = named.as_ref().map_or(0, |f| f.literals.max_len());
        let longest = longest_anchor.max(max_form);
        let boundary = longest.saturating_sub(1);
        let window = if anchors.is_some() { MAX_WINDOW } else { 0 };
        Ok(Self {
            anchors,
            named_boundary: max_form.saturating_sub(1),
            named,
            hideable,
            secret_rules: secrets.iter().map(|s| rule::dlp::secret(&s.name)).collect(),
            boundary,
            tail_len: window.max(boundary) + 1,
        })
    }

    /// Scans one buffer (a request head, URL, header value or CONNECT target).
    pub fn scan(&self, data: &[u8]) -> Option<Finding> {
        let named = self.named.as_ref();
        self.scan_text(data, &Hay::whole(data), 0, None, named, &mut Vec::new())
            .or_else(|| self.find_named(named?, &Normaliser::whole(data), |_, _| true))
    }

    /// A streaming scanner for a body, in bounded memory.
    pub fn stream(&self) -> StreamScanner<'_> {
        StreamScanner::new(self)
    }

    /// Scans `text`, which sits at `offset` in `hay` (verifiers may look past
    /// `text` into `hay`). With `spanning = Some(b)` only hits that start
    /// before `b` and end after it count. Of the named secrets only `forms`
    /// are looked for. Anchors that need more input than `hay` holds are
    /// recorded in `pending` as (hay position, anchor index).
    fn scan_text(
        &self,
        text: &[u8],
        hay: &Hay,
        offset: usize,
        spanning: Option<usize>,
        forms: Option<&Forms>,
        pending: &mut Vec<(usize, usize)>,
    ) -> Option<Finding> {
        let counts = |start: usize, end: usize| spanning.is_none_or(|b| start < b && end > b);
        if let Some(anchors) = &self.anchors {
            let mut at = 0;
            while at < text.len() {
                let Some((start, end, anchor)) = anchors.find(text, at) else {
                    break;
                };
                if spanning.is_some_and(|b| start >= b) {
                    break;
                }
                // Restart just past the hit's start: anchors may overlap (`sk-----BEGIN ...`).
                at = start + 1;
                if !counts(start, end) {
                    continue;
                }
                match self.verify(hay, offset + start, anchor) {
                    Verdict::Match(rule) => {
                        return Some(Finding { rule: rule.to_string() });
                    }
                    Verdict::NeedMore => pending.push((offset + start, anchor)),
                    Verdict::NoMatch => {}
                }
            }
        }
        self.find_named(forms?, text, counts)
    }

    /// The first of `forms` in `text` whose span `accept` agrees to.
    fn find_named(&self, forms: &Forms, text: &[u8], accept: impl Fn(usize, usize) -> bool) -> Option<Finding> {
        let pattern = forms.literals.find(text, accept)?;
        Some(Finding { rule: self.secret_rules[forms.owners[pattern]].clone() })
    }

    fn verify(&self, hay: &Hay, pos: usize, anchor: usize) -> Verdict {
        let (lit, rule) = ANCHORS[anchor];
        rule.verify(hay, pos, lit.len())
    }
}
