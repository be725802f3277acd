//! One `c1m` run once everything is started: its phases (open, hold, restart), the progress line each
//! second, the publisher, and the final table and JSON line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Args, watch};

/// What the machine looked like at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    server_open: u64,
    load_open: u64,
    server_rss: u64,
    load_rss: u64,
    server_pss: u64,
    load_pss: u64,
    slab: u64,
    tcp_mem_pages: u64,
}

/// A rolling restart's figures: its length, the most reconnections the load generator made in one
/// second, whether every stream was back, and the kernel's TCP counters over it (who reset what).
#[derive(Debug, Clone, Default)]
struct Restart {
    duration_s: f64,
    peak_reconnects_per_s: u64,
    all_back: bool,
    kernel: Vec<(&'static str, u64)>,
}

/// What was started, and where to read it: the service's address, the two process trees, the load
/// generator's time series, and the kernel's slab before anything started.
pub struct Started {
    pub addr: SocketAddr,
    pub server_pid: u32,
    /// Worker processes (more than one: `/metrics` answers with the service's totals).
    pub workers: u64,
    pub load_pid: u32,
    pub slab_before: u64,
    pub csv: PathBuf,
}

pub struct Run<'a> {
    args: &'a Args,
    service: Started,
    started: Instant,
    next_tick: Instant,
    opened_total: Option<u64>,
    opens_this_second: u64,
    /// Reconnections the load generator made in its last second (its `--csv`).
    reconnects_this_second: u64,
    open_duration_s: Option<f64>,
    held: u64,
    at_hold: Readings,
    published: u64,
    publish_failures: u64,
    next_publish: Option<Instant>,
    restart: Option<Restart>,
    last_metrics: std::collections::HashMap<String, u64>,
}

impl<'a> Run<'a> {
    pub fn new(args: &'a Args, service: Started) -> Self {
        let now = Instant::now();
        Run {
            args,
            service,
            started: now,
            next_tick: now + Duration::from_secs(1),
            opened_total: None,
            opens_this_second: 0,
            reconnects_this_second: 0,
            open_duration_s: None,
            held: 0,
            at_hold: Readings::default(),
            published: 0,
            publish_failures: 0,
            next_publish: None,
            restart: None,
            last_metrics: std::collections::HashMap::new(),
        }
    }

