//! Chunked transfer coding, decoded incrementally while the raw bytes pass through.
//!
//! The proxy forwards chunked bodies unchanged (so it never re-frames what the
//! origin reads), but it must know where the body ends and hand the decoded
//! data to DLP. Chunk extensions and trailer fields reach the origin too, so
//! they are handed out as well (as "meta" bytes, a line break after each),
//! for DLP to scan like the payload. Chunk-size lines and trailers are
//! bounded so a client cannot make the proxy buffer without limit.

/// Longest chunk-size line (with extensions) we accept.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes we accept after the last chunk.
pub const MAX_TRAILERS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size, size: 0, digits: 0, line: 0, trailers: 0 }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of the chunked body from `input`, calling `data` with each
    /// run of decoded payload and `meta` with each run of chunk-extension or
    /// trailer bytes (`b"\n"` ends each extension and trailer line). Returns
    /// how many bytes belong to the body; fewer than `input.len()` only once
    /// the body is complete.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
        mut meta: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        // Where the current run of meta bytes started in `input`.
        let mut meta_from = matches!(self.state, State::Ext | State::TrailerLine).then_some(0);
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            if b == b'\r'
                && let Some(from) = meta_from.take()
            {
                meta(&input[from..i]);
                meta(b"\n");
            }
            match self.state {
                State::Data => {
                    let n = usize::try_from(self.size).unwrap_or(usize::MAX).min(input.len() - i);
                    data(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size => match hex(b) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > 16 {
                            return Err(ChunkError("chunk size too long"));
                        }
                        self.size = self.size << 4 | u64::from(d);
                    }
                    None if self.digits == 0 => return Err(ChunkError("missing chunk size")),
                    None if b == b';' => {
                        self.state = State::Ext;
                        meta_from = Some(i + 1);
                    }
                    None if b == b'\r' => self.state = State::SizeLf,
                    None => return Err(ChunkError("invalid chunk size")),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' | b' '..=b'~' => {}
                    _ => return Err(ChunkError("invalid chunk extension")),
                },
                State::SizeLf => {
                    expect(b, b'\n')?;
                    self.digits = 0;
                    self.line = 0;
                    self.state = if self.size == 0 { State::TrailerStart } else { State::Data };
                }
                State::DataCr => {
                    expect(b, b'\r')?;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    expect(b, b'\n')?;
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.state = match b {
                        b'\r' => State::FinalLf,
                        b'!'..=b'~' => {
                            meta_from = Some(i);
                            State::TrailerLine
                        }
                        _ => return Err(ChunkError("invalid trailer byte")),
                    };
                    self.count_trailer()?;
                }
                State::TrailerLine => {
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\t' | b' '..=b'~' | 0x80.. => {}
                        _ => return Err(ChunkError("invalid trailer byte")),
                    }
                    self.count_trailer()?;
                }
                State::TrailerLf => {
                    expect(b, b'\n')?;
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    expect(b, b'\n')?;
                    self.state = State::Done;
                }
                State::Done => unreachable!("loop stops at Done"),
            }
            if matches!(self.state, State::Size | State::Ext) {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(ChunkError("chunk size line too long"));
                }
            }
            i += 1;
        }
        if let Some(from) = meta_from {
            meta(&input[from..i]);
        }
        Ok(i)
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS { Err(ChunkError("trailers too long")) } else { Ok(()) }
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn expect(b: u8, want: u8) -> Result<(), ChunkError> {
    if b == want { Ok(()) } else { Err(ChunkError("missing CRLF")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_in_pieces(body: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        for part in body.chunks(piece.max(1)) {
            used += c.feed(part, |d| out.extend_from_slice(d), |_| {})?;
            if c.is_done() {
                break;
            }
        }
        Ok((out, used))
    }

    #[test]
    fn decodes_with_extensions_and_trailers() {
        let body = b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (data, used) = decode_in_pieces(body, 3).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(&body[used..], b"NEXT");
    }

    /// Extensions and trailers reach the origin, so DLP must be shown them,
    /// whatever the piece boundaries.
    #[test]
    fn extensions_and_trailers_are_handed_out_as_meta() {
        let body = b"5;name=\"ext secret\"\r\nhello\r\n0;last\r\nX-Trailer: trailer secret\r\nX-Two: 2\r\n\r\n";
        for piece in 1..=body.len() {
            let (mut c, mut data, mut meta, mut used) = (Chunked::default(), Vec::new(), Vec::new(), 0);
            for part in body.chunks(piece) {
                used += c.feed(part, |d| data.extend_from_slice(d), |m| meta.extend_from_slice(m)).unwrap();
            }
            assert!(c.is_done() && used == body.len(), "piece {piece}");
            assert_eq!(data, b"hello");
            let meta = String::from_utf8(meta).unwrap();
            assert_eq!(meta, "name=\"ext secret\"\nlast\nX-Trailer: trailer secret\nX-Two: 2\n", "piece {piece}");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [&b"x\r\n"[..], b"5\nhello", b"5\r\nhelloX", b"11111111111111111\r\n", b"\r\n"] {
            assert!(decode_in_pieces(bad, 2).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        #[test]
        fn round_trips_any_split(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..10), piece in 1usize..64) {
            let mut body = Vec::new();
            let mut want = Vec::new();
            for c in &chunks {
                body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                body.extend_from_slice(c);
                body.extend_from_slice(b"\r\n");
                want.extend_from_slice(c);
            }
            body.extend_from_slice(b"0\r\n\r\n");
            let (data, used) = decode_in_pieces(&body, piece).unwrap();
            prop_assert_eq!(data, want);
            prop_assert_eq!(used, body.len());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), piece in 1usize..32) {
            let _ = decode_in_pieces(&bytes, piece);
        }
    }
}
