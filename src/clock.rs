//! Time: the loop's compact monotonic stamps, and wall-clock formatting (the tick's time of day,
//! `HH:MM:SS.mmm`, and the HTTP `Date` header).
//!
//! # Stamps
//!
//! The loop reads `Instant::now()` once a turn and hands it to every handler. What a connection *stores*
//! (its deadlines, when it last wrote, when its stream opened) is a [`Stamp`]: milliseconds since the
//! loop's epoch in 4 bytes, where an `Instant` takes 16. With five of them per connection that is 60
//! bytes less per open stream, a quarter of its memory.
//!
//! Rules:
//! - A stamp rounds *up* to the next millisecond: a deadline never falls due before the moment it was
//!   set for (a tick is never early).
//! - 32 bits of milliseconds wrap after 49.7 days, so a stamp is read back *near a given now*
//!   ([`LoopClock::instant`]): the moment within ±24.8 days of `now` with those low 32 bits. Every stamp a
//!   connection keeps is that close to the present (deadlines are at most a day ahead, `MAX_MS`; the
//!   last write is at most a heartbeat or a stall timeout old while anything reads it), so this is exact.
//! - Pure: the epoch is the loop's, passed in; nothing here reads the clock.
//!
//! # Wall clock
//!
//! Only what a person reads uses the wall clock. Times are UTC: a server should not guess its readers'
//! time zone, and UTC needs no time-zone database. The formatting is pure (a `SystemTime` in, bytes
//! out), so tests pin exact strings.

use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A moment as milliseconds since the loop's epoch, modulo 2³² (never 0, so `Option<Stamp>` is 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp(NonZeroU32);

impl Stamp {
    /// The stamp of `ms` milliseconds since the epoch: its low 32 bits (the one value 0, once every 49.7
    /// days, is taken as 1 ms later: a deadline may be that late, never early).
    pub fn from_ms(ms: u64) -> Stamp {
        Stamp(NonZeroU32::new(ms as u32).unwrap_or(NonZeroU32::MIN))
    }

    /// The earlier of two stamps less than 24.8 days apart (compared across the wrap).
    pub fn earlier(self, other: Stamp) -> Stamp {
        if (self.0.get().wrapping_sub(other.0.get()) as i32) <= 0 { self } else { other }
    }
}

/// The loop's epoch, and conversions between `Instant`s and [`Stamp`]s.
#[derive(Debug, Clone, Copy)]
pub struct LoopClock {
    epoch: Instant,
}

impl LoopClock {
    /// A clock whose stamps count from just before `epoch` (so that no stamp in the first 49.7 days is the
    /// one value 32 bits of milliseconds cannot hold in a `Stamp`, 0).
    pub fn new(epoch: Instant) -> LoopClock {
        LoopClock { epoch: epoch.checked_sub(Duration::from_millis(1)).unwrap_or(epoch) }
    }

    /// Milliseconds from the epoch to `at`, rounded up (0 before the epoch).
    pub fn ms(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        nanos.div_ceil(1_000_000) as u64
    }

