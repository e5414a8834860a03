//! Structured logs to stderr. `RUST_LOG` filters; `BOTTLE_LOG_FORMAT=json` switches to JSON lines.
//!
//! Nothing logged anywhere in the bundle may contain a secret or credential:
//! log rule ids and destinations, never request bytes.
//!
//! Every refusal can end in a log line, and the agent decides how many refusals
//! there are, so lines are rate limited: at most [`LINES_PER_INTERVAL`] per
//! [`INTERVAL`], the rest dropped and counted, and the count reported as one
//! `N log lines suppressed` line by the bundle's sweep (`events::sweep`). The
//! engine's log rotation (set by bottle-core) bounds the file; this bounds the
//! rate, so a flood cannot rotate real lines away within seconds either.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Length of one rate-limit interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Lines written per interval before the rest are suppressed.
pub const LINES_PER_INTERVAL: u32 = 50;
/// Target of the suppression report, which is never itself suppressed.
const REPORT_TARGET: &str = "bottle::log";

static BUDGET: LazyLock<Mutex<LineBudget>> =
    LazyLock::new(|| Mutex::new(LineBudget::new(INTERVAL, LINES_PER_INTERVAL, Instant::now())));

pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(RateLimit);
    if std::env::var("BOTTLE_LOG_FORMAT").as_deref() == Ok("json") {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// Writes the `N log lines suppressed` line when lines were dropped since the last report.
pub fn report_suppressed() {
    let n = BUDGET.lock().expect("log budget poisoned").take_suppressed();
    if n > 0 {
        tracing::warn!(target: REPORT_TARGET, suppressed = n, "{n} log lines suppressed");
    }
}

/// Vetoes each event past the budget for every layer (`event_enabled` runs after the level filter).
struct RateLimit;

impl<S: tracing::Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        event.metadata().target() == REPORT_TARGET || BUDGET.lock().expect("log budget poisoned").admit(Instant::now())
    }
}

/// A fixed-window line budget; time is passed in so it is tested without waiting.
struct LineBudget {
    interval: Duration,
    max: u32,
    started: Instant,
    used: u32,
    suppressed: u64,
}

impl LineBudget {
    fn new(interval: Duration, max: u32, now: Instant) -> Self {
        Self { interval, max, started: now, used: 0, suppressed: 0 }
    }

    fn admit(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.started) >= self.interval {
            (self.started, self.used) = (now, 0);
        }
        if self.used < self.max {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_until_the_next_interval() {
        let t = Instant::now();
        let mut b = LineBudget::new(INTERVAL, 3, t);
        assert_eq!((0..10).filter(|_| b.admit(t)).count(), 3);
        assert_eq!(b.take_suppressed(), 7);
        assert_eq!(b.take_suppressed(), 0, "a report counts each line once");
        assert!(!b.admit(t + INTERVAL / 2), "same interval");
        assert_eq!((0..10).filter(|_| b.admit(t + INTERVAL)).count(), 3, "a new interval, a new budget");
        assert_eq!(b.take_suppressed(), 8);
    }
}
