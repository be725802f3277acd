//! The report as a table for people: counts that add up (attempts = connected + failed), failures by
//! cause, latencies in ms, the id check that was applied, then every check and the verdict.
//!
//! Rules: a row a run did not measure is left out; two latency rows that are the same by construction
//! (a server that sends its first event with its head) become one row that says so.

use std::fmt::Write as _;

use crate::ids::IdCheck;
use crate::report::{Percentiles, Report};
use crate::verdict::Check;

/// What each id check means, for the report's line.
fn id_rule(check: IdCheck) -> &'static str {
    match check {
        IdCheck::Sequential => "each id the previous + 1: missing events counted",
        IdCheck::Increasing => "ids only grow: decreases and repeats counted, gaps allowed",
        IdCheck::Opaque => "ids compared by value: repeats counted",
    }
}

/// Whether two latency rows are one by construction: as many values, each percentile within 0.1 ms or
/// 1% (a server that sends its first event with its head: the event is parsed microseconds later).
fn same_by_construction(a: &Percentiles, b: &Percentiles) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 0.1_f64.max(x.abs() * 0.01);
    a.count > 0
        && a.count == b.count
        && close(a.p50, b.p50)
        && close(a.p90, b.p90)
        && close(a.p99, b.p99)
        && close(a.p99_9, b.p99_9)
        && close(a.max, b.max)
}

