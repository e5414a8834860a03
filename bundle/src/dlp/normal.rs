//! The normalised view that named secrets are matched in. Instead of listing
//! every spelling an encoder might produce, the text goes through one layer of
//! decoding, so a secret matches however its characters were escaped, one by
//! one or all at once:
//!
//! - `%XY` (either hex case) becomes the byte it encodes;
//! - JSON string escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
//!   `\uXXXX`, surrogate pairs included) become the characters they encode;
//! - line breaks are dropped: a written LF (with a CR right before it), an
//!   escaped CR or LF (`%0A`, `\n`, `\u000d`), and the spaces and tabs that
//!   indent the line after a written LF, so base64 or hex wrapped at any line
//!   length (GNU `base64` wraps at 76, PEM at 64, `xxd -p` at 60) reads as
//!   one run. A written CR alone stays.
//!
//! Decoded output is not decoded again (`%255C` gives `%5C`, not `\`), and an
//! escape that is not well formed passes through as written. Hex case is
//! folded by the literal finder rather than here, because base64 is
//! case-sensitive. One pass ([`Stops`]) finds the `%`, `\` and LF bytes that
//! may change the view; those that decode to themselves (most `%` and `\` in
//! plain text) stay inside the runs that are copied whole, so plain text
//! costs little more than a copy.

/// Longest escape: `\uD83D\uDE00`. Less than that is held back at a chunk end.
pub(super) const MAX_ESCAPE: usize = 12;

/// Streaming normaliser: raw chunks in, normalised bytes appended to `out`.
#[derive(Debug, Default)]
pub(super) struct Normaliser {
    /// The start of an escape, or a CR, cut by the chunk end; shorter than `MAX_ESCAPE`.
    held: Vec<u8>,
    /// The last byte was a written line break: indentation that follows is dropped.
    after_break: bool,
    /// The escapes the last `feed` decoded, as (start, length) in that chunk; a start
    /// before the chunk (an escape held back from the one before) is negative.
    decoded: Vec<(isize, usize)>,
}

impl Normaliser {
    /// The normalised form of a whole buffer (a request head, a secret).
    pub fn whole(data: &[u8]) -> Vec<u8> {
        let mut n = Normaliser::default();
        let mut out = Vec::with_capacity(data.len());
        n.feed(data, &mut out);
        n.finish(&mut out);
        out
    }

    /// Appends the normalised form of `chunk` to `out`, holding back an escape cut at its end.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.decoded.clear();
        if self.held.is_empty() {
            self.run(chunk, 0, false, out);
        } else {
            let mut joined = std::mem::take(&mut self.held);
            let before = joined.len() as isize;
            joined.extend_from_slice(chunk);
            self.run(&joined, before, false, out);
        }
    }

    /// Where the last `feed` decoded an escape: only there can the view have
    /// lost a form that the bytes as sent hold (`%4` before `1abc`, `\` before `n...`).
    /// Dropped line breaks and indentation are not listed: they hide no form that
    /// [`view_keeps`] accepts.
    pub fn decoded(&self) -> &[(isize, usize)] {
        &self.decoded
    }

    /// Ends the input: a held escape was not one after all.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.held);
        self.run(&held, held.len() as isize, true, out);
        self.after_break = false;
    }

    /// Bytes held between chunks, for the memory-bound test.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// `data` starts `before` bytes before the chunk being fed.
    fn run(&mut self, data: &[u8], before: isize, last: bool, out: &mut Vec<u8>) {
        // `data[..at]` is emitted or consumed.
        let mut at = 0;
        if self.after_break {
            at = indent_end(data, 0);
            if at == data.len() {
                return;
            }
            self.after_break = false;
        }
        for p in Stops::new(data) {
            if p < at {
                continue;
            }
            copy_run(out, data, at, p);
            let cr_before = p > at && data[p - 1] == b'\r';
            let Some(used) = self.special(&data[p..], cr_before, last, out) else {
                self.held.extend_from_slice(&data[p..]);
                return;
            };
            if used > 1 {
                self.decoded.push((p as isize - before, used));
            }
            at = p + used;
            if self.after_break {
                at = indent_end(data, at);
                if at == data.len() {
                    return;
                }
                self.after_break = false;
            }
        }
        match data[at..].split_last() {
            // A CR at the end may be the first half of a CRLF.
            Some((b'\r', before)) if !last => {
                out.extend_from_slice(before);
                self.held.push(b'\r');
            }
            _ => out.extend_from_slice(&data[at..]),
        }
    }

    /// Decodes the `%`, `\` or `\n` that starts `rest` into `out` and returns
    /// the bytes it used, or `None` if `rest` ends before that is known (never
    /// when `last`). `cr_before`: the last byte put in `out` is a written CR
    /// right before this byte.
    fn special(&mut self, rest: &[u8], cr_before: bool, last: bool, out: &mut Vec<u8>) -> Option<usize> {
        match rest[0] {
            b'\n' => {
                if cr_before {
                    out.pop();
                }
                self.after_break = true;
                Some(1)
            }
            b'%' if rest.len() < 3 && !last => None,
            b'%' => match (rest.get(1).copied().and_then(hex), rest.get(2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    push_decoded(out, h << 4 | l);
                    Some(3)
                }
                _ => {
                    out.push(b'%');
                    Some(1)
                }
            },
            _ if rest.len() < 2 && !last => None,
            _ => {
                let simple = match rest.get(1) {
                    Some(b'"') => '"',
                    Some(b'\\') => '\\',
                    Some(b'/') => '/',
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(b'u') => return unicode(rest, last, out),
                    _ => {
                        out.push(b'\\');
                        return Some(1);
                    }
                };
                push_char(out, simple);
                Some(2)
            }
        }
    }
}

