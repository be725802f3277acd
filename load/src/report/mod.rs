//! What a load run measured: counts, failures by cause, HDR histograms (and, in [`sample`], one
//! second's worth for the time series); merged across `--procs` workers. How it is shown is [`crate::output`]'s job, and what it
//! means for the exit code is [`crate::verdict`]'s.
//!
//! Rules:
//! - Every connection attempt ends in exactly one place: `connected` (a `200 text/event-stream` head) or
//!   one cause in `failures` (refused, a non-200, no head in time, still connecting when the run ended),
//!   or, for a dropped stream coming back, one cause in `retried` (its server restarting: tried again
//!   after its `retry:` time, not a failure; the stream is *not back* until it is).
//!   So `attempts == connected + failures + retried`, always ([`Report::unaccounted`] is 0 at the end).
//! - A stream that ends *after* connecting is a drop (`drops`, by cause), not an attempt's failure.
//! - A publish the server refused is counted by its status (`publish_failures`); only accepted publishes
//!   are expected at the subscribers.
//! - Histograms travel between processes as value/count pairs, so merged percentiles are exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{IdCheck, IdTally};

pub mod histo;
pub mod sample;
pub mod topic_tally;

pub use histo::{Histo, Percentiles};
pub use sample::Sample;
pub use topic_tally::TopicTally;

/// Everything one run (or several merged) measured. This is also what a `--procs` worker sends its parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub mode: String,
    /// Streams the run meant to hold (churn: at once).
    pub streams: u64,
    /// Streams opened: first attempts (churn: cycles started).
    pub opened: u64,
    /// Connection attempts (first connections and reconnections).
    pub attempts: u64,
    /// Attempts that got a `200 text/event-stream` head.
    pub connected: u64,
    /// Attempts that did not, by cause (`connect: refused`, `status 503`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Streams that ended after connecting, by cause (`closed by server`, `reset`, ...).
    pub drops: BTreeMap<String, u64>,
    /// Reconnection attempts of a dropped stream that did not get a head, by cause, tried again after
    /// the stream's `retry:` time (`--reconnect`): what a restarting server costs, not a failure.
    #[serde(default)]
    pub retried: BTreeMap<String, u64>,
    /// Events received (any type).
    pub events: u64,
    /// Streams that ended as they should: the body ended cleanly, or `--until-data` arrived.
    #[serde(default)]
    pub completed: u64,
    /// Events each completed stream received (its `[DONE]` included).
    #[serde(default)]
    pub events_per_stream: Histo,
    /// `stream` mode: arrivals turned away because `--max-inflight` streams were running.
    #[serde(default)]
    pub refused: u64,
    /// `stream` mode: the gap between two events of a stream, and a stream's attempt to its end, µs.
    #[serde(default)]
    pub event_gap_us: Histo,
    #[serde(default)]
    pub stream_duration_us: Histo,
    /// Published events sent (fanout), and those the server answered with a 2xx.
    pub published: u64,
    pub publish_accepted: u64,
    /// Publishes the server refused, by status (`publish: 401 Unauthorized`), or lost with the connection.
    pub publish_failures: BTreeMap<String, u64>,
    /// Fanout: subscribers still subscribed at the end.
    pub subscribers: u64,
    /// Deliveries expected: accepted publishes × subscribers.
    pub expected: u64,
    /// Published events received (events carrying the publisher's stamp), duplicates not counted.
    pub delivered: u64,
    /// Which id check was applied, and what it found.
    pub id_check: IdCheck,
    pub ids: IdTally,
    pub reconnects: u64,
    /// Connect attempts that failed for a shortage of the moment (no free source port) and were tried
    /// again after a pause: not failures unless the retries run out.
    pub connect_retries: u64,
    /// Streams reconnect like a browser (`--reconnect`, storm): a drop is expected, and must come back.
    pub reconnecting: bool,
    /// Churn: cycles asked, and cycles done (connected and became ready, then closed by us).
    pub cycles_asked: u64,
    pub cycles: u64,
    /// Streams dropped (by the storm or the server) and not back when the run ended.
    pub not_back: u64,
    /// The longest time any stream went without a byte, ms.
    pub max_silence_ms: u64,
    /// With `--tick-interval-ms`: the fewest ticks any stream still subscribed at the end received (`None`
    /// otherwise): a stream that got nothing shows here even when the totals look right.
    pub min_ticks_per_stream: Option<u64>,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
    /// From the first publish to the last delivery, s (fanout).
    pub delivery_window_s: f64,
    /// First attempts: attempt to response head, µs.
    pub connect_us: Histo,
    /// Reconnections: attempt to response head, µs.
    pub reconnect_us: Histo,
    /// Attempt to first event, µs.
    pub first_event_us: Histo,
    /// Intended publish time to receipt, µs (coordinated omission included: measured from the schedule).
    pub latency_us: Histo,
    /// A dropped stream's drop (the storm, or the server's close) to its next head, µs.
    pub recovery_us: Histo,
    /// Tick receipt minus its ideal time on the stream's grid, ms, in steady state (from a second after
    /// every stream connected).
    pub tick_lateness_ms: Histo,
    /// The same ticks' own stamps (the server's clock when it wrote them) minus their ideal times, ms: the
    /// server's share of the lateness, needing no clock shared with the server (the grid is its clock).
    #[serde(default)]
    pub tick_send_lateness_ms: Histo,
    /// With `--topics`: streams, accepted publishes and deliveries per topic, and events on the wrong one.
    #[serde(default)]
    pub topics: TopicTally,
}

