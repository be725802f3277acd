//! The hub: published events, their ids, their topics, and the replay ring that every stream reads from.
//!
//! # One log, one cursor per stream
//!
//! A published event is encoded once into a frame (`id:`, optional `event:`, `data:` lines) and appended to
//! one ring, under its topic ([`topics`]). A stream does not get a copy: it holds a *cursor*, the id from
//! which it still has frames of its topics to send, and its writes take those frames straight out of the
//! ring, every frame it is behind in one `writev`. So fan-out costs one visit per subscriber, not one queue
//! entry per stream per event, and a stream that fell behind costs nothing until it writes.
//!
//! The ring is bounded by `--replay-events` and `--replay-bytes`, for all topics together: the oldest
//! frames are dropped first, whatever their topic, so a busy topic pushes a quiet topic's history out
//! sooner (the budget is shared in the order events came, the way one log is). A stream that had not yet
//! sent a dropped frame of its topics is closed (see [`crate::metrics::CloseReason::FellBehind`]) and comes
//! back with its `Last-Event-ID`, which tells it what it lost. That is the slow-consumer policy, and why
//! memory stays bounded however many clients stop reading.
//!
//! # Ids
//!
//! Ids are decimal integers from one strictly increasing sequence for all topics, seeded at start from the
//! clock in microseconds since the Unix epoch: a stream on several topics has one `Last-Event-ID` and
//! resumes every topic from it, and a server restarted later starts above every id it issued before (as
//! long as it published fewer than a million events a second on average), so a client that comes back
//! with an old `Last-Event-ID` is never "ahead" of it, and gets everything published since the restart.
//!
//! # Replay and the `lost` signal
//!
//! The standard has no way to say "your Last-Event-ID is gone". Ours, sent in-band before the replayed
//! events when frames of its topics that this client had not seen were dropped from the ring:
//!
//! ```text
//! event: lost
//! data: {"last_event_id":"17","first_available_id":"20"}
//! ```
//!
//! It has no `id:`, so it does not move the client's cursor. Listen with
//! `source.addEventListener("lost", ...)`. On several topics, `first_available_id` is the first id from
//! which every one of them is whole again.

mod backlog;
#[cfg(test)]
mod tests;
pub mod topics;

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sse;
pub use backlog::Owed;
pub use topics::{DEFAULT_TOPIC, Subscription, TopicId, Topics, TopicsFull};

/// Longest `Last-Event-ID` value looked at: 20 digits hold every `u64`.
pub const MAX_EVENT_ID_LEN: usize = 20;
/// How far past the newest id a following hub holds a client's `Last-Event-ID` may be and still be
/// waited for (see [`Hub::resume`]): ten million ids, hours of publishing at any rate a backlog read
/// could be behind by.
pub const MAX_AHEAD: u64 = 10_000_000;
/// The topic of a frame that the backplane brought for a topic this process had no room for
/// (`--max-topics`): it keeps the ring's ids contiguous and reaches nobody here.
pub const NO_TOPIC: TopicId = u32::MAX;

/// One published event, encoded.
#[derive(Debug)]
struct Frame {
    id: u64,
    topic: TopicId,
    bytes: Box<[u8]>,
}

/// Where a (re)connecting stream starts reading the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The id from which its frames are sent.
    pub cursor: u64,
    /// Set when frames after the client's last id were dropped: (its last id, first id still available).
    pub lost: Option<(u64, u64)>,
}

/// The id sequence, the replay ring, and the topics.
#[derive(Debug)]
pub struct Hub {
    /// Frames with contiguous ids, oldest first (a gap or a new epoch clears it).
    ring: VecDeque<Frame>,
    ring_bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Id the next published event gets.
    next_id: u64,
    /// Ids below this one are unknown here (a following hub's start, a gap in the backplane's ids): a
    /// stream that needs one lost it.
    known_from: u64,
    /// Ids are given by the backplane (see [`Hub::following`]).
    following: bool,
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
    pub topics: Topics,
}

impl Hub {
    /// A hub whose first id is `seed` (see [`clock_seed`]), keeping at most `max_events` events and
    /// `max_bytes` bytes for replay (the newest event is always kept, whatever its size).
    pub fn new(seed: u64, max_events: usize, max_bytes: usize) -> Hub {
        Hub::with_limits(seed, max_events, max_bytes, usize::MAX, usize::MAX)
    }

    /// Like [`Hub::new`], publishing at most `max_lap_bytes` in one fan-out lap (besides half the ring),
    /// with room for `max_topics` topics.
    pub fn with_limits(
        seed: u64,
        max_events: usize,
        max_bytes: usize,
        max_lap_bytes: usize,
        max_topics: usize,
    ) -> Hub {
        Hub {
            ring: VecDeque::new(),
            ring_bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            next_id: seed,
            known_from: 0,
            following: false,
            lap_events: 0,
            lap_bytes: 0,
            max_lap_bytes: max_lap_bytes.min(max_bytes / 2).max(1),
            alias_from: 0,
            alias_to: seed,
            rebasing: false,
            topics: Topics::new(max_topics),
        }
    }

