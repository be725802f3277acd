//! The machine's floor for tick lateness: how late a loop that does nothing but sleep to a deadline
//! every millisecond wakes here, measured before any workload runs.
//!
//! A server's ticks cannot be expected to be later than its wake-ups by less than this: on a shared or
//! virtual machine a sleeping thread is sometimes woken milliseconds late with nothing else running, and
//! the bench says so beside its tick lateness instead of leaving the reader to guess
//! (`bench/reference/wakes.c` is the same probe in C, for `bench/reference/ticks.sh`).
//!
//! Rules: deadlines are absolute (each one 1 ms after the previous, however late the wake), so a late wake
//! does not move the next deadline; a deadline already passed at the next wake is skipped, not counted
//! again.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::Histo;

/// How late a sleeping loop woke, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WakeFloor {
    pub wakes: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Sleeps to a deadline every millisecond for `seconds` and returns how late it woke.
pub fn measure(seconds: f64) -> WakeFloor {
    const PERIOD: Duration = Duration::from_millis(1);
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut deadline = Instant::now();
    let mut late_us = Histo::default();
    loop {
        deadline += PERIOD;
        if deadline > end {
            break;
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        let woke = Instant::now();
        late_us.record(woke.saturating_duration_since(deadline).as_micros() as u64);
        while deadline + PERIOD <= woke {
            deadline += PERIOD; // missed while asleep: skipped, the phase kept
        }
    }
    summarize(&late_us)
}

/// The percentiles of `late_us` (the run's histogram, as every other latency of the load generator).
fn summarize(late_us: &Histo) -> WakeFloor {
    WakeFloor {
        wakes: late_us.count() as usize,
        p50_us: late_us.at(0.5),
        p99_us: late_us.at(0.99),
        p999_us: late_us.at(0.999),
        max_us: late_us.max(),
    }
}

impl WakeFloor {
    /// One line for the summary: `a loop waking every 1 ms, alone: late by p50 … / p99 … / p99.9 … / max … ms`.
    pub fn line(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "a loop waking every 1 ms, alone: late by p50 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histo(values: impl IntoIterator<Item = u64>) -> Histo {
        let mut histo = Histo::default();
        values.into_iter().for_each(|v| histo.record(v));
        histo
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let floor = summarize(&histo((1..=1000).rev()));
        assert_eq!(floor, WakeFloor { wakes: 1000, p50_us: 500, p99_us: 990, p999_us: 999, max_us: 1000 });
        assert_eq!(summarize(&Histo::default()), WakeFloor::default(), "no wakes: zeros, no panic");
        assert_eq!(summarize(&histo([7])).p999_us, 7);
    }

    #[test]
    fn the_line_reads_in_ms() {
        let floor = WakeFloor { wakes: 3000, p50_us: 70, p99_us: 450, p999_us: 2480, max_us: 3470 };
        assert_eq!(
            floor.line(),
            "a loop waking every 1 ms, alone: late by p50 0.07 / p99 0.45 / p99.9 2.48 / max 3.47 ms"
        );
    }

    #[test]
    fn a_short_probe_wakes_about_once_a_millisecond() {
        // Counts, not times: a wake can be late on a busy machine, but there is one per deadline that
        // was not skipped, and no more than one per millisecond of the run.
        let floor = measure(0.05);
        assert!((1..=50).contains(&floor.wakes), "{floor:?}");
        assert!(floor.p50_us <= floor.p99_us && floor.p99_us <= floor.max_us, "{floor:?}");
    }
}
