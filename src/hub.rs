//! The hub: published events, their ids, and the replay ring that every stream reads from.
//!
//! # One log, one cursor per stream
//!
//! A published event is encoded once into a frame (`id:`, optional `event:`, `data:` lines) and appended to
//! one ring. A stream does not get a copy: it holds a *cursor*, the id of the next frame it must send, and
//! its writes take frames straight out of the ring, every frame it is behind in one `writev`. So fan-out
//! costs one pointer per stream, not one queue entry per stream per event, and a stream that fell behind
//! costs nothing until it writes.
//!
//! The ring is bounded by `--replay-events` and `--replay-bytes`. The oldest frames are dropped first,
//! whoever still needs them: a stream whose cursor falls off the ring is closed (see
//! [`crate::metrics::CloseReason::FellBehind`]) and comes back with its `Last-Event-ID`, which tells it
//! what it lost. That is the slow-consumer policy, and why memory stays bounded however many clients stop
//! reading.
//!
//! # Ids
//!
//! Ids are decimal integers from one strictly increasing sequence, seeded at start from the clock in
//! microseconds since the Unix epoch: a server restarted later starts above every id it issued before (as
//! long as it published fewer than a million events a second on average), so a client that comes back
//! with an old `Last-Event-ID` is never "ahead" of it, and gets everything published since the restart.
//!
//! # Replay and the `lost` signal
//!
//! The standard has no way to say "your Last-Event-ID is gone". Ours, sent in-band before the replayed
//! events when frames this client had not seen were dropped from the ring:
//!
//! ```text
//! event: lost
//! data: {"last_event_id":"17","first_available_id":"20"}
//! ```
//!
//! It has no `id:`, so it does not move the client's cursor. Listen with
//! `source.addEventListener("lost", ...)`.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sse;

/// Longest `Last-Event-ID` value looked at: 20 digits hold every `u64`.
pub const MAX_EVENT_ID_LEN: usize = 20;

/// One published event, encoded.
#[derive(Debug)]
struct Frame {
    id: u64,
    /// Bytes published before this frame, since start (so a stream's lag in bytes is one subtraction).
    start: u64,
    bytes: Box<[u8]>,
}

/// Where a (re)connecting stream starts reading the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Id of the first frame to send.
    pub cursor: u64,
    /// Set when frames after the client's last id were dropped: (its last id, first id still available).
    pub lost: Option<(u64, u64)>,
}

/// The id sequence and the replay ring.
#[derive(Debug)]
pub struct Hub {
    ring: VecDeque<Frame>,
    ring_bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Id of the first event this process publishes.
    first_id: u64,
    /// Id the next published event gets.
    next_id: u64,
    /// Bytes published since start.
    published_bytes: u64,
    /// A cursor that stands for another id: a stream that started before a following hub saw any event
    /// has cursor 0, and a stream caught up when the backplane's ids started over (Redis restarted
    /// empty) has the old next id; both mean the first id that came after.
    alias_from: u64,
    alias_to: u64,
    /// The next appended id starts a new epoch (see [`Hub::rebase`]).
    rebasing: bool,
    /// Events and bytes published since the fan-out's last full lap (see [`Hub::has_publish_budget`]).
    lap_events: usize,
    lap_bytes: usize,
    /// Most bytes published in one lap.
    max_lap_bytes: usize,
    /// Something was published since [`Hub::take_fresh`] last looked.
    fresh: bool,
}

impl Hub {
    /// A hub whose first id is `seed` (see [`clock_seed`]), keeping at most `max_events` events and
    /// `max_bytes` bytes for replay (the newest event is always kept, whatever its size).
    pub fn new(seed: u64, max_events: usize, max_bytes: usize) -> Hub {
        Hub::with_lap_limit(seed, max_events, max_bytes, usize::MAX)
    }

    /// Like [`Hub::new`], publishing at most `max_lap_bytes` in one fan-out lap (besides half the ring).
    pub fn with_lap_limit(seed: u64, max_events: usize, max_bytes: usize, max_lap_bytes: usize) -> Hub {
        Hub {
            ring: VecDeque::new(),
            ring_bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            first_id: seed,
            next_id: seed,
            lap_events: 0,
            lap_bytes: 0,
            max_lap_bytes: max_lap_bytes.min(max_bytes / 2).max(1),
            fresh: false,
            published_bytes: 0,
            alias_from: 0,
            alias_to: seed,
            rebasing: false,
        }
    }

