//! Finds any of a set of long literals (the encoded named secrets) in one pass.
//! A general multi-pattern automaton walks every byte and drops well below
//! 1 GB/s once there are more than a few dozen patterns; instead every literal
//! is at least `min_len` long, so probing one 4-byte gram every `stride` bytes
//! (stride = min_len - 3) is guaranteed to land inside each occurrence. Each
//! probe is a one-bit test in an L1-sized bitmap; only the rare probe that
//! passes is checked against the exact gram table and the literal itself.
//! Grams are case-folded on both sides (one OR per probe), so a literal can
//! be matched regardless of ASCII case (hex) or exactly (everything else).

const GRAM: usize = 4;
/// Longer strides would index more grams per literal for little gain.
const MAX_STRIDE: usize = 16;
/// Bitmap size: 16 KiB stays in L1, and a fixed power of two lets an index
/// taken from a hash's top bits go unchecked. One bit per gram passes about
/// grams / 2^17 of the probes in vain (0.4% for the benchmark's 8 secrets:
/// 41 forms, 492 grams; 4% at 5,000 grams). A second bit would cut that to a
/// few in ten thousand, but every probe would pay a second load, shift and
/// test, while a vain pass costs only one lookup in the sorted gram table.
const BLOOM_BITS: usize = 1 << 17;

/// The shortest literal this finder accepts (one gram).
pub(super) const MIN_LITERAL_LEN: usize = GRAM;

/// One literal to find.
#[derive(Clone)]
pub(super) struct Literal {
    pub bytes: Vec<u8>,
    /// Match regardless of ASCII case (hex digits are written in either).
    pub any_case: bool,
}

pub(super) struct Literals {
    patterns: Vec<Literal>,
    stride: usize,
    bloom: Box<[u64; BLOOM_BITS / 64]>,
    /// (gram, pattern index, offset of the gram in the pattern), sorted by gram.
    grams: Vec<(u32, u32, u32)>,
    max_len: usize,
}

/// The gram at `at`, case-folded: setting bit 5 of every byte maps `A-Z` onto
/// `a-z` (and some punctuation onto other punctuation, which only costs a
/// rare extra check).
fn gram_at(text: &[u8], at: usize) -> u32 {
    let mut g = [0u8; GRAM];
    g.copy_from_slice(&text[at..at + GRAM]);
    u32::from_le_bytes(g) | 0x2020_2020
}

/// The bitmap position of a gram: the top bits of a multiplicative hash,
/// which mix every bit of the gram.
fn slot(gram: u32) -> usize {
    (u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BLOOM_BITS.trailing_zeros())) as usize
}

impl Literals {
    /// Every pattern must be at least `MIN_LITERAL_LEN` bytes long.
    pub fn new(patterns: Vec<Literal>) -> Self {
        let min_len = patterns.iter().map(|p| p.bytes.len()).min().unwrap_or(GRAM);
        assert!(min_len >= GRAM, "literal shorter than {GRAM} bytes");
        let stride = (min_len - GRAM + 1).min(MAX_STRIDE);
        let mut grams = Vec::with_capacity(patterns.len() * stride);
        for (i, p) in patterns.iter().enumerate() {
            for off in 0..stride {
                grams.push((gram_at(&p.bytes, off), i as u32, off as u32));
            }
        }
        grams.sort_unstable();
        let mut bloom = Box::new([0; BLOOM_BITS / 64]);
        for &(gram, _, _) in &grams {
            let at = slot(gram);
            bloom[at / 64] |= 1 << (at % 64);
        }
        Literals { max_len: patterns.iter().map(|p| p.bytes.len()).max().unwrap_or(0), patterns, stride, bloom, grams }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn maybe(&self, gram: u32) -> bool {
        let at = slot(gram);
        (self.bloom[at / 64] >> (at % 64)) & 1 == 1
    }

    /// The index of the first pattern found wholly inside `text` whose span
    /// `accept` agrees to.
    pub fn find(&self, text: &[u8], accept: impl Fn(usize, usize) -> bool) -> Option<usize> {
        let last = text.len().checked_sub(GRAM)?;
        let mut at = 0;
        while at <= last {
            let gram = gram_at(text, at);
            if self.maybe(gram)
                && let Some(pat) = self.confirm(text, at, gram, &accept)
            {
                return Some(pat);
            }
            at += self.stride;
        }
        None
    }

    /// The first pattern holding `gram` at its offset that `text` holds around
    /// `at`. Kept out of line, and rarely reached, so the probe loop keeps its
    /// values in registers.
    #[cold]
    #[inline(never)]
    fn confirm(&self, text: &[u8], at: usize, gram: u32, accept: &impl Fn(usize, usize) -> bool) -> Option<usize> {
        let first = self.grams.partition_point(|e| e.0 < gram);
        for &(g, pat, off) in &self.grams[first..] {
            if g != gram {
                break;
            }
            let (pat, off) = (pat as usize, off as usize);
            let Some(start) = at.checked_sub(off) else {
                continue;
            };
            let p = &self.patterns[pat];
            let end = start + p.bytes.len();
            let Some(seen) = text.get(start..end) else {
                continue;
            };
            let same = if p.any_case { seen.eq_ignore_ascii_case(&p.bytes) } else { seen == p.bytes };
            if same && accept(start, end) {
                return Some(pat);
            }
        }
        None
    }
}