/// The summary table, the checks, the verdict.
pub fn table(r: &Report, checks: &[Check], code: u8) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    row("mode", r.mode.clone());
    row(if r.mode == "churn" { "at once" } else { "streams" }, r.streams.to_string());
    let retried =
        if r.retried.is_empty() { String::new() } else { format!(" + {} retried", r.retried_count()) };
    row(
        "attempts",
        format!("{} = {} connected + {} failed{retried}", r.attempts, r.connected, r.failure_count()),
    );
    for (cause, n) in &r.failures {
        row("  failed", format!("{n} × {cause}"));
    }
    for (cause, n) in &r.retried {
        row("  retried (a dropped stream coming back)", format!("{n} × {cause}"));
    }
    if !r.drops.is_empty() {
        row("dropped after connecting", r.drop_count().to_string());
        for (cause, n) in &r.drops {
            row("  dropped", format!("{n} × {cause}"));
        }
    }
    row("events received", r.events.to_string());
    if r.mode == "stream" {
        row("refused (at --max-inflight)", r.refused.to_string());
        row(
            "streams/s",
            format!("{:.1}", if r.elapsed_s > 0.0 { r.completed as f64 / r.elapsed_s } else { 0.0 }),
        );
    }
    if r.completed > 0 {
        let e = &r.events_per_stream;
        row(
            "completed streams",
            format!(
                "{} (events per stream: min {} · p50 {} · max {})",
                r.completed,
                e.min(),
                e.at(0.5),
                e.max()
            ),
        );
    }
    if r.mode == "fanout" {
        row("published / accepted", format!("{} / {}", r.published, r.publish_accepted));
        for (cause, n) in &r.publish_failures {
            row("  publish failed", format!("{n} × {cause}"));
        }
        row(
            "delivered / expected",
            format!("{} / {} ({} subscribers)", r.delivered, r.expected, r.subscribers),
        );
        if r.delivery_window_s > 0.0 {
            row("deliveries/s", format!("{:.0}", r.delivered as f64 / r.delivery_window_s));
        }
    }
    if r.mode != "churn" {
        let ids = &r.ids;
        row(
            &format!("ids ({})", r.id_check.name()),
            format!(
                "{} missing · {} duplicates · {} decreases  [{}]",
                ids.missing,
                ids.duplicates,
                ids.decreases,
                id_rule(r.id_check)
            ),
        );
        if ids.jumps > 0 {
            row(
                "id jumps on reconnecting",
                format!(
                    "{} (largest {}: a server restart, not counted as missing)",
                    ids.jumps, ids.largest_jump
                ),
            );
        }
        if ids.unchecked > 0 {
            row("ids not numbers", format!("{} (compared by value only)", ids.unchecked));
        }
        if r.topics.count() > 0 {
            let t = &r.topics;
            let delivered = t.delivered_per_topic();
            row(
                "topics",
                format!(
                    "{} ({}; {} with streams, {}..{} streams each) · {} on the wrong topic",
                    t.count(),
                    t.dist,
                    t.streams.iter().filter(|s| **s > 0).count(),
                    t.streams.iter().min().unwrap_or(&0),
                    t.streams.iter().max().unwrap_or(&0),
                    t.wrong_topic
                ),
            );
            row(
                "deliveries per topic",
                format!(
                    "min {} · p50 {} · p99 {} · max {}",
                    delivered.min(),
                    delivered.at(0.5),
                    delivered.at(0.99),
                    delivered.max()
                ),
            );
        }
        row("reconnects", r.reconnects.to_string());
        if r.connect_retries > 0 {
            row(
                "connect retries",
                format!("{} (no free source port for a moment; tried again)", r.connect_retries),
            );
        }
    }
    if r.reconnecting && r.mode != "churn" {
        row("not back at the end", r.not_back.to_string());
    }
    if r.mode == "churn" {
        row("churn cycles", format!("{} done of {} asked", r.cycles, r.cycles_asked));
        row("cycles/s", format!("{:.0}", r.cycles as f64 / r.elapsed_s.max(1e-9)));
    }
    if r.mode != "churn" {
        row("longest silence", format!("{} ms", r.max_silence_ms));
    }
    let connect = r.connect_us.percentiles(0.001);
    let first_event = r.first_event_us.percentiles(0.001);
    if same_by_construction(&connect, &first_event) {
        row("head = first event", format!("{} [the first event came with the head]", first_event.cell()));
    } else {
        for (name, p) in [("connect (head)", connect), ("first event", first_event)] {
            if p.count > 0 {
                row(name, p.cell());
            }
        }
    }
    for (name, p) in [
        ("reconnect (head)", r.reconnect_us.percentiles(0.001)),
        ("publish → receive", r.latency_us.percentiles(0.001)),
        ("drop → back", r.recovery_us.percentiles(0.001)),
        ("tick lateness", r.tick_lateness_ms.percentiles(1.0)),
        ("  of it at send", r.tick_send_lateness_ms.percentiles(1.0)),
        ("event gap", r.event_gap_us.percentiles(0.001)),
        ("stream duration", r.stream_duration_us.percentiles(0.001)),
    ] {
        if p.count > 0 {
            row(name, p.cell());
        }
    }
    row("elapsed", format!("{:.3} s", r.elapsed_s));
    let held: Vec<&str> = checks.iter().filter(|c| c.held).map(|c| c.check.as_str()).collect();
    if !held.is_empty() {
        row("checks held", held.join(", "));
    }
    for check in checks.iter().filter(|c| !c.held) {
        row("NOT HELD", format!("{} (measured {})", check.check, check.value));
    }
    let verdict = if code == 0 { "passed" } else { "failed" };
    row("verdict", format!("{verdict} (exit code {code})"));
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<width$}  {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::judge;

    #[test]
    fn attempts_add_up_and_latencies_read_in_ms() {
        let mut r = Report {
            mode: "hold".into(),
            streams: 3,
            opened: 3,
            attempts: 3,
            connected: 2,
            ..Report::default()
        };
        r.fail("connect: refused");
        r.connect_us.record(938_495);
        r.connect_us.record(1_351_679);
        r.first_event_us.record(2_000);
        let (checks, code) = judge(&r, &[]);
        let text = table(&r, &checks, code);
        assert!(text.contains("3 = 2 connected + 1 failed"), "{text}");
        assert!(text.contains("1 × connect: refused"), "{text}");
        assert!(text.contains("max 1352 ms (n=2)"), "{text}");
        assert!(text.contains("NOT HELD"), "{text}");
        assert!(text.contains("failures==0 (measured 1)"), "{text}");
        assert!(text.ends_with("failed (exit code 1)\n"), "{text}");
        assert!(!text.contains("publish → receive"), "rows not measured are left out: {text}");
    }

    #[test]
    fn a_head_that_brings_the_first_event_is_one_row() {
        let mut r = Report { mode: "churn".into(), ..Report::default() };
        r.connect_us.record(4_875);
        r.first_event_us.record(4_880);
        let text = table(&r, &[], 0);
        assert!(text.contains("head = first event"), "{text}");
        assert!(!text.contains("connect (head)"), "{text}");
    }
}