    /// Whether the load generator still runs.
    pub fn load_running(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.service.load_pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.service.load_pid))
                .is_ok_and(|s| s.contains(") Z "))
    }

    /// The phases: open every stream, hold, restart if asked.
    pub fn watch(&mut self, stop: &AtomicBool) -> Result<(), String> {
        let streams = self.args.streams;
        let open_limit = Duration::from_secs(streams / self.args.ramp.max(1) * 2 + 30);
        let mut readings = Readings::default();
        while readings.server_open < streams || readings.load_open < streams {
            if stop.load(Ordering::Relaxed) || self.started.elapsed() > open_limit || !self.load_running() {
                break;
            }
            readings = self.tick(false);
        }
        self.open_duration_s = Some(self.started.elapsed().as_secs_f64());
        eprintln!(
            "c1m: {} of {streams} open; holding {} s",
            readings.server_open.min(readings.load_open),
            self.args.hold_s
        );
        self.next_publish = (self.args.publish_every_ms > 0).then(Instant::now);
        let hold_until = Instant::now() + Duration::from_secs(self.args.hold_s);
        while Instant::now() < hold_until && !stop.load(Ordering::Relaxed) && self.load_running() {
            readings = self.tick(true);
        }
        self.at_hold = readings;
        self.held = readings.server_open.min(readings.load_open);
        if self.args.rolling_restart && !stop.load(Ordering::Relaxed) {
            self.rolling_restart(stop);
        }
        self.next_publish = None;
        Ok(())
    }

    /// SIGHUP to the supervisor; then until its log says the restart is done and every stream is back.
    fn rolling_restart(&mut self, stop: &AtomicBool) {
        eprintln!(
            "c1m: rolling restart of the workers (SIGHUP to the supervisor, pid {})",
            self.service.server_pid
        );
        let _ =
            std::process::Command::new("kill").args(["-HUP", &self.service.server_pid.to_string()]).status();
        let began = Instant::now();
        let kernel_before = watch::tcp_counters();
        let log = self.args.out_dir.join("server.log");
        let mut restart = Restart::default();
        let mut done_at: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) && self.load_running() {
            let readings = self.tick(true);
            restart.peak_reconnects_per_s = restart.peak_reconnects_per_s.max(self.reconnects_this_second);
            if done_at.is_none()
                && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("rolling restart done"))
            {
                done_at = Some(Instant::now());
            }
            let back = readings.server_open >= self.held && readings.load_open >= self.held;
            if let Some(done) = done_at
                && (back || done.elapsed() > Duration::from_secs(90))
            {
                restart.all_back = back;
                break;
            }
        }
        restart.duration_s = began.elapsed().as_secs_f64();
        let kernel_after = watch::tcp_counters();
        restart.kernel = kernel_before
            .iter()
            .zip(&kernel_after)
            .map(|((name, before), (_, after))| (*name, after.saturating_sub(*before)))
            .collect();
        self.restart = Some(restart);
    }

    /// Publishes while waiting for the next second, then reads everything and prints the progress line.
    pub fn tick(&mut self, publish: bool) -> Readings {
        // At least one look at the publisher per tick, even when the last tick's readings ran late.
        self.next_tick = self.next_tick.max(Instant::now() + Duration::from_millis(20));
        while Instant::now() < self.next_tick {
            if publish && let Some(at) = self.next_publish.filter(|at| *at <= Instant::now()) {
                self.publish_one();
                self.next_publish = Some(at + Duration::from_millis(self.args.publish_every_ms));
            }
            let wait =
                self.next_tick.saturating_duration_since(Instant::now()).min(Duration::from_millis(20));
            std::thread::sleep(wait);
        }
        self.next_tick += Duration::from_secs(1);
        // A scrape that finds no answer keeps the last figures (shown as they were, not as zeros).
        let metrics = match watch::metrics(self.service.addr, self.service.workers > 1) {
            Some(metrics) => {
                self.last_metrics = metrics.clone();
                metrics
            }
            None => self.last_metrics.clone(),
        };
        let value = |name: &str| metrics.get(name).copied().unwrap_or(0);
        let opened = value("mio_sse_streams_opened_total");
        self.opens_this_second = opened.saturating_sub(self.opened_total.unwrap_or(opened));
        self.opened_total = Some(opened);
        let (load_open, reconnects) = watch::last_csv_row(&self.service.csv).unwrap_or((0, 0));
        self.reconnects_this_second = reconnects;
        let ((server_rss, server_pss), (load_rss, load_pss)) =
            (watch::memory_tree(self.service.server_pid), watch::memory_tree(self.service.load_pid));
        let readings = Readings {
            server_open: value("mio_sse_open_streams"),
            load_open,
            server_rss,
            load_rss,
            server_pss,
            load_pss,
            slab: watch::slab_bytes(),
            tcp_mem_pages: watch::tcp_mem_pages(),
        };
        let mb = |b: u64| b as f64 / 1e6;
        eprintln!(
            "c1m: t={:>4}s open: server {} load {} · opens/s {} · failures {} · RSS server {:.0} MB load {:.0} MB · \
             slab +{:.0} MB · TCP mem {} pages · published {}",
            self.started.elapsed().as_secs(),
            readings.server_open,
            readings.load_open,
            self.opens_this_second,
            watch::csv_failures(&self.service.csv),
            mb(readings.server_rss),
            mb(readings.load_rss),
            mb(readings.slab.saturating_sub(self.service.slab_before)),
            readings.tcp_mem_pages,
            self.published
        );
        readings
    }

    /// One `POST` to the service, waiting for its answer (as most publishers do).
    fn publish_one(&mut self) {
        let body = format!("c1m event {}", self.published + 1);
        let request = format!(
            "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let answered =
            TcpStream::connect_timeout(&self.service.addr, Duration::from_secs(2)).ok().and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                s.write_all(request.as_bytes()).ok()?;
                let mut answer = String::new();
                s.read_to_string(&mut answer).ok()?;
                answer.starts_with("HTTP/1.1 200").then_some(())
            });
        match answered {
            Some(()) => self.published += 1,
            None => self.publish_failures += 1,
        }
    }

    /// The table and the JSON line; returns the exit code.
    pub fn finish(&self, report: &Value) -> u8 {
        let streams = self.args.streams;
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let failures = n(&report["failure_count"]);
        let opens_per_s = self.open_duration_s.map_or(0.0, |s| streams as f64 / s.max(1e-9));
        let restart = self.restart.as_ref().map(|r| {
            let kernel: serde_json::Map<String, Value> =
                r.kernel.iter().map(|(name, n)| (name.to_string(), json!(n))).collect();
            json!({
                "duration_s": r.duration_s,
                "all_back": r.all_back,
                "back_ms": {"p50": report["recovery_ms"]["p50"], "p99": report["recovery_ms"]["p99"],
                            "max": report["recovery_ms"]["max"], "count": report["recovery_ms"]["count"]},
                "reconnects_peak_per_s": r.peak_reconnects_per_s,
                "reconnects": report["reconnects"],
                "published": self.published,
                "publish_failures": self.publish_failures,
                "lost": report["ids"]["missing"],
                "jumps": report["ids"]["jumps"],
                "duplicated": report["ids"]["duplicates"],
                "decreases": report["ids"]["decreases"],
                "not_back": report["not_back"],
                "drops": report["drops"],
                "retried": report["retried"],
                "kernel_tcp": kernel,
            })
        });
        let summary = json!({
            "requested": streams,
            "held": self.held,
            "failures": failures,
            "failures_by_cause": report["failures"],
            "connect_retries": report["connect_retries"],
            "opens_per_s": opens_per_s.round(),
            "ticks_min_per_stream": report["min_ticks_per_stream"],
            "server_rss_bytes": self.at_hold.server_rss,
            "load_rss_bytes": self.at_hold.load_rss,
            "server_pss_bytes": self.at_hold.server_pss,
            "load_pss_bytes": self.at_hold.load_pss,
            "slab_bytes": self.at_hold.slab.saturating_sub(self.service.slab_before),
            "tcp_mem_pages": self.at_hold.tcp_mem_pages,
            "hold_s": self.args.hold_s,
            "restart": restart,
            "load_verdict": report["verdict"],
        });
        // Through a restart: every stream back within a minute, no event lost (a missing id, or a jump in
        // the backplane's one sequence of ids across a reconnection) and none repeated.
        let restart_ok = self.restart.as_ref().is_none_or(|r| {
            r.all_back
                && n(&report["not_back"]) == 0
                && report["recovery_ms"]["max"].as_f64().is_some_and(|ms| ms < 60_000.0)
                && ["missing", "jumps", "duplicates", "decreases"].iter().all(|k| n(&report["ids"][*k]) == 0)
        });
        let ok = failures == 0 && self.held == streams && report != &Value::Null && restart_ok;
        let per = |bytes: u64| bytes as f64 / self.held.max(1) as f64;
        println!("| figure | value |\n|---|---|");
        println!("| streams held / requested | {} / {streams} |", self.held);
        println!("| failures | {failures} {} |", report["failures"]);
        println!("| opens per second | {opens_per_s:.0} |");
        println!("| fewest ticks on a stream | {} |", report["min_ticks_per_stream"]);
        let (h, mb) = (&self.at_hold, |b: u64| b as f64 / 1e6);
        println!(
            "| server, all processes: PSS (shared pages once) / RSS | {:.0} MB ({:.0} B per stream) / {:.0} MB |",
            mb(h.server_pss),
            per(h.server_pss),
            mb(h.server_rss)
        );
        println!(
            "| load generator, all processes: PSS / RSS | {:.0} MB ({:.0} B per stream) / {:.0} MB |",
            mb(h.load_pss),
            per(h.load_pss),
            mb(h.load_rss)
        );
        println!(
            "| kernel slab | +{:.0} MB |",
            self.at_hold.slab.saturating_sub(self.service.slab_before) as f64 / 1e6
        );
        if let Some(r) = &self.restart {
            println!(
                "| rolling restart | {:.1} s; back p50 / p99 / max {} / {} / {} ms; not back {}; peak {} reconnects/s |",
                r.duration_s,
                report["recovery_ms"]["p50"],
                report["recovery_ms"]["p99"],
                report["recovery_ms"]["max"],
                report["not_back"],
                r.peak_reconnects_per_s,
            );
            println!(
                "| events through the restart | {} published; lost {} · jumps {} · duplicated {} · older ids again {} |",
                self.published,
                report["ids"]["missing"],
                report["ids"]["jumps"],
                report["ids"]["duplicates"],
                report["ids"]["decreases"]
            );
            println!(
                "| streams ended / reconnections tried again | {} / {} |",
                report["drops"], report["retried"]
            );
            let kernel: Vec<String> = r.kernel.iter().map(|(name, n)| format!("{name} {n}")).collect();
            println!("| kernel TCP counters over the restart | {} |", kernel.join(" · "));
        }
        println!("| verdict | {} |", if ok { "passed" } else { "FAILED" });
        println!("{summary}");
        u8::from(!ok)
    }
}