    /// Whole milliseconds from the epoch to `at`, rounded down: the deadlines due at `at` are those at or
    /// before it.
    pub fn ms_elapsed(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The stamp of `at` (rounded up to the millisecond).
    pub fn stamp(&self, at: Instant) -> Stamp {
        Stamp::from_ms(self.ms(at))
    }

    /// The full milliseconds since the epoch that `stamp` stands for, taken within ±24.8 days of `now`.
    pub fn widen(&self, stamp: Stamp, now: Instant) -> u64 {
        let now_ms = self.ms(now);
        let offset = stamp.0.get().wrapping_sub(now_ms as u32) as i32;
        now_ms.saturating_add_signed(i64::from(offset))
    }

    /// The moment `stamp` stands for, taken within ±24.8 days of `now`.
    pub fn instant(&self, stamp: Stamp, now: Instant) -> Instant {
        self.at_ms(self.widen(stamp, now))
    }

    /// Tenths of a second from the epoch to `at`, plus one (never 0, so a struct holding it has a niche
    /// for an enum's tag), in 4 bytes for 13 years: how a stream's age is kept (unlike a stamp, it may be
    /// read back long after).
    pub fn tenths(&self, at: Instant) -> NonZeroU32 {
        let tenths = (at.saturating_duration_since(self.epoch).as_millis() / 100) as u32;
        NonZeroU32::new(tenths.saturating_add(1)).unwrap_or(NonZeroU32::MAX)
    }

    /// The moment `ms` milliseconds after the epoch.
    pub fn at_ms(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

/// The UTC time of day of `now` as `HH:MM:SS.mmm`.
pub fn time_of_day(now: SystemTime) -> [u8; 12] {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ms_of_day = (since_epoch.as_millis() % 86_400_000) as u32;
    let (h, m, s, ms) =
        (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    let mut out = *b"00:00:00.000";
    put_digits(&mut out[0..2], h);
    put_digits(&mut out[3..5], m);
    put_digits(&mut out[6..8], s);
    put_digits(&mut out[9..12], ms);
    out
}

/// `now` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let (days, sec_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        sec_of_day / 3600,
        sec_of_day / 60 % 60,
        sec_of_day % 60
    )
}

/// The `Date` header value, formatted at most once a second however many responses ask for it.
#[derive(Debug, Default)]
pub struct DateCache {
    second: u64,
    value: String,
}

impl DateCache {
    /// The HTTP date for `now`.
    pub fn get(&mut self, now: SystemTime) -> &str {
        let second = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if self.value.is_empty() || second != self.second {
            self.second = second;
            self.value = http_date(now);
        }
        &self.value
    }
}

/// Writes `value` as zero-padded decimal digits filling `out`.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Year, month (1-12) and day (1-31) of a count of days since 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    #[test]
    fn stamps_round_up_and_read_back_near_now() {
        let epoch = StdInstant::now();
        let clock = LoopClock::new(epoch);
        let at = epoch + Duration::from_micros(2_500); // 2.5 ms in: the stamp says 3 ms, never early
        let stamp = clock.stamp(at);
        assert_eq!(clock.instant(stamp, at), epoch + Duration::from_millis(3));
        assert_eq!(clock.instant(stamp, at + Duration::from_secs(3600)), epoch + Duration::from_millis(3));
        assert_eq!(clock.instant(clock.stamp(epoch), epoch), epoch, "the epoch itself is exact");
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 4);
    }

    #[test]
    fn stamps_survive_the_32_bit_wrap() {
        let epoch = StdInstant::now();
        let clock = LoopClock::new(epoch);
        let day = 86_400_000u64;
        // 60 days in: past 2^32 ms. A deadline a day ahead and a write an hour ago read back exactly.
        let now = epoch + Duration::from_millis(60 * day);
        let ahead = now + Duration::from_millis(day);
        let before = now - Duration::from_millis(3_600_000);
        assert_eq!(clock.instant(clock.stamp(ahead), now), ahead);
        assert_eq!(clock.instant(clock.stamp(before), now), before);
        assert_eq!(clock.widen(clock.stamp(ahead), now), 61 * day + 1, "counted from 1 ms before the epoch");
    }

    use super::*;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn time_of_day_is_zero_padded_utc() {
        assert_eq!(&time_of_day(at(0, 0)), b"00:00:00.000");
        assert_eq!(&time_of_day(at(784_111_777, 5)), b"08:49:37.005");
        assert_eq!(&time_of_day(at(86_399, 999)), b"23:59:59.999");
        assert_eq!(&time_of_day(at(86_400, 0)), b"00:00:00.000");
    }

    #[test]
    fn http_date_matches_the_rfc_example_and_leap_days() {
        assert_eq!(http_date(at(784_111_777, 0)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(at(0, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(951_782_400, 0)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(at(1_795_737_599, 0)), "Thu, 26 Nov 2026 23:59:59 GMT");
    }

    #[test]
    fn date_cache_reformats_only_when_the_second_changes() {
        let mut cache = DateCache::default();
        assert_eq!(cache.get(at(784_111_777, 1)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.get(at(784_111_777, 999)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.get(at(784_111_778, 0)), "Sun, 06 Nov 1994 08:49:38 GMT");
    }
}