    /// Publishes one event: encodes it once, appends it to the ring, drops the oldest past the caps.
    /// Returns its id.
    pub fn publish(&mut self, event: Option<&str>, data: &str) -> u64 {
        let id = self.next_id;
        self.push(id, event, data);
        id
    }

    /// A hub that follows ids given by someone else (the Redis backplane): it starts empty, and any id
    /// before the oldest it holds is one it cannot replay (ids are global and contiguous there).
    pub fn following(max_events: usize, max_bytes: usize, max_lap_bytes: usize) -> Hub {
        let mut hub = Hub::with_lap_limit(0, max_events, max_bytes, max_lap_bytes);
        hub.first_id = 0;
        hub
    }

    /// Appends an event whose id was given elsewhere (the backplane). An id already held is ignored (a
    /// read that overlaps); an id past the next expected one is a gap: what lay between is gone, so the
    /// ring restarts there and streams still behind it are closed by the fan-out (they come back and get
    /// the `lost` signal).
    pub fn append(&mut self, id: u64, event: Option<&str>, data: &str) {
        if std::mem::take(&mut self.rebasing) {
            log::info!("backplane ids start over at {id}; caught-up streams carry on");
            self.ring.clear();
            self.ring_bytes = 0;
            (self.alias_from, self.alias_to) = (self.next_id, id);
            self.push(id, event, data);
            return;
        }
        if id < self.next_id && !(self.ring.is_empty() && self.next_id == self.first_id) {
            return;
        }
        if id > self.next_id && !self.ring.is_empty() {
            log::warn!(
                "backplane gap: events {} to {} are gone; streams behind them start over",
                self.next_id,
                id - 1
            );
            self.ring.clear();
            self.ring_bytes = 0;
        }
        self.push(id, event, data);
    }

    fn push(&mut self, id: u64, event: Option<&str>, data: &str) {
        if self.alias_to == 0 {
            self.alias_to = id; // the first event a following hub sees
        }
        self.next_id = id + 1;
        let mut bytes = Vec::with_capacity(data.len() + 32);
        sse::write_event(&mut bytes, event, Some(&id.to_string()), data);
        self.ring_bytes += bytes.len();
        let start = self.published_bytes;
        self.published_bytes += bytes.len() as u64;
        self.ring.push_back(Frame { id, start, bytes: bytes.into_boxed_slice() });
        while self.ring.len() > self.max_events || (self.ring_bytes > self.max_bytes && self.ring.len() > 1) {
            if let Some(old) = self.ring.pop_front() {
                self.ring_bytes -= old.bytes.len();
            }
        }
        self.lap_events += 1;
        self.lap_bytes += self.ring.back().map_or(0, |f| f.bytes.len());
        self.fresh = true;
    }

    /// Whether another event may be published before the fan-out's lap is over. At most half the ring (by
    /// count and by bytes), and at most the lap limit, is published while the fan-out walks once round
    /// every stream: a stream that writes what it is sent at each visit never falls off the ring, nor over
    /// its pending limit in one burst, however fast publishers pipeline. A publisher over budget waits for
    /// a later turn.
    pub fn has_publish_budget(&self) -> bool {
        self.lap_events < (self.max_events / 2).max(1) && self.lap_bytes < self.max_lap_bytes
    }

    /// The id the next event will get; a stream whose cursor is here is caught up.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Id of the oldest event still in the ring (`next_id` when it is empty).
    pub fn oldest_id(&self) -> u64 {
        self.ring.front().map_or(self.next_id, |f| f.id)
    }

    /// Events and bytes held for replay.
    pub fn ring_len(&self) -> (usize, usize) {
        (self.ring.len(), self.ring_bytes)
    }

    /// Whether anything was published since the last call (the fan-out then starts a new lap).
    pub fn take_fresh(&mut self) -> bool {
        std::mem::take(&mut self.fresh)
    }

    /// The fan-out visited every stream since the last publish: the publishing budget starts over.
    pub fn end_lap(&mut self) {
        (self.lap_events, self.lap_bytes) = (0, 0);
    }

    /// A stream's cursor as an id: 0 (a stream of a following hub that started before any event) means
    /// the first event the hub saw. Ids are never 0: ours and Redis's are seeded from the clock.
    pub fn normalize(&self, cursor: u64) -> u64 {
        if cursor == self.alias_from { self.alias_to } else { cursor }
    }

    /// The backplane's ids start over (Redis came back without its data, its counter reseeded from the
    /// clock): the next appended id begins a new epoch. The ring restarts there, streams that were caught
    /// up carry on from it without a break, and streams still behind are closed by the fan-out.
    pub fn rebase(&mut self) {
        self.rebasing = true;
    }

