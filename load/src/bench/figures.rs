//! What the benchmark measured, in three shapes: the records written to `bench/results.json`, one
//! progress line per workload for the terminal, and the summary table (for the terminal and the README).
//!
//! Rules: units are in the names (`_kib`, `_us`, `_ms`, `_per_s`); on a terminal, latencies are shown in
//! ms and nothing is printed with `{:?}` (a histogram's `Debug` is hundreds of KB of zeros).

use serde::Serialize;

use super::floor::WakeFloor;
use crate::report::Histo;

/// One stream count's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HoldFigures {
    pub streams: usize,
    pub failures: u64,
    pub rss_idle_kib: u64,
    pub rss_kib: u64,
    pub bytes_per_stream: f64,
    /// Streams opened and first event received, per second.
    pub accept_per_s: f64,
    pub server_cpu_us_per_connection: f64,
    pub server_cpu_us_per_tick: f64,
    pub ticks_sent: u64,
    pub ticks_skipped: u64,
    pub tick_lateness_p50_ms: u64,
    pub tick_lateness_p99_ms: u64,
    pub tick_lateness_max_ms: u64,
    /// The same by the ticks' own stamps: how late the server wrote them (its share of the lateness).
    pub tick_send_lateness_p50_ms: u64,
    pub tick_send_lateness_p99_ms: u64,
    pub tick_send_lateness_max_ms: u64,
}

/// A fan-out run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutFigures {
    pub streams: usize,
    pub events: u64,
    pub rate_per_s: f64,
    /// How the publisher sent its `POST`s: "waits for each answer" or "pipelined".
    pub publisher: &'static str,
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_s: f64,
    pub server_cpu_us_per_delivery: f64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
    #[serde(skip)]
    pub latency: Histo,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: String,
    /// How late a loop that only sleeps to a deadline every ms woke here, alone: the floor under tick
    /// lateness.
    pub wake_floor: WakeFloor,
    pub hold: Vec<HoldFigures>,
    /// As fast as possible, each publish waiting for its answer (what most publishers do).
    pub fanout_max_rate: FanoutFigures,
    /// As fast as possible, publishes pipelined without waiting.
    pub fanout_max_rate_pipelined: FanoutFigures,
    pub fanout_5_per_s: FanoutFigures,
}

/// The columns of a hold run's figures, in the table and on its progress line.
const HOLD_COLUMNS: [&str; 8] = [
    "streams",
    "failures",
    "RSS idle → held",
    "bytes/stream",
    "accepts/s",
    "CPU µs/connection",
    "CPU µs/tick",
    "tick lateness p50 / p99 / max (of it, at send)",
];

/// The columns of a fan-out run's figures, in the table and on its progress line.
const FANOUT_COLUMNS: [&str; 5] =
    ["fan-out", "delivered / expected", "deliveries/s", "CPU µs/delivery", "latency p50 / p99 / p99.9 / max"];

/// A hold run's figures, one formatted value per [`HOLD_COLUMNS`] entry.
fn hold_values(h: &HoldFigures) -> [String; 8] {
    [
        h.streams.to_string(),
        h.failures.to_string(),
        format!("{} → {} KiB", h.rss_idle_kib, h.rss_kib),
        format!("{:.0}", h.bytes_per_stream),
        format!("{:.0}", h.accept_per_s),
        format!("{:.1}", h.server_cpu_us_per_connection),
        format!("{:.2}", h.server_cpu_us_per_tick),
        format!(
            "{} / {} / {} ms ({} / {} / {})",
            h.tick_lateness_p50_ms,
            h.tick_lateness_p99_ms,
            h.tick_lateness_max_ms,
            h.tick_send_lateness_p50_ms,
            h.tick_send_lateness_p99_ms,
            h.tick_send_lateness_max_ms
        ),
    ]
}

/// A fan-out run's figures, one formatted value per [`FANOUT_COLUMNS`] entry; latencies in ms.
fn fanout_values(f: &FanoutFigures) -> [String; 5] {
    let pace =
        if f.rate_per_s > 0.0 { format!("{} events/s", f.rate_per_s) } else { "as fast as possible".into() };
    let ms = |us: u64| us as f64 / 1000.0;
    [
        format!("{} events to {} streams, {pace}, publisher {}", f.events, f.streams, f.publisher),
        format!("{} / {}", f.delivered, f.expected),
        format!("{:.0}", f.deliveries_per_s),
        format!("{:.3}", f.server_cpu_us_per_delivery),
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} ms",
            ms(f.latency_p50_us),
            ms(f.latency_p99_us),
            ms(f.latency_p999_us),
            ms(f.latency_max_us)
        ),
    ]
}

/// A hold run's figures as one progress line: `streams: 1000 · failures: 0 · RSS idle → held: …`.
pub fn hold_line(h: &HoldFigures) -> String {
    line(&HOLD_COLUMNS, &hold_values(h))
}

/// A fan-out run's figures as one progress line.
pub fn fanout_line(f: &FanoutFigures) -> String {
    line(&FANOUT_COLUMNS, &fanout_values(f))
}

