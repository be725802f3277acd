//! What a load run measured: counts, failures by cause, and HDR histograms; merged across processes,
//! printed as a table or as JSON.
//!
//! Histograms serialize as their recorded `(value, count)` pairs (values at the histogram's precision), so
//! reports from several client processes merge exactly as if one process had recorded everything.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An HDR histogram of `u64` values (3 significant digits) that serializes as `(value, count)` pairs.
#[derive(Debug, Clone)]
pub struct Histo(pub Histogram<u64>);

impl Default for Histo {
    fn default() -> Self {
        Histo(Histogram::new(3).expect("3 significant digits is a valid precision"))
    }
}

impl Histo {
    pub fn record(&mut self, value: u64) {
        // `record` grows the auto-resizing histogram; `saturating_record` would clamp to its current top.
        if self.0.record(value).is_err() {
            self.0.saturating_record(value);
        }
    }

    pub fn merge(&mut self, other: &Histo) {
        // Both auto-resize, so adding never fails for values `record` accepted.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0.0..=1.0), 0 when empty.
    pub fn at(&self, quantile: f64) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.value_at_quantile(quantile) }
    }

    pub fn max(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }

    /// p50 / p99 / p99.9 / max, for a table cell.
    pub fn summary(&self, unit: &str) -> String {
        if self.0.is_empty() {
            return "-".into();
        }
        format!(
            "p50 {} · p99 {} · p99.9 {} · max {} {unit} (n={})",
            self.at(0.5),
            self.at(0.99),
            self.at(0.999),
            self.max(),
            self.count()
        )
    }

    /// (value, count) pairs of every recorded bucket.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }
}

impl Serialize for Histo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.pairs().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Histo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(deserializer)?;
        let mut histo = Histo::default();
        for (value, count) in pairs {
            let _ = histo.0.record_n(value, count);
        }
        Ok(histo)
    }
}

/// Everything one run (or several merged) measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub mode: String,
    /// Streams the run meant to hold.
    pub streams: u64,
    /// Connection attempts (first connections and reconnections).
    pub attempts: u64,
    /// Attempts that got a `200 text/event-stream` head.
    pub connected: u64,
    /// Failures by cause (`connect: refused`, `status 503`, `reset`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Events received (any type).
    pub events: u64,
    /// Published events sent (fanout).
    pub published: u64,
    /// Deliveries expected: published × subscribers.
    pub expected: u64,
    /// Published events received (events carrying the publisher's stamp).
    pub delivered: u64,
    /// Ids skipped (an id more than one above the last one) and ids seen again or going back.
    pub gaps: u64,
    pub duplicates: u64,
    pub reconnects: u64,
    /// `connect → first event → close` cycles completed (churn).
    pub cycles: u64,
    /// The longest time any stream went without a byte, ms.
    pub max_silence_ms: u64,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
    /// From the first publish to the last delivery, s (fanout).
    pub delivery_window_s: f64,
    /// Attempt to response head, µs.
    pub connect_us: Histo,
    /// Attempt to first event, µs.
    pub first_event_us: Histo,
    /// Intended publish time to receipt, µs (coordinated omission included: measured from the schedule).
    pub latency_us: Histo,
    /// Tick receipt minus its ideal time on the stream's grid, ms, in steady state (from a second after
    /// every stream connected).
    pub tick_lateness_ms: Histo,
}

impl Report {
    pub fn fail(&mut self, cause: impl Into<String>) {
        *self.failures.entry(cause.into()).or_default() += 1;
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.values().sum()
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
        }
        self.streams += other.streams;
        self.attempts += other.attempts;
        self.connected += other.connected;
        for (cause, n) in &other.failures {
            *self.failures.entry(cause.clone()).or_default() += n;
        }
        self.events += other.events;
        self.published += other.published;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.reconnects += other.reconnects;
        self.cycles += other.cycles;
        self.max_silence_ms = self.max_silence_ms.max(other.max_silence_ms);
        self.elapsed_s = self.elapsed_s.max(other.elapsed_s);
        self.delivery_window_s = self.delivery_window_s.max(other.delivery_window_s);
        self.connect_us.merge(&other.connect_us);
        self.first_event_us.merge(&other.first_event_us);
        self.latency_us.merge(&other.latency_us);
        self.tick_lateness_ms.merge(&other.tick_lateness_ms);
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("mode", self.mode.clone()),
            ("streams", self.streams.to_string()),
            ("attempts / connected", format!("{} / {}", self.attempts, self.connected)),
            ("failures", self.failure_count().to_string()),
            ("events received", self.events.to_string()),
        ];
        for (cause, n) in &self.failures {
            rows.push(("  failure", format!("{n} × {cause}")));
        }
        if self.published > 0 || self.expected > 0 {
            rows.push(("published", self.published.to_string()));
            rows.push(("delivered / expected", format!("{} / {}", self.delivered, self.expected)));
            if self.delivery_window_s > 0.0 {
                rows.push(("deliveries/s", format!("{:.0}", self.delivered as f64 / self.delivery_window_s)));
            }
        }
        rows.push(("id gaps / duplicates", format!("{} / {}", self.gaps, self.duplicates)));
        rows.push(("reconnects", self.reconnects.to_string()));
        if self.cycles > 0 {
            rows.push(("churn cycles", self.cycles.to_string()));
            rows.push(("cycles/s", format!("{:.0}", self.cycles as f64 / self.elapsed_s.max(1e-9))));
        }
        rows.push(("longest silence", format!("{} ms", self.max_silence_ms)));
        rows.push(("connect (head)", self.connect_us.summary("µs")));
        rows.push(("first event", self.first_event_us.summary("µs")));
        rows.push(("publish → receive", self.latency_us.summary("µs")));
        rows.push(("tick lateness", self.tick_lateness_ms.summary("ms")));
        rows.push(("elapsed", format!("{:.2} s", self.elapsed_s)));
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in rows {
            let _ = writeln!(out, "{key:<width$}  {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge_exactly_through_json() {
        let (mut a, mut b, mut all) = (Histo::default(), Histo::default(), Histo::default());
        for v in 1..=1000u64 {
            a.record(v * 7);
            all.record(v * 7);
        }
        for v in 1..=500u64 {
            b.record(v * 1000);
            all.record(v * 1000);
        }
        let a: Histo = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let b: Histo = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.count(), all.count());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.at(q), all.at(q), "quantile {q}");
        }
    }

    #[test]
    fn large_values_are_kept() {
        let mut h = Histo::default();
        h.record(2);
        h.record(5_000_000);
        assert!(h.max() >= 4_990_000, "{}", h.max());
    }

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
        assert!(a.table().contains("2 × status 503"));
    }
}
