//! The report as one JSON object for programs: counts, rates, the checks and the verdict, and each
//! latency as `{count, p50, p90, p99, p99_9, max}` in ms at the top level. Raw histograms (value/count
//! pairs, large) only on request, under `histograms`.
//!
//! Rules: names carry their unit (`_ms`, `_s`, `_per_s`); a latency not measured is left out; the shape
//! only grows (programs read it: the tests, CI jobs).

use serde_json::{Value, json};

use crate::report::Report;
use crate::verdict::{Check, percentiles};

/// The latencies, by their JSON name and their threshold name.
const LATENCIES: [(&str, &str); 9] = [
    ("connect_ms", "connect"),
    ("reconnect_ms", "reconnect"),
    ("first_event_ms", "first_event"),
    ("latency_ms", "latency"),
    ("recovery_ms", "recovery"),
    ("tick_lateness_ms", "tick_lateness"),
    ("tick_send_lateness_ms", "tick_send_lateness"),
    ("event_gap_ms", "event_gap"),
    ("stream_duration_ms", "stream_duration"),
];

/// The summary as one line of JSON.
pub fn summary(r: &Report, checks: &[Check], code: u8, with_histograms: bool) -> String {
    let per_s = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let mut out = json!({
        "mode": r.mode,
        "verdict": if code == 0 { "passed" } else { "failed" },
        "exit_code": code,
        "checks": checks,
        "streams": r.streams,
        "opened": r.opened,
        "attempts": r.attempts,
        "connected": r.connected,
        "failures": r.failures,
        "failure_count": r.failure_count(),
        "drops": r.drops,
        "retried": r.retried,
        "events": r.events,
        "completed": r.completed,
        "refused": r.refused,
        "events_per_stream": {
            "count": r.events_per_stream.count(),
            "min": r.events_per_stream.min(),
            "p50": r.events_per_stream.at(0.5),
            "max": r.events_per_stream.max(),
        },
        "published": r.published,
        "publish_accepted": r.publish_accepted,
        "publish_failures": r.publish_failures,
        "subscribers": r.subscribers,
        "expected": r.expected,
        "delivered": r.delivered,
        "delivered_pct": if r.expected > 0 { r.delivered as f64 * 100.0 / r.expected as f64 } else { 0.0 },
        "ids": {
            "check": r.id_check.name(),
            "missing": r.ids.missing,
            "duplicates": r.ids.duplicates,
            "decreases": r.ids.decreases,
            "jumps": r.ids.jumps,
            "largest_jump": r.ids.largest_jump,
            "unchecked": r.ids.unchecked,
        },
        "topics": topics(r),
        "reconnects": r.reconnects,
        "connect_retries": r.connect_retries,
        "not_back": r.not_back,
        "cycles_asked": r.cycles_asked,
        "cycles": r.cycles,
        "max_silence_ms": r.max_silence_ms,
        "min_ticks_per_stream": r.min_ticks_per_stream,
        "elapsed_s": r.elapsed_s,
        "rates": {
            "events_per_s": per_s(r.events, r.elapsed_s),
            "deliveries_per_s": per_s(r.delivered, r.delivery_window_s),
            "cycles_per_s": per_s(r.cycles, r.elapsed_s),
            "connects_per_s": per_s(r.connected, r.elapsed_s),
            "streams_per_s": per_s(r.completed, r.elapsed_s),
        },
    });
    for (name, histogram) in LATENCIES {
        let p = percentiles(r, histogram);
        if p.count > 0 {
            out[name] = json!(p);
        }
    }
    if with_histograms {
        out["histograms"] = json!({
            "connect_us": r.connect_us,
            "reconnect_us": r.reconnect_us,
            "first_event_us": r.first_event_us,
            "latency_us": r.latency_us,
            "recovery_us": r.recovery_us,
            "tick_lateness_ms": r.tick_lateness_ms,
            "tick_send_lateness_ms": r.tick_send_lateness_ms,
            "event_gap_us": r.event_gap_us,
            "stream_duration_us": r.stream_duration_us,
        });
    }
    Value::to_string(&out)
}

/// The per-topic figures (`null` without `--topics`): how streams and deliveries spread over the topics.
fn topics(r: &Report) -> serde_json::Value {
    let t = &r.topics;
    if t.count() == 0 {
        return serde_json::Value::Null;
    }
    let delivered = t.delivered_per_topic();
    json!({
        "count": t.count(),
        "dist": t.dist,
        "with_streams": t.streams.iter().filter(|s| **s > 0).count(),
        "streams_per_topic": { "min": t.streams.iter().min(), "max": t.streams.iter().max() },
        "deliveries_per_topic": {
            "min": delivered.min(),
            "p50": delivered.at(0.5),
            "p99": delivered.at(0.99),
            "max": delivered.max(),
        },
        "wrong_topic": t.wrong_topic,
    })
}
