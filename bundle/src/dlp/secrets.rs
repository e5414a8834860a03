//! Loads the never-leave secrets file (`NAME = "value"` TOML). Errors name the
//! file, the position or the NAME, but never a value: the file's whole point is
//! that its values are not shown anywhere, so the TOML parser's own messages
//! (which quote the offending line) are not passed on.

use std::path::Path;

/// Shorter values would match ordinary text and their encodings would be noise.
pub(super) const MIN_SECRET_LEN: usize = 8;
/// Bounds the stream tail, which must hold the longest encoded form (3x).
pub(super) const MAX_SECRET_LEN: usize = 1024;

/// A secret and its name. Deliberately no `Debug`.
pub(super) struct NamedSecret {
    pub name: String,
    pub value: String,
}

pub(super) fn load(path: &Path) -> anyhow::Result<Vec<NamedSecret>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("dlp secrets file {}: cannot read: {e}", path.display()))?;
    parse(path, &text)
}

pub(super) fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<NamedSecret>> {
    let file = path.display();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        anyhow::anyhow!("dlp secrets file {file}: invalid TOML at line {line} column {col}")
    })?;
    let mut out = Vec::with_capacity(table.len());
    for (name, value) in table {
        anyhow::ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
            "dlp secrets file {file}: secret name {name:?} must be letters, digits, '_', '-' or '.'"
        );
        let toml::Value::String(value) = value else {
            anyhow::bail!("dlp secrets file {file}: {name}: value must be a string");
        };
        anyhow::ensure!(!value.is_empty(), "dlp secrets file {file}: {name}: value is empty");
        anyhow::ensure!(
            value.len() >= MIN_SECRET_LEN,
            "dlp secrets file {file}: {name}: value is shorter than {MIN_SECRET_LEN} bytes"
        );
        anyhow::ensure!(
            value.len() <= MAX_SECRET_LEN,
            "dlp secrets file {file}: {name}: value is longer than {MAX_SECRET_LEN} bytes"
        );
        out.push(NamedSecret { name, value });
    }
    Ok(out)
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}
