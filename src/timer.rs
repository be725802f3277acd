//! The timer queue: one ordered set of `(deadline, key)` for every connection's next timer.
//!
//! Pure: it never reads the clock. The event loop asks [`TimerQueue::next_deadline`] for `Poll::poll`'s
//! timeout and, after each poll, pops what has expired at the `now` it passes in. Unit tests drive it with
//! explicit instants and never sleep.
//!
//! Rules:
//! - A key is in the queue at most once in practice: a caller that moves a deadline removes the old entry
//!   *before* inserting the new one ([`TimerQueue::reschedule`]). Insert-then-remove would leave a stale
//!   entry whenever both deadlines are equal, and stale entries are both a leak and a wrong firing.
//! - Keys carry their connection's generation ([`crate::token::ConnKey`]), so even an entry that outlived
//!   its connection can never fire for a new connection that reuses the slab slot: the loop compares the
//!   generation before acting.
//! - Why an ordered set and not a binary heap with lazy deletion: cancelling is exact, so the size is
//!   exactly the number of armed timers (shown in metrics) and memory stays bounded however often
//!   deadlines move. A `BTreeSet` entry of 16 bytes costs ~25 with the tree's nodes; a hashed wheel would save some of that, at
//!   the price of clarity.

use std::collections::BTreeSet;

/// An ordered set of deadlines of time type `T` (the server uses milliseconds since its loop's epoch, 8
/// bytes, so an entry with its key is 16), each with the key `K` of what it belongs to.
#[derive(Debug)]
pub struct TimerQueue<T, K> {
    entries: BTreeSet<(T, K)>,
}

impl<T: Ord + Copy, K: Ord + Copy> Default for TimerQueue<T, K> {
    fn default() -> Self {
        TimerQueue { entries: BTreeSet::new() }
    }
}

impl<T: Ord + Copy, K: Ord + Copy> TimerQueue<T, K> {
    /// Arms a timer for `key` at `deadline`.
    pub fn schedule(&mut self, deadline: T, key: K) {
        self.entries.insert((deadline, key));
    }

    /// Disarms the timer for `key` at `deadline`; returns whether it was armed.
    pub fn cancel(&mut self, deadline: T, key: K) -> bool {
        self.entries.remove(&(deadline, key))
    }

    /// Moves `key`'s timer from `old` (if armed) to `new` (if any): remove first, then insert.
    pub fn reschedule(&mut self, key: K, old: Option<T>, new: Option<T>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.cancel(old, key);
        }
        if let Some(new) = new {
            self.schedule(new, key);
        }
    }

    /// The earliest armed deadline, which bounds how long the loop may sleep in `poll`.
    pub fn next_deadline(&self) -> Option<T> {
        self.entries.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_expired(&mut self, now: T) -> Option<(T, K)> {
        match self.entries.first() {
            Some((deadline, _)) if *deadline <= now => self.entries.pop_first(),
            _ => None,
        }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::ConnKey;
    use std::time::{Duration, Instant};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.schedule(t0 + ms(30), 3u32);
        q.schedule(t0 + ms(10), 1);
        q.schedule(t0 + ms(20), 2);
        assert_eq!(q.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(q.pop_expired(t0 + ms(5)), None, "nothing is due yet");
        assert_eq!(q.pop_expired(t0 + ms(20)), Some((t0 + ms(10), 1)));
        assert_eq!(q.pop_expired(t0 + ms(20)), Some((t0 + ms(20), 2)));
        assert_eq!(q.pop_expired(t0 + ms(20)), None, "the third is not due");
        assert_eq!(q.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn equal_deadlines_are_kept_apart_by_key() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        for key in 0..100u32 {
            q.schedule(t0, key);
        }
        assert_eq!(q.len(), 100);
        let fired: Vec<u32> = std::iter::from_fn(|| q.pop_expired(t0)).map(|(_, k)| k).collect();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn cancel_removes_exactly_one_entry() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.schedule(t0 + ms(1), 1u32);
        q.schedule(t0 + ms(1), 2);
        assert!(q.cancel(t0 + ms(1), 1));
        assert!(!q.cancel(t0 + ms(1), 1), "already gone");
        assert_eq!(q.pop_expired(t0 + ms(1)), Some((t0 + ms(1), 2)));
        assert!(q.is_empty());
    }

    #[test]
    fn reschedule_moves_without_leaving_a_stale_entry() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.reschedule(7u32, None, Some(t0 + ms(10)));
        q.reschedule(7, Some(t0 + ms(10)), Some(t0 + ms(20)));
        q.reschedule(7, Some(t0 + ms(20)), Some(t0 + ms(20))); // same deadline: a no-op
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_expired(t0 + ms(15)), None, "the old deadline is gone");
        assert_eq!(q.pop_expired(t0 + ms(20)), Some((t0 + ms(20), 7)));
        q.reschedule(7, None, Some(t0));
        q.reschedule(7, Some(t0), None);
        assert!(q.is_empty());
    }

    #[test]
    fn a_reused_slots_stale_timer_carries_the_old_generation() {
        // Connection A holds slot 5 and arms a timer; it closes without cancelling (the bug the
        // generation guards against), and connection B reuses slot 5. The entry that fires still names A's
        // generation, so the loop can tell it is not B's.
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let a = ConnKey { slot: 5, generation: 1 };
        let b = ConnKey { slot: 5, generation: 2 };
        q.schedule(t0 + ms(10), a);
        q.schedule(t0 + ms(30), b);
        let (_, fired) = q.pop_expired(t0 + ms(10)).unwrap();
        assert_eq!(fired.slot, b.slot);
        assert_ne!(fired, b, "the stale entry must not be mistaken for the slot's new owner");
        assert_eq!(q.pop_expired(t0 + ms(30)), Some((t0 + ms(30), b)));
    }
}
