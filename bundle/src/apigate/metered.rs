//! The response body relayed to the agent: passed on frame by frame as the
//! upstream sends it (server-sent events are never gathered up), counted, cut
//! when the upstream falls silent too long, and recorded as one event when it
//! ends, however it ends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::handler::Call;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Metered {
    inner: Incoming,
    idle: Duration,
    silence: Pin<Box<Sleep>>,
    bytes: u64,
    /// Taken when the event is emitted, so it is emitted once.
    call: Option<(Call, u16, u64)>,
}

impl Metered {
    /// `status` and `bytes_up` are what the event will report beside the bytes relayed.
    pub fn new(inner: Incoming, idle: Duration, call: Call, status: u16, bytes_up: u64) -> Self {
        let silence = Box::pin(tokio::time::sleep(idle));
        Self { inner, idle, silence, bytes: 0, call: Some((call, status, bytes_up)) }
    }

    fn finish(&mut self, reason: &str) {
        if let Some((call, status, up)) = self.call.take() {
            call.event(status, true, up, self.bytes, reason);
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                let next = Instant::now() + this.idle;
                this.silence.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish("upstream broke off the response");
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish("");
                Poll::Ready(None)
            }
            Poll::Pending => match this.silence.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let msg = format!("upstream sent nothing for {:?}; response cut", this.idle);
                    this.finish(&msg);
                    Poll::Ready(Some(Err(msg.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        let reason = if self.inner.is_end_stream() { "" } else { "the agent closed the response early" };
        self.finish(reason);
    }
}
