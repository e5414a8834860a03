//! Reads the server name out of a TLS ClientHello without terminating TLS, and
//! tells a TLS server's first record from anything else.
//!
//! A CONNECT tunnel to an allowed host could otherwise carry a TLS session
//! whose SNI names another tenant of the same CDN (domain fronting). Only the
//! common case of a ClientHello in one record is parsed; anything else is
//! reported as malformed and the tunnel is cut, never let through unchecked.
//! Public for the fuzz target (`fuzz/fuzz_targets/client_hello.rs`).

/// Largest TLS record payload allowed (2^14 plus the expansion TLS 1.2 permits).
const MAX_RECORD: usize = 16384 + 2048;
/// A record's type, version and length.
pub const RECORD_HEADER: usize = 5;
/// Bytes needed to hold the largest ClientHello we will parse.
pub const MAX_HELLO_BYTES: usize = RECORD_HEADER + MAX_RECORD;
const HANDSHAKE: u8 = 0x16;
const ALERT: u8 = 0x15;

#[derive(Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    Incomplete,
    NotTls,
    Malformed,
    /// A complete ClientHello; the server name if it sent one.
    Parsed(Option<&'a str>),
}

/// Judges the start of a tunnel's client stream.
pub fn inspect(buf: &[u8]) -> Hello<'_> {
    match buf {
        [] => Hello::Incomplete,
        [t, ..] if *t != HANDSHAKE => Hello::NotTls,
        [_, major, ..] if *major != 3 => Hello::NotTls,
        _ if buf.len() < RECORD_HEADER => Hello::Incomplete,
        _ => {
            let len = payload_len(buf);
            if len == 0 || len > MAX_RECORD {
                Hello::Malformed
            } else if buf.len() < RECORD_HEADER + len {
                Hello::Incomplete
            } else {
                client_hello(&buf[RECORD_HEADER..RECORD_HEADER + len]).map_or(Hello::Malformed, Hello::Parsed)
            }
        }
    }
}

fn payload_len(buf: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([buf[3], buf[4]]))
}

/// The length of the record that starts `buf`, header included; `buf` must
/// hold at least a record header (true once [`inspect`] parsed a hello).
pub fn record_len(buf: &[u8]) -> usize {
    RECORD_HEADER + payload_len(buf)
}

/// Whether `buf` (at least a record header) starts the way a TLS server's
/// answer to a ClientHello does: a handshake record (ServerHello) or an
/// alert, in a TLS 1.x record version. A plaintext service answers otherwise.
pub fn is_server_record(buf: &[u8]) -> bool {
    matches!(buf, [HANDSHAKE | ALERT, 3, 0..=4, _, _, ..]) && (1..=MAX_RECORD).contains(&payload_len(buf))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Returns `Some(sni)` for a well-formed ClientHello, `None` when malformed.
fn client_hello(record: &[u8]) -> Option<Option<&str>> {
    let mut c = Cursor(record);
    if c.u8()? != 1 {
        return None;
    }
    let len = c.take(3)?;
    let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    // A hello split over several records is not parsed (see module docs).
    let mut body = Cursor(c.take(len)?);
    body.take(2 + 32)?;
    body.vec8()?;
    body.vec16()?;
    body.vec8()?;
    if body.0.is_empty() {
        return Some(None);
    }
    let mut exts = Cursor(body.vec16()?);
    let mut sni = None;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        if sni.is_some() {
            return None;
        }
        let mut list = Cursor(Cursor(data).vec16()?);
        if list.u8()? != 0 {
            return None;
        }
        let name = list.vec16()?;
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        sni = Some(std::str::from_utf8(name).ok()?);
    }
    Some(sni)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello with the given extensions.
    fn hello(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0];
        hs.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend(u16::try_from(hs.len()).unwrap().to_be_bytes());
        rec.extend(hs);
        rec
    }

    fn sni_ext(name: &str) -> Vec<u8> {
        let n = name.len() as u16;
        let mut e = vec![0, 0];
        e.extend((n + 5).to_be_bytes());
        e.extend((n + 3).to_be_bytes());
        e.push(0);
        e.extend(n.to_be_bytes());
        e.extend(name.as_bytes());
        e
    }

    #[test]
    fn finds_sni_and_waits_for_whole_record() {
        let mut exts = vec![0, 23, 0, 0];
        exts.extend(sni_ext("origin.test"));
        let h = hello(&exts);
        assert_eq!(inspect(&h), Hello::Parsed(Some("origin.test")));
        for cut in 0..h.len() {
            assert_eq!(inspect(&h[..cut]), Hello::Incomplete, "cut at {cut}");
        }
        assert_eq!(inspect(&hello(&[])), Hello::Parsed(None));
    }

    #[test]
    fn tells_a_tls_server_from_a_plaintext_one() {
        assert!(is_server_record(&[0x16, 3, 3, 0, 122, 2]));
        assert!(is_server_record(&[0x15, 3, 1, 0, 2]));
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"SSH-2.0-OpenSSH",
            b"220 smtp",
            &[0x17, 3, 3, 0, 5],
            &[0x16, 3, 3, 0, 0],
        ] {
            assert!(!is_server_record(other), "{other:?}");
        }
        let h = hello(&sni_ext("a.test"));
        let mut buf = h.clone();
        buf.extend(b"GET / HTTP/1.1");
        assert_eq!(record_len(&buf), h.len());
    }

    #[test]
    fn rejects_other_bytes() {
        assert_eq!(inspect(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(inspect(b"SSH-2.0-x"), Hello::NotTls);
        let mut two = sni_ext("a.test");
        two.extend(sni_ext("b.test"));
        assert_eq!(inspect(&hello(&two)), Hello::Malformed);
        let mut h = hello(&sni_ext("a.test"));
        h[5] = 2;
        assert_eq!(inspect(&h), Hello::Malformed);
    }
}
