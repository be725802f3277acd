//! Wall-clock formatting: the tick's time of day (`HH:MM:SS.mmm`) and the HTTP `Date` header.
//!
//! Deadlines in the server use `Instant` (monotonic); only what a person reads uses the wall clock. Times
//! are UTC: a server should not guess its readers' time zone, and UTC needs no time-zone database. The
//! formatting is pure (a `SystemTime` in, bytes out), so tests pin exact strings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
