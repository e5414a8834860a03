//! STUB (to be replaced by the DLP owner): secret scanning.

use bottle_protocol::config::DlpConfig;

pub struct Scanner;

/// A DLP hit. Carries the rule id only, never the matched bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// e.g. `dlp:aws-access-key`, `dlp:secret:NAME`.
    pub rule: String,
}

impl Scanner {
    pub fn from_config(_cfg: &DlpConfig) -> anyhow::Result<Self> {
        Ok(Self)
    }

    /// Scans one buffer (a request head, URL, header value or CONNECT target).
    pub fn scan(&self, _data: &[u8]) -> Option<Finding> {
        None
    }

    /// A streaming scanner for a body, in bounded memory.
    pub fn stream(&self) -> StreamScanner<'_> {
        StreamScanner { _scanner: self }
    }
}

pub struct StreamScanner<'a> {
    _scanner: &'a Scanner,
}

impl StreamScanner<'_> {
    pub fn feed(&mut self, _chunk: &[u8]) -> Option<Finding> {
        None
    }

    pub fn finish(&mut self) -> Option<Finding> {
        None
    }
}