    /// The frames from id `cursor` on, oldest first; `None` if `cursor` fell off the ring.
    pub fn frames_from(&self, cursor: u64) -> Option<impl Iterator<Item = &[u8]> + Clone> {
        let cursor = self.normalize(cursor);
        if cursor < self.oldest_id() {
            return None;
        }
        let skip = (cursor - self.oldest_id()) as usize;
        Some(self.ring.range(skip.min(self.ring.len())..).map(|f| &f.bytes[..]))
    }

    /// Bytes of published events from id `cursor` on (what a stream at `cursor` still has to send);
    /// `None` if `cursor` fell off the ring.
    pub fn lag_bytes(&self, cursor: u64) -> Option<u64> {
        let cursor = self.normalize(cursor);
        if cursor >= self.next_id {
            return Some(0);
        }
        let frame = self.ring.get(cursor.checked_sub(self.oldest_id())? as usize)?;
        Some(self.published_bytes - frame.start)
    }

    /// Where a stream starts: live (no id), or right after `last_event_id`, with the loss signal when
    /// events it had not seen were dropped.
    pub fn resume(&self, last_event_id: Option<u64>) -> Resume {
        let Some(last) = last_event_id else {
            return Resume { cursor: self.next_id, lost: None };
        };
        if last >= self.next_id {
            // "Ahead": an id this server never issued. Nothing to replay.
            return Resume { cursor: self.next_id, lost: None };
        }
        let wanted = last + 1;
        let oldest = self.oldest_id();
        if wanted >= oldest {
            return Resume { cursor: wanted, lost: None };
        }
        // The client missed events before `oldest`. If this process dropped some of its own (the ring's
        // oldest is past its first id), those are lost. If it is an id from before a restart, everything
        // this process published is still here: the client gets all of it, no signal (what the previous
        // process published after that id died with it, and is not ours to know).
        let lost = (oldest > self.first_id).then_some((last, oldest));
        Resume { cursor: oldest, lost }
    }
}

/// The first id for a process starting now: microseconds since the Unix epoch.
pub fn clock_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64)
}