impl Report {
    /// Counts an attempt that did not get a stream.
    pub fn fail(&mut self, cause: impl Into<String>) {
        *self.failures.entry(cause.into()).or_default() += 1;
    }

    /// Counts a dropped stream's reconnection attempt that did not get a head and will be tried again.
    pub fn retry(&mut self, cause: impl Into<String>) {
        *self.retried.entry(cause.into()).or_default() += 1;
    }

    pub fn retried_count(&self) -> u64 {
        self.retried.values().sum()
    }

    /// Counts a stream that ended after connecting.
    pub fn drop_stream(&mut self, cause: impl Into<String>) {
        *self.drops.entry(cause.into()).or_default() += 1;
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn drop_count(&self) -> u64 {
        self.drops.values().sum()
    }

    pub fn publish_failure_count(&self) -> u64 {
        self.publish_failures.values().sum()
    }

    /// Attempts neither connected nor failed: 0 once a run has ended.
    pub fn unaccounted(&self) -> i64 {
        self.attempts as i64
            - self.connected as i64
            - self.failure_count() as i64
            - self.retried_count() as i64
    }

    /// Failures by cause on one line: `2 × status 503, 1 × reset`.
    pub fn failure_causes(&self) -> String {
        let causes: Vec<String> = self.failures.iter().map(|(cause, n)| format!("{n} × {cause}")).collect();
        causes.join(", ")
    }

    /// Adds another process's report to this one.
    pub fn merge(&mut self, other: &Report) {
        if self.mode.is_empty() {
            self.mode = other.mode.clone();
            self.id_check = other.id_check;
        }
        self.streams += other.streams;
        self.opened += other.opened;
        self.attempts += other.attempts;
        self.connected += other.connected;
        for (mine, theirs) in [
            (&mut self.failures, &other.failures),
            (&mut self.drops, &other.drops),
            (&mut self.retried, &other.retried),
            (&mut self.publish_failures, &other.publish_failures),
        ] {
            for (cause, n) in theirs {
                *mine.entry(cause.clone()).or_default() += n;
            }
        }
        self.events += other.events;
        self.completed += other.completed;
        self.refused += other.refused;
        self.event_gap_us.merge(&other.event_gap_us);
        self.stream_duration_us.merge(&other.stream_duration_us);
        self.events_per_stream.merge(&other.events_per_stream);
        self.published += other.published;
        self.publish_accepted += other.publish_accepted;
        self.subscribers += other.subscribers;
        self.delivered += other.delivered;
        self.ids.merge(&other.ids);
        self.reconnects += other.reconnects;
        self.connect_retries += other.connect_retries;
        self.reconnecting |= other.reconnecting;
        self.cycles_asked += other.cycles_asked;
        self.cycles += other.cycles;
        self.not_back += other.not_back;
        self.max_silence_ms = self.max_silence_ms.max(other.max_silence_ms);
        self.min_ticks_per_stream = match (self.min_ticks_per_stream, other.min_ticks_per_stream) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.elapsed_s = self.elapsed_s.max(other.elapsed_s);
        self.delivery_window_s = self.delivery_window_s.max(other.delivery_window_s);
        for (mine, theirs) in [
            (&mut self.connect_us, &other.connect_us),
            (&mut self.reconnect_us, &other.reconnect_us),
            (&mut self.first_event_us, &other.first_event_us),
            (&mut self.latency_us, &other.latency_us),
            (&mut self.recovery_us, &other.recovery_us),
            (&mut self.tick_lateness_ms, &other.tick_lateness_ms),
            (&mut self.tick_send_lateness_ms, &other.tick_send_lateness_ms),
        ] {
            mine.merge(theirs);
        }
        self.topics.merge(&other.topics);
        // Only one process publishes; every subscriber of every process expects what it got accepted
        // (with topics: on its topic).
        if self.topics.count() > 0 {
            self.expected = self.topics.expected();
        } else if self.mode == "fanout" {
            self.expected = self.publish_accepted * self.subscribers;
        } else {
            self.expected += other.expected;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_merge_counts_and_failures() {
        let mut a = Report { mode: "hold".into(), streams: 10, connected: 9, ..Report::default() };
        a.fail("status 503");
        let mut b = Report { streams: 5, connected: 5, max_silence_ms: 40, ..Report::default() };
        b.fail("status 503");
        b.fail("connect: refused");
        a.merge(&b);
        assert_eq!((a.streams, a.connected, a.max_silence_ms), (15, 14, 40));
        assert_eq!(a.failures["status 503"], 2);
        assert_eq!(a.failure_count(), 3);
    }

    #[test]
    fn a_merged_fanout_expects_the_accepted_publishes_at_every_subscriber() {
        let mut publisher = Report {
            mode: "fanout".into(),
            published: 10,
            publish_accepted: 8,
            subscribers: 5,
            ..Report::default()
        };
        let other = Report { mode: "fanout".into(), subscribers: 7, expected: 70, ..Report::default() };
        publisher.merge(&other);
        assert_eq!(publisher.expected, 8 * 12);
    }

    #[test]
    fn every_attempt_is_accounted_for() {
        let mut r = Report { attempts: 5, connected: 3, ..Report::default() };
        assert_eq!(r.unaccounted(), 2);
        r.fail("connect: refused");
        r.fail("no head when the run ended");
        assert_eq!(r.unaccounted(), 0);
    }
}
