//! A push's RPC: held for its command and push-options sections in memory and
//! its pack in a spool file on disk, capped in bytes and time, so that a
//! refused push sends nothing at all upstream, a fast-forward is proven from
//! the pack, and no pack is buffered in memory.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bottle_protocol::event::GitOperation;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::body::ChannelBody;
use super::config::Repo;
use super::handler::{GateBody, event, full, relay, text};
use super::pack::Graph;
use super::pktline::{self, Pkt};
use super::report;
use super::rules::{self, Check, Commands, options};
use super::upstream::{self, UpstreamError};
use crate::state::Bundle;

/// Largest push command section (ref updates plus push options) the gate reads before deciding.
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;
/// Size of the chunks a push is re-sent upstream in. receive-pack reads the whole request before
/// answering, so coalescing is safe, and large chunks keep per-chunk costs on both ends low.
pub const FORWARD_CHUNK: usize = 256 * 1024;

pub(super) async fn push(bundle: Arc<Bundle>, repo: Arc<Repo>, req: Request<Incoming>) -> Response<GateBody> {
    let op = GitOperation::Push;
    let encoded = req.headers().get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity");
    if encoded {
        event(&bundle, &repo.alias, op, false, vec![], "compressed push body");
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bottle: compressed push requests are not supported");
    }
    let (parts, mut body) = req.into_parts();
    let timeout = Duration::from_millis(bundle.config.limits.header_timeout_ms);
    let head = match tokio::time::timeout(timeout, read_commands(&mut body)).await {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => {
            event(&bundle, &repo.alias, op, false, vec![], &msg);
            return text(StatusCode::BAD_REQUEST, &format!("bottle: {msg}"));
        }
        Err(_) => {
            event(&bundle, &repo.alias, op, false, vec![], "push commands timed out");
            return text(StatusCode::REQUEST_TIMEOUT, "bottle: push commands did not arrive in time");
        }
    };
    let cmds = &head.cmds;
    if cmds.list.is_empty() {
        // git's probe before a large push, a lone flush: it updates nothing, so it goes upstream
        // unrecorded, and only the flush goes (whatever the agent sent after it stays here).
        let result = forward_push(&bundle, &repo, &parts.headers, rules::encode_commands(&[]), None).await;
        return relay(&bundle, &repo, op, false, vec![], "", result);
    }
    let refs: Vec<String> = cmds.list.iter().map(|c| c.refname.clone()).collect();
    let decisions: Vec<_> = cmds.list.iter().map(|c| rules::decide(&repo, c)).collect();
    if decisions.iter().any(Result::is_err) {
        let reasons = decisions.into_iter().map(|d| d.err()).collect();
        return refuse(&bundle, &repo, cmds, reasons, body).await;
    }
    // Every pack is spooled, a create-only push's too, so each push is bounded in disk and time
    // by the same limits; past either it is refused (413 / 408) and the unnamed file goes with it.
    let fast_forward = decisions.contains(&Ok(Check::FastForward));
    let limits = bundle.git.spool;
    let spooled = tokio::time::timeout(limits.deadline, spool(&head.rest, body, limits.max_bytes, fast_forward));
    let (file, graph) = match spooled.await {
        Ok(Ok(f)) => f,
        Ok(Err(SpoolError::TooLarge(rest))) => {
            // A report, not a bare 413: git prints only the status of a failed RPC, but it prints
            // every ref's reason from a report.
            let why = format!("bottle: the pushed pack is larger than the gate's limit of {} bytes", limits.max_bytes);
            return refuse(&bundle, &repo, cmds, vec![Some(why); cmds.list.len()], rest).await;
        }
        Ok(Err(SpoolError::Io(e))) => {
            event(&bundle, &repo.alias, op, false, refs, "could not spool the pushed pack");
            tracing::warn!(repo = %repo.alias, "git-gate: spooling the pack: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "bottle: could not spool the pushed pack");
        }
        Err(_) => {
            let why = format!("the pushed pack did not arrive within {}s", limits.deadline.as_secs());
            event(&bundle, &repo.alias, op, false, refs, &why);
            return text(StatusCode::REQUEST_TIMEOUT, &format!("bottle: {why}"));
        }
    };
    if let Some(graph) = &graph {
        let reasons: Vec<Option<String>> = cmds
            .list
            .iter()
            .zip(&decisions)
            .map(|(c, d)| match (d, graph) {
                (Ok(Check::FastForward), Ok(g)) if !g.reaches(&c.new, &c.old) => Some(rules::non_fast_forward(c)),
                (Ok(Check::FastForward), Err(e)) => Some(format!("bottle: the pushed pack is unreadable ({e})")),
                _ => None,
            })
            .collect();
        if reasons.iter().any(Option::is_some) {
            return refuse(&bundle, &repo, cmds, reasons, http_body_util::Empty::<Bytes>::new()).await;
        }
    }
    let (sections, dropped) = upstream_sections(&repo, &head);
    let note = if dropped.is_empty() { String::new() } else { options::describe(&dropped) };
    if !note.is_empty() {
        tracing::warn!(repo = %repo.alias, "git-gate: {note}");
    }
    let result = forward_push(&bundle, &repo, &parts.headers, sections, Some(file)).await;
    relay(&bundle, &repo, op, true, refs, &note, result)
}

/// The command section, and the push-options section when any option is admitted, as the
/// upstream gets them; with the options the repository does not admit, which it never sees.
/// With none admitted the capability goes too, so the upstream expects no options section.
fn upstream_sections(repo: &Repo, head: &PushHead) -> (Vec<u8>, Vec<Vec<u8>>) {
    let Some(sent) = &head.options else { return (rules::encode_commands(&head.commands), Vec::new()) };
    let (kept, dropped) = options::filter(&repo.push_options, sent);
    if kept.is_empty() {
        let mut commands = head.commands.clone();
        if let Some(Pkt::Data(first)) = commands.iter_mut().find(|p| matches!(p, Pkt::Data(d) if d.contains(&0))) {
            *first = options::without_capability(first);
        }
        return (rules::encode_commands(&commands), dropped);
    }
    let mut out = rules::encode_commands(&head.commands);
    out.extend(rules::encode_commands(&kept.into_iter().map(Pkt::Data).collect::<Vec<_>>()));
    (out, dropped)
}

/// Sends a push upstream: its `sections` (commands, options), then the spooled pack, if any.
async fn forward_push(
    bundle: &Bundle,
    repo: &Repo,
    headers: &hyper::HeaderMap,
    sections: Vec<u8>,
    pack: Option<tokio::fs::File>,
) -> Result<Response<GateBody>, UpstreamError> {
    let (tx, upstream_body) = ChannelBody::new();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(sections))).await.is_ok()
            && let Some(file) = pack
        {
            replay(file, tx).await;
        }
    });
    let tls = bundle.git.tls.clone();
    let result = upstream::send(bundle, tls, repo, Method::POST, "/git-receive-pack", headers, upstream_body).await;
    result.map(|resp| resp.map(BodyExt::boxed))
}

