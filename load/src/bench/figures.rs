//! What the benchmark measured, in three shapes: the records written to `bench/results.json`, one
//! progress line per workload for the terminal, and the summary table (for the terminal and the README).
//!
//! Rules: units are in the names (`_kib`, `_us`, `_ms`, `_per_s`); on a terminal, latencies are shown in
//! ms and nothing is printed with `{:?}` (a histogram's `Debug` is hundreds of KB of zeros).

use serde::Serialize;

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
}

/// A fan-out run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutFigures {
    pub streams: usize,
    pub events: u64,
    pub rate_per_s: f64,
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
    pub hold: Vec<HoldFigures>,
    pub fanout_max_rate: FanoutFigures,
    pub fanout_5_per_s: FanoutFigures,
}

/// A hold workload's figures as one progress line.
pub fn hold_line(h: &HoldFigures) -> String {
    format!(
        "{} streams: {} failures · RSS {} → {} KiB ({:.0} B/stream) · {:.0} accepts/s · CPU {:.1} µs/connection, \
         {:.2} µs/tick ({} ticks sent, {} skipped) · tick lateness p50 / p99 / max {} / {} / {} ms",
        h.streams,
        h.failures,
        h.rss_idle_kib,
        h.rss_kib,
        h.bytes_per_stream,
        h.accept_per_s,
        h.server_cpu_us_per_connection,
        h.server_cpu_us_per_tick,
        h.ticks_sent,
        h.ticks_skipped,
        h.tick_lateness_p50_ms,
        h.tick_lateness_p99_ms,
        h.tick_lateness_max_ms
    )
}

/// A fan-out workload's figures as one progress line.
pub fn fanout_line(f: &FanoutFigures) -> String {
    format!(
        "{} events to {} streams: {} / {} delivered · {:.0} deliveries/s · CPU {:.3} µs/delivery · \
         latency p50 / p99 / p99.9 / max {} ms",
        f.events,
        f.streams,
        f.delivered,
        f.expected,
        f.deliveries_per_s,
        f.server_cpu_us_per_delivery,
        latencies_ms(f)
    )
}

/// `p50 / p99 / p99.9 / max` of a fan-out run, in ms with one decimal.
fn latencies_ms(f: &FanoutFigures) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1}",
        ms(f.latency_p50_us),
        ms(f.latency_p99_us),
        ms(f.latency_p999_us),
        ms(f.latency_max_us)
    )
}

/// The figures as a table, for the terminal and the README.
pub fn summary(r: &Results) -> String {
    let mut out = format!("machine: {}\n\n", r.machine);
    out.push_str("| streams | failures | RSS idle → held | bytes/stream | accepts/s | CPU µs/connection | CPU µs/tick | tick lateness p50 / p99 / max |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for h in &r.hold {
        out.push_str(&format!(
            "| {} | {} | {} → {} KiB | {:.0} | {:.0} | {:.1} | {:.2} | {} / {} / {} ms |\n",
            h.streams,
            h.failures,
            h.rss_idle_kib,
            h.rss_kib,
            h.bytes_per_stream,
            h.accept_per_s,
            h.server_cpu_us_per_connection,
            h.server_cpu_us_per_tick,
            h.tick_lateness_p50_ms,
            h.tick_lateness_p99_ms,
            h.tick_lateness_max_ms
        ));
    }
    out.push_str("\n| fan-out | delivered / expected | deliveries/s | CPU µs/delivery | latency p50 / p99 / p99.9 / max |\n");
    out.push_str("|---|---|---|---|---|\n");
    for (name, f) in [("as fast as possible", &r.fanout_max_rate), ("5 events/s", &r.fanout_5_per_s)] {
        out.push_str(&format!(
            "| {} events to {} streams, {name} | {} / {} | {:.0} | {:.3} | {:.1} / {:.1} / {:.1} / {:.1} ms |\n",
            f.events,
            f.streams,
            f.delivered,
            f.expected,
            f.deliveries_per_s,
            f.server_cpu_us_per_delivery,
            f.latency_p50_us as f64 / 1000.0,
            f.latency_p99_us as f64 / 1000.0,
            f.latency_p999_us as f64 / 1000.0,
            f.latency_max_us as f64 / 1000.0
        ));
    }
    out
}