/// Whether an occurrence of `form` in the bytes as sent always shows in the view
/// as well, unless an escape decoded just before it takes some of its bytes
/// ([`Normaliser::decoded`]). True when the form holds no special byte (`%`,
/// `\`, CR, LF), does not start with indentation, and is too long to fit in
/// an escape held back at a chunk end (so a form in one is always cut by the
/// chunk boundary, where the stream looks at the bytes as sent anyway).
pub(super) fn view_keeps(form: &[u8]) -> bool {
    form.len() >= MAX_ESCAPE
        && !matches!(form.first(), Some(b' ' | b'\t'))
        && !form.iter().any(|b| matches!(b, b'%' | b'\\' | b'\r' | b'\n'))
}

/// False when the special byte starting `rest` surely decodes to itself (a `%`
/// without two hex digits, a `\` before no escape letter); true when it may
/// change the view or `rest` ends too soon to tell, which `special` decides.
/// Table lookups and no branch: in text the three special bytes and the
/// bytes after a `%` follow no pattern a predictor could learn, and a
/// mispredicted test here cost more than the rest of the step.
fn may_change(rest: &[u8]) -> bool {
    let [c, next, after, ..] = *rest else {
        return true;
    };
    let have = (CLASS[usize::from(next)] & (CLASS[usize::from(after)] | ESCAPE)) | ALWAYS;
    NEEDS[usize::from(c)] & have != 0
}

/// [`CLASS`] bit of a hex digit; [`NEEDS`] bit of `%`, which changes the
/// view when two follow.
const HEX: u8 = 1;
/// [`CLASS`] bit of a byte that makes a JSON escape after `\`; [`NEEDS`]
/// bit of `\`.
const ESCAPE: u8 = 2;
/// [`NEEDS`] bit of a line break, which always changes the view.
const ALWAYS: u8 = 4;

/// Per byte: `HEX`, `ESCAPE`, both or neither.
const CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut b = 0;
    while b < 256 {
        if hex(b as u8).is_some() {
            class[b] |= HEX;
        }
        if matches!(b as u8, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') {
            class[b] |= ESCAPE;
        }
        b += 1;
    }
    class
};

/// Per special byte, what must follow it for it to change the view.
const NEEDS: [u8; 256] = {
    let mut needs = [0; 256];
    needs[b'%' as usize] = HEX;
    needs[b'\\' as usize] = ESCAPE;
    needs[b'\n' as usize] = ALWAYS;
    needs
};

/// Bytes per block of [`Stops`]: one bit of a `u64` mask each.
const BLOCK: usize = 64;