/// A push's sections as the agent sent them, and the pack bytes read past them.
struct PushHead {
    /// Packets of the command section (before its flush).
    commands: Vec<Pkt>,
    cmds: Commands,
    /// Payloads of the push-options section, when the commands announced one.
    options: Option<Vec<Vec<u8>>>,
    /// Bytes read after the last section: the pack's start.
    rest: Vec<u8>,
}

/// Reads pkt-lines up to the end of the command section (and the push-options section when
/// announced), at most [`MAX_COMMAND_BYTES`].
async fn read_commands(body: &mut Incoming) -> Result<PushHead, String> {
    let mut buf = Vec::new();
    let mut pos = 0;
    let mut section = Vec::new();
    let mut announced: Option<(Vec<Pkt>, Commands)> = None;
    loop {
        match pktline::decode(&buf[pos..]).map_err(|e| format!("bad push request: {e}"))? {
            Some((pkt, used)) => {
                pos += used;
                if pkt != Pkt::Flush {
                    section.push(pkt);
                    continue;
                }
                let pkts = std::mem::take(&mut section);
                let (commands, cmds, options) = match announced.take() {
                    None => {
                        let cmds = rules::parse_commands(&pkts)?;
                        if cmds.has_cap(options::CAPABILITY) {
                            announced = Some((pkts, cmds));
                            continue;
                        }
                        (pkts, cmds, None)
                    }
                    Some((commands, cmds)) => {
                        let options = pkts.into_iter().map(|p| match p {
                            Pkt::Data(d) => Ok(d),
                            _ => Err("unexpected special packet in push options".to_string()),
                        });
                        (commands, cmds, Some(options.collect::<Result<_, _>>()?))
                    }
                };
                buf.drain(..pos);
                return Ok(PushHead { commands, cmds, options, rest: buf });
            }
            None => {
                if buf.len() > MAX_COMMAND_BYTES {
                    return Err(format!("push command section exceeds {MAX_COMMAND_BYTES} bytes"));
                }
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            buf.extend_from_slice(&d);
                        }
                    }
                    Some(Err(e)) => return Err(format!("reading the push: {e}")),
                    None => return Err("push ended inside its command section".into()),
                }
            }
        }
    }
}

