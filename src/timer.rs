//! The timer queue: one ordered set of every connection's next deadline.
//!
//! Pure: it never reads the clock. The event loop asks [`TimerQueue::next_deadline`] for when to wake and,
//! after each poll, pops what has expired at the time it passes in. Unit tests drive it with explicit
//! numbers and never sleep.
//!
//! Rules:
//! - An entry is one `u64`: the deadline in milliseconds since the loop's start in the high
//!   [`DEADLINE_BITS`] bits (34 years), the connection's slab slot in the low [`SLOT_BITS`] (16 million
//!   connections). Ordering the numbers orders the deadlines (equal deadlines by slot), and an entry costs
//!   8 bytes in the tree's nodes, not the 16 a `(u64, key)` pair takes with its padding: at ~1.5 entries
//!   per node slot, that is ~12 bytes of every stream.
//! - A slot is in the queue at most once in practice: a caller that moves a deadline removes the old
//!   entry *before* inserting the new one ([`TimerQueue::reschedule`]). Insert-then-remove would lose the
//!   entry whenever both deadlines are equal.
//! - Entries name a slot, not a connection: the loop arms each connection's deadline as it is after
//!   every handler (`Server::settle`), so the queue holds exactly that, and acts on a popped entry only
//!   if it is exactly the deadline of the slot's connection. A connection that closes cancels its
//!   entry; one left behind by mistake could only fire for the slot's next owner at that owner's own
//!   deadline.
//! - Why an ordered set and not a binary heap with lazy deletion: cancelling is exact, so the size is
//!   exactly the number of armed timers (shown in metrics) and memory stays bounded however often
//!   deadlines move.

use std::collections::BTreeSet;

/// Bits of an entry that hold its slot.
pub const SLOT_BITS: u32 = 24;
/// Bits of an entry that hold its deadline (ms since the loop's start).
pub const DEADLINE_BITS: u32 = 64 - SLOT_BITS;
/// The largest slot an entry can name: a connection past it is refused at accept.
pub const MAX_SLOT: u32 = (1 << SLOT_BITS) - 1;
/// The latest deadline an entry can hold; later ones are held at it (34 years of uptime).
pub const MAX_DEADLINE_MS: u64 = (1 << DEADLINE_BITS) - 1;

/// The deadlines of the connections, earliest first.
#[derive(Debug, Default)]
pub struct TimerQueue {
    entries: BTreeSet<u64>,
}

fn entry(deadline_ms: u64, slot: u32) -> u64 {
    debug_assert!(slot <= MAX_SLOT, "slot {slot} is past what an entry holds");
    (deadline_ms.min(MAX_DEADLINE_MS) << SLOT_BITS) | u64::from(slot & MAX_SLOT)
}

fn parts(entry: u64) -> (u64, u32) {
    (entry >> SLOT_BITS, (entry & u64::from(MAX_SLOT)) as u32)
}

impl TimerQueue {
    /// Arms a timer for `slot` at `deadline_ms`.
    pub fn schedule(&mut self, deadline_ms: u64, slot: u32) {
        self.entries.insert(entry(deadline_ms, slot));
    }

    /// Disarms the timer for `slot` at `deadline_ms`; returns whether it was armed.
    pub fn cancel(&mut self, deadline_ms: u64, slot: u32) -> bool {
        self.entries.remove(&entry(deadline_ms, slot))
    }

    /// Moves `slot`'s timer from `old` (if armed) to `new` (if any): remove first, then insert.
    pub fn reschedule(&mut self, slot: u32, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.cancel(old, slot);
        }
        if let Some(new) = new {
            self.schedule(new, slot);
        }
    }

    /// The earliest armed deadline (ms), which bounds how long the loop may sleep.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.first().map(|&e| parts(e).0)
    }

    /// Removes and returns the earliest timer, `(deadline_ms, slot)`, if it is due at `now_ms`.
    pub fn pop_expired(&mut self, now_ms: u64) -> Option<(u64, u32)> {
        match self.entries.first() {
            Some(&e) if parts(e).0 <= now_ms => self.entries.pop_first().map(parts),
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

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut q = TimerQueue::default();
        q.schedule(30, 3);
        q.schedule(10, 1);
        q.schedule(20, 2);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_expired(5), None, "nothing is due yet");
        assert_eq!(q.pop_expired(20), Some((10, 1)));
        assert_eq!(q.pop_expired(20), Some((20, 2)));
        assert_eq!(q.pop_expired(20), None, "the third is not due");
        assert_eq!(q.next_deadline(), Some(30));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn equal_deadlines_are_kept_apart_by_slot() {
        let mut q = TimerQueue::default();
        for slot in (0..100u32).rev() {
            q.schedule(7, slot);
        }
        assert_eq!(q.len(), 100);
        let fired: Vec<u32> = std::iter::from_fn(|| q.pop_expired(7)).map(|(_, slot)| slot).collect();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn cancel_removes_exactly_one_entry() {
        let mut q = TimerQueue::default();
        q.schedule(1, 1);
        q.schedule(1, 2);
        assert!(q.cancel(1, 1));
        assert!(!q.cancel(1, 1), "already gone");
        assert_eq!(q.pop_expired(1), Some((1, 2)));
        assert!(q.is_empty());
    }

    #[test]
    fn reschedule_moves_without_leaving_a_stale_entry() {
        let mut q = TimerQueue::default();
        q.reschedule(7, None, Some(10));
        q.reschedule(7, Some(10), Some(20));
        q.reschedule(7, Some(20), Some(20)); // same deadline: a no-op
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_expired(15), None, "the old deadline is gone");
        assert_eq!(q.pop_expired(20), Some((20, 7)));
        q.reschedule(7, None, Some(0));
        q.reschedule(7, Some(0), None);
        assert!(q.is_empty());
    }

    #[test]
    fn an_entry_holds_the_largest_slot_and_a_deadline_34_years_away() {
        let mut q = TimerQueue::default();
        let years_34 = 34 * 365 * 24 * 3600 * 1000;
        assert!(years_34 <= MAX_DEADLINE_MS);
        q.schedule(years_34, MAX_SLOT);
        q.schedule(years_34, 0);
        q.schedule(u64::MAX, 1); // beyond: held at the latest
        assert_eq!(q.pop_expired(u64::MAX), Some((years_34, 0)));
        assert_eq!(q.pop_expired(u64::MAX), Some((years_34, MAX_SLOT)));
        assert_eq!(q.pop_expired(u64::MAX), Some((MAX_DEADLINE_MS, 1)));
    }
}