    /// A hub that follows ids given by someone else (the Redis backplane): it starts empty, and any id
    /// before the first it holds is one it cannot replay (ids are global and contiguous there).
    pub fn following(max_events: usize, max_bytes: usize, max_lap_bytes: usize, max_topics: usize) -> Hub {
        let mut hub = Hub::with_limits(0, max_events, max_bytes, max_lap_bytes, max_topics);
        hub.following = true;
        hub
    }

    /// Publishes one event on `topic`: encodes it once, appends it to the ring, drops the oldest past the
    /// caps. Returns its id.
    pub fn publish(&mut self, topic: TopicId, event: Option<&str>, data: &str) -> u64 {
        let id = self.next_id;
        self.push(id, topic, event, data);
        id
    }

    /// Appends an event whose id was given elsewhere (the backplane), on the topic called `topic` (made
    /// here if needed). An id already held is ignored (a read that overlaps); an id past the next
    /// expected one is a gap: what lay between is gone, so the ring restarts there and streams still
    /// behind it are closed by the fan-out (they come back and get the `lost` signal).
    pub fn append(&mut self, id: u64, topic: Option<&str>, event: Option<&str>, data: &str) {
        if std::mem::take(&mut self.rebasing) {
            log::info!("backplane ids start over at {id}; caught-up streams carry on");
            self.clear_ring();
            if id < self.next_id {
                // Below the old epoch's ids: what the topics dropped there says nothing of these.
                self.topics.forget_drops();
                self.known_from = id;
            }
            (self.alias_from, self.alias_to) = (self.next_id, id);
        } else if id < self.next_id && !(self.ring.is_empty() && self.known_from == 0) {
            return;
        } else if id > self.next_id && !self.ring.is_empty() {
            log::warn!(
                "backplane gap: events {} to {} are gone; streams behind them start over",
                self.next_id,
                id - 1
            );
            self.clear_ring();
            self.known_from = id;
        }
        let topic = match self.topics.find_or_make(topic) {
            Ok(topic) => topic,
            Err(_) => {
                log::debug!("backplane event {id} for a topic with no room here (--max-topics)");
                self.topics.forget(id); // a client that comes for its topic later learns it lost it
                NO_TOPIC
            }
        };
        self.push(id, topic, event, data);
    }

    fn push(&mut self, id: u64, topic: TopicId, event: Option<&str>, data: &str) {
        if self.following && self.known_from == 0 {
            self.known_from = id; // the first event a following hub sees
        }
        if self.alias_to == 0 {
            self.alias_to = id;
        }
        self.next_id = id + 1;
        let mut bytes = Vec::with_capacity(data.len() + 32);
        sse::write_event(&mut bytes, event, Some(&id.to_string()), data);
        let len = bytes.len();
        if let Some(t) = self.topics.get_mut(topic) {
            t.frames.push_back(topics::TopicFrame { id, start: t.published_bytes });
            t.published_bytes += len as u64;
        }
        self.ring_bytes += len;
        self.ring.push_back(Frame { id, topic, bytes: bytes.into_boxed_slice() });
        while self.ring.len() > self.max_events || (self.ring_bytes > self.max_bytes && self.ring.len() > 1) {
            self.drop_oldest();
        }
        self.lap_events += 1;
        self.lap_bytes += len;
        self.topics.enqueue(topic);
    }

    /// Drops the oldest frame; its topic remembers that it is gone.
    fn drop_oldest(&mut self) {
        let Some(old) = self.ring.pop_front() else { return };
        self.ring_bytes -= old.bytes.len();
        if let Some(topic) = self.topics.get_mut(old.topic) {
            topic.frames.pop_front();
            topic.dropped_through = old.id;
        }
        self.topics.reclaim_if_unused(old.topic);
    }

    fn clear_ring(&mut self) {
        while !self.ring.is_empty() {
            self.drop_oldest();
        }
    }

    /// Whether another event may be published before the fan-out's lap is over. At most half the ring (by
    /// count and by bytes), and at most the lap limit, is published while the fan-out walks once round
    /// the subscribers of what was published: a stream that writes what it is sent at each visit never
    /// falls off the ring, nor over its pending limit in one burst, however fast publishers pipeline. A
    /// publisher over budget waits for a later turn.
    pub fn has_publish_budget(&self) -> bool {
        self.lap_events < (self.max_events / 2).max(1) && self.lap_bytes < self.max_lap_bytes
    }

    /// The fan-out has nothing left to walk: the publishing budget starts over.
    pub fn end_lap(&mut self) {
        (self.lap_events, self.lap_bytes) = (0, 0);
    }

    /// The id the next event will get.
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

    /// A stream's cursor as an id: 0 (a stream of a following hub that started before any event) means
    /// the first event the hub saw. Ids are never 0: ours and Redis's are seeded from the clock.
    pub fn normalize(&self, cursor: u64) -> u64 {
        if cursor == self.alias_from { self.alias_to } else { cursor }
    }

