//! Body scanning across chunk boundaries in bounded memory, over two views.
//! Of the bytes as sent a stream keeps the last `tail_len`: enough for a
//! literal that straddles the boundary and for any built-in verifier still
//! undecided when the chunk ended (those anchors are remembered and retried,
//! not rescanned). When there are named secrets it also normalises each chunk
//! (holding back an escape cut at the chunk end) and keeps the last
//! `named_boundary` bytes of that view, so a form straddling two chunks of
//! the view is still seen whole.

use super::normal::Normaliser;
use super::rules::Hay;
use super::{Finding, Scanner, Verdict};

pub struct StreamScanner<'a> {
    scanner: &'a Scanner,
    /// The last raw bytes seen, at most `scanner.tail_len`.
    tail: Vec<u8>,
    /// The byte just before `tail`, for the verifiers' word-boundary test.
    before: Option<u8>,
    /// Stream offset of `tail[0]`.
    tail_start: u64,
    /// Undecided anchors: (stream offset, anchor index). They always lie in `tail`.
    pending: Vec<(u64, usize)>,
    /// Scratch: the bytes around a chunk boundary.
    joint: Vec<u8>,
    /// Scratch: undecided anchors found by this chunk, as hay positions.
    found: Vec<(usize, usize)>,
    /// The normalised view, when there are named secrets.
    named: Option<NamedView>,
}

struct NamedView {
    normaliser: Normaliser,
    /// Scratch: this chunk's normalised bytes.
    view: Vec<u8>,
    /// The last `named_boundary` bytes of the view so far.
    tail: Vec<u8>,
    /// Scratch: the view's bytes around a chunk boundary.
    joint: Vec<u8>,
}

