//! Topics: the table of named channels, who listens to each, and which of the ring's frames are whose.
//!
//! A stream subscribes to one topic or a few (`?topic=`, repeatable, at most `--max-topics-per-stream`);
//! without `topic` it is on the default topic, which is how every stream worked before topics. A publish
//! goes to one topic, and only that topic's subscribers are visited by the fan-out.
//!
//! Rules:
//! - A publish costs O(its topic's subscribers), never O(all streams): each topic keeps its own list of
//!   subscribers (connection keys) and its own index of the ring's frames (ids, oldest first).
//! - Closing a stream does not search lists: it lowers the count of live subscribers of each of its
//!   topics. The fan-out's walk drops entries whose connection is gone (a key names one connection for
//!   good: [`crate::token::ConnKey`]). A list that holds more than twice its live subscribers (plus
//!   [`SWEEP_SLACK`]) is queued for a walk, so a list never grows past that, whatever the churn.
//! - A topic with no subscriber and no frame in the ring is reclaimed at once (unless the fan-out is
//!   about to walk it; then when the walk is done). `--max-topics` bounds the table: past it a new topic
//!   is refused, and counted. The default topic is never reclaimed.
//! - A reclaimed topic's history is gone with it, but not the fact that frames were dropped: a topic made
//!   (again) starts with the newest dropped id of every topic reclaimed so far, so a client that comes
//!   back with an older `Last-Event-ID` to a topic that went while it was away gets the `lost` signal.
//!   One number for all reclaimed topics (not one per name, which would keep what reclaiming frees): a
//!   client may be told of a loss on another topic, never left unaware of one on its own. It costs no
//!   replay: every dropped id is older than every frame still in the ring. An event that came through
//!   the backplane for a topic there was no room for (`--max-topics`) counts the same way: it is in the
//!   ring but indexed by no topic, so a topic made later cannot replay it and must signal it.
//! - Where a stream's subscription is kept: here, by slab slot, 4 bytes per slot. A field of the stream
//!   would cost 8 in every connection (alignment), on the default topic too.

use std::collections::{HashMap, VecDeque};

use slab::Slab;

use crate::token::ConnKey;

/// Names a topic while it exists (an index: reused once the topic is reclaimed).
pub type TopicId = u32;
/// The topic of streams and publishes without `?topic=`.
pub const DEFAULT_TOPIC: TopicId = 0;
/// Longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 128;
/// Most topics one stream may be on, whatever `--max-topics-per-stream` says.
pub const TOPICS_PER_STREAM_CAP: usize = 16;
/// Dead entries a subscriber list may hold beyond its live ones before it is queued for a sweep.
pub const SWEEP_SLACK: usize = 64;

/// A subscription with its high bit set names a set of topics; otherwise it is one topic's id.
const SET: u32 = 1 << 31;

/// What one stream listens to: one topic (the common case, no allocation) or a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription(u32);

impl Subscription {
    /// The default topic alone.
    pub const DEFAULT: Subscription = Subscription(DEFAULT_TOPIC);
}

/// A frame of the ring, as its topic indexes it.
#[derive(Debug, Clone, Copy)]
pub struct TopicFrame {
    pub id: u64,
    /// Bytes published on this topic before this frame (so a stream's lag is one subtraction).
    pub start: u64,
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    pub name: Box<str>,
    /// Its own id, to lend a stream on this topic alone a one-element slice.
    id: TopicId,
    /// Its frames still in the ring, oldest first.
    pub frames: VecDeque<TopicFrame>,
    /// Bytes ever published on it.
    pub published_bytes: u64,
    /// The newest of its frames that the ring dropped (0: none). A stream whose cursor is at or below it
    /// missed an event it can no longer get.
    pub dropped_through: u64,
    /// Keys of its subscribers, and of some that have gone (dropped by the fan-out's walk).
    subscribers: Vec<ConnKey>,
    /// Streams on it now.
    live: u32,
    /// In the fan-out's queue.
    queued: bool,
    /// Being walked by the fan-out now.
    walking: bool,
}

impl Topic {
    fn new(name: Box<str>, id: TopicId) -> Topic {
        Topic {
            name,
            id,
            frames: VecDeque::new(),
            published_bytes: 0,
            dropped_through: 0,
            subscribers: Vec::new(),
            live: 0,
            queued: false,
            walking: false,
        }
    }

