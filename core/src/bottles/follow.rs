//! One event stream per bottle: the bundle's own, with what the backend sees outside the
//! bundle (a VMM's denials) merged in, so every front end hears of every block.

use std::collections::VecDeque;

use bottle_protocol::Event;

use crate::backend::{BottleBackend, EventSource, Result};
use crate::control_client::EventStream;

/// How often a following stream asks the backend for events the bundle does not see.
pub const BACKEND_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Bottle `name`'s events: the bundle's buffered ones after `since` (all when `None`) then,
/// with `follow`, new ones as they come until the bundle goes away.
pub async fn follow(backend: &dyn BottleBackend, name: &str, since: Option<u64>, follow: bool) -> Result<Events> {
    let bundle = super::control(backend, name).await?.events(since, follow).await?;
    let backend = backend.event_source(name).await?;
    let mut tick = tokio::time::interval(BACKEND_POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ok(Events { bundle, backend, follow, tick, bundle_done: false, polled: VecDeque::new() })
}

/// The merged stream; it owns everything it reads from, so it may outlive the backend.
pub struct Events {
    bundle: EventStream,
    backend: Option<Box<dyn EventSource>>,
    follow: bool,
    tick: tokio::time::Interval,
    bundle_done: bool,
    /// Backend events polled but not yet handed out.
    polled: VecDeque<Event>,
}

impl Events {
    /// The next event, or `None` once the bundle's stream has ended and the backend's
    /// last events are out. Dropping the future between events loses none.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(ev) = self.polled.pop_front() {
                return Ok(Some(ev));
            }
            if self.bundle_done {
                // One last poll, so a denial made just before the end is not lost.
                let Some(mut source) = self.backend.take() else { return Ok(None) };
                self.polled.extend(source.poll().await?);
                continue;
            }
            let poll_backend = self.follow && self.backend.is_some();
            tokio::select! {
                next = self.bundle.next() => match next? {
                    Some(ev) => return Ok(Some(ev)),
                    None => self.bundle_done = true,
                },
                _ = self.tick.tick(), if poll_backend => {
                    if let Some(source) = self.backend.as_mut() {
                        let fresh = source.poll().await?;
                        self.polled.extend(fresh);
                    }
                }
            }
        }
    }
}
