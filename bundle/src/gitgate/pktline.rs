//! Strict pkt-line framing, the length-prefixed packets of the git wire protocol.
//!
//! git-gate must read a push's ref-update commands before anything reaches the
//! upstream, so this parser is the one place agent bytes are interpreted: it
//! never panics, never guesses, and refuses any length that is not four hex
//! digits naming a legal packet.

/// Largest packet git allows on the wire, length prefix included.
pub const MAX_PKT_LEN: usize = 65520;
/// Largest payload a packet can carry.
pub const MAX_PAYLOAD: usize = MAX_PKT_LEN - 4;

/// One packet: data, or one of the special zero-payload markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    /// `0000`: end of a section.
    Flush,
    /// `0001`: protocol v2 delimiter.
    Delim,
    /// `0002`: protocol v2 response end.
    ResponseEnd,
    Data(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    #[error("pkt-line length {0:?} is not four hex digits")]
    BadHex([u8; 4]),
    #[error("pkt-line length {0} is reserved or below the 4-byte header")]
    BadLength(usize),
    #[error("pkt-line length {0} exceeds the maximum of {MAX_PKT_LEN}")]
    TooLong(usize),
}

/// Decodes one packet from the front of `buf`.
///
/// `Ok(None)` means `buf` holds only part of a packet; otherwise returns the
/// packet and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Pkt, usize)>, PktError> {
    let Some(head) = buf.get(..4) else { return Ok(None) };
    let head: [u8; 4] = [head[0], head[1], head[2], head[3]];
    let mut len = 0usize;
    for b in head {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(PktError::BadHex(head)),
        };
        len = len * 16 + usize::from(digit);
    }
    let pkt = match len {
        0 => Pkt::Flush,
        1 => Pkt::Delim,
        2 => Pkt::ResponseEnd,
        3 => return Err(PktError::BadLength(len)),
        n if n > MAX_PKT_LEN => return Err(PktError::TooLong(n)),
        n => match buf.get(4..n) {
            Some(data) => Pkt::Data(data.to_vec()),
            None => return Ok(None),
        },
    };
    Ok(Some((pkt, len.max(4))))
}

/// Appends `pkt` to `out`. Payloads longer than [`MAX_PAYLOAD`] are a caller bug
/// and are split into several packets rather than producing an illegal one.
pub fn encode(pkt: &Pkt, out: &mut Vec<u8>) {
    match pkt {
        Pkt::Flush => out.extend_from_slice(b"0000"),
        Pkt::Delim => out.extend_from_slice(b"0001"),
        Pkt::ResponseEnd => out.extend_from_slice(b"0002"),
        Pkt::Data(data) if data.is_empty() => out.extend_from_slice(b"0004"),
        Pkt::Data(data) => {
            for chunk in data.chunks(MAX_PAYLOAD) {
                out.extend_from_slice(format!("{:04x}", chunk.len() + 4).as_bytes());
                out.extend_from_slice(chunk);
            }
        }
    }
}

/// Encodes one data packet.
pub fn data(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    encode(&Pkt::Data(payload.to_vec()), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_data_and_specials() {
        assert_eq!(decode(b"0009hello"), Ok(Some((Pkt::Data(b"hello".to_vec()), 9))));
        assert_eq!(decode(b"0000rest"), Ok(Some((Pkt::Flush, 4))));
        assert_eq!(decode(b"0001"), Ok(Some((Pkt::Delim, 4))));
        assert_eq!(decode(b"0004"), Ok(Some((Pkt::Data(vec![]), 4))));
    }

    #[test]
    fn partial_input_asks_for_more() {
        assert_eq!(decode(b"00"), Ok(None));
        assert_eq!(decode(b"0009hel"), Ok(None));
    }

    #[test]
    fn refuses_bad_lengths() {
        assert_eq!(decode(b"0003"), Err(PktError::BadLength(3)));
        assert_eq!(decode(b"fff1"), Err(PktError::TooLong(0xfff1)));
        assert_eq!(decode(b"00g9"), Err(PktError::BadHex(*b"00g9")));
        assert_eq!(decode(b"+009"), Err(PktError::BadHex(*b"+009")));
    }
}
