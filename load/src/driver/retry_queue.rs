//! When each dropped stream tries again: a min-heap of `(deadline, slot)`, popped as deadlines pass.
//!
//! Pure: it never reads the clock; the driver passes `now` in and turns [`RetryQueue::next_deadline`] into
//! part of its poll timeout.
//!
//! Rules:
//! - Nothing is ever cancelled. A slot may be queued while it already reconnected (a storm, then a
//!   timeout), so an entry is only a hint: the driver checks the slot's state when it pops it (no client
//!   and not stopped) and drops stale entries there. That is why a plain heap fits, where the server's
//!   timer queue needs an ordered set with exact removal.
//! - Entries are bounded by the streams: each attempt's end queues at most one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Subscriber slots waiting for their reconnection time.
#[derive(Debug, Default)]
pub struct RetryQueue {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl RetryQueue {
    /// Queues `slot` to try again at `at`.
    pub fn schedule(&mut self, at: Instant, slot: usize) {
        self.heap.push(Reverse((at, slot)));
    }

    /// The earliest reconnection time, if any is queued.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes one slot whose time has come by `now`, earliest first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Instant, usize)> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_only_what_is_due_earliest_first() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = RetryQueue::default();
        queue.schedule(t0 + ms(30), 3);
        queue.schedule(t0 + ms(10), 1);
        queue.schedule(t0 + ms(20), 2);
        assert_eq!(queue.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(queue.pop_expired(t0 + ms(5)), None);
        assert_eq!(queue.pop_expired(t0 + ms(20)), Some((t0 + ms(10), 1)));
        assert_eq!(queue.pop_expired(t0 + ms(20)), Some((t0 + ms(20), 2)));
        assert_eq!(queue.pop_expired(t0 + ms(20)), None);
        assert_eq!(queue.next_deadline(), Some(t0 + ms(30)));
    }
}
