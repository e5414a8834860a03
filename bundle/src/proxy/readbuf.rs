//! A growable read buffer that hands out what it holds and keeps the rest.
//!
//! Heads are parsed in place from here, and bytes read past the end of one
//! message (a pipelined request, the start of a TLS ClientHello) stay for the
//! next step instead of being lost.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub(super) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

impl ReadBuf {
    /// Starts at `initial` bytes and never grows past `limit`.
    pub(super) fn new(initial: usize, limit: usize) -> Self {
        Self { buf: vec![0; initial.min(limit)], start: 0, end: 0, limit }
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Lets later reads take up to `n` bytes at once (never past the limit), so
    /// a body streams in large pieces however small the buffer started.
    pub(super) fn widen(&mut self, n: usize) {
        let want = n.min(self.limit);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }

    /// Reads once from `r`; `Ok(0)` is end of stream.
    pub(super) async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= self.limit {
                return Err(io::Error::other("read buffer full"));
            }
            let grown = (self.buf.len() * 2).clamp(1024, self.limit);
            self.buf.resize(grown, 0);
        }
        let n = r.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
