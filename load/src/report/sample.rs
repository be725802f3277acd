//! One second of a run ([`Sample`]): what the progress line, the `--csv` time series and a `--procs`
//! parent's merged progress read.
//!
//! Rules: counts in a sample are *of that second* (events, deliveries, failures, reconnects), except
//! `open`, which is the streams open at its end; its latency histograms hold only that second's values.
//! Samples of several processes for the same second add up ([`Sample::merge`]).

use serde::{Deserialize, Serialize};

use super::Histo;

/// One second of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started, at the end of this sample (1, 2, 3, ...).
    pub t_s: u64,
    /// Streams open (response head received) at the end of the second.
    pub open: u64,
    pub events: u64,
    pub delivered: u64,
    pub failures: u64,
    pub drops: u64,
    pub reconnects: u64,
    /// Churn cycles done in this second.
    pub cycles: u64,
    /// Publish-to-receive latency of this second's deliveries, µs.
    pub latency_us: Histo,
    /// Attempt-to-head time of this second's connections, µs.
    pub connect_us: Histo,
}

impl Sample {
    /// Adds another process's sample of the same second.
    pub fn merge(&mut self, other: &Sample) {
        self.t_s = self.t_s.max(other.t_s);
        self.open += other.open;
        self.events += other.events;
        self.delivered += other.delivered;
        self.failures += other.failures;
        self.drops += other.drops;
        self.reconnects += other.reconnects;
        self.cycles += other.cycles;
        self.latency_us.merge(&other.latency_us);
        self.connect_us.merge(&other.connect_us);
    }
}

/// Adds `other`'s samples to `mine`, second by second.
pub fn merge_series(mine: &mut Vec<Sample>, other: &[Sample]) {
    for sample in other {
        match mine.iter_mut().find(|s| s.t_s == sample.t_s) {
            Some(same) => same.merge(sample),
            None => mine.push(sample.clone()),
        }
    }
    mine.sort_by_key(|s| s.t_s);
}
