//! Push options (`git push -o`): the gate forwards only those a repository's
//! `push_options` list admits, and drops the rest.
//!
//! A push option is an instruction to the host, not to git: GitLab opens and merges
//! merge requests (`merge_request.create`, `merge_request.merge_when_pipeline_succeeds`)
//! and skips CI (`ci.skip`) on them, so an option can act on a protected branch the
//! ref rules never let the agent touch. Where a repository admits none, the gate also
//! strips the `push-options` capability from the receive-pack advertisement, so an
//! honest `git push -o` stops at once with git's own "the receiving end does not
//! support push options"; a client that sends options anyway has them dropped here.
//! Either way the upstream never sees a dropped option, and its name shows in the
//! push's event and the bundle's log.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bottle_protocol::display::escape_controls;
use bottle_protocol::push_option;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::gitgate::pktline::{self, Pkt};

/// The receive-pack capability under which a client sends push options.
pub const CAPABILITY: &str = "push-options";

/// Most of the advertisement held while looking for its capabilities. The first ref line
/// comes within a few hundred bytes; past this the advertisement passes unchanged, and
/// options that then arrive are still dropped at the push.
const MAX_ADVERT_HEAD: usize = 64 * 1024;
/// Dropped options named in a reason; the rest are counted.
const SHOWN_OPTIONS: usize = 8;
/// Characters of one dropped option shown.
const SHOWN_CHARS: usize = 80;

/// Splits the agent's options into those `entries` admit (forwarded as sent) and the dropped.
pub fn filter(entries: &[String], options: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    options.iter().cloned().partition(|raw| {
        let option = std::str::from_utf8(raw).map(|o| o.strip_suffix('\n').unwrap_or(o));
        option.is_ok_and(|o| entries.iter().any(|e| push_option::admits(e, o)))
    })
}

/// The dropped options as one line for an event and the log: control characters escaped,
/// each option and their number bounded (they are the agent's bytes).
pub fn describe(dropped: &[Vec<u8>]) -> String {
    let mut shown: Vec<String> = dropped
        .iter()
        .take(SHOWN_OPTIONS)
        .map(|raw| {
            let text = String::from_utf8_lossy(raw);
            format!("\"{}\"", escape_controls(&text.chars().take(SHOWN_CHARS).collect::<String>()))
        })
        .collect();
    if dropped.len() > SHOWN_OPTIONS {
        shown.push(format!("and {} more", dropped.len() - SHOWN_OPTIONS));
    }
    format!("push options not in push_options dropped: {}", shown.join(", "))
}

/// `line` (a pkt payload `<text>\0<capabilities>[\n]`) without the push-options
/// capability; a payload without capabilities is returned as it is.
pub fn without_capability(line: &[u8]) -> Vec<u8> {
    let Some(nul) = line.iter().position(|&b| b == 0) else { return line.to_vec() };
    let caps = &line[nul + 1..];
    let (caps, newline) = caps.strip_suffix(b"\n").map_or((caps, false), |c| (c, true));
    let kept: Vec<&[u8]> = caps.split(|&b| b == b' ').filter(|c| *c != CAPABILITY.as_bytes()).collect();
    let mut out = line[..=nul].to_vec();
    out.extend_from_slice(&kept.join(&b' '));
    if newline {
        out.push(b'\n');
    }
    out
}

/// The receive-pack advertisement `B`, with push-options gone from its capabilities.
pub struct Unadvertised<B> {
    inner: B,
    /// Bytes held until the first ref line is seen; `None` once it has passed.
    head: Option<Vec<u8>>,
}

impl<B> Unadvertised<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, head: Some(Vec::new()) }
    }
}

/// The advertisement's start with the capability removed, once `buf` holds its first ref
/// line (or shows it never will); `None` while more is needed.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut past_service = false;
    loop {
        let (pkt, used) = match pktline::decode(&buf[pos..]) {
            Ok(Some(p)) => p,
            Ok(None) if buf.len() <= MAX_ADVERT_HEAD => return None,
            // Not the shape git serves, or too long: unchanged (the push side still drops options).
            Ok(None) | Err(_) => return Some(buf.to_vec()),
        };
        match pkt {
            // `# service=git-receive-pack`, then its flush.
            Pkt::Data(_) if !past_service => {}
            Pkt::Flush if !past_service => past_service = true,
            Pkt::Data(d) if d.starts_with(b"version ") => {}
            Pkt::Data(d) => {
                let mut out = buf[..pos].to_vec();
                out.extend_from_slice(&pktline::data(&without_capability(&d)));
                out.extend_from_slice(&buf[pos + used..]);
                return Some(out);
            }
            _ => return Some(buf.to_vec()),
        }
        pos += used;
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Unadvertised<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            if self.head.is_none() {
                return Pin::new(&mut self.inner).poll_frame(cx);
            }
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let head = self.head.as_mut().expect("checked above");
                        head.extend_from_slice(&data);
                        if let Some(out) = rewrite(head) {
                            self.head = None;
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    let rest = self.head.take().unwrap_or_default();
                    return Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(Bytes::from(rest)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.as_ref().is_none_or(Vec::is_empty) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // The rewrite shortens the body, so the upstream's exact length no longer holds.
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "1111111111111111111111111111111111111111";

    #[test]
    fn the_capability_goes_and_nothing_else_changes() {
        let line = format!("{OID} refs/heads/main\0report-status push-options side-band-64k agent=git/2\n");
        let want = format!("{OID} refs/heads/main\0report-status side-band-64k agent=git/2\n");
        assert_eq!(without_capability(line.as_bytes()), want.as_bytes());
        assert_eq!(without_capability(b"no caps here\n"), b"no caps here\n");
        assert_eq!(without_capability(b"x\0push-options"), b"x\0");
    }

    #[test]
    fn the_advertisement_loses_the_capability_once_its_first_ref_arrives() {
        let mut advert = pktline::data(b"# service=git-receive-pack\n");
        advert.extend_from_slice(b"0000");
        let first_starts = advert.len();
        advert.extend(pktline::data(format!("{OID} refs/heads/main\0push-options report-status\n").as_bytes()));
        advert.extend(pktline::data(format!("{OID} refs/heads/other\n").as_bytes()));
        advert.extend_from_slice(b"0000");
        assert_eq!(rewrite(&advert[..first_starts + 10]), None, "the first ref is not complete yet");
        let out = rewrite(&advert).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("push-options") && text.contains("\0report-status\n") && text.contains("other"));
        assert_eq!(rewrite(b"garbage!"), Some(b"garbage!".to_vec()));
    }

    #[test]
    fn only_admitted_options_are_kept_and_the_dropped_are_shown_escaped() {
        let entries = vec!["ci.skip".to_string(), "merge_request.*".to_string()];
        let options = [&b"ci.skip"[..], b"merge_request.target=main", b"ci.variable=A=1", b"x\x1b[2K\n#1 forged"];
        let (kept, dropped) = filter(&entries, &options.map(<[u8]>::to_vec));
        assert_eq!(kept, [b"ci.skip".to_vec(), b"merge_request.target=main".to_vec()]);
        let shown = describe(&dropped);
        assert!(shown.contains("\"ci.variable=A=1\"") && !shown.contains('\x1b') && !shown.contains('\n'), "{shown}");
    }
}
