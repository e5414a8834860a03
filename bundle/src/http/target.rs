//! Proxy request targets: `CONNECT host:port` and `GET http://host[:port]/path`.
//!
//! Only the structure is checked here; the host itself is normalized and judged
//! by `policy`, so one place decides what a hostname trick looks like.

use super::HeadError;

/// Where a proxy request goes. `host` has IPv6 brackets removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `CONNECT host:port`.
    Authority { host: &'a str, port: u16 },
    /// `http://host[:port]/path?query`; `path` is never empty.
    Absolute { host: &'a str, port: u16, path: &'a str },
}

impl<'a> Target<'a> {
    pub fn host(&self) -> &'a str {
        match *self {
            Target::Authority { host, .. } | Target::Absolute { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match *self {
            Target::Authority { port, .. } | Target::Absolute { port, .. } => port,
        }
    }

    pub(super) fn parse(method: &str, raw: &'a str) -> Result<Self, HeadError> {
        if method == "CONNECT" {
            let (host, port) = authority(raw, None)?;
            return Ok(Target::Authority { host, port });
        }
        if raw.starts_with('/') || raw == "*" {
            return Err(HeadError::Target("origin-form request to a proxy"));
        }
        let scheme_end = raw.find("://").ok_or(HeadError::Target("not an absolute URI"))?;
        let scheme = &raw[..scheme_end];
        if scheme.eq_ignore_ascii_case("https") {
            return Err(HeadError::Target("https URI in a plain request; use CONNECT"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(HeadError::Target("unsupported scheme"));
        }
        let rest = &raw[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (host, port) = authority(&rest[..auth_end], Some(80))?;
        let path = match &rest[auth_end..] {
            "" => "/",
            // `http://h?q` means path `/` with a query; forwarding `?q` alone would not be a valid target.
            p if p.starts_with('?') => return Err(HeadError::Target("query without a path")),
            p => p,
        };
        Ok(Target::Absolute { host, port, path })
    }
}

/// Splits `host[:port]` / `[v6][:port]`. A missing port takes `default` or is an error.
fn authority(raw: &str, default: Option<u16>) -> Result<(&str, u16), HeadError> {
    if raw.contains('@') {
        return Err(HeadError::Target("userinfo in authority"));
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let close = rest.find(']').ok_or(HeadError::Target("unclosed IPv6 bracket"))?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HeadError::Target("junk after IPv6 literal"))?),
        };
        (&rest[..close], port)
    } else {
        match raw.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    if host.is_empty() {
        return Err(HeadError::Target("empty host"));
    }
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default.ok_or(HeadError::Target("missing port"))?,
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, HeadError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Target("invalid port"));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HeadError::Target("invalid port")),
        Ok(n) => Ok(n),
    }
}
