//! The timer queue: every connection's next deadline, earliest first.
//!
//! Pure: it never reads the clock. The event loop asks [`TimerQueue::next_deadline`] for when to wake and,
//! after each poll, pops what has expired at the time it passes in. Unit tests drive it with explicit
//! numbers and never sleep.
//!
//! Rules:
//! - An entry is one `u64`: the deadline in milliseconds since the loop's start in the high
//!   [`DEADLINE_BITS`] bits (34 years), the connection's slab slot in the low [`SLOT_BITS`] (16 million
//!   connections). Ordering the numbers orders the deadlines (equal deadlines by slot).
//! - A slot holds at most one entry: scheduling a slot that has one moves it. (The loop moves a deadline
//!   with [`TimerQueue::reschedule`], which says which entry it expects to move.)
//! - Entries name a slot, not a connection: the loop arms each connection's deadline as it is after
//!   every handler (`Server::settle`), so the queue holds exactly that, and acts on a popped entry only
//!   if it is exactly the deadline of the slot's connection. A connection that closes cancels its
//!   entry; one left behind by mistake could only fire for the slot's next owner at that owner's own
//!   deadline.
//! - A binary min-heap in one `Vec`, with each slot's place in it in a second one: 8 bytes an entry and 4
//!   a slot, ~12 bytes of every stream, where an ordered set (`BTreeSet<u64>`, this queue's first form)
//!   took ~21 with its half-full nodes (19,000 entries, measured). Cancelling is still exact (the slot's
//!   place is known), so the size is exactly the number of armed timers (shown in metrics) and memory
//!   stays bounded however often deadlines move; a heap with lazy deletion would keep one stale entry per
//!   move until its time came.

/// Bits of an entry that hold its slot.
pub const SLOT_BITS: u32 = 24;
/// Bits of an entry that hold its deadline (ms since the loop's start).
pub const DEADLINE_BITS: u32 = 64 - SLOT_BITS;
/// The largest slot an entry can name: a connection past it is refused at accept.
pub const MAX_SLOT: u32 = (1 << SLOT_BITS) - 1;
/// The latest deadline an entry can hold; later ones are held at it (34 years of uptime).
pub const MAX_DEADLINE_MS: u64 = (1 << DEADLINE_BITS) - 1;

/// A slot's place in the heap when it has no entry.
const NOT_QUEUED: u32 = u32::MAX;

/// The deadlines of the connections, earliest first.
#[derive(Debug, Default)]
pub struct TimerQueue {
    /// A binary min-heap of entries: each one no later than its two children (`2i + 1`, `2i + 2`).
    heap: Vec<u64>,
    /// Each slot's index in `heap`, or [`NOT_QUEUED`]; as long as the largest slot ever queued.
    place: Vec<u32>,
}

fn entry(deadline_ms: u64, slot: u32) -> u64 {
    debug_assert!(slot <= MAX_SLOT, "slot {slot} is past what an entry holds");
    (deadline_ms.min(MAX_DEADLINE_MS) << SLOT_BITS) | u64::from(slot & MAX_SLOT)
}

fn parts(entry: u64) -> (u64, u32) {
    (entry >> SLOT_BITS, (entry & u64::from(MAX_SLOT)) as u32)
}

impl TimerQueue {
    /// Arms a timer for `slot` at `deadline_ms` (moving the slot's entry if it has one).
    pub fn schedule(&mut self, deadline_ms: u64, slot: u32) {
        let new = entry(deadline_ms, slot);
        let slot = parts(new).1 as usize;
        if self.place.len() <= slot {
            self.place.resize(slot + 1, NOT_QUEUED);
        }
        match self.place[slot] {
            NOT_QUEUED => {
                self.heap.push(new);
                self.settle_at(self.heap.len() - 1);
            }
            at => {
                self.heap[at as usize] = new;
                self.settle_at(at as usize);
            }
        }
    }