/// The positions of the `%`, `\` and LF bytes in a buffer that
/// [`may_change`] the view, ascending. In text there is a special byte every
/// 30 to 80 bytes, and a memchr iterator pays a search restart (a call
/// through its dispatch and an unaligned first vector) at each; this finds
/// all of a 64-byte block's at once, in compares the compiler vectorises,
/// and drops those that change nothing before yielding any, so whether one
/// does is never a branch to predict.
struct Stops<'a> {
    data: &'a [u8],
    /// Where the current block starts in `data`.
    base: usize,
    /// The stops of the current block not yet yielded, one bit each.
    mask: u64,
}

impl<'a> Stops<'a> {
    fn new(data: &'a [u8]) -> Self {
        Stops { data, base: 0, mask: block_stops(data, 0) }
    }
}

impl Iterator for Stops<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += BLOCK;
            if self.base >= self.data.len() {
                return None;
            }
            self.mask = block_stops(self.data, self.base);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.base + bit)
    }
}

/// One bit per stop in the `BLOCK` bytes of `data` from `base`. A line
/// break always is one; the `%` and `\` are tested one by one, which text
/// without them (prose, base64) then never does.
fn block_stops(data: &[u8], base: usize) -> u64 {
    let block = &data[base..];
    let mut escapes = block_mask(block, |c| (c == b'%') | (c == b'\\'));
    let mut stops = block_mask(block, |c| c == b'\n');
    while escapes != 0 {
        let bit = escapes.trailing_zeros();
        escapes &= escapes - 1;
        stops |= u64::from(may_change(&data[base + bit as usize..])) << bit;
    }
    stops
}

/// One bit per byte that is `wanted` among the first `BLOCK` bytes of
/// `data`; a shorter last block is padded with zero bytes, which none of the
/// special bytes is.
fn block_mask(data: &[u8], wanted: impl Fn(u8) -> bool) -> u64 {
    match data.first_chunk::<BLOCK>() {
        Some(block) => full_block_mask(block, wanted),
        None => {
            let mut block = [0; BLOCK];
            block[..data.len()].copy_from_slice(data);
            full_block_mask(&block, wanted)
        }
    }
}

/// The flags are computed one byte each (plain compares, which the compiler
/// turns into vector ones), then each 8 flags are gathered into 8 bits by one
/// multiply: flag `j` (0 or 1, at bit `8 j`) times `2^(7 k + 7)` lands on bit
/// `56 + j` when `j + k = 7`, and no two terms share a bit.
fn full_block_mask(block: &[u8; BLOCK], wanted: impl Fn(u8) -> bool) -> u64 {
    let mut flags = [0u8; BLOCK];
    for (f, &c) in flags.iter_mut().zip(block) {
        *f = u8::from(wanted(c));
    }
    flags.chunks_exact(8).enumerate().fold(0, |mask, (i, eight)| {
        let word = u64::from_le_bytes(eight.try_into().expect("8 flags"));
        mask | (word.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i)
    })
}

/// `\uXXXX`, or a surrogate pair `\uD8XX\uDCXX`, at the start of `rest`.
fn unicode(rest: &[u8], last: bool, out: &mut Vec<u8>) -> Option<usize> {
    let unit = |at: usize| -> Option<u32> {
        let digits = rest.get(at..at + 4)?;
        digits.iter().try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hex(b)?)))
    };
    if rest.len() < 6 && !last {
        return None;
    }
    let Some(first) = unit(2) else {
        out.push(b'\\');
        return Some(1);
    };
    let mut used = 6;
    let mut code = first;
    if (0xD800..=0xDBFF).contains(&first) {
        if rest.len() < MAX_ESCAPE && !last {
            return None;
        }
        if let (Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) = (rest.get(6..8), unit(8)) {
            code = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
            used = MAX_ESCAPE;
        }
    }
    match char::from_u32(code) {
        Some(c) => push_char(out, c),
        // A lone surrogate encodes no character: keep the escape as written.
        None => out.extend_from_slice(&rest[..6]),
    }
    Some(used)
}

/// A decoded byte; line breaks are dropped like written ones.
fn push_decoded(out: &mut Vec<u8>, byte: u8) {
    if byte != b'\n' && byte != b'\r' {
        out.push(byte);
    }
}

/// Longest run [`copy_run`] copies with a fixed-size copy.
const RUN_WINDOW: usize = 128;

