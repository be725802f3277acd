//! The benchmark: starts `mio-sse`, runs the workloads, reads the server's memory and CPU from /proc and
//! its counters from /metrics, and writes the figures (`bench/results.json`) and two SVG plots.
//!
//! Figures come from this one command on this machine, never from a timed test: machines are shared and
//! noisy, so read them as what this run measured, and compare ratios within one run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::Target;
use super::driver::{self, Mode, Plan};
use super::report::{Histo, Report};

/// The benchmark's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Stream counts for the memory, accept-rate and tick runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    pub counts: Vec<usize>,
    /// Subscribers for the fan-out and latency runs.
    #[arg(long, default_value_t = 10_000)]
    pub fanout_streams: usize,
    /// Events published as fast as possible in the fan-out run.
    #[arg(long, default_value_t = 200)]
    pub fanout_events: u64,
    /// Seconds of publishing at 5 events/s in the latency run.
    #[arg(long, default_value_t = 20.0)]
    pub latency_seconds: f64,
    /// Seconds of 1 s ticks measured at each stream count.
    #[arg(long, default_value_t = 10.0)]
    pub tick_seconds: f64,
    /// Where results.json and the plots go.
    #[arg(long, default_value = "bench")]
    pub out_dir: PathBuf,
    /// The mio-sse binary [default: built with cargo, next to this one].
    #[arg(long)]
    pub server: Option<PathBuf>,
}

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

/// Runs every workload and writes the results.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let exe = server_binary(args)?;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| e.to_string())?;
    let mut hold = Vec::new();
    for &n in &args.counts {
        eprintln!("bench: holding {n} streams with 1 s ticks");
        let figures = hold_run(&exe, n, args.tick_seconds)?;
        eprintln!("bench: {figures:?}");
        hold.push(figures);
    }
    eprintln!(
        "bench: fan-out of {} events to {} streams, as fast as possible",
        args.fanout_events, args.fanout_streams
    );
    let fanout_max_rate = fanout_run(&exe, args.fanout_streams, args.fanout_events, 0.0)?;
    eprintln!("bench: {fanout_max_rate:?}");
    let events = (args.latency_seconds * 5.0) as u64;
    eprintln!("bench: {events} events at 5/s to {} streams", args.fanout_streams);
    let fanout_5_per_s = fanout_run(&exe, args.fanout_streams, events, 5.0)?;
    eprintln!("bench: {fanout_5_per_s:?}");
    let results = Results { machine: machine(), hold, fanout_max_rate, fanout_5_per_s };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("results.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("memory.svg"), memory_svg(&results.hold)).map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("latency.svg"), latency_svg(&results.fanout_5_per_s))
        .map_err(|e| e.to_string())?;
    print!("{}", summary(&results));
    Ok(())
}

/// Holds `n` streams, twice on fresh servers. First with one tick at connect and no more: memory,
/// accept rate and CPU per connection set-up, with nothing else running. Then with 1 s ticks: CPU per
/// tick and tick lateness over `tick_seconds`.
fn hold_run(exe: &Path, n: usize, tick_seconds: f64) -> Result<HoldFigures, String> {
    let (rss_idle, rss, accept_per_s, cpu_per_connection) = {
        let server = ServerProcess::start(exe, &["--interval-ms", "3600000"])?;
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
                "bench: {} failures opening {n} streams: {:?}",
                report.failure_count(),
                report.failures
            );
        }
        (rss_idle, rss, n as f64 / ready_after.as_secs_f64(), cpu.as_secs_f64() * 1e6 / n as f64)
    };
    let server = ServerProcess::start(exe, &["--interval-ms", "1000"])?;
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
    })
}

