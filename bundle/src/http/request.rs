//! The request head: start line, header fields and body framing.

use super::headers::{Header, connection_tokens, content_length, is_token, parse_header, walk_lines};
use super::{BodyFraming, HeadError, Target, Version};

/// Header fields a request head usually has at most (a capacity hint, not a limit).
const HEADERS_HINT: usize = 16;

/// A parsed request head borrowing from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: Target<'a>,
    pub version: Version,
    pub headers: Vec<Header<'a>>,
    pub framing: BodyFraming,
    /// Bytes the head occupies in the buffer, final CRLF included.
    pub len: usize,
}

impl RequestHead<'_> {
    /// Whether the client wants the connection kept after this exchange.
    pub fn keep_alive(&self) -> bool {
        let mut tokens = connection_tokens(&self.headers);
        match self.version {
            Version::Http11 => !tokens.any(|t| t.eq_ignore_ascii_case(b"close")),
            Version::Http10 => tokens.any(|t| t.eq_ignore_ascii_case(b"keep-alive")),
        }
    }
}

/// Parses a request head from the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<RequestHead<'_>>, HeadError> {
    let mut start: Option<(&str, &str, Version)> = None;
    // Room for a typical agent request's fields without regrowing.
    let mut headers = Vec::with_capacity(HEADERS_HINT);
    let Some(len) = walk_lines(buf, max, |i, line| {
        if i == 0 {
            start = Some(request_line(line)?);
        } else {
            headers.push(parse_header(line, false)?);
        }
        Ok(())
    })?
    else {
        return Ok(None);
    };
    let (method, raw_target, version) = start.ok_or(HeadError::Malformed("missing request line"))?;
    let framing = request_framing(&headers, version)?;
    if headers.iter().filter(|h| h.is("host")).count() > 1 {
        return Err(HeadError::Malformed("duplicate host"));
    }
    let target = Target::parse(method, raw_target)?;
    Ok(Some(RequestHead { method, target, version, headers, framing, len }))
}

fn request_line(line: &[u8]) -> Result<(&str, &str, Version), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("request line is not `method target version`"));
    };
    if !is_token(method) || method.len() > 32 {
        return Err(HeadError::Malformed("invalid method"));
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'#') {
        return Err(HeadError::Malformed("invalid request target"));
    }
    let version = Version::parse(version).ok_or(HeadError::Malformed("unsupported HTTP version"))?;
    // Both slices are ASCII after the checks above.
    let ascii = |s| std::str::from_utf8(s).map_err(|_| HeadError::Malformed("non-ASCII start line"));
    Ok((ascii(method)?, ascii(target)?, version))
}

