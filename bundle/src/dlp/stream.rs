//! Body scanning across chunk boundaries in bounded memory. Between chunks a
//! stream keeps only the last `tail_len` bytes: enough for a literal that
//! straddles the boundary and for any built-in verifier still undecided when
//! the chunk ended (those anchors are remembered and retried, not rescanned).

use super::rules::Hay;
use super::{Finding, Scanner, Verdict};

pub struct StreamScanner<'a> {
    scanner: &'a Scanner,
    /// The last bytes seen, at most `scanner.tail_len`.
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
}

impl<'a> StreamScanner<'a> {
    pub(super) fn new(scanner: &'a Scanner) -> Self {
        Self {
            scanner,
            tail: Vec::with_capacity(scanner.tail_len),
            before: None,
            tail_start: 0,
            pending: Vec::new(),
            joint: Vec::with_capacity(2 * scanner.boundary),
            found: Vec::new(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Option<Finding> {
        if chunk.is_empty() {
            return None;
        }
        let finding = self.scan_chunk(chunk);
        self.keep_tail(chunk);
        finding
    }

    /// Decides the anchors that were waiting for more input, now that there is none.
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
        finding
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
        if let Some(f) = scanner.scan_text(&self.joint, &hay, tail_len - keep, Some(keep), &mut self.found) {
            return Some(f);
        }
        if let Some(f) = scanner.scan_text(chunk, &hay, tail_len, None, &mut self.found) {
            return Some(f);
        }
        let base = self.tail_start;
        self.pending.clear();
        self.pending.extend(self.found.iter().map(|&(pos, anchor)| (base + pos as u64, anchor)));
        self.pending.sort_unstable();
        self.pending.dedup();
        None
    }

    /// Bytes and undecided anchors kept between chunks, for the memory-bound test.
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize) {
        (self.tail.len(), self.pending.len())
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