/// Appends `data[from..to]` to `out`. A run ends at every line break, so in
/// text most are under a hundred bytes, and `memcpy` picks its loop for such
/// a length with branches no predictor learns (about one miss per run in
/// `printable`). A copy of a fixed `RUN_WINDOW` bytes is a few vector moves
/// in line; the bytes past the run are cut off again.
fn copy_run(out: &mut Vec<u8>, data: &[u8], from: usize, to: usize) {
    match data[from..].first_chunk::<RUN_WINDOW>() {
        Some(window) if to - from <= RUN_WINDOW => {
            out.extend_from_slice(window);
            out.truncate(out.len() - (RUN_WINDOW - (to - from)));
        }
        _ => out.extend_from_slice(&data[from..to]),
    }
}

/// Where the indentation (spaces and tabs) starting at `from` ends.
fn indent_end(data: &[u8], from: usize) -> usize {
    data[from..].iter().position(|&b| b != b' ' && b != b'\t').map_or(data.len(), |n| from + n)
}

fn push_char(out: &mut Vec<u8>, c: char) {
    if c != '\n' && c != '\r' {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

const fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Normaliser;

    const CASES: &[(&str, &str)] = &[
        ("a%41b%2fc%2F", "aAb/c/"),
        ("100% sure, %zz, %4", "100% sure, %zz, %4"),
        (r#"q\"u\\o\/t\te"#, "q\"u\\o/t\te"),
        (r"\u0041\u00e9\u00E9", "A\u{e9}\u{e9}"),
        (r"\ud83d\ude00!", "\u{1f600}!"),
        (r"\ud800x\udc00", r"\ud800x\udc00"),
        (r"\u12 \q \", r"\u12 \q \"),
        ("QUJD\nREVG\r\n  R0hJ\n\tSktM", "QUJDREVGR0hJSktM"),
        ("a\rb\r", "a\rb\r"),
        (r"line%0Aone%0d\ntwo\r\u000a", "lineonetwo"),
        ("%255C%2541", "%5C%41"),
        ("caf\u{e9} \u{1f600}", "caf\u{e9} \u{1f600}"),
    ];

    #[test]
    fn decodes_one_layer_and_drops_line_breaks() {
        for (raw, want) in CASES {
            assert_eq!(String::from_utf8_lossy(&Normaliser::whole(raw.as_bytes())), *want, "{raw:?}");
        }
    }

    #[test]
    fn the_change_tables_say_what_the_escape_rules_say() {
        for c in [b'%', b'\\', b'\n'] {
            for next in 0..=255u8 {
                for after in 0..=255u8 {
                    let want = match c {
                        b'%' => super::hex(next).is_some() && super::hex(after).is_some(),
                        b'\\' => matches!(next, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u'),
                        _ => true,
                    };
                    assert_eq!(super::may_change(&[c, next, after]), want, "{c:?} {next:?} {after:?}");
                }
            }
            assert!(super::may_change(&[c, b'z']), "{c:?} before too few bytes to tell");
        }
    }

    #[test]
    fn stops_are_every_special_byte_that_may_change_the_view() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let data: Vec<u8> = (0..1000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"%\\\nab\0\xff$]\x0b"[(state % 10) as usize]
            })
            .collect();
        for from in 0..140 {
            for to in [from, from + 1, from + 63, from + 64, from + 65, from + 129, data.len()] {
                let text = &data[from..to];
                let want: Vec<usize> = (0..text.len())
                    .filter(|&i| matches!(text[i], b'%' | b'\\' | b'\n') && super::may_change(&text[i..]))
                    .collect();
                assert_eq!(super::Stops::new(text).collect::<Vec<_>>(), want, "{from}..{to}");
            }
        }
    }

    #[test]
    fn any_split_gives_the_same_view() {
        for (raw, want) in CASES {
            let raw = raw.as_bytes();
            for cut in 0..=raw.len() {
                for cut2 in cut..=raw.len() {
                    let (mut n, mut out) = (Normaliser::default(), Vec::new());
                    n.feed(&raw[..cut], &mut out);
                    n.feed(&raw[cut..cut2], &mut out);
                    n.feed(&raw[cut2..], &mut out);
                    assert!(n.held() < super::MAX_ESCAPE);
                    n.finish(&mut out);
                    assert_eq!(String::from_utf8_lossy(&out), *want, "{raw:?} cut at {cut}, {cut2}");
                }
            }
        }
    }
}