    /// Streams on this topic now.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Where in its frames the first with an id at or after `cursor` is (their count if none). When the
    /// topic's frames have contiguous ids (every frame of the ring is its own, as on a server without
    /// topics) that is one subtraction; otherwise a binary search.
    pub fn position(&self, cursor: u64) -> usize {
        let (Some(first), Some(last)) = (self.frames.front(), self.frames.back()) else { return 0 };
        if last.id - first.id + 1 == self.frames.len() as u64 {
            return cursor.saturating_sub(first.id).min(self.frames.len() as u64) as usize;
        }
        self.frames.partition_point(|f| f.id < cursor)
    }
}

/// Why a topic could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicsFull;

/// The table of topics.
#[derive(Debug)]
pub struct Topics {
    by_name: HashMap<Box<str>, TopicId>,
    topics: Slab<Topic>,
    /// The topic sets of streams on several topics.
    sets: Slab<Box<[TopicId]>>,
    /// Each slab slot's subscription (meaningful while the slot holds a stream).
    by_slot: Vec<Subscription>,
    /// Topics with something for the fan-out to do, in the order it got there.
    queue: VecDeque<TopicId>,
    max_topics: usize,
    /// New topics refused because the table was full.
    pub refused: u64,
    /// The newest id whose topic this table does not know (0: none): the newest dropped frame of a
    /// topic reclaimed so far, or an event for a topic there was no room for. Where a new topic's
    /// `dropped_through` starts (see the module's rules).
    forgotten_through: u64,
}

impl Topics {
    /// A table holding the default topic, with room for `max_topics` in all.
    pub fn new(max_topics: usize) -> Topics {
        let mut topics = Slab::new();
        let default = topics.insert(Topic::new("".into(), DEFAULT_TOPIC));
        debug_assert_eq!(default, DEFAULT_TOPIC as usize);
        Topics {
            by_name: HashMap::new(),
            topics,
            sets: Slab::new(),
            by_slot: Vec::new(),
            queue: VecDeque::new(),
            max_topics: max_topics.max(1),
            refused: 0,
            forgotten_through: 0,
        }
    }

    /// Topics that exist now (the default one included).
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Always false: the default topic exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn get(&self, id: TopicId) -> Option<&Topic> {
        self.topics.get(id as usize)
    }

    pub(super) fn get_mut(&mut self, id: TopicId) -> Option<&mut Topic> {
        self.topics.get_mut(id as usize)
    }

    /// The topic called `name` (`None`: the default topic), if it exists.
    pub fn find(&self, name: Option<&str>) -> Option<TopicId> {
        match name {
            None => Some(DEFAULT_TOPIC),
            Some(name) => self.by_name.get(name).copied(),
        }
    }

    /// Whether the topic called `name` exists or could be made now, without making it (a publish through
    /// the backplane: the topic is made when its event comes back). A refusal is counted here, as in
    /// [`Topics::find_or_make`].
    pub fn room_for(&mut self, name: Option<&str>) -> Result<(), TopicsFull> {
        if self.find(name).is_some() || self.topics.len() < self.max_topics {
            return Ok(());
        }
        self.refused += 1;
        Err(TopicsFull)
    }

    /// The topic called `name`, made if it does not exist and the table has room.
    pub fn find_or_make(&mut self, name: Option<&str>) -> Result<TopicId, TopicsFull> {
        if let Some(id) = self.find(name) {
            return Ok(id);
        }
        self.room_for(name)?;
        let name = name.unwrap_or_default();
        let entry = self.topics.vacant_entry();
        let id = entry.key() as TopicId;
        let mut topic = Topic::new(name.into(), id);
        topic.dropped_through = self.forgotten_through; // it may have had frames, dropped, before
        entry.insert(topic);
        self.by_name.insert(name.into(), id);
        Ok(id)
    }