/// Answers a refused push with a report naming every ref, after reading the rest of the
/// request so the agent's git is not cut off mid-send. Nothing has gone upstream.
async fn refuse<B>(
    bundle: &Bundle,
    repo: &Repo,
    cmds: &Commands,
    reasons: Vec<Option<String>>,
    body: B,
) -> Response<GateBody>
where
    B: hyper::body::Body + Unpin,
{
    let mut why: Vec<String> = reasons.iter().flatten().cloned().collect();
    why.dedup();
    let all: Vec<String> = reasons.into_iter().map(|r| r.unwrap_or_else(|| rules::NOT_APPLIED.into())).collect();
    let refs = cmds.list.iter().map(|c| c.refname.clone()).collect();
    event(bundle, &repo.alias, GitOperation::Push, false, refs, &why.join("; "));
    drain(bundle, body).await;
    let summary = format!("bottle: push refused by the git gate: {}", why.join("; "));
    let mut resp = Response::new(full(report::refusal(cmds, &all, &summary)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-git-receive-pack-result"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Reads and discards the rest of a refused request, for at most the idle timeout.
async fn drain<B: hyper::body::Body + Unpin>(bundle: &Bundle, mut body: B) {
    let limit = Duration::from_millis(bundle.config.limits.idle_timeout_ms);
    let _ = tokio::time::timeout(limit, async { while let Some(Ok(_)) = body.frame().await {} }).await;
}

/// Sends the spooled pack upstream in [`FORWARD_CHUNK`]s.
async fn replay(mut file: tokio::fs::File, tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) {
    loop {
        let mut buf = vec![0u8; FORWARD_CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

enum SpoolError {
    /// Past the byte limit; carries the unread rest of the request.
    TooLarge(Incoming),
    Io(std::io::Error),
}

impl From<std::io::Error> for SpoolError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Writes the pack (the bytes already read, then the rest of the body) to an unnamed temp
/// file, at most `max_bytes`, reads its commit graph when `graph` asks, and rewinds the file
/// for replay.
async fn spool(
    already: &[u8],
    mut body: Incoming,
    max_bytes: u64,
    graph: bool,
) -> Result<(tokio::fs::File, Option<Result<Graph, std::io::Error>>), SpoolError> {
    let std_file = tempfile::tempfile()?;
    let reader = std_file.try_clone()?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut written = already.len() as u64;
    if written > max_bytes {
        return Err(SpoolError::TooLarge(body));
    }
    file.write_all(already).await?;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.map_err(std::io::Error::other)?.into_data() {
            written += d.len() as u64;
            if written > max_bytes {
                return Err(SpoolError::TooLarge(body));
            }
            file.write_all(&d).await?;
        }
    }
    file.flush().await?;
    let graph = if graph {
        let read = tokio::task::spawn_blocking(move || {
            let mut r = reader;
            r.seek(SeekFrom::Start(0))?;
            Graph::read(std::io::BufReader::with_capacity(FORWARD_CHUNK, r))
        });
        Some(read.await.map_err(std::io::Error::other)?)
    } else {
        None
    };
    file.seek(SeekFrom::Start(0)).await?;
    Ok((file, graph))
}
