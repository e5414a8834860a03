//! `GET /v1/events`: the event log as newline-delimited JSON.
//!
//! `since=<id>` starts after that id (default 0: everything still in the
//! ring); `follow=1` keeps the stream open for live events, otherwise the
//! backlog is sent and the response ends. A follower that falls behind the
//! broadcast channel is resynchronised from the ring after the last id it got,
//! so it sees every event the ring still holds, in order, never a duplicate.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bottle_protocol::Event;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use tokio::sync::{broadcast, mpsc};

use super::reply::{self, Body};
use crate::state::Bundle;

/// Lines buffered between the event bus and a slow follower's socket.
pub const FOLLOW_BUFFER_LINES: usize = 256;
const NDJSON: &str = "application/x-ndjson";

pub fn stream(bundle: &Arc<Bundle>, query: Option<&str>) -> Response<Body> {
    let (since, follow) = match parse_query(query.unwrap_or("")) {
        Ok(q) => q,
        Err(message) => return reply::error(StatusCode::BAD_REQUEST, message),
    };
    let (backlog, live) = bundle.events.subscribe_since(since);
    if !follow {
        let text: Vec<u8> = backlog.iter().flat_map(line).collect();
        return reply::with_type(StatusCode::OK, NDJSON, Full::new(Bytes::from(text)).boxed());
    }
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER_LINES);
    tokio::spawn(forward(bundle.clone(), backlog, live, tx));
    reply::with_type(StatusCode::OK, NDJSON, Lines { rx }.boxed())
}

fn parse_query(query: &str) -> Result<(u64, bool), String> {
    let (mut since, mut follow) = (0, false);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => since = value.parse().map_err(|_| format!("events: since = {value:?}: not an event id"))?,
            "follow" => {
                follow = match value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(format!("events: follow = {value:?}: use 1 or 0")),
                }
            }
            _ => return Err(format!("events: unknown query parameter {key:?}")),
        }
    }
    Ok((since, follow))
}

fn line(e: &Event) -> Vec<u8> {
    let mut l = serde_json::to_vec(e).expect("events always serialize");
    l.push(b'\n');
    l
}

/// Feeds a follower until it disconnects.
async fn forward(
    bundle: Arc<Bundle>,
    backlog: Vec<Event>,
    mut live: broadcast::Receiver<Event>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut last = 0;
    let mut pending = backlog;
    loop {
        for e in pending.drain(..) {
            last = e.id;
            if tx.send(Bytes::from(line(&e))).await.is_err() {
                return;
            }
        }
        let next = tokio::select! {
            r = live.recv() => r,
            () = tx.closed() => return,
        };
        match next {
            Ok(e) => pending.push(e),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                (pending, live) = bundle.events.subscribe_since(last);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A response body fed line by line from a channel; ends when the sender does.
struct Lines {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|line| line.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_protocol::{BundleConfig, EventKind};
    use std::path::Path;

    fn bundle(dir: &Path) -> Arc<Bundle> {
        let token = dir.join("token");
        std::fs::write(&token, "0123456789abcdef0123").unwrap();
        let text = format!(
            "bottle = \"b\"\n[listen]\nproxy = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\n[control]\ntoken_file = {}\n",
            toml::Value::String(token.display().to_string())
        );
        let file = dir.join("b.toml");
        Arc::new(Bundle::from_config(&file, &text, BundleConfig::parse(&file, &text).unwrap()).unwrap())
    }

    #[tokio::test]
    async fn a_lagging_follower_is_resynchronised_without_gaps_or_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle(dir.path());
        bundle.events.emit(EventKind::KillSwitch { engaged: true });
        let (backlog, live) = bundle.events.subscribe_since(0);
        let (tx, mut rx) = mpsc::channel(FOLLOW_BUFFER_LINES);
        let follower = tokio::spawn(forward(bundle.clone(), backlog, live, tx));
        // Nobody reads yet: the follower blocks on its full buffer while the bus
        // overruns its broadcast channel, so it must lag and resync from the ring.
        let total = (crate::events::CHANNEL_CAPACITY * 2) as u64;
        for i in 1..total {
            bundle.events.emit(EventKind::KillSwitch { engaged: i % 2 == 0 });
        }
        let mut ids = Vec::new();
        while ids.len() < total as usize {
            let line = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
            ids.push(serde_json::from_slice::<Event>(&line).unwrap().id);
        }
        assert_eq!(ids, (1..=total).collect::<Vec<_>>());
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(5), follower).await.unwrap().unwrap();
    }

    #[test]
    fn query_parameters() {
        assert_eq!(parse_query(""), Ok((0, false)));
        assert_eq!(parse_query("since=42&follow=1"), Ok((42, true)));
        assert_eq!(parse_query("follow=false"), Ok((0, false)));
        assert!(parse_query("since=-1").unwrap_err().contains("since"));
        assert!(parse_query("follow=yes").unwrap_err().contains("follow"));
        assert!(parse_query("sinse=1").unwrap_err().contains("sinse"));
    }
}
