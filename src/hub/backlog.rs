//! What a stream still has to send: the ids of its topics' frames from its cursor on, merged in id order.
//!
//! Rules: a stream on one topic reads that topic's index and nothing else (a busy topic next door costs it
//! nothing); on several, the indexes are merged, smallest id first, so frames leave in the order they
//! were published, across topics. Positions are found once by binary search; cloning an [`Owed`] copies a
//! few words, which `writev` batching relies on (it looks ahead, then resumes where it wrote up to).

use super::topics::{TOPICS_PER_STREAM_CAP, TopicId, Topics};

/// Ids still owed to one stream, oldest first.
#[derive(Debug, Clone)]
pub struct Owed<'a> {
    topics: &'a Topics,
    ids: &'a [TopicId],
    /// Position in each topic's index of the next frame to look at.
    positions: [usize; TOPICS_PER_STREAM_CAP],
}

impl<'a> Owed<'a> {
    pub(super) fn new(topics: &'a Topics, ids: &'a [TopicId], cursor: u64) -> Owed<'a> {
        let ids = &ids[..ids.len().min(TOPICS_PER_STREAM_CAP)];
        let mut positions = [0; TOPICS_PER_STREAM_CAP];
        for (position, &id) in positions.iter_mut().zip(ids) {
            *position = topics.get(id).map_or(0, |topic| topic.position(cursor));
        }
        Owed { topics, ids, positions }
    }
}

impl Iterator for Owed<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (i, &id) in self.ids.iter().enumerate() {
            let frame = self.topics.get(id).and_then(|topic| topic.frames.get(self.positions[i]));
            if let Some(frame) = frame
                && best.is_none_or(|(_, smallest)| frame.id < smallest)
            {
                best = Some((i, frame.id));
            }
        }
        let (i, id) = best?;
        self.positions[i] += 1;
        Some(id)
    }
}
