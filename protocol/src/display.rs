//! Agent-controlled text made safe to show an operator.
//!
//! Ref names, hosts, reasons and messages in events come, in part, from the agent. Printed
//! raw, a newline forges a whole event line and an ANSI or bidi sequence rewrites what the
//! terminal (or the menu-bar app) shows. Every renderer passes such text through here.

/// `s` with every control character (C0, DEL, C1) and every bidi override or isolate written
/// as a visible `\u{..}` escape; all other text is unchanged.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn newlines_ansi_and_bidi_become_visible_escapes() {
        let forged = "agent/x\n#1 kill switch ENGAGED\x1b[2K\u{202e}\u{9b}";
        let shown = escape_controls(forged);
        assert_eq!(shown, "agent/x\\u{a}#1 kill switch ENGAGED\\u{1b}[2K\\u{202e}\\u{9b}");
        assert_eq!(escape_controls("refs/heads/ünïcode ok"), "refs/heads/ünïcode ok");
    }
}
