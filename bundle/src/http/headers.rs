//! Head lines and header fields shared by request and response parsing.

use super::HeadError;

/// One header field, borrowed from the read buffer. Names are validated tokens;
/// values are trimmed of optional whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

impl Header<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Byte classes as tables: every head byte is checked once against one of them,
/// and a table lookup is what keeps parsing a typical head near a microsecond.
const fn class_table(obs_text: bool, token: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if token {
            c.is_ascii_alphanumeric()
                || matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~')
        } else {
            c == b'\t' || (c >= 0x20 && c < 0x7f) || (obs_text && c >= 0x80)
        };
        b += 1;
    }
    t
}

/// RFC 9110 `tchar`.
static TCHAR: [bool; 256] = class_table(false, true);
/// Field-value bytes: HTAB, visible ASCII and SP.
static VALUE: [bool; 256] = class_table(false, false);
/// Field-value bytes of a response, which may also carry obs-text.
static VALUE_OBS: [bool; 256] = class_table(true, false);

pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[usize::from(b)])
}

/// Splits `buf` into CRLF-terminated lines up to the empty line that ends the head.
///
/// Calls `line` for every complete line so a bad line is refused as soon as it
/// arrives, not when the head is complete. Returns the head length (including
/// the final CRLF) or `None` while incomplete.
pub(super) fn walk_lines<'a>(
    buf: &'a [u8],
    max: usize,
    mut line: impl FnMut(usize, &'a [u8]) -> Result<(), HeadError>,
) -> Result<Option<usize>, HeadError> {
    let mut pos = 0;
    let mut index = 0;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
            return if buf.len() >= max { Err(HeadError::TooLarge) } else { Ok(None) };
        };
        let end = pos + nl;
        if end + 1 > max {
            return Err(HeadError::TooLarge);
        }
        if end == pos || buf[end - 1] != b'\r' {
            return Err(HeadError::Malformed("line not ended by CRLF"));
        }
        let content = &buf[pos..end - 1];
        if memchr::memchr(b'\r', content).is_some() {
            return Err(HeadError::Malformed("bare CR"));
        }
        pos = end + 1;
        if content.is_empty() {
            return if index == 0 { Err(HeadError::Malformed("empty start line")) } else { Ok(Some(pos)) };
        }
        line(index, content)?;
        index += 1;
    }
}

/// Parses one header line. `obs_text` allows bytes >= 0x80 in values (responses only).
pub(super) fn parse_header(line: &[u8], obs_text: bool) -> Result<Header<'_>, HeadError> {
    if line[0] == b' ' || line[0] == b'\t' {
        return Err(HeadError::Malformed("obs-fold"));
    }
    let colon = memchr::memchr(b':', line).ok_or(HeadError::Malformed("header without colon"))?;
    let name = &line[..colon];
    if !is_token(name) {
        return Err(HeadError::Malformed("invalid header name"));
    }
    let value = trim_ows(&line[colon + 1..]);
    let allowed = if obs_text { &VALUE_OBS } else { &VALUE };
    if !value.iter().all(|&b| allowed[usize::from(b)]) {
        return Err(HeadError::Malformed("invalid byte in header value"));
    }
    // Tokens are ASCII, so this cannot fail.
    let name = std::str::from_utf8(name).map_err(|_| HeadError::Malformed("invalid header name"))?;
    Ok(Header { name, value })
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses a Content-Length value: digits only, no list, no sign.
pub(super) fn content_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Malformed("invalid content-length"));
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Headers that describe one connection and must not be forwarded (RFC 9110 7.6.1).
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 9] = [
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "expect",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether a `Connection` header lists `name` (which makes it hop-by-hop too).
pub fn listed_in_connection(headers: &[Header<'_>], name: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

pub(super) fn connection_tokens<'h>(headers: &'h [Header<'_>]) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(|h| h.is("connection") || h.is("proxy-connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tables_match_the_rfc_classes() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(TCHAR[usize::from(b)], tchar, "tchar {b:#04x}");
            let vchar = b == b'\t' || (0x20..0x7f).contains(&b);
            assert_eq!(VALUE[usize::from(b)], vchar, "value {b:#04x}");
            assert_eq!(VALUE_OBS[usize::from(b)], vchar || b >= 0x80, "obs value {b:#04x}");
        }
    }
}