/// Parses an event id sent back by a client: 1 to [`MAX_EVENT_ID_LEN`] ASCII digits. Anything else is
/// not an id this server issued.
pub fn parse_event_id(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_EVENT_ID_LEN || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Appends the `lost` signal frame.
pub fn write_lost(out: &mut Vec<u8>, last_event_id: u64, first_available_id: u64) {
    let data =
        format!(r#"{{"last_event_id":"{last_event_id}","first_available_id":"{first_available_id}"}}"#);
    sse::write_event(out, Some("lost"), None, &data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(hub: &Hub, cursor: u64) -> Vec<String> {
        hub.frames_from(cursor).unwrap().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect()
    }

    #[test]
    fn ids_increase_by_one_from_the_seed_and_frames_carry_them() {
        let mut hub = Hub::new(1000, 10, 1 << 20);
        assert_eq!(hub.publish(None, "a"), 1000);
        assert_eq!(hub.publish(Some("news"), "b\nc"), 1001);
        assert_eq!(hub.next_id(), 1002);
        assert_eq!(
            collect(&hub, 1000),
            ["id: 1000\ndata: a\n\n", "event: news\nid: 1001\ndata: b\ndata: c\n\n"]
        );
        assert_eq!(collect(&hub, 1001).len(), 1);
        assert_eq!(collect(&hub, 1002).len(), 0, "caught up");
        assert!(hub.take_fresh());
        assert!(!hub.take_fresh());
    }

    #[test]
    fn lag_is_the_bytes_from_the_cursor_to_the_end() {
        let mut hub = Hub::new(10, 3, 1 << 20);
        assert_eq!(hub.lag_bytes(10), Some(0));
        let a = hub.publish(None, "a"); // "id: 10\ndata: a\n\n" = 16 bytes
        let b = hub.publish(None, "bb"); // 17 bytes
        assert_eq!(hub.lag_bytes(a), Some(33));
        assert_eq!(hub.lag_bytes(b), Some(17));
        assert_eq!(hub.lag_bytes(b + 1), Some(0));
        hub.publish(None, "c");
        hub.publish(None, "d");
        assert_eq!(hub.lag_bytes(a), None, "fell off the ring");
    }

    #[test]
    fn the_ring_is_bounded_by_count_and_bytes() {
        let mut hub = Hub::new(1, 3, 1 << 20);
        for i in 0..10 {
            hub.publish(None, &i.to_string());
        }
        assert_eq!(hub.ring_len().0, 3);
        assert_eq!(hub.oldest_id(), 8);
        assert!(hub.frames_from(7).is_none(), "cursor 7 fell off the ring");
        let mut small = Hub::new(1, 100, 50);
        for _ in 0..10 {
            small.publish(None, "0123456789");
        }
        let (events, bytes) = small.ring_len();
        assert!(bytes <= 50 && events >= 1, "{events} events, {bytes} bytes");
        let mut huge = Hub::new(1, 100, 10);
        huge.publish(None, &"x".repeat(100));
        assert_eq!(huge.ring_len().0, 1, "the newest event is always kept");
    }

    #[test]
    fn at_most_half_the_ring_is_published_in_one_lap() {
        let mut hub = Hub::new(1, 10, 1 << 20);
        let mut published = 0;
        while hub.has_publish_budget() {
            hub.publish(None, "x");
            published += 1;
        }
        assert_eq!(published, 5);
        hub.end_lap();
        assert!(hub.has_publish_budget(), "a new lap, a new budget");
        let mut bytes = Hub::new(1, 1000, 100);
        while bytes.has_publish_budget() {
            bytes.publish(None, "0123456789");
        }
        assert!(bytes.ring_len().1 >= 50 && bytes.ring_len().0 < 10);
    }

    #[test]
    fn resume_replays_after_the_last_id_and_signals_what_was_dropped() {
        let mut hub = Hub::new(100, 5, 1 << 20);
        assert_eq!(hub.resume(None), Resume { cursor: 100, lost: None });
        for _ in 0..3 {
            hub.publish(None, "x"); // 100, 101, 102
        }
        assert_eq!(hub.resume(None), Resume { cursor: 103, lost: None }, "live only");
        assert_eq!(hub.resume(Some(100)), Resume { cursor: 101, lost: None });
        assert_eq!(hub.resume(Some(102)), Resume { cursor: 103, lost: None }, "up to date");
        assert_eq!(hub.resume(Some(5000)), Resume { cursor: 103, lost: None }, "ahead: live");
        // An id from before a restart: everything this process has, no loss signal.
        assert_eq!(hub.resume(Some(7)), Resume { cursor: 100, lost: None });
        for _ in 0..5 {
            hub.publish(None, "y"); // 103..=107; the ring now holds 103..=107
        }
        assert_eq!(hub.oldest_id(), 103);
        assert_eq!(hub.resume(Some(101)), Resume { cursor: 103, lost: Some((101, 103)) });
        assert_eq!(
            hub.resume(Some(102)),
            Resume { cursor: 103, lost: None },
            "nothing it needed was dropped"
        );
        assert_eq!(hub.resume(Some(7)), Resume { cursor: 103, lost: Some((7, 103)) });
    }

    #[test]
    fn a_following_hub_takes_given_ids_skips_repeats_and_restarts_after_a_gap() {
        let mut hub = Hub::following(10, 1 << 20, usize::MAX);
        hub.append(500, None, "a");
        hub.append(501, Some("n"), "b");
        hub.append(501, None, "b again");
        assert_eq!((hub.oldest_id(), hub.next_id()), (500, 502));
        assert_eq!(
            hub.resume(Some(100)),
            Resume { cursor: 500, lost: Some((100, 500)) },
            "global ids: a gap is a loss"
        );
        hub.append(510, None, "after a gap");
        assert_eq!((hub.oldest_id(), hub.next_id(), hub.ring_len().0), (510, 511, 1));
        assert!(hub.frames_from(501).is_none(), "a stream at 501 fell behind the gap");
        // Redis came back empty: ids start over lower; a caught-up stream (cursor 511) carries on.
        hub.rebase();
        hub.append(300, None, "new epoch");
        assert_eq!(hub.normalize(511), 300);
        assert_eq!(hub.frames_from(511).unwrap().count(), 1);
    }

    #[test]
    fn event_ids_from_clients_are_checked() {
        assert_eq!(parse_event_id("42"), Some(42));
        assert_eq!(parse_event_id(" 42 "), Some(42));
        assert_eq!(parse_event_id("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "-1", "4 2", "0x10", "abc", "18446744073709551616", "123456789012345678901", "１"] {
            assert_eq!(parse_event_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_lost_signal_has_no_id() {
        let mut out = Vec::new();
        write_lost(&mut out, 17, 20);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: lost\ndata: {\"last_event_id\":\"17\",\"first_available_id\":\"20\"}\n\n"
        );
    }
}
