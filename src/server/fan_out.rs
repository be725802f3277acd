//! Fan-out: getting published events to every stream, in bounded slices.
//!
//! A publish does not write to any stream. It appends one frame to the hub's ring, and the fan-out walks
//! round the slab, a slice of [`FAN_OUT_SLICE`] streams per turn, round robin; each stream it visits writes
//! everything it lacks (every frame from its cursor on) in one `writev`. Then the loop goes on to reads,
//! accepts, ticks and publishes before the next slice.
//!
//! Rules:
//! - Bounded work per turn (the loop's rule 7): at most [`FAN_OUT_SLICE`] streams written and
//!   [`SLOTS_PER_TURN`] slots looked at per turn, however many streams there are.
//! - A publish starts a new lap from where the walk is, so every stream is visited once after the last
//!   publish; none waits more than one lap, and the walk never restarts from slot 0 (no stream starves).
//! - Batching comes by itself: while the walk goes round, publishes pile up in the ring, and a stream
//!   takes all that piled up in one syscall. At a low rate a lap covers one event, which goes out at once.
//! - The publishing budget ([`crate::hub::Hub::has_publish_budget`]) is renewed at the end of a lap, not
//!   of a turn: streams are visited once a lap, so that is how much they may fall behind between visits.
//! - Streams with bytes pending are skipped by nobody and cost nothing extra: a visit finds them waiting
//!   for a writable edge (their flush will take the new frames too) and only checks their lag.

use std::time::Instant;

use super::Server;

/// Streams written per turn by the fan-out. A `writev` costs a few microseconds, so a slice is about a
/// millisecond: 10,000 streams take 40 turns, with reads, accepts and ticks between them, instead of one
/// turn of ~70 ms of nothing else. Smaller slices add turns (and `epoll_wait`s) per lap; larger ones add
/// latency to everything else in the loop.
pub const FAN_OUT_SLICE: usize = 256;
/// Slab slots looked at per turn at most (most may be idle connections or free slots).
pub const SLOTS_PER_TURN: usize = FAN_OUT_SLICE * 16;

/// Where the walk is.
#[derive(Debug, Default)]
pub struct FanOut {
    /// The next slab slot to look at.
    next_slot: usize,
    /// Slots still to look at in this lap (0: no lap in progress).
    remaining: usize,
}

impl FanOut {
    /// Whether a lap is in progress (the loop then does not wait in `poll`).
    pub fn walking(&self) -> bool {
        self.remaining > 0
    }
}

impl<S: super::Transport> Server<S> {
    /// One slice of the fan-out (see the module's rules).
    pub(super) fn fan_out(&mut self, now: Instant) {
        let slots = self.conns.capacity();
        if self.cx.hub.take_fresh() {
            self.fan_out.remaining = slots; // a new lap, from where the walk is
            if slots == 0 {
                self.cx.hub.end_lap(); // no connection: a lap of nothing
            }
        }
        if self.fan_out.remaining == 0 {
            return;
        }
        let (mut written, mut looked) = (0, 0);
        while self.fan_out.remaining > 0 && written < FAN_OUT_SLICE && looked < SLOTS_PER_TURN {
            let slot = self.fan_out.next_slot % slots.max(1);
            self.fan_out.next_slot = slot + 1;
            self.fan_out.remaining -= 1;
            looked += 1;
            let Some(conn) = self.conns.get(slot) else { continue };
            if conn.stream().is_none() {
                continue;
            }
            let key = conn.key;
            written += 1;
            self.with_conn(key, now, |conn, cx| conn.catch_up(cx, now));
        }
        self.cx.counters.fan_out_slices += 1;
        if self.fan_out.remaining == 0 {
            self.cx.hub.end_lap();
        }
    }
}
