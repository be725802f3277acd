//! [`Histo`]: an HDR histogram of `u64` values that crosses process boundaries exactly, and its
//! percentiles in milliseconds for people ([`Percentiles`]).
//!
//! Rules: values are recorded in the unit their name says (`_us`, `_ms`); a histogram serializes as its
//! recorded `(value, count)` pairs (values at the histogram's precision), so reports from several client
//! processes merge exactly as if one process had recorded everything. People see milliseconds only.

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

/// A histogram's figures in ms: what the JSON summary, the table and the thresholds read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
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

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at `quantile` (0.0..=1.0), 0 when empty.
    pub fn at(&self, quantile: f64) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.value_at_quantile(quantile) }
    }

    pub fn min(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.min() }
    }

    pub fn max(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }

    /// The percentiles in ms, for values recorded in units of `unit_ms` ms (µs: 0.001).
    pub fn percentiles(&self, unit_ms: f64) -> Percentiles {
        let ms = |v: u64| v as f64 * unit_ms;
        Percentiles {
            count: self.count(),
            p50: ms(self.at(0.5)),
            p90: ms(self.at(0.9)),
            p99: ms(self.at(0.99)),
            p99_9: ms(self.at(0.999)),
            max: ms(self.max()),
        }
    }

    /// (value, count) pairs of every recorded bucket.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }
}

impl Percentiles {
    /// `p50 1.2 · p90 3.4 · p99 8.0 · max 12 ms (n=400)`, for a table cell.
    pub fn cell(&self) -> String {
        format!(
            "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} ms (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p99_9),
            ms(self.max),
            self.count
        )
    }
}

/// Milliseconds with the decimals a person needs: three significant digits below 100, none above.
pub fn ms(value: f64) -> String {
    match value {
        v if v < 1.0 => format!("{v:.3}"),
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
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
    fn latencies_read_in_ms_with_sensible_decimals() {
        let mut h = Histo::default();
        for us in [938_495u64, 1_351_679, 420, 7_250] {
            h.record(us);
        }
        let p = h.percentiles(0.001);
        assert_eq!(p.count, 4);
        assert_eq!(ms(p.max), "1352");
        assert_eq!(
            (ms(0.42), ms(7.25), ms(42.13), ms(938.49)),
            ("0.420".into(), "7.25".into(), "42.1".into(), "938".into())
        );
        assert!(p.cell().ends_with("max 1352 ms (n=4)"), "{}", p.cell());
    }
}
