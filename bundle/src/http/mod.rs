//! HTTP/1.1 message heads and body framing, parsed strictly.
//!
//! The proxy is the agent's only HTTP path out, so any place where it and an
//! origin could read the same bytes differently (obs-fold, bare LF, two
//! Content-Lengths, Content-Length next to Transfer-Encoding) is a smuggling
//! hole. This module refuses all of those instead of guessing, and borrows
//! from the read buffer so a request costs no copies.

mod chunked;
mod headers;
mod request;
mod response;
mod target;

pub use chunked::{ChunkError, Chunked};
pub use headers::{Header, is_hop_by_hop, listed_in_connection};
pub use request::{RequestHead, parse_request};
pub use response::{ResponseHead, parse_response};
pub use target::Target;

/// Why a head was refused. Never carries request bytes, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("head exceeds the header size limit")]
    TooLarge,
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("unusable request target: {0}")]
    Target(&'static str),
}

impl HeadError {
    /// The machine-readable rule sent in `X-Bottle-Block`.
    pub fn rule(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "header-too-large",
            HeadError::Malformed(_) => "malformed-request",
            HeadError::Target(_) => "bad-target",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"HTTP/1.1" => Some(Version::Http11),
            b"HTTP/1.0" => Some(Version::Http10),
            _ => None,
        }
    }
}

/// How a message body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Only responses: the body runs until the origin closes.
    UntilClose,
}