    /// Disarms the timer for `slot` at `deadline_ms`; returns whether it was armed.
    pub fn cancel(&mut self, deadline_ms: u64, slot: u32) -> bool {
        let wanted = entry(deadline_ms, slot);
        match self.place.get(parts(wanted).1 as usize) {
            Some(&at) if at != NOT_QUEUED && self.heap[at as usize] == wanted => {
                self.remove_at(at as usize);
                true
            }
            _ => false,
        }
    }

    /// Moves `slot`'s timer from `old` (if armed) to `new` (if any).
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
        self.heap.first().map(|&e| parts(e).0)
    }

    /// Removes and returns the earliest timer, `(deadline_ms, slot)`, if it is due at `now_ms`.
    pub fn pop_expired(&mut self, now_ms: u64) -> Option<(u64, u32)> {
        match self.heap.first() {
            Some(&e) if parts(e).0 <= now_ms => {
                self.remove_at(0);
                Some(parts(e))
            }
            _ => None,
        }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Takes the entry at `at` out: the last entry fills its place and settles from there.
    fn remove_at(&mut self, at: usize) {
        let gone = self.heap.swap_remove(at);
        self.place[parts(gone).1 as usize] = NOT_QUEUED;
        if at < self.heap.len() {
            self.settle_at(at);
        }
    }

    /// Moves the entry at `at` up or down until the heap's order holds again, keeping `place` in step.
    fn settle_at(&mut self, mut at: usize) {
        let moving = self.heap[at];
        while at > 0 && moving < self.heap[(at - 1) / 2] {
            let parent = (at - 1) / 2;
            self.put(at, self.heap[parent]);
            at = parent;
        }
        loop {
            let left = 2 * at + 1;
            let Some(&left_entry) = self.heap.get(left) else { break };
            let (child, child_entry) = match self.heap.get(left + 1) {
                Some(&right_entry) if right_entry < left_entry => (left + 1, right_entry),
                _ => (left, left_entry),
            };
            if child_entry >= moving {
                break;
            }
            self.put(at, child_entry);
            at = child;
        }
        self.put(at, moving);
    }

    /// Writes `e` at `at` and records its slot's place.
    fn put(&mut self, at: usize, e: u64) {
        self.heap[at] = e;
        self.place[parts(e).1 as usize] = at as u32;
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
    fn scheduling_a_slot_again_moves_its_one_entry() {
        let mut q = TimerQueue::default();
        q.schedule(50, 4);
        q.schedule(10, 4);
        assert_eq!(q.len(), 1);
        assert!(!q.cancel(50, 4), "the old deadline is not armed");
        assert_eq!(q.pop_expired(100), Some((10, 4)));
        assert!(q.is_empty() && q.pop_expired(u64::MAX).is_none());
    }

    #[test]
    fn any_mix_of_moves_and_cancels_pops_like_a_sorted_list() {
        // A small deterministic generator (no dependency): schedules, moves and cancels on 64 slots,
        // checked against the plain answer after every step.
        let (mut q, mut armed) = (TimerQueue::default(), std::collections::BTreeMap::<u32, u64>::new());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..20_000 {
            let slot = next(64) as u32;
            match next(4) {
                0 | 1 => {
                    let deadline = next(1_000);
                    q.reschedule(slot, armed.get(&slot).copied(), Some(deadline));
                    armed.insert(slot, deadline);
                }
                2 => {
                    let had = armed.remove(&slot);
                    assert_eq!(had.is_some_and(|d| q.cancel(d, slot)), had.is_some(), "step {step}");
                }
                _ => {
                    let now = next(1_000);
                    let due = armed.iter().map(|(&s, &d)| (d, s)).filter(|&(d, _)| d <= now).min();
                    assert_eq!(q.pop_expired(now), due, "step {step}");
                    if let Some((_, s)) = due {
                        armed.remove(&s);
                    }
                }
            }
            assert_eq!(q.len(), armed.len(), "step {step}");
            assert_eq!(q.next_deadline(), armed.values().min().copied(), "step {step}");
        }
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
