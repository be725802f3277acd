//! The per-topic tally of a run with `--topics` (see [`crate::topics`] for the spread): streams,
//! accepted publishes and deliveries per topic, and events that came on the wrong topic. Merged across
//! `--procs` workers; what is expected is known only once they are merged.

use serde::{Deserialize, Serialize};

use super::Histo;
use crate::topics::Spread;

/// Per-topic counts of a run (empty without topics); merged across processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopicTally {
    /// `uniform` or `zipf:S`.
    pub dist: String,
    /// Streams on each topic (still subscribed at the end).
    pub streams: Vec<u64>,
    /// Publishes the server accepted, per topic (only the publishing process has them).
    pub accepted: Vec<u64>,
    /// Deliveries received, per topic (duplicates not counted).
    pub delivered: Vec<u64>,
    /// Events received on a stream of another topic.
    pub wrong_topic: u64,
}

impl TopicTally {
    pub fn new(spread: &Spread) -> TopicTally {
        let k = spread.count() as usize;
        TopicTally {
            dist: spread.dist().to_string(),
            streams: vec![0; k],
            accepted: vec![0; k],
            delivered: vec![0; k],
            wrong_topic: 0,
        }
    }

    /// Topics in the run (0: none).
    pub fn count(&self) -> usize {
        self.streams.len()
    }

    /// Deliveries expected: per topic, accepted publishes × streams on it.
    pub fn expected(&self) -> u64 {
        self.accepted.iter().zip(&self.streams).map(|(a, s)| a * s).sum()
    }

    /// Deliveries per topic that had streams, as a histogram (for its percentiles).
    pub fn delivered_per_topic(&self) -> Histo {
        let mut histo = Histo::default();
        for (delivered, _) in self.delivered.iter().zip(&self.streams).filter(|(_, s)| **s > 0) {
            histo.record(*delivered);
        }
        histo
    }

    pub fn merge(&mut self, other: &TopicTally) {
        if self.count() == 0 {
            *self = other.clone();
            return;
        }
        for (mine, theirs) in [
            (&mut self.streams, &other.streams),
            (&mut self.accepted, &other.accepted),
            (&mut self.delivered, &other.delivered),
        ] {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.wrong_topic += other.wrong_topic;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::Dist;

    #[test]
    fn the_expected_deliveries_are_summed_per_topic() {
        let spread = Spread::new(3, Dist::Uniform, 1, 0);
        let mut publisher = TopicTally::new(&spread);
        publisher.accepted = vec![10, 0, 5];
        publisher.streams = vec![1, 1, 0];
        let mut subscriber = TopicTally::new(&spread);
        subscriber.streams = vec![2, 0, 7];
        subscriber.delivered = vec![30, 0, 35];
        subscriber.wrong_topic = 1;
        publisher.merge(&subscriber);
        assert_eq!(publisher.streams, [3, 1, 7]);
        assert_eq!(publisher.expected(), 10 * 3 + 5 * 7);
        assert_eq!(publisher.wrong_topic, 1);
        assert_eq!(publisher.delivered_per_topic().count(), 3, "topics with streams");
    }
}