    /// The backplane's ids start over (Redis came back without its data, its counter reseeded from the
    /// clock): the next appended id begins a new epoch. The ring restarts there, streams that owed
    /// nothing carry on, and streams still owed a frame of the old epoch are closed by the fan-out. (A new
    /// epoch's ids are above the old ones, being seeded from a later clock, unless the old one published
    /// more than a million events a second on average. Then only the streams that were at the old end
    /// carry on; a stream on a quiet topic waits until the new ids pass its cursor.)
    pub fn rebase(&mut self) {
        self.rebasing = true;
    }

    /// Whether a stream at `cursor` on `subscription` missed a frame it can no longer get.
    pub fn fell_behind(&self, subscription: Subscription, cursor: u64) -> bool {
        let cursor = self.normalize(cursor);
        cursor < self.known_from
            || self
                .topics
                .topics_of(subscription)
                .iter()
                .any(|&t| self.topics.get(t).is_some_and(|topic| topic.dropped_through >= cursor))
    }

    /// The ids of the frames a stream at `cursor` on `subscription` still has to send, oldest first.
    pub fn owed(&self, subscription: Subscription, cursor: u64) -> Owed<'_> {
        Owed::new(&self.topics, self.topics.topics_of(subscription), self.normalize(cursor))
    }

    /// Whether a stream at `cursor` has frames to send.
    pub fn owes(&self, subscription: Subscription, cursor: u64) -> bool {
        let cursor = self.normalize(cursor);
        cursor < self.next_id
            && self.topics.topics_of(subscription).iter().any(|&t| {
                self.topics.get(t).and_then(|topic| topic.frames.back()).is_some_and(|last| last.id >= cursor)
            })
    }

    /// The frames a stream at `cursor` has to send, oldest first; `None` if it fell behind.
    pub fn backlog(
        &self,
        subscription: Subscription,
        cursor: u64,
    ) -> Option<impl Iterator<Item = &[u8]> + Clone> {
        if self.fell_behind(subscription, cursor) {
            return None;
        }
        let oldest = self.oldest_id();
        Some(self.owed(subscription, cursor).filter_map(move |id| {
            self.ring.get(id.checked_sub(oldest)? as usize).map(|frame| &frame.bytes[..])
        }))
    }

    /// The cursor of a stream at `cursor` that wrote `written` frames of its backlog: past the last one
    /// written, or the next id when nothing more is owed (so a caught-up stream's cursor is the hub's end).
    pub fn advance(&self, subscription: Subscription, cursor: u64, written: usize) -> u64 {
        let mut owed = self.owed(subscription, cursor);
        let cursor = match written.checked_sub(1) {
            Some(last) => owed.nth(last).map_or(self.next_id, |id| id + 1),
            None => self.normalize(cursor),
        };
        // Nothing more owed: the end of the ring, or a cursor past it (a stream waiting for ids it
        // has already seen elsewhere, see `resume`) that stays where it is.
        if owed.next().is_none() { self.next_id.max(cursor) } else { cursor }
    }

    /// Bytes of the frames a stream at `cursor` still has to send; `None` if it fell behind.
    pub fn lag_bytes(&self, subscription: Subscription, cursor: u64) -> Option<u64> {
        if self.fell_behind(subscription, cursor) {
            return None;
        }
        if !self.owes(subscription, cursor) {
            return Some(0); // the common case after a write: no search
        }
        let cursor = self.normalize(cursor);
        let lag =
            self.topics.topics_of(subscription).iter().filter_map(|&t| self.topics.get(t)).map(|topic| {
                let first = topic.position(cursor);
                topic.frames.get(first).map_or(0, |f| topic.published_bytes - f.start)
            });
        Some(lag.sum())
    }

    /// Where a stream on `subscription` starts: live (no id), or right after `last_event_id`, with the
    /// loss signal when frames of its topics that it had not seen were dropped.
    pub fn resume(&self, subscription: Subscription, last_event_id: Option<u64>) -> Resume {
        let Some(last) = last_event_id else {
            return Resume { cursor: self.next_id, lost: None };
        };
        if last >= self.next_id {
            // Ahead of what this process holds. Through the backplane that is a process behind Redis
            // (a worker just started, still reading the backlog) and a client that has seen those ids:
            // it waits for the ids after its own, rather than getting again what it had. Anything else
            // (or an id implausibly far ahead) is an id never issued: live, nothing to replay.
            let behind_redis = self.following && (self.next_id == 0 || last - self.next_id < MAX_AHEAD);
            let cursor = if behind_redis { last + 1 } else { self.next_id };
            return Resume { cursor, lost: None };
        }
        let wanted = last + 1;
        // The newest id the client may have missed and cannot get. An id from before this process's
        // start is no loss: everything this process published is still here unless the ring dropped it
        // (what the previous process published after that id died with it, and is not ours to know).
        let unknown = (wanted < self.known_from).then(|| self.known_from - 1);
        let dropped = self
            .topics
            .topics_of(subscription)
            .iter()
            .filter_map(|&t| self.topics.get(t))
            .map(|topic| topic.dropped_through)
            .filter(|&through| through >= wanted);
        match unknown.into_iter().chain(dropped).max() {
            Some(through) => Resume { cursor: through + 1, lost: Some((last, through + 1)) },
            None => Resume { cursor: wanted, lost: None },
        }
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
