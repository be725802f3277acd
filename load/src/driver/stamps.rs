//! What the load generator writes into events and reads back out of them, to time them: the
//! publisher's stamp (`seq=N t=UNIX_NS`), the server's ticks (`HH:MM:SS.mmm`), and how late a tick is on
//! its stream's grid.
//!
//! Rules: pure functions of their inputs (only [`unix_ns`] reads a clock); times of day are ms since
//! midnight and wrap at [`DAY_MS`], so every comparison of two of them goes through the day's circle.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in a day: times of day wrap here.
pub const DAY_MS: u64 = 86_400_000;

/// A fan-out event's data: `seq=N t=UNIX_NS` (and ` k=TOPIC` with topics), padded with a space and
/// `x`s to `payload_bytes`. `intended_ns` is the event's scheduled send time, so latency includes any
/// stall of the publisher.
pub fn stamped_body(seq: u64, intended_ns: u64, payload_bytes: usize, topic: Option<u32>) -> String {
    let mut body = format!("seq={seq} t={intended_ns}");
    if let Some(topic) = topic {
        body.push_str(&format!(" k={topic}"));
    }
    if body.len() < payload_bytes {
        body.push(' ');
        body.extend(std::iter::repeat_n('x', payload_bytes - body.len()));
    }
    body
}

/// The publisher's stamp in a fan-out event's data: `seq=N t=UNIX_NS ...`.
pub fn publish_stamp(data: &str) -> Option<u64> {
    let rest = data.strip_prefix("seq=")?;
    let t = rest.split(' ').nth(1)?.strip_prefix("t=")?;
    t.parse().ok()
}

/// The time of day (ms) at the start of a tick's data (`HH:MM:SS.mmm`), if it is one: a time of day,
/// so below [`DAY_MS`] (`25:00:00.000` is not a tick; the grid arithmetic counts on the bound).
pub fn tick_time(data: &str) -> Option<u64> {
    let b = data.as_bytes();
    if b.len() < 12 || b[2] != b':' || b[5] != b':' || b[8] != b'.' {
        return None;
    }
    let n = |r: std::ops::Range<usize>, below: u64| data.get(r)?.parse::<u64>().ok().filter(|&v| v < below);
    Some(((n(0..2, 24)? * 60 + n(3..5, 60)?) * 60 + n(6..8, 60)?) * 1000 + n(9..12, 1000)?)
}

/// The grid point nearest to `tick_ms` on a stream whose ticks started at `origin_ms`, `interval_ms`
/// apart: when that tick should have been sent (ms of the day).
pub fn ideal_tick_ms(origin_ms: u64, tick_ms: u64, interval_ms: u64) -> u64 {
    let steps = ((tick_ms + DAY_MS - origin_ms) % DAY_MS + interval_ms / 2) / interval_ms;
    (origin_ms + steps * interval_ms) % DAY_MS
}

/// How late `received` is after `ideal`, both ms of the day: the signed difference across midnight,
/// where "early" (a millisecond of rounding between two clocks' readings) counts as on time.
pub fn lateness_ms(received: u64, ideal: u64) -> u64 {
    const DAY: i64 = DAY_MS as i64;
    let diff = (received as i64 - ideal as i64).rem_euclid(DAY);
    let signed = if diff >= DAY / 2 { diff - DAY } else { diff };
    signed.max(0) as u64
}

/// Now, in nanoseconds since the Unix epoch (the clock both the stamp and its reader use).
/// The two clocks read once for a batch of events: the monotonic one (timeouts, durations) and the wall
/// clock in ns since the Unix epoch (latencies against publishers' stamps).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: std::time::Instant,
    pub unix_ns: u64,
}

impl Clock {
    /// Both clocks, now.
    pub fn read() -> Clock {
        Clock { now: std::time::Instant::now(), unix_ns: unix_ns() }
    }
}

pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_ticks_are_read_from_data() {
        assert_eq!(publish_stamp("seq=3 t=1795678000000000000 xxxx"), Some(1_795_678_000_000_000_000));
        assert_eq!(publish_stamp("seq=3"), None);
        assert_eq!(publish_stamp("hello"), None);
        assert_eq!(tick_time("07:05:09.042"), Some(((7 * 60 + 5) * 60 + 9) * 1000 + 42));
        assert_eq!(tick_time("07:05:09.042 xxxx"), Some(25_509_042));
        assert_eq!(tick_time("not a tick"), None);
        assert_eq!(tick_time("23:59:59.999"), Some(DAY_MS - 1));
        for not_a_time in ["24:00:00.000", "99:99:99.999", "12:60:00.000", "12:00:60.000"] {
            assert_eq!(tick_time(not_a_time), None, "{not_a_time}");
        }
    }

    #[test]
    fn a_stamped_body_is_padded_and_reads_back() {
        let body = stamped_body(7, 1_795_678_000_000_000_000, 64, None);
        assert_eq!(body.len(), 64);
        assert!(body.starts_with("seq=7 t=1795678000000000000 x"), "{body}");
        assert_eq!(publish_stamp(&body), Some(1_795_678_000_000_000_000));
        assert_eq!(stamped_body(7, 5, 0, None), "seq=7 t=5", "never cut to fit");
        assert_eq!(stamped_body(7, 5, 0, Some(3)), "seq=7 t=5 k=3");
        assert_eq!(publish_stamp("seq=7 t=5 k=3 xx"), Some(5));
    }

    #[test]
    fn lateness_across_midnight_and_early_by_rounding() {
        assert_eq!(lateness_ms(1_005, 1_000), 5);
        assert_eq!(lateness_ms(999, 1_000), 0, "early by rounding is on time");
        assert_eq!(lateness_ms(3, 86_399_998), 5, "across midnight");
        assert_eq!(lateness_ms(86_399_998, 3), 0);
    }

    #[test]
    fn the_tick_grid_survives_midnight() {
        // Origin 23:59:59.000, 1 s interval: the tick at 00:00:01.003 belongs at 00:00:01.000, 3 ms late.
        let (origin, tick, interval) = (86_399_000u64, 1_003u64, 1000u64);
        let ideal = ideal_tick_ms(origin, tick, interval);
        assert_eq!((ideal, lateness_ms(tick, ideal)), (1_000, 3));
    }
}
