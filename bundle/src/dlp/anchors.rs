//! Finds the built-in rules' anchor literals. Teddy (aho-corasick's SIMD
//! packed searcher) is used directly where the CPU has it: in anchor-dense
//! input each hit restarts the search, and the packed searcher restarts at
//! roughly half the cost of the general automaton, which is the fallback.

use aho_corasick::{AhoCorasick, Input, MatchKind, Span, packed};

pub(super) enum Anchors {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Anchors {
    pub fn new(literals: &[&str]) -> anyhow::Result<Self> {
        let packed =
            packed::Config::new().match_kind(packed::MatchKind::LeftmostFirst).builder().extend(literals).build();
        match packed {
            Some(searcher) => Ok(Anchors::Packed(searcher)),
            None => Self::automaton(literals),
        }
    }

    /// The portable finder, used where SIMD is missing.
    pub fn automaton(literals: &[&str]) -> anyhow::Result<Self> {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(literals)
            .map_err(|e| anyhow::anyhow!("dlp: building the credential anchors: {e}"))?;
        Ok(Anchors::Automaton(ac))
    }

    /// The leftmost anchor starting at or after `at`: (start, end, literal index).
    pub fn find(&self, text: &[u8], at: usize) -> Option<(usize, usize, usize)> {
        match self {
            Anchors::Packed(s) => {
                s.find_in(text, Span::from(at..text.len())).map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            }
            Anchors::Automaton(ac) => {
                ac.find(Input::new(text).range(at..)).map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            }
        }
    }
}
