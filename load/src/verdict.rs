//! The verdict: which checks a run held, and the exit code CI reads.
//!
//! Exit codes: [`PASSED`] 0, every check held · [`FAILED`] 1, a check did not hold (a failure, a lost or
//! repeated event, work not done, a threshold) · [`BAD_INPUT`] 2, the flags were refused (nothing ran) ·
//! [`COULD_NOT_RUN`] 3, the load generator itself failed (an I/O error, a worker that died).
//!
//! Rules:
//! - A run is checked by default for what it was asked to do: no failed attempt, no drop (without
//!   `--reconnect`: with it, every dropped stream back), every stream opened, no publish refused, every
//!   accepted publish delivered to every subscriber, no id missing, repeated or going back, every churn
//!   cycle done.
//! - `--threshold` adds checks; one that names the same figure as a default check replaces it (so
//!   `failures<10` tolerates nine failures).
//! - Threshold syntax: `FIGURE OP VALUE[UNIT]`, OP one of `< <= > >= == !=`; a latency is
//!   `[HISTOGRAM.]p50|p90|p99|p99.9|max` in `ms` (default), `s` or `us`, HISTOGRAM one of `latency`,
//!   `connect`, `reconnect`, `first_event`, `recovery`, `tick_lateness`, `tick_send_lateness`,
//!   `event_gap`, `stream_duration` (without it: the mode's headline, see [`headline`]); a count is `failures`, `drops`, `publish_failures`, `missing`, `duplicates`,
//!   `decreases`, `jumps`, `not_back`, `events`, `refused`, or `delivered`, `connected`, `cycles`, `opened`,
//!   `completed` as a number or as a `%` (of expected, of attempts, of cycles asked, of streams).

use serde::Serialize;

use crate::report::{Percentiles, Report};

pub const PASSED: u8 = 0;
pub const FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const COULD_NOT_RUN: u8 = 3;

/// One check: what was asked, what was measured, whether it held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: String,
    pub value: String,
    pub held: bool,
}

/// A `--threshold` as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    figure: String,
    op: Op,
    value: f64,
    percent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

const COUNTS: [&str; 12] = [
    "refused",
    "wrong_topic",
    "failures",
    "drops",
    "publish_failures",
    "missing",
    "duplicates",
    "decreases",
    "jumps",
    "not_back",
    "events",
    "delivered",
];
const SHARES: [&str; 5] = ["delivered", "connected", "cycles", "opened", "completed"];
const HISTOGRAMS: [&str; 9] = [
    "latency",
    "connect",
    "reconnect",
    "first_event",
    "recovery",
    "tick_lateness",
    "tick_send_lateness",
    "event_gap",
    "stream_duration",
];
const QUANTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

impl Threshold {
    /// Parses `p99<100ms`, `failures==0`, `delivered>=99.9%`, `connect.p99 <= 0.5 s`.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |why: &str| format!("--threshold {text:?}: {why}");
        let ops =
            [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
        let (at, token, op) = ops
            .iter()
            .filter_map(|(token, op)| text.find(token).map(|at| (at, *token, *op)))
            .min_by_key(|(at, token, _)| (*at, std::cmp::Reverse(token.len())))
            .ok_or_else(|| bad("no operator (< <= > >= == !=)"))?;
        let figure = text[..at].trim().to_owned();
        let raw = text[at + token.len()..].trim();
        let split = raw.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(raw.len());
        let (number, unit) = (&raw[..split], raw[split..].trim());
        let number: f64 = number.parse().map_err(|_| bad("the value is not a number"))?;
        let latency = is_latency(&figure);
        let (value, percent) = match unit {
            "" => (number, false),
            "ms" if latency => (number, false),
            "s" if latency => (number * 1000.0, false),
            "us" | "µs" if latency => (number / 1000.0, false),
            "%" if SHARES.contains(&figure.as_str()) => (number, true),
            _ => return Err(bad(&format!("unit {unit:?} does not fit {figure:?}"))),
        };
        if !latency && !COUNTS.contains(&figure.as_str()) && !SHARES.contains(&figure.as_str()) {
            return Err(bad(&format!(
                "unknown figure {figure:?} (counts: {}; shares: {}; latencies: [{}.]{})",
                COUNTS.join(", "),
                SHARES.join(", "),
                HISTOGRAMS.join("|"),
                QUANTILES.join("|")
            )));
        }
        Ok(Threshold { text: text.trim().to_owned(), figure, op, value, percent })
    }

    fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Lt => measured < self.value,
            Op::Le => measured <= self.value,
            Op::Gt => measured > self.value,
            Op::Ge => measured >= self.value,
            Op::Eq => measured == self.value,
            Op::Ne => measured != self.value,
        }
    }

    /// The figure this threshold reads, with a latency's histogram made explicit.
    fn key(&self, mode: &str) -> String {
        match self.figure.split_once('.') {
            _ if !is_latency(&self.figure) => self.figure.clone(),
            Some((histogram, _)) if HISTOGRAMS.contains(&histogram) => self.figure.clone(),
            _ => format!("{}.{}", headline(mode), self.figure),
        }
    }
}

fn is_latency(figure: &str) -> bool {
    let quantile = figure.split_once('.').filter(|(h, _)| HISTOGRAMS.contains(h)).map_or(figure, |(_, q)| q);
    QUANTILES.contains(&quantile)
}

/// The latency a bare `p99` means in each mode: what that mode is about.
pub fn headline(mode: &str) -> &'static str {
    match mode {
        "fanout" => "latency",
        "churn" => "first_event",
        "storm" => "recovery",
        _ => "connect",
    }
}

/// A histogram's percentiles in ms, by its threshold name.
pub fn percentiles(report: &Report, histogram: &str) -> Percentiles {
    match histogram {
        "latency" => report.latency_us.percentiles(0.001),
        "connect" => report.connect_us.percentiles(0.001),
        "reconnect" => report.reconnect_us.percentiles(0.001),
        "first_event" => report.first_event_us.percentiles(0.001),
        "recovery" => report.recovery_us.percentiles(0.001),
        "event_gap" => report.event_gap_us.percentiles(0.001),
        "stream_duration" => report.stream_duration_us.percentiles(0.001),
        "tick_send_lateness" => report.tick_send_lateness_ms.percentiles(1.0),
        _ => report.tick_lateness_ms.percentiles(1.0),
    }
}

/// A figure's measured value (`None`: this run did not measure it).
fn measure(report: &Report, key: &str, percent: bool) -> Option<f64> {
    if let Some((histogram, quantile)) = key.split_once('.').filter(|(h, _)| HISTOGRAMS.contains(h)) {
        let p = percentiles(report, histogram);
        if p.count == 0 {
            return None;
        }
        return Some(match quantile {
            "p50" => p.p50,
            "p90" => p.p90,
            "p99" => p.p99,
            "p99.9" => p.p99_9,
            _ => p.max,
        });
    }
    let share = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
    Some(match (key, percent) {
        ("delivered", true) => share(report.delivered, report.expected),
        ("connected", true) => share(report.connected, report.attempts),
        ("cycles", true) => share(report.cycles, report.cycles_asked),
        ("opened", true) => share(report.opened, report.streams),
        ("completed", true) => share(report.completed, report.streams),
        ("completed", _) => report.completed as f64,
        ("refused", _) => report.refused as f64,
        ("failures", _) => report.failure_count() as f64,
        ("drops", _) => report.drop_count() as f64,
        ("publish_failures", _) => report.publish_failure_count() as f64,
        ("missing", _) => report.ids.missing as f64,
        ("wrong_topic", _) => report.topics.wrong_topic as f64,
        ("duplicates", _) => report.ids.duplicates as f64,
        ("decreases", _) => report.ids.decreases as f64,
        ("jumps", _) => report.ids.jumps as f64,
        ("not_back", _) => report.not_back as f64,
        ("events", _) => report.events as f64,
        ("delivered", _) => report.delivered as f64,
        ("connected", _) => report.connected as f64,
        ("cycles", _) => report.cycles as f64,
        ("opened", _) => report.opened as f64,
        _ => return None,
    })
}

/// The checks a run gets without being asked, for its mode.
fn default_checks(report: &Report) -> Vec<Threshold> {
    let mut texts = vec!["failures==0", "missing==0", "duplicates==0", "decreases==0"];
    if report.topics.count() > 0 {
        texts.push("wrong_topic==0");
    }
    match report.mode.as_str() {
        "churn" => texts.push("cycles>=100%"),
        // Open arrivals: every scheduled stream started (none refused) and ran to its end.
        "stream" => texts.extend(["refused==0", "completed>=100%"]),
        mode => {
            texts.push("opened>=100%");
            texts.push(if report.reconnecting { "not_back==0" } else { "drops==0" });
            if mode == "fanout" {
                texts.extend(["publish_failures==0", "delivered>=100%"]);
            }
        }
    }
    texts.into_iter().filter_map(|t| Threshold::parse(t).ok()).collect()
}

