//! Fan-out: getting published events to their topics' streams, in bounded slices.
//!
//! A publish does not write to any stream. It appends one frame to the hub's ring and queues its topic
//! (once, however many events it got meanwhile). The fan-out walks the queued topics' subscriber lists,
//! a slice of [`FAN_OUT_SLICE`] streams per turn; each stream it visits writes everything it lacks (every
//! frame of its topics from its cursor on) in one `writev`. Then the loop goes on to reads, accepts,
//! ticks and publishes before the next slice.
//!
//! Rules:
//! - A publish costs O(its topic's subscribers): only they are visited, never the whole slab.
//! - Bounded work per turn (the loop's rule 7): at most [`FAN_OUT_SLICE`] streams written and
//!   [`ENTRIES_PER_TURN`] list entries looked at per turn, however many streams there are.
//! - A topic published to during its walk is queued again, behind the others: every subscriber is
//!   visited once after the last publish, and no topic starves another (the queue is first come, first
//!   served).
//! - Batching comes by itself: while the walk goes round, publishes pile up in the ring, and a stream
//!   takes all that piled up in one syscall. At a low rate a walk covers one event, which goes out at once.
//! - The publishing budget ([`crate::hub::Hub::has_publish_budget`]) is renewed when the queue is empty
//!   and no walk is left, not at each turn: that is how far a stream may fall behind between visits.
//! - Entries of streams that have gone are dropped by the walk (see [`crate::hub::topics`]); streams with
//!   bytes pending cost nothing extra: a visit finds them waiting for a writable edge (that flush takes
//!   the new frames too) and only checks their lag.

use std::time::Instant;

use super::Server;
use crate::hub::TopicId;

/// Streams written per turn by the fan-out. A `writev` costs ~10 µs here, so a slice is well under a
/// millisecond: 10,000 streams take ~160 turns, with reads, accepts and ticks between them, instead of one
/// turn of ~100 ms of nothing else. The slice also sets how well a publisher that waits for each answer
/// batches: it gets one answer a turn, so the shorter the turn, the more events pile up while a walk goes
/// round, and the fewer writes each delivery costs. Measured (`mio-sse-load bench`, 10,000 streams, 200
/// events, waiting publisher, interleaved runs): 256 → 0.34–0.38 µs of server CPU per delivery, 128 →
/// 0.30–0.37, 64 → 0.22–0.27, 32 → 0.22–0.31; the rate stayed over 2 M/s at each and the 5/s latency
/// did not move. Smaller slices only add turns (an `epoll_wait` each) per walk.
pub const FAN_OUT_SLICE: usize = 64;
/// Subscriber-list entries looked at per turn at most (some may name streams that have gone).
pub const ENTRIES_PER_TURN: usize = FAN_OUT_SLICE * 16;

/// Where the walk is.
#[derive(Debug, Default)]
pub struct FanOut {
    /// The topic being walked, and the next entry of its list to look at.
    walk: Option<(TopicId, usize)>,
}

impl FanOut {
    /// Whether a walk is in progress or waiting (the loop then does not wait in `poll`).
    pub fn walking(&self) -> bool {
        self.walk.is_some()
    }
}

impl<S: super::Transport> Server<S> {
    /// One slice of the fan-out (see the module's rules).
    pub(super) fn fan_out(&mut self, now: Instant) {
        let (mut written, mut looked) = (0, 0);
        while written < FAN_OUT_SLICE && looked < ENTRIES_PER_TURN {
            let (topic, i) = match self.fan_out.walk {
                Some(walk) => walk,
                None => match self.cx.hub.topics.start_walk() {
                    Some(topic) => (topic, 0),
                    None => break,
                },
            };
            looked += 1;
            let Some(key) = self.cx.hub.topics.subscriber(topic, i) else {
                self.cx.hub.topics.end_walk(topic);
                self.fan_out.walk = None;
                continue;
            };
            let streaming = self
                .conns
                .get(key.slot as usize)
                .is_some_and(|c| c.generation == key.generation && c.stream().is_some());
            if !streaming {
                // Gone (or no longer streaming, which is for good): its entry goes, the last takes its place.
                self.cx.hub.topics.drop_subscriber(topic, i);
                self.fan_out.walk = Some((topic, i));
                continue;
            }
            self.fan_out.walk = Some((topic, i + 1));
            written += 1;
            self.with_conn(key, now, |conn, cx| conn.catch_up(cx, now));
        }
        if written > 0 || looked > 0 {
            self.cx.counters.fan_out_slices += 1;
        }
        if self.fan_out.walk.is_none() && !self.cx.hub.topics.has_queued() {
            self.cx.hub.end_lap();
        }
    }
}