impl<'a> StreamScanner<'a> {
    pub(super) fn new(scanner: &'a Scanner) -> Self {
        let named = scanner.named.is_some().then(|| NamedView {
            normaliser: Normaliser::default(),
            view: Vec::new(),
            tail: Vec::with_capacity(scanner.named_boundary),
            joint: Vec::with_capacity(2 * scanner.named_boundary),
        });
        Self {
            scanner,
            tail: Vec::new(),
            before: None,
            tail_start: 0,
            pending: Vec::new(),
            joint: Vec::new(),
            found: Vec::new(),
            named,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Option<Finding> {
        if chunk.is_empty() {
            return None;
        }
        // The view first: where it decoded escapes tells where the bytes as
        // sent need a search of their own.
        if let Some(named) = self.named.as_mut() {
            named.view.clear();
            named.normaliser.feed(chunk, &mut named.view);
        }
        let finding = self.scan_chunk(chunk).or_else(|| self.scan_decoded(chunk));
        self.keep_tail(chunk);
        if finding.is_some() {
            return finding;
        }
        self.named.as_mut()?.scan(self.scanner)
    }

    /// Decides what was waiting for more input, now that there is none.
    pub fn finish(&mut self) -> Option<Finding> {
        let hay = Hay { a: &self.tail, b: &[], before: self.before, eof: true };
        let finding = self.pending.iter().find_map(|&(at, anchor)| {
            match self.scanner.verify(&hay, (at - self.tail_start) as usize, anchor) {
                Verdict::Match(rule) => Some(Finding { rule: rule.to_string() }),
                _ => None,
            }
        });
        self.tail.clear();
        self.pending.clear();
        self.before = None;
        self.tail_start = 0;
        let named = self.named.as_mut().and_then(|n| {
            n.view.clear();
            n.normaliser.finish(&mut n.view);
            let found = n.scan(self.scanner);
            n.tail.clear();
            found
        });
        finding.or(named)
    }

    fn scan_chunk(&mut self, chunk: &[u8]) -> Option<Finding> {
        let scanner = self.scanner;
        let hay = Hay { a: &self.tail, b: chunk, before: self.before, eof: false };
        let tail_len = self.tail.len();
        self.found.clear();
        for &(at, anchor) in &self.pending {
            let pos = (at - self.tail_start) as usize;
            match scanner.verify(&hay, pos, anchor) {
                Verdict::Match(rule) => {
                    return Some(Finding { rule: rule.to_string() });
                }
                Verdict::NeedMore => self.found.push((pos, anchor)),
                Verdict::NoMatch => {}
            }
        }
        let keep = scanner.boundary.min(tail_len);
        self.joint.clear();
        self.joint.extend_from_slice(&self.tail[tail_len - keep..]);
        self.joint.extend_from_slice(&chunk[..scanner.boundary.min(chunk.len())]);
        let named = scanner.named.as_ref();
        if let Some(f) = scanner.scan_text(&self.joint, &hay, tail_len - keep, Some(keep), named, &mut self.found) {
            return Some(f);
        }
        let hideable = scanner.hideable.as_ref();
        if let Some(f) = scanner.scan_text(chunk, &hay, tail_len, None, hideable, &mut self.found) {
            return Some(f);
        }
        let base = self.tail_start;
        self.pending.clear();
        self.pending.extend(self.found.iter().map(|&(pos, anchor)| (base + pos as u64, anchor)));
        self.pending.sort_unstable();
        self.pending.dedup();
        None
    }

    /// Looks for every form in the bytes as sent where an escape the view
    /// decoded may have taken the start of one (`normal::view_keeps`): forms
    /// starting inside the escape and ending in this chunk (those running
    /// past it are seen where the chunks meet, as are those starting before it).
    fn scan_decoded(&self, chunk: &[u8]) -> Option<Finding> {
        let (named, view) = (self.scanner.named.as_ref()?, self.named.as_ref()?);
        let longest = named.literals.max_len();
        let windows = view.normaliser.decoded().iter().filter_map(|&(start, used)| {
            let from = (start + 1).max(0) as usize;
            let last_start = usize::try_from(start + used as isize - 1).ok().filter(|&s| s >= from)?;
            Some((from, (last_start + longest).min(chunk.len())))
        });
        // Windows that overlap are searched as one.
        let mut open: Option<(usize, usize)> = None;
        for (from, to) in windows.chain([(usize::MAX, usize::MAX)]) {
            match open {
                Some((a, b)) if from <= b => open = Some((a, b.max(to))),
                _ => {
                    if let Some((a, b)) = open.replace((from, to))
                        && let Some(f) = self.scanner.find_named(named, &chunk[a..b], |_, _| true)
                    {
                        return Some(f);
                    }
                }
            }
        }
        None
    }

    /// Raw bytes, undecided anchors and normalised bytes kept between chunks,
    /// for the memory-bound test.
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize, usize) {
        let named = self.named.as_ref().map_or(0, |n| n.tail.len() + n.normaliser.held());
        (self.tail.len(), self.pending.len(), named)
    }

    fn keep_tail(&mut self, chunk: &[u8]) {
        let cap = self.scanner.tail_len;
        let end = self.tail_start + (self.tail.len() + chunk.len()) as u64;
        if chunk.len() >= cap {
            let from = chunk.len() - cap;
            self.before = if from > 0 { Some(chunk[from - 1]) } else { self.tail.last().copied().or(self.before) };
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[from..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let drop = self.tail.len().saturating_sub(cap);
            if drop > 0 {
                self.before = Some(self.tail[drop - 1]);
                self.tail.drain(..drop);
            }
        }
        self.tail_start = end - self.tail.len() as u64;
        // An undecided anchor needs at most `MAX_WINDOW` bytes, so it always
        // lies inside the tail; this only bounds memory if that ever broke.
        let start = self.tail_start;
        self.pending.retain(|&(at, _)| at >= start);
    }
}

impl NamedView {
    /// Looks for a named secret in this chunk's view, including forms that
    /// straddle its start, then keeps the view's tail.
    fn scan(&mut self, scanner: &Scanner) -> Option<Finding> {
        let boundary = scanner.named_boundary;
        let keep = boundary.min(self.tail.len());
        self.joint.clear();
        self.joint.extend_from_slice(&self.tail[self.tail.len() - keep..]);
        self.joint.extend_from_slice(&self.view[..boundary.min(self.view.len())]);
        let found = scanner.named.as_ref().and_then(|forms| {
            scanner
                .find_named(forms, &self.joint, |start, end| start < keep && end > keep)
                .or_else(|| scanner.find_named(forms, &self.view, |_, _| true))
        });
        if self.view.len() >= boundary {
            self.tail.clear();
            self.tail.extend_from_slice(&self.view[self.view.len() - boundary..]);
        } else {
            self.tail.extend_from_slice(&self.view);
            let drop = self.tail.len().saturating_sub(boundary);
            self.tail.drain(..drop);
        }
        found
    }
}