/// Every check of a run (the defaults not replaced, then the user's), and the exit code.
pub fn judge(report: &Report, thresholds: &[Threshold]) -> (Vec<Check>, u8) {
    let mode = report.mode.as_str();
    let replaced = |t: &Threshold| thresholds.iter().any(|u| u.key(mode) == t.key(mode));
    let mut checks = Vec::new();
    for threshold in default_checks(report).iter().filter(|t| !replaced(t)).chain(thresholds) {
        let measured = measure(report, &threshold.key(mode), threshold.percent);
        let (value, held) = match measured {
            Some(v) if threshold.percent => (format!("{v:.2}%"), threshold.holds(v)),
            Some(v) if is_latency(&threshold.figure) => {
                (format!("{} ms", crate::report::histo::ms(v)), threshold.holds(v))
            }
            Some(v) => (format!("{v}"), threshold.holds(v)),
            None => ("not measured".to_owned(), false),
        };
        let check = if threshold.key(mode) == threshold.figure || !is_latency(&threshold.figure) {
            threshold.text.clone()
        } else {
            format!("{} ({})", threshold.text, threshold.key(mode))
        };
        checks.push(Check { check, value, held });
    }
    let code = if checks.iter().all(|c| c.held) { PASSED } else { FAILED };
    (checks, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mode: &str) -> Report {
        Report {
            mode: mode.into(),
            streams: 10,
            opened: 10,
            attempts: 10,
            connected: 10,
            ..Report::default()
        }
    }

    #[test]
    fn thresholds_parse_with_units_and_refuse_nonsense() {
        let t = Threshold::parse("p99<100ms").unwrap();
        assert_eq!((t.figure.as_str(), t.op, t.value, t.percent), ("p99", Op::Lt, 100.0, false));
        assert_eq!(Threshold::parse("connect.p99 <= 0.5 s").unwrap().value, 500.0);
        assert_eq!(Threshold::parse("p99.9<250us").unwrap().value, 0.25);
        let t = Threshold::parse("delivered>=99.9%").unwrap();
        assert_eq!((t.op, t.value, t.percent), (Op::Ge, 99.9, true));
        assert_eq!(Threshold::parse("failures==0").unwrap().op, Op::Eq);
        for bad in ["p99", "p99<fast", "failures<3ms", "p99<3%", "speed>3", "latency.p42<3ms"] {
            assert!(Threshold::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_clean_run_passes_and_a_failure_fails() {
        let (checks, code) = judge(&report("hold"), &[]);
        assert_eq!(code, PASSED, "{checks:?}");
        let mut failed = report("hold");
        failed.fail("connect: refused");
        let (checks, code) = judge(&failed, &[]);
        assert_eq!(code, FAILED);
        assert!(checks.iter().any(|c| c.check == "failures==0" && !c.held && c.value == "1"), "{checks:?}");
    }

    #[test]
    fn a_user_threshold_replaces_the_default_on_the_same_figure() {
        let mut r = report("hold");
        r.fail("connect: refused");
        let (checks, code) = judge(&r, &[Threshold::parse("failures<10").unwrap()]);
        assert_eq!(code, PASSED, "{checks:?}");
        assert!(!checks.iter().any(|c| c.check == "failures==0"));
    }

    #[test]
    fn a_bare_percentile_reads_the_modes_headline_latency() {
        let mut r = report("fanout");
        (r.published, r.publish_accepted, r.subscribers, r.expected, r.delivered) = (1, 1, 10, 10, 10);
        for us in [1_000, 2_000, 150_000] {
            r.latency_us.record(us);
        }
        let (checks, code) = judge(&r, &[Threshold::parse("p99<100ms").unwrap()]);
        assert_eq!(code, FAILED);
        let p99 = checks.iter().find(|c| c.check.starts_with("p99")).unwrap();
        assert_eq!((p99.check.as_str(), p99.held), ("p99<100ms (latency.p99)", false));
        let (_, code) = judge(&r, &[Threshold::parse("delivered>=99.9%").unwrap()]);
        assert_eq!(code, PASSED);
        let (checks, code) = judge(&report("hold"), &[Threshold::parse("latency.p99<1ms").unwrap()]);
        assert_eq!((code, checks.last().unwrap().value.as_str()), (FAILED, "not measured"));
    }

    #[test]
    fn churn_that_did_not_do_its_cycles_fails() {
        let mut r = report("churn");
        (r.cycles_asked, r.cycles) = (200, 0);
        assert_eq!(judge(&r, &[]).1, FAILED);
        r.cycles = 200;
        assert_eq!(judge(&r, &[]).1, PASSED);
    }
}
