//! A budget for per-connection log lines: the first few each second are written as they come, the rest
//! are counted and summed up in one line when the second is over.
//!
//! At a few connections a second, a line per stream opened or closed is what an operator wants to read.
//! At 10,000 a second it is 20,000 lines a second that nobody reads, that cost the loop time and that push
//! everything else out of the log. So past [`LogBudget::PER_SECOND`] in one second, lines of a kind become
//! one summary: `… and 4,990 more streams opened in the last second`.
//!
//! Rules: pure (time is passed in); the summary is due one second after the window opened, and the loop
//! wakes for it ([`LogBudget::deadline`]) so a burst's summary is not held back until the next event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The budget of one kind of line.
#[derive(Debug)]
pub struct LogBudget {
    /// What the lines say happened, for the summary: e.g. "streams opened".
    what: &'static str,
    window_start: Option<Instant>,
    shown: u32,
    suppressed: u64,
    /// Why the held-back lines happened, when the caller says (`allow_because`): the summary keeps it.
    reasons: BTreeMap<&'static str, u64>,
}

impl LogBudget {
    /// Lines of one kind written individually per second.
    pub const PER_SECOND: u32 = 20;
    const WINDOW: Duration = Duration::from_secs(1);

    pub const fn new(what: &'static str) -> LogBudget {
        LogBudget { what, window_start: None, shown: 0, suppressed: 0, reasons: BTreeMap::new() }
    }

    /// Whether a line may be written now; if not, it is counted for the summary.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.summarize(now);
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= Self::WINDOW {
            self.window_start = Some(now);
            self.shown = 0;
        }
        if self.shown < Self::PER_SECOND {
            self.shown += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Like [`LogBudget::allow`], counting `why` for the summary when the line is held back (a stream
    /// closed by the server must say why, even in a burst).
    pub fn allow_because(&mut self, now: Instant, why: &'static str) -> bool {
        if self.allow(now) {
            return true;
        }
        // Few distinct reasons (close reasons, "shutdown"): the map stays small.
        *self.reasons.entry(why).or_default() += 1;
        false
    }

    /// When a summary is due (for the poll timeout), if lines were held back.
    pub fn deadline(&self) -> Option<Instant> {
        if self.suppressed == 0 {
            return None;
        }
        self.window_start.map(|start| start + Self::WINDOW)
    }

    /// Writes the summary if one is due.
    pub fn summarize(&mut self, now: Instant) {
        if let Some(line) = self.take_summary(now) {
            log::info!("{line}");
        }
    }

    /// The summary line, if one is due at `now` (then the count starts over).
    pub fn take_summary(&mut self, now: Instant) -> Option<String> {
        let due = self.deadline()?;
        if now < due {
            return None;
        }
        let n = std::mem::take(&mut self.suppressed);
        self.window_start = None;
        self.shown = 0;
        let reasons = std::mem::take(&mut self.reasons);
        let why = if reasons.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> =
                reasons.iter().map(|(why, n)| format!("{why}: {}", thousands(*n))).collect();
            format!(" ({})", parts.join(", "))
        };
        Some(format!("… and {} more {} in the last second{why}", thousands(n), self.what))
    }
}

/// `4990` → `4,990`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_lines_become_one_summary_a_second_later() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new("streams opened");
        let allowed = (0..5_010).filter(|_| budget.allow(t0)).count();
        assert_eq!(allowed, LogBudget::PER_SECOND as usize);
        assert_eq!(budget.deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            budget.take_summary(t0 + Duration::from_millis(999)),
            None,
            "not before the second is over"
        );
        assert_eq!(
            budget.take_summary(t0 + Duration::from_secs(1)).as_deref(),
            Some("… and 4,990 more streams opened in the last second")
        );
        assert_eq!(budget.deadline(), None);
        assert!(budget.allow(t0 + Duration::from_secs(2)), "a new second, a new budget");
    }

    #[test]
    fn at_a_low_rate_every_line_is_written() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new("streams closed");
        for i in 0..100 {
            assert!(budget.allow(t0 + Duration::from_millis(100 * i)));
        }
        assert_eq!(budget.deadline(), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn a_summary_says_why_the_lines_it_sums_happened() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new("streams closed");
        for i in 0..(LogBudget::PER_SECOND + 5) {
            budget.allow_because(t0, if i % 2 == 0 { "peer closed" } else { "shutdown" });
        }
        let line = budget.take_summary(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(line, "… and 5 more streams closed in the last second (peer closed: 3, shutdown: 2)");
    }
}