/// `n` subscribers on a fresh server (ticks off), then `events` publishes at `rate` (0: at once).
fn fanout_run(exe: &Path, n: usize, events: u64, rate: f64) -> Result<FanoutFigures, String> {
    let server = ServerProcess::start(exe, &["--interval-ms", "0", "--replay-events", "10000"])?;
    let mut plan = plan(Mode::Fanout, &server, n);
    plan.publish_count = events;
    plan.publish_rate = rate;
    plan.payload_bytes = 64;
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

fn plan(mode: Mode, server: &ServerProcess, streams: usize) -> Plan {
    let target =
        Target { addr: server.addr, authority: server.addr.to_string(), path: "/home/events".into() };
    Plan {
        mode,
        publish_target: Some(target.clone()),
        target,
        streams,
        ramp_per_s: 0.0,
        source_ips: Vec::new(),
        duration: Duration::from_secs(600),
        reconnect: false,
        connect_timeout: Duration::from_secs(10),
        slow_share: 0.0,
        tick_interval_ms: 0,
        publish_count: 0,
        publish_rate: 0.0,
        payload_bytes: 64,
        cycles: 0,
        concurrency: 0,
        storm_after: Duration::ZERO,
        progress: false,
        go: None,
        publishes: true,
        ready: None,
        stop: None,
    }
}

/// A `mio-sse` process for one workload, killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(exe: &Path, args: &[&str]) -> Result<ServerProcess, String> {
        let mut child = Command::new(exe)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info", "--static-dir", "/nonexistent"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| "the server did not start")?;
        let addr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
        Ok(ServerProcess { child, addr })
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time so far (user + system), in nanoseconds from /proc/PID/schedstat: /proc/PID/stat
    /// counts in 10 ms ticks, too coarse for a thousand connections. The server has one thread.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/schedstat", self.child.id())).unwrap_or_default();
        Duration::from_nanos(stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(0))
    }

    /// One value from /metrics.
    fn metric(&self, name: &str) -> Result<u64, String> {
        let mut stream = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| format!("{name} not in /metrics"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(flag: &AtomicBool, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !flag.load(Ordering::Relaxed) {
        if Instant::now() > deadline {
            return Err("the streams did not all connect in time".into());
        }
        std::thread::sleep(Duration::from_millis(5)); // the benchmark's own thread, not an event loop
    }
    Ok(())
}

/// Lets allocations and kernel buffers settle before a reading.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

fn server_binary(args: &BenchArgs) -> Result<PathBuf, String> {
    if let Some(path) = &args.server {
        return Ok(path.clone());
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let status = Command::new(cargo).args(["build", "--release", "--quiet", "--bin", "mio-sse"]).status();
        if !status.is_ok_and(|s| s.success()) {
            return Err("cargo build --release --bin mio-sse failed".into());
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sibling = exe.with_file_name("mio-sse");
    if sibling.exists() {
        Ok(sibling)
    } else {
        Err(format!("no mio-sse next to {}; pass --server", exe.display()))
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, Linux {}", kernel.trim())
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

/// Server RSS against open streams, with the bytes per stream marked.
pub fn memory_svg(hold: &[HoldFigures]) -> String {
    let (w, h, pad) = (640.0, 360.0, 60.0);
    let max_n = hold.iter().map(|f| f.streams).max().unwrap_or(1) as f64;
    let max_kib = hold.iter().map(|f| f.rss_kib).max().unwrap_or(1) as f64 * 1.1;
    let x = |n: f64| pad + n / max_n * (w - 2.0 * pad);
    let y = |kib: f64| h - pad - kib / max_kib * (h - 2.0 * pad);
    let mut svg = svg_open(w, h, "mio-sse: server resident memory against open streams");
    svg.push_str(&axes(w, h, pad, "open streams", "RSS (KiB)"));
    let points: Vec<String> = std::iter::once((0.0, hold.first().map_or(0, |f| f.rss_idle_kib) as f64))
        .chain(hold.iter().map(|f| (f.streams as f64, f.rss_kib as f64)))
        .map(|(n, kib)| format!("{:.1},{:.1}", x(n), y(kib)))
        .collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    ));
    for f in hold {
        let (px, py) = (x(f.streams as f64), y(f.rss_kib as f64));
        let (anchor, dx) = if px < w / 2.0 { ("start", 8.0) } else { ("end", -8.0) };
        svg.push_str(&format!(
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="#2563eb"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="{anchor}">{} streams: {} KiB ({:.0} B/stream)</text><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            px + dx,
            py - 8.0,
            f.streams,
            f.rss_kib,
            f.bytes_per_stream,
            h - pad + 14.0,
            f.streams
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.0}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">0</text>"##,
        pad - 4.0,
        y(max_kib / 1.1) + 4.0,
        max_kib / 1.1,
        pad - 4.0,
        h - pad + 4.0
    ));
    svg.push_str("</svg>\n");
    svg
}

/// The latency distribution as a percentile curve (log-scaled tail), from the 5 events/s run.
pub fn latency_svg(f: &FanoutFigures) -> String {
    let (w, h, pad) = (640.0, 360.0, 60.0);
    let quantiles = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0];
    let max_ms = f.latency.max() as f64 / 1000.0 * 1.1 + 1e-9;
    // x: the "nines" of a quantile, -log10(1 - q), capped at 4.
    let nines = |q: f64| (-(1.0 - q).max(1e-4).log10()).min(4.0);
    let x = |q: f64| pad + nines(q) / 4.0 * (w - 2.0 * pad);
    let y = |ms: f64| h - pad - ms / max_ms * (h - 2.0 * pad);
    let title = format!("publish → receive latency, {} events at 5/s to {} streams", f.events, f.streams);
    let mut svg = svg_open(w, h, &title);
    svg.push_str(&axes(w, h, pad, "percentile", "latency (ms)"));
    let points: Vec<String> =
        quantiles.iter().map(|&q| format!("{:.1},{:.1}", x(q), y(f.latency.at(q) as f64 / 1000.0))).collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#dc2626" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    ));
    for (q, label) in [(0.5, "50"), (0.9, "90"), (0.99, "99"), (0.999, "99.9"), (0.9999, "99.99")] {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{label}</text>"##,
            x(q),
            h - pad + 14.0
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.0}</text>"##,
        pad - 4.0,
        y(max_ms / 1.1) + 4.0,
        max_ms / 1.1
    ));
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let ms = f.latency.at(q) as f64 / 1000.0;
        svg.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#dc2626"/><text x="{:.1}" y="{:.1}" font-size="12">{label} {ms:.1} ms</text>"##,
            x(q),
            y(ms),
            x(q) + 6.0,
            y(ms) - 6.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn svg_open(w: f64, h: f64, title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{title}</text>"##,
        w / 2.0
    )
}

fn axes(w: f64, h: f64, pad: f64, x_label: &str, y_label: &str) -> String {
    format!(
        r##"<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#444"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="#444"/><text x="{cx}" y="{lx}" font-size="12" text-anchor="middle">{x_label}</text><text x="16" y="{cy}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {cy})">{y_label}</text>"##,
        b = h - pad,
        r = w - pad,
        cx = w / 2.0,
        lx = h - pad / 3.0,
        cy = h / 2.0
    )
}
