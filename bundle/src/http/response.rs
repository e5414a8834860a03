//! The origin's response head, read by the proxy to find where the body ends
//! so the connection can be reused.

use super::headers::{Header, connection_tokens, content_length, parse_header, walk_lines};
use super::{BodyFraming, HeadError, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    pub version: Version,
    pub status: u16,
    /// The whole status line without CRLF, forwarded as received.
    pub status_line: &'a [u8],
    pub headers: Vec<Header<'a>>,
    pub len: usize,
    length: Option<u64>,
    chunked: bool,
}

impl ResponseHead<'_> {
    /// How the body ends, given whether the request was `HEAD` (RFC 9112 6.3).
    pub fn framing(&self, head_request: bool) -> BodyFraming {
        if head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            BodyFraming::None
        } else if self.chunked {
            BodyFraming::Chunked
        } else {
            match self.length {
                Some(0) => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::UntilClose,
            }
        }
    }

    /// Whether the origin lets us send another request on this connection.
    pub fn reusable(&self) -> bool {
        self.version == Version::Http11 && !connection_tokens(&self.headers).any(|t| t.eq_ignore_ascii_case(b"close"))
    }
}

/// Parses a response head; `Ok(None)` means more bytes are needed.
pub fn parse_response(buf: &[u8], max: usize) -> Result<Option<ResponseHead<'_>>, HeadError> {
    let mut start = None;
    let mut headers = Vec::new();
    let Some(len) = walk_lines(buf, max, |i, line| {
        if i == 0 {
            start = Some((status_line(line)?, line));
        } else {
            headers.push(parse_header(line, true)?);
        }
        Ok(())
    })?
    else {
        return Ok(None);
    };
    let ((version, status), status_line) = start.ok_or(HeadError::Malformed("missing status line"))?;
    let mut length = None;
    let mut chunked = false;
    for h in &headers {
        if h.is("content-length") {
            let n = content_length(h.value)?;
            if length.is_some_and(|m| m != n) {
                return Err(HeadError::Malformed("conflicting content-length"));
            }
            length = Some(n);
        } else if h.is("transfer-encoding") {
            // Only a final `chunked` frames the body; anything else is read until close.
            chunked =
                h.value.rsplit(|&b| b == b',').next().is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                length = None;
            }
        }
    }
    if chunked {
        length = None;
    }
    Ok(Some(ResponseHead { version, status, status_line, headers, len, length, chunked }))
}

fn status_line(line: &[u8]) -> Result<(Version, u16), HeadError> {
    let bad = HeadError::Malformed("invalid status line");
    if line.len() < 12 || line[8] != b' ' || (line.len() > 12 && line[12] != b' ') {
        return Err(bad);
    }
    let version = Version::parse(&line[..8]).ok_or(bad)?;
    let code = &line[9..12];
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Ok((version, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_rules() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 4096).unwrap().unwrap();
        assert_eq!(r.framing(false), BodyFraming::Length(5));
        assert_eq!(r.framing(true), BodyFraming::None);
        assert!(r.reusable());
        let c = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", 4096)
            .unwrap()
            .unwrap();
        assert_eq!(c.framing(false), BodyFraming::Chunked);
        assert!(!c.reusable());
        let u = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", 4096).unwrap().unwrap();
        assert_eq!(u.framing(false), BodyFraming::UntilClose);
        let n = parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 4096).unwrap().unwrap();
        assert_eq!(n.framing(false), BodyFraming::None);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 4096).is_err());
    }
}
