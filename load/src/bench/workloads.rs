//! The benchmark's workloads: each starts a fresh server, runs the load generator's driver on a thread
//! of this process against it, and turns the driver's report and the server's readings into figures.
//!
//! Rules: the server is measured only inside a window where nothing else happens (after every stream
//! connected, after [`settle`]), and the load generator never shares a process with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::figures::{FanoutFigures, HoldFigures};
use super::server::{settle, wait_for};
use super::subject::{Server, Subject};
use crate::driver::{self, Fanout, Mode, Plan};
use crate::report::Report;

/// Holds `n` streams, twice on fresh servers. First with one tick at connect and no more: memory,
/// accept rate and CPU per connection set-up, with nothing else running. Then with 1 s ticks: CPU per
/// tick and tick lateness over `tick_seconds` (a given server, not configurable, skips this part).
pub fn hold_run(subject: &Subject, n: usize, tick_seconds: f64) -> Result<HoldFigures, String> {
    let (rss_idle, rss, accept_per_s, cpu_per_connection, failures) = {
        let server = subject.start(&["--interval-ms", "3600000"])?;
        settle();
        let (rss_idle, cpu_start) = (server.rss_kib(), server.cpu());
        let (ready, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let mut plan = plan(Mode::Hold, &server, n);
        plan.ready = Some(Arc::clone(&ready));
        plan.stop = Some(Arc::clone(&stop));
        let started = Instant::now();
        let load = std::thread::spawn(move || driver::run(plan));
        wait_for(&ready, Duration::from_secs(120))?;
        let (ready_after, cpu) = (started.elapsed(), server.cpu() - cpu_start);
        settle();
        let rss = server.rss_kib();
        stop.store(true, Ordering::Relaxed);
        let report = load.join().map_err(|_| "the load thread panicked")?.map_err(|e| e.to_string())?;
        if report.failure_count() > 0 {
            eprintln!(
                "bench: {} failures opening {n} streams: {}",
                report.failure_count(),
                report.failure_causes()
            );
        }
        let accept_per_s = n as f64 / ready_after.as_secs_f64();
        (rss_idle, rss, accept_per_s, cpu.as_secs_f64() * 1e6 / n as f64, report.failure_count())
    };
    if !subject.is_started() {
        return Ok(HoldFigures {
            streams: n,
            failures,
            rss_idle_kib: rss_idle,
            rss_kib: rss,
            bytes_per_stream: (rss.saturating_sub(rss_idle) * 1024) as f64 / n as f64,
            accept_per_s,
            server_cpu_us_per_connection: cpu_per_connection,
            server_cpu_us_per_tick: 0.0,
            ticks_sent: 0,
            ticks_skipped: 0,
            tick_lateness_p50_ms: 0,
            tick_lateness_p99_ms: 0,
            tick_lateness_max_ms: 0,
            tick_send_lateness_p50_ms: 0,
            tick_send_lateness_p99_ms: 0,
            tick_send_lateness_max_ms: 0,
        });
    }
    let server = subject.start(&["--interval-ms", "1000"])?;
    let (ready, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut plan = plan(Mode::Hold, &server, n);
    plan.tick_interval_ms = 1000;
    plan.ready = Some(Arc::clone(&ready));
    plan.stop = Some(Arc::clone(&stop));
    let load = std::thread::spawn(move || driver::run(plan));
    wait_for(&ready, Duration::from_secs(120))?;
    settle();
    let sent_before = server.metric("mio_sse_events_sent_total")?;
    let (skipped_before, cpu_before) = (server.metric("mio_sse_ticks_skipped_total")?, server.cpu());
    std::thread::sleep(Duration::from_secs_f64(tick_seconds)); // the measured window
    let cpu_ticks = server.cpu() - cpu_before;
    let ticks = server.metric("mio_sse_events_sent_total")? - sent_before;
    let skipped = server.metric("mio_sse_ticks_skipped_total")? - skipped_before;
    stop.store(true, Ordering::Relaxed);
    let report = load.join().map_err(|_| "the load thread panicked")?.map_err(|e| e.to_string())?;
    Ok(HoldFigures {
        streams: n,
        failures: report.failure_count(),
        rss_idle_kib: rss_idle,
        rss_kib: rss,
        bytes_per_stream: (rss.saturating_sub(rss_idle) * 1024) as f64 / n as f64,
        accept_per_s,
        server_cpu_us_per_connection: cpu_per_connection,
        server_cpu_us_per_tick: cpu_ticks.as_secs_f64() * 1e6 / ticks.max(1) as f64,
        ticks_sent: ticks,
        ticks_skipped: skipped,
        tick_lateness_p50_ms: report.tick_lateness_ms.at(0.5),
        tick_lateness_p99_ms: report.tick_lateness_ms.at(0.99),
        tick_lateness_max_ms: report.tick_lateness_ms.max(),
        tick_send_lateness_p50_ms: report.tick_send_lateness_ms.at(0.5),
        tick_send_lateness_p99_ms: report.tick_send_lateness_ms.at(0.99),
        tick_send_lateness_max_ms: report.tick_send_lateness_ms.max(),
    })
}

/// `n` subscribers on a fresh server (ticks off), then `events` publishes at `rate` (0: at once), each
/// waiting for the answer to the one before or pipelined.
pub fn fanout_run(
    subject: &Subject,
    n: usize,
    events: u64,
    rate: f64,
    waits: bool,
) -> Result<FanoutFigures, String> {
    let server = subject.start(&["--interval-ms", "0", "--replay-events", "10000"])?;
    let fanout = Fanout {
        target: server.events_target(),
        events,
        rate_per_s: rate,
        payload_bytes: 64,
        publishes: true,
        waits_for_answers: waits,
    };
    let mut plan = plan(Mode::Fanout(Box::new(fanout)), &server, n);
    let ready = Arc::new(AtomicBool::new(false));
    plan.ready = Some(Arc::clone(&ready));
    let load = std::thread::spawn(move || driver::run(plan));
    wait_for(&ready, Duration::from_secs(120))?;
    let cpu_before = server.cpu();
    let report: Report = load.join().map_err(|_| "the load thread panicked")?.map_err(|e| e.to_string())?;
    let cpu = server.cpu() - cpu_before;
    Ok(FanoutFigures {
        streams: n,
        events,
        rate_per_s: rate,
        publisher: if waits { "waits for each answer" } else { "pipelined" },
        expected: report.expected,
        delivered: report.delivered,
        deliveries_per_s: report.delivered as f64 / report.delivery_window_s.max(1e-9),
        server_cpu_us_per_delivery: cpu.as_secs_f64() * 1e6 / report.delivered.max(1) as f64,
        latency_p50_us: report.latency_us.at(0.5),
        latency_p99_us: report.latency_us.at(0.99),
        latency_p999_us: report.latency_us.at(0.999),
        latency_max_us: report.latency_us.max(),
        latency: report.latency_us,
    })
}

/// A plan against `server` with the benchmark's settings: all at once, no reconnects, quiet.
fn plan(mode: Mode, server: &Server, streams: usize) -> Plan {
    Plan {
        mode,
        target: server.events_target(),
        streams,
        ramp_per_s: 0.0,
        source_ips: Vec::new(),
        duration: Duration::from_secs(600),
        reconnect: false,
        connect_timeout: Duration::from_secs(10),
        slow_share: 0.0,
        tick_interval_ms: 0,
        ids: crate::ids::IdCheck::Sequential,
        topics: None,
        until_data: None,
        samples: None,
        go: None,
        ready: None,
        stop: None,
    }
}
