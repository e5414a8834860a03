//! Coalescing of repeated refusals, so an agent that repeats one blocked request
//! in a loop costs one event per window instead of one per attempt.
//!
//! The first refusal of a key (source, rule, destination) is emitted at once
//! and opens a window of [`WINDOW`]. Repeats inside the window are only
//! counted; when it closes, one follow-up carries their number (nothing is
//! emitted when there were none), and the key's next refusal opens a fresh
//! window. Windows close when the bundle's sweep finds them due, or earlier
//! when the next refusal of any key arrives after their end.
//!
//! Memory is bounded: at most [`MAX_KEYS`] windows are open. A refusal of a new
//! key while all are taken is not emitted on its own but counted into one
//! overflow window, closed like the others; so however many destinations an
//! agent tries, a window sees at most `2 * MAX_KEYS + 1` refusal events.
//!
//! Time is passed in, so the behaviour is tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long repeats of one refusal are folded into a single follow-up.
pub const WINDOW: Duration = bottle_protocol::event::BLOCK_COALESCE_WINDOW;
/// How many distinct refusals are tracked at once.
pub const MAX_KEYS: usize = 256;

struct Open<V> {
    opened: Instant,
    repeats: u64,
    last: V,
}

/// A closed window's follow-up: the last refusal it saw and how many it counted.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<V> {
    pub last: V,
    pub count: u64,
    /// Refusals of keys beyond [`MAX_KEYS`], of any source, rule or destination.
    pub overflow: bool,
}

pub struct Coalescer<K, V> {
    open: HashMap<K, Open<V>>,
    overflow: Option<Open<V>>,
    window: Duration,
    max_keys: usize,
}

impl<K: Hash + Eq, V> Coalescer<K, V> {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self { open: HashMap::new(), overflow: None, window, max_keys }
    }

    /// Counts one refusal; true when it must be emitted now (the first of its window).
    /// Call [`Coalescer::close_due`] first, so an ended window does not swallow it.
    pub fn admit(&mut self, key: K, value: V, now: Instant) -> bool {
        if let Some(w) = self.open.get_mut(&key) {
            w.repeats += 1;
            w.last = value;
            return false;
        }
        if self.open.len() < self.max_keys {
            self.open.insert(key, Open { opened: now, repeats: 0, last: value });
            return true;
        }
        match &mut self.overflow {
            Some(w) => {
                w.repeats += 1;
                w.last = value;
            }
            None => self.overflow = Some(Open { opened: now, repeats: 1, last: value }),
        }
        false
    }

    /// Ends every window at least the window old; returns the follow-ups of those that counted repeats.
    pub fn close_due(&mut self, now: Instant) -> Vec<Closed<V>> {
        let window = self.window;
        let due = move |w: &Open<V>| now.saturating_duration_since(w.opened) >= window;
        let follow_up =
            |w: Open<V>, overflow| (w.repeats > 0).then_some(Closed { last: w.last, count: w.repeats, overflow });
        let mut closed: Vec<Closed<V>> =
            self.open.extract_if(|_, w| due(w)).filter_map(|(_, w)| follow_up(w, false)).collect();
        if self.overflow.as_ref().is_some_and(due) {
            closed.extend(self.overflow.take().and_then(|w| follow_up(w, true)));
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn the_first_is_emitted_and_repeats_become_one_follow_up_with_their_count() {
        let t = Instant::now();
        let mut c = Coalescer::new(WINDOW, MAX_KEYS);
        assert!(c.admit("k", 0, t));
        for i in 1..=100 {
            assert!(!c.admit("k", i, t));
        }
        assert_eq!(c.close_due(t + WINDOW - Duration::from_millis(1)), vec![], "still open");
        assert_eq!(c.close_due(t + WINDOW), vec![Closed { last: 100, count: 100, overflow: false }]);
        assert_eq!(c.close_due(at(t, 60)), vec![], "a window closes once");
    }

    #[test]
    fn a_lone_refusal_has_no_follow_up_and_the_next_window_starts_fresh() {
        let t = Instant::now();
        let mut c = Coalescer::new(WINDOW, MAX_KEYS);
        assert!(c.admit("k", 0, t));
        assert_eq!(c.close_due(at(t, 5)), vec![]);
        assert!(c.admit("k", 1, at(t, 6)), "a new window emits its first at once");
    }

    #[test]
    fn distinct_keys_have_windows_of_their_own() {
        let t = Instant::now();
        let mut c = Coalescer::new(WINDOW, MAX_KEYS);
        assert!(c.admit("a", 1, t));
        assert!(c.admit("b", 2, at(t, 3)));
        assert!(!c.admit("a", 3, at(t, 4)));
        assert!(!c.admit("b", 4, at(t, 4)));
        assert_eq!(c.close_due(at(t, 5)), vec![Closed { last: 3, count: 1, overflow: false }]);
        assert_eq!(c.close_due(at(t, 8)), vec![Closed { last: 4, count: 1, overflow: false }]);
    }

    #[test]
    fn keys_beyond_the_cap_are_counted_in_one_overflow_window() {
        let t = Instant::now();
        let mut c = Coalescer::new(WINDOW, 2);
        assert!(c.admit(0, 0, t));
        assert!(c.admit(1, 1, t));
        for k in 2..1000 {
            assert!(!c.admit(k, k, t), "key {k} is past the cap");
        }
        assert_eq!(c.open.len(), 2, "memory stays at the cap");
        assert_eq!(c.close_due(at(t, 5)), vec![Closed { last: 999, count: 998, overflow: true }]);
        assert!(c.admit(5000, 0, at(t, 5)), "closed windows free their slots");
    }
}