    /// Puts the stream `key` on the topics `names` (none: the default topic). Either every topic is had
    /// (made if needed) or none is: a refused subscription leaves nothing behind.
    pub fn subscribe(&mut self, key: ConnKey, names: &[Box<str>]) -> Result<Subscription, TopicsFull> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            match self.find_or_make(Some(name)) {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(full) => {
                    for id in ids {
                        self.reclaim_if_unused(id); // made just now, maybe
                    }
                    return Err(full);
                }
            }
        }
        let subscription = match ids[..] {
            [] => Subscription::DEFAULT,
            [one] => Subscription(one),
            _ => Subscription(SET | self.sets.insert(ids.into_boxed_slice()) as u32),
        };
        for i in 0..self.topics_of(subscription).len() {
            let id = self.topics_of(subscription)[i];
            let topic = &mut self.topics[id as usize];
            topic.subscribers.push(key);
            topic.live += 1;
        }
        let slot = key.slot as usize;
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, Subscription::DEFAULT);
        }
        self.by_slot[slot] = subscription;
        Ok(subscription)
    }

    /// The stream in `slot` ended: its topics lose a live subscriber (its list entries go later, see the
    /// module's rules), and a topic left with nothing is reclaimed.
    pub fn unsubscribe(&mut self, slot: u32) {
        let subscription = self.subscription(slot);
        for i in 0..self.topics_of(subscription).len() {
            let id = self.topics_of(subscription)[i];
            let topic = &mut self.topics[id as usize];
            topic.live = topic.live.saturating_sub(1);
            if topic.subscribers.len() > 2 * topic.live as usize + SWEEP_SLACK {
                self.enqueue(id); // a walk drops the dead entries
            }
            self.reclaim_if_unused(id);
        }
        if subscription.0 & SET != 0 {
            self.sets.try_remove((subscription.0 & !SET) as usize);
        }
        if let Some(entry) = self.by_slot.get_mut(slot as usize) {
            *entry = Subscription::DEFAULT;
        }
    }

    /// The subscription of the stream in `slot`.
    pub fn subscription(&self, slot: u32) -> Subscription {
        self.by_slot.get(slot as usize).copied().unwrap_or(Subscription::DEFAULT)
    }

    /// The topics of a subscription.
    pub fn topics_of(&self, subscription: Subscription) -> &[TopicId] {
        if subscription.0 & SET != 0 {
            return self.sets.get((subscription.0 & !SET) as usize).map_or(&[], |set| &set[..]);
        }
        self.topics.get(subscription.0 as usize).map_or(&[], |topic| std::slice::from_ref(&topic.id))
    }

    /// Queues a topic for the fan-out (once: a queued topic is not queued again).
    pub(super) fn enqueue(&mut self, id: TopicId) {
        if let Some(topic) = self.topics.get_mut(id as usize)
            && !topic.queued
        {
            topic.queued = true;
            self.queue.push_back(id);
        }
    }

    /// Whether the fan-out has a topic waiting.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The fan-out starts walking the next queued topic. A publish to it during the walk queues it again.
    pub fn start_walk(&mut self) -> Option<TopicId> {
        let id = self.queue.pop_front()?;
        let topic = &mut self.topics[id as usize];
        (topic.queued, topic.walking) = (false, true);
        Some(id)
    }

    /// The `i`th entry of a topic's subscriber list (`None` past its end).
    pub fn subscriber(&self, id: TopicId, i: usize) -> Option<ConnKey> {
        self.topics.get(id as usize)?.subscribers.get(i).copied()
    }

    /// The `i`th entry names a connection that is gone: it leaves the list (the last one takes its place,
    /// so the walk looks at `i` again).
    pub fn drop_subscriber(&mut self, id: TopicId, i: usize) {
        if let Some(topic) = self.topics.get_mut(id as usize)
            && i < topic.subscribers.len()
        {
            topic.subscribers.swap_remove(i);
            if topic.subscribers.capacity() > 4 * topic.subscribers.len().max(4) {
                topic.subscribers.shrink_to_fit();
            }
        }
    }

    /// The fan-out walked the whole list.
    pub fn end_walk(&mut self, id: TopicId) {
        if let Some(topic) = self.topics.get_mut(id as usize) {
            topic.walking = false;
        }
        self.reclaim_if_unused(id);
    }

    /// An event with id `id` came for a topic there was no room for: a topic made later may have been
    /// its topic, and cannot replay it.
    pub(super) fn forget(&mut self, id: u64) {
        self.forgotten_through = self.forgotten_through.max(id);
    }

    /// Every topic forgets which of its frames the ring dropped (a new epoch's ids start lower).
    pub(super) fn forget_drops(&mut self) {
        for (_, topic) in &mut self.topics {
            topic.dropped_through = 0;
        }
        self.forgotten_through = 0;
    }

    /// Removes a topic that has no subscriber, no frame, and no walk coming.
    pub(super) fn reclaim_if_unused(&mut self, id: TopicId) {
        let Some(topic) = self.topics.get(id as usize) else { return };
        if id == DEFAULT_TOPIC || topic.live > 0 || !topic.frames.is_empty() || topic.queued || topic.walking
        {
            return;
        }
        let topic = self.topics.remove(id as usize);
        self.forgotten_through = self.forgotten_through.max(topic.dropped_through);
        self.by_name.remove(&topic.name);
    }
}

/// Checks a topic name from a request: 1 to [`MAX_TOPIC_NAME_LEN`] bytes, no control characters.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN || name.chars().any(char::is_control) {
        return Err("a topic name must be 1 to 128 bytes without control characters");
    }
    Ok(())
}
