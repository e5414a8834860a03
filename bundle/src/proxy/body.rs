//! Moves one message body between sockets without buffering it whole.
//!
//! Bodies stream in pieces no larger than the read buffer. Request bodies pass
//! through DLP piece by piece before each piece is forwarded, so a secret is
//! caught before the piece that completes it leaves (a secret split across
//! pieces can leak its prefix, never the whole). Every byte forwarded counts
//! toward the scan cap, chunk framing included, and chunk extensions and
//! trailers are scanned as a stream of their own: they reach the origin too.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::readbuf::ReadBuf;
use super::session::BODY_PIECE;
use crate::dlp::{Scanner, StreamScanner};
use crate::http::{BodyFraming, Chunked};

#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error("body i/o: {0}")]
    Io(#[from] io::Error),
    #[error("body stalled past the idle timeout")]
    Timeout,
    #[error("body ended early")]
    Eof,
    #[error("body framing invalid")]
    Framing,
    /// DLP found a secret; the rule id only.
    #[error("body blocked by {0}")]
    Dlp(String),
    #[error("body exceeds the scan limit")]
    TooLarge,
}

/// DLP over a request body, with the size cap that keeps scanning bounded.
pub(super) struct Scan<'a> {
    /// The body's payload (de-chunked).
    payload: StreamScanner<'a>,
    /// Chunk extensions and trailer fields.
    meta: StreamScanner<'a>,
    /// Bytes forwarded so far, framing included.
    sent: u64,
    max: u64,
}

fn verdict(found: Option<crate::dlp::Finding>) -> Result<(), BodyError> {
    found.map_or(Ok(()), |f| Err(BodyError::Dlp(f.rule)))
}

impl<'a> Scan<'a> {
    pub(super) fn new(scanner: &'a Scanner, max: u64) -> Self {
        Self { payload: scanner.stream(), meta: scanner.stream(), sent: 0, max }
    }

    /// Counts `n` bytes about to be forwarded against the cap.
    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.sent += n as u64;
        if self.sent > self.max { Err(BodyError::TooLarge) } else { Ok(()) }
    }

    fn finish(&mut self) -> Result<(), BodyError> {
        verdict(self.payload.finish())?;
        verdict(self.meta.finish())
    }
}

/// How to move one body.
pub(super) struct Relay<'s, 'a> {
    pub framing: BodyFraming,
    pub idle: Duration,
    /// Decode a chunked body into a close-delimited one (for HTTP/1.0 clients).
    pub dechunk: bool,
    pub scan: Option<&'s mut Scan<'a>>,
}

impl Relay<'_, '_> {
    /// Moves the body from `pre` (then `src`) to `dst`; bytes past its end stay in `pre`.
    pub(super) async fn run<R, W>(mut self, pre: &mut ReadBuf, src: &mut R, dst: &mut W) -> Result<(), BodyError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut remaining = match self.framing {
            BodyFraming::None => return Ok(()),
            BodyFraming::Length(n) => n,
            BodyFraming::Chunked | BodyFraming::UntilClose => 0,
        };
        let size_hint = if remaining > 0 { usize::try_from(remaining).unwrap_or(usize::MAX) } else { BODY_PIECE };
        pre.widen(size_hint.min(BODY_PIECE));
        let mut chunked = Chunked::default();
        let mut decoded = Vec::new();
        let mut meta = Vec::new();
        loop {
            if pre.is_empty() {
                let n = tokio::time::timeout(self.idle, pre.fill(src)).await.map_err(|_| BodyError::Timeout)??;
                if n == 0 {
                    if self.framing != BodyFraming::UntilClose {
                        return Err(BodyError::Eof);
                    }
                    break;
                }
            }
            let data = pre.data();
            match self.framing {
                BodyFraming::Length(_) => {
                    let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(data.len());
                    self.count(take)?;
                    self.check(&data[..take])?;
                    dst.write_all(&data[..take]).await?;
                    pre.consume(take);
                    remaining -= take as u64;
                    if remaining == 0 {
                        break;
                    }
                }
                BodyFraming::UntilClose => {
                    self.count(data.len())?;
                    self.check(data)?;
                    dst.write_all(data).await?;
                    let n = data.len();
                    pre.consume(n);
                }
                BodyFraming::Chunked => {
                    let mut payload_verdict = Ok(());
                    decoded.clear();
                    meta.clear();
                    let (dechunk, scan) = (self.dechunk, &mut self.scan);
                    let used = chunked
                        .feed(
                            data,
                            |d| {
                                if let (Some(s), Ok(())) = (scan.as_mut(), &payload_verdict) {
                                    payload_verdict = verdict(s.payload.feed(d));
                                }
                                if dechunk {
                                    decoded.extend_from_slice(d);
                                }
                            },
                            |m| meta.extend_from_slice(m),
                        )
                        .map_err(|_| BodyError::Framing)?;
                    payload_verdict?;
                    if let Some(s) = self.scan.as_mut() {
                        verdict(s.meta.feed(&meta))?;
                    }
                    self.count(used)?;
                    dst.write_all(if self.dechunk { &decoded } else { &data[..used] }).await?;
                    pre.consume(used);
                    if chunked.is_done() {
                        break;
                    }
                }
                BodyFraming::None => unreachable!("returned above"),
            }
        }
        self.scan.as_mut().map_or(Ok(()), |s| s.finish())
    }

    fn check(&mut self, data: &[u8]) -> Result<(), BodyError> {
        self.scan.as_mut().map_or(Ok(()), |s| verdict(s.payload.feed(data)))
    }

    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.scan.as_mut().map_or(Ok(()), |s| s.count(n))
    }
}
