//! Progress on long steps, on stderr, so stdout stays clean for results and `--json`.
//!
//! Each step is printed when it starts and timed when the next one starts (or
//! at `finish`), because the slow step is what a user waiting on `up` wants to see.
//! Named step times a backend reports are kept for `up --json`'s `timings`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Progress;

pub struct StepPrinter {
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    start: Instant,
    current: Option<Instant>,
    steps: usize,
    timed: BTreeMap<String, u64>,
}

impl StepPrinter {
    pub fn stderr() -> Self {
        Self::to(Box::new(std::io::stderr()))
    }

    pub fn to(out: Box<dyn Write + Send>) -> Self {
        Self {
            state: Mutex::new(State { out, start: Instant::now(), current: None, steps: 0, timed: BTreeMap::new() }),
        }
    }

    /// Closes the last step and prints the total time (if there were steps at all).
    pub fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.close_step();
        if s.steps == 0 {
            return;
        }
        let total = s.start.elapsed();
        // Progress is best effort: a closed stderr must not fail the command.
        let _ = writeln!(s.out, "    total {}", seconds(total));
    }

    /// Each named step's milliseconds (`<step>_ms`, a step timed twice counted once with
    /// both times) and `total_ms` since this printer was made.
    pub fn timings(&self) -> BTreeMap<String, u64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = s.timed.clone();
        all.insert("total_ms".into(), millis(s.start.elapsed()));
        all
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl State {
    fn close_step(&mut self) {
        if let Some(started) = self.current.take() {
            let _ = writeln!(self.out, "    done in {}", seconds(started.elapsed()));
        }
    }
}

impl Progress for StepPrinter {
    fn step(&self, message: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.close_step();
        let _ = writeln!(s.out, "==> {message}");
        s.current = Some(Instant::now());
        s.steps += 1;
    }

    fn timed(&self, step: &'static str, took: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s.timed.entry(format!("{step}_ms")).or_default() += millis(took);
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_step_is_announced_then_timed() {
        let buf = Shared::default();
        let p = StepPrinter::to(Box::new(buf.clone()));
        p.step("building image");
        p.step("starting bundle");
        p.finish();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "==> building image");
        assert!(lines[1].starts_with("    done in ") && lines[1].ends_with('s'), "{text}");
        assert_eq!(lines[2], "==> starting bundle");
        assert!(lines[3].starts_with("    done in "), "{text}");
        assert!(lines[4].starts_with("    total "), "{text}");
    }

    #[test]
    fn named_step_times_are_kept_in_milliseconds_with_the_total() {
        let p = StepPrinter::to(Box::new(Shared::default()));
        p.timed("networks", Duration::from_millis(40));
        p.timed("networks", Duration::from_millis(2));
        p.timed("start_check", Duration::from_millis(7));
        let t = p.timings();
        assert_eq!(t.keys().collect::<Vec<_>>(), ["networks_ms", "start_check_ms", "total_ms"]);
        assert_eq!((t["networks_ms"], t["start_check_ms"]), (42, 7));
    }

    #[test]
    fn no_steps_print_nothing() {
        let buf = Shared::default();
        StepPrinter::to(Box::new(buf.clone())).finish();
        assert!(buf.0.lock().unwrap().is_empty());
    }
}