fn request_framing(headers: &[Header<'_>], version: Version) -> Result<BodyFraming, HeadError> {
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        if h.is("content-length") {
            if length.is_some() {
                return Err(HeadError::Malformed("duplicate content-length"));
            }
            length = Some(content_length(h.value)?);
        } else if h.is("transfer-encoding") {
            if chunked {
                return Err(HeadError::Malformed("duplicate transfer-encoding"));
            }
            if version == Version::Http10 || !h.value.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::Malformed("unsupported transfer-encoding"));
            }
            chunked = true;
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(HeadError::Malformed("content-length with transfer-encoding")),
        (Some(0) | None, false) => Ok(BodyFraming::None),
        (Some(n), false) => Ok(BodyFraming::Length(n)),
        (None, true) => Ok(BodyFraming::Chunked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 8192;

    fn parse(s: &str) -> Result<Option<RequestHead<'_>>, HeadError> {
        parse_request(s.as_bytes(), MAX)
    }

    #[test]
    fn parses_absolute_and_connect() {
        let r = parse("GET http://Example.com:8080/a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(r.target, Target::Absolute { host: "Example.com", port: 8080, path: "/a?b" });
        assert_eq!(r.framing, BodyFraming::Length(3));
        assert_eq!(r.len, "GET http://Example.com:8080/a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n".len());
        let c = parse("CONNECT [::1]:443 HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(c.target, Target::Authority { host: "::1", port: 443 });
        let d = parse("GET http://h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap();
        assert_eq!(d.target, Target::Absolute { host: "h", port: 80, path: "/" });
        assert!(d.keep_alive());
    }

    #[test]
    fn incomplete_is_none() {
        assert_eq!(parse("GET http://h/ HTTP/1.1\r\nHost: h\r\n"), Ok(None));
    }

    #[test]
    fn rejects_smuggling_shapes() {
        let bad = [
            ("GET http://h/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "obs-fold"),
            ("GET http://h/ HTTP/1.1\nHost: h\n\n", "bare LF"),
            ("GET http://h/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "dup CL"),
            ("GET http://h/ HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", "CL list"),
            ("GET http://h/ HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "CL sign"),
            ("POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "CL+TE"),
            ("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "TE list"),
            ("GET http://h/ HTTP/1.1\r\nHost : h\r\n\r\n", "space before colon"),
            ("GET http://h/ HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", "dup host"),
            ("GET http://h/ HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR"),
            ("GET http://h/ HTTP/1.1\r\nX: \x01\r\n\r\n", "control byte"),
            ("GET  http://h/ HTTP/1.1\r\n\r\n", "double space"),
            ("GET http://h/ HTTP/2.0\r\n\r\n", "version"),
            ("\r\nGET http://h/ HTTP/1.1\r\n\r\n", "leading CRLF"),
        ];
        for (req, why) in bad {
            assert!(matches!(parse(req), Err(HeadError::Malformed(_))), "{why}: {:?}", parse(req));
        }
        let targets = [
            "GET /local HTTP/1.1\r\n\r\n",
            "GET https://h/ HTTP/1.1\r\n\r\n",
            "GET http://user@h/ HTTP/1.1\r\n\r\n",
            "GET http://h:0/ HTTP/1.1\r\n\r\n",
            "GET http://h:99999/ HTTP/1.1\r\n\r\n",
            "CONNECT h HTTP/1.1\r\n\r\n",
            "CONNECT [::1 HTTP/1.1\r\n\r\n",
        ];
        for req in targets {
            assert!(matches!(parse(req), Err(HeadError::Target(_))), "{req:?}: {:?}", parse(req));
        }
    }

    #[test]
    fn oversize_head_is_too_large_even_when_incomplete() {
        let big = format!("GET http://h/ HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX));
        assert_eq!(parse(&big), Err(HeadError::TooLarge));
        assert_eq!(parse_request(b"GET http://h/ HTTP/1.1\r\n\r\n", 10), Err(HeadError::TooLarge));
    }

    /// What the test renders: a valid request from parts.
    #[derive(Debug, Clone)]
    struct Parts {
        method: String,
        host: String,
        port: Option<u16>,
        path: String,
        headers: Vec<(String, String)>,
        length: Option<u64>,
    }

    fn render(p: &Parts) -> String {
        let port = p.port.map(|n| format!(":{n}")).unwrap_or_default();
        let mut s = format!("{} http://{}{}{} HTTP/1.1\r\n", p.method, p.host, port, p.path);
        for (k, v) in &p.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = p.length {
            s.push_str(&format!("Content-Length: {n}\r\n"));
        }
        s.push_str("\r\n");
        s
    }

    fn parts() -> impl Strategy<Value = Parts> {
        (
            "[A-Z]{1,8}",
            "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}",
            proptest::option::of(1u16..),
            "/[a-zA-Z0-9/._~%?=&-]{0,40}",
            proptest::collection::vec(("X-[A-Za-z0-9-]{1,12}", "[ -~]{0,30}"), 0..8),
            proptest::option::of(0u64..1 << 40),
        )
            .prop_map(|(method, host, port, path, headers, length)| {
                // Values keep no edge whitespace: the parser trims it, so it cannot round-trip.
                let headers = headers.into_iter().map(|(k, v)| (k, v.trim().to_string())).collect();
                Parts { method, host, port, path, headers, length }
            })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_request(&bytes, 512);
        }

        #[test]
        fn never_panics_on_near_valid(p in parts(), cut in 0usize..400, flip in any::<u8>()) {
            let mut bytes = render(&p).into_bytes();
            if !bytes.is_empty() {
                let i = cut % bytes.len();
                bytes[i] = flip;
            }
            let _ = parse_request(&bytes, 512);
        }

        #[test]
        fn accepts_what_it_renders(p in parts()) {
            let text = render(&p);
            let r = parse(&text).unwrap().expect("complete head");
            prop_assert_eq!(r.len, text.len());
            prop_assert_eq!(r.method, p.method.as_str());
            prop_assert_eq!(r.target, Target::Absolute { host: &p.host, port: p.port.unwrap_or(80), path: &p.path });
            let framing = match p.length { Some(0) | None => BodyFraming::None, Some(n) => BodyFraming::Length(n) };
            prop_assert_eq!(r.framing, framing);
            let got: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name, h.value)).collect();
            for (k, v) in &p.headers {
                prop_assert!(got.contains(&(k.as_str(), v.as_bytes())));
            }
        }

        #[test]
        fn every_prefix_is_incomplete(p in parts()) {
            let text = render(&p);
            for cut in 0..text.len() {
                prop_assert_eq!(parse(&text[..cut]), Ok(None));
            }
        }

        #[test]
        fn rejects_injected_invalid_bytes(p in parts(), bad in prop::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xff, b'\r']), at in any::<prop::sample::Index>()) {
            let text = render(&p);
            // Inject into the first header value (or the target): both refuse control and non-ASCII bytes.
            let line_end = text.find("\r\n").unwrap();
            let pos = 1 + at.index(line_end - 1);
            let mut bytes = text.into_bytes();
            if bytes[pos] == b' ' { return Ok(()); }
            bytes[pos] = bad;
            prop_assert!(parse_request(&bytes, MAX).is_err());
        }

        #[test]
        fn rejects_duplicate_content_length(p in parts(), a in 1u64..1000, b in 1u64..1000) {
            let mut q = p.clone();
            q.length = Some(a);
            let text = render(&q).replacen("\r\n\r\n", &format!("\r\nContent-Length: {b}\r\n\r\n"), 1);
            prop_assert_eq!(parse(&text), Err(HeadError::Malformed("duplicate content-length")));
        }
    }
}