fn line(columns: &[&str], values: &[String]) -> String {
    let cells: Vec<String> =
        columns.iter().zip(values).map(|(column, value)| format!("{column}: {value}")).collect();
    cells.join(" · ")
}

/// One Markdown table row (or, given the column names, its header).
fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// The row under a Markdown table's header.
fn separator(columns: usize) -> String {
    format!("|{}\n", "---|".repeat(columns))
}

/// The figures as a table, for the terminal and the README.
pub fn summary(r: &Results) -> String {
    let mut out = format!("machine: {} · {}\n\n", r.machine, r.wake_floor.line());
    out.push_str(&row(&HOLD_COLUMNS));
    out.push_str(&separator(HOLD_COLUMNS.len()));
    for h in &r.hold {
        out.push_str(&row(&hold_values(h)));
    }
    out.push('\n');
    out.push_str(&row(&FANOUT_COLUMNS));
    out.push_str(&separator(FANOUT_COLUMNS.len()));
    for f in [&r.fanout_max_rate, &r.fanout_max_rate_pipelined, &r.fanout_5_per_s] {
        out.push_str(&row(&fanout_values(f)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Results {
        let hold = HoldFigures {
            streams: 1000,
            failures: 0,
            rss_idle_kib: 3376,
            rss_kib: 3736,
            bytes_per_stream: 368.6,
            accept_per_s: 16243.2,
            server_cpu_us_per_connection: 12.14,
            server_cpu_us_per_tick: 7.453,
            ticks_sent: 10000,
            ticks_skipped: 0,
            tick_lateness_p50_ms: 1,
            tick_lateness_p99_ms: 21,
            tick_lateness_max_ms: 23,
            tick_send_lateness_p50_ms: 0,
            tick_send_lateness_p99_ms: 9,
            tick_send_lateness_max_ms: 12,
        };
        let fanout = |rate_per_s| FanoutFigures {
            streams: 10000,
            events: 200,
            rate_per_s,
            publisher: "waits for each answer",
            expected: 2_000_000,
            delivered: 2_000_000,
            deliveries_per_s: 964_002.9,
            server_cpu_us_per_delivery: 0.30355,
            latency_p50_us: 993_279,
            latency_p99_us: 2_056_191,
            latency_p999_us: 2_072_575,
            latency_max_us: 2_074_623,
            latency: Histo::default(),
        };
        Results {
            machine: "2 cores".into(),
            wake_floor: WakeFloor { wakes: 3000, p50_us: 70, p99_us: 450, p999_us: 2480, max_us: 3470 },
            hold: vec![hold],
            fanout_max_rate: fanout(0.0),
            fanout_max_rate_pipelined: FanoutFigures { publisher: "pipelined", ..fanout(0.0) },
            fanout_5_per_s: fanout(5.0),
        }
    }

    #[test]
    fn progress_lines_are_one_readable_line_with_units() {
        let r = figures();
        assert_eq!(
            hold_line(&r.hold[0]),
            "streams: 1000 · failures: 0 · RSS idle → held: 3376 → 3736 KiB · bytes/stream: 369 · \
             accepts/s: 16243 · CPU µs/connection: 12.1 · CPU µs/tick: 7.45 · \
             tick lateness p50 / p99 / max (of it, at send): 1 / 21 / 23 ms (0 / 9 / 12)"
        );
        assert_eq!(
            fanout_line(&r.fanout_max_rate),
            "fan-out: 200 events to 10000 streams, as fast as possible, publisher waits for each answer · delivered / expected: 2000000 / 2000000 · \
             deliveries/s: 964003 · CPU µs/delivery: 0.304 · \
             latency p50 / p99 / p99.9 / max: 993.3 / 2056.2 / 2072.6 / 2074.6 ms"
        );
    }

    #[test]
    fn the_summary_is_a_markdown_table_per_kind_of_run() {
        let table = summary(&figures());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "machine: 2 cores · a loop waking every 1 ms, alone: late by p50 0.07 / p99 0.45 / p99.9 2.48 / max \
             3.47 ms"
        );
        assert_eq!(
            lines[2],
            "| streams | failures | RSS idle → held | bytes/stream | accepts/s | CPU µs/connection | CPU µs/tick | \
             tick lateness p50 / p99 / max (of it, at send) |"
        );
        assert_eq!(lines[3], "|---|---|---|---|---|---|---|---|");
        assert_eq!(
            lines[4],
            "| 1000 | 0 | 3376 → 3736 KiB | 369 | 16243 | 12.1 | 7.45 | 1 / 21 / 23 ms (0 / 9 / 12) |"
        );
        assert_eq!(lines[7], "|---|---|---|---|---|");
        assert!(
            lines[9].starts_with("| 200 events to 10000 streams, as fast as possible, publisher pipelined |")
        );
        assert_eq!(
            lines[10],
            "| 200 events to 10000 streams, 5 events/s, publisher waits for each answer | 2000000 / 2000000 | \
             964003 | 0.304 | 993.3 / 2056.2 / 2072.6 / 2074.6 ms |"
        );
    }
}
