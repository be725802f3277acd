//! `mio-sse-load`: an SSE load generator for any SSE server, on one mio loop per process.
//!
//! ```text
//! mio-sse-load hold   --url http://127.0.0.1:8080/home/events --streams 10000 --ramp 2000
//! mio-sse-load fanout --streams 10000 --events 200 --rate 0          # as fast as possible
//! mio-sse-load churn  --cycles 20000 --concurrency 200
//! mio-sse-load storm  --streams 5000 --storm-after-s 5 --reconnect
//! mio-sse-load bench                                                  # the benchmark (see README)
//! ```

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mio_sse_load::client::Target;
use mio_sse_load::driver::{self, Fanout, Mode, Plan};
use mio_sse_load::report::Report;

#[derive(Parser, Debug)]
#[command(
    name = "mio-sse-load",
    version,
    about = "An SSE load generator: streams, fan-out latency, churn, storms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command_,
}

#[derive(Subcommand, Debug)]
enum Command_ {
    /// Open N streams at a ramp rate and hold them; count events, id gaps, silences.
    Hold(Common),
    /// N subscribers, then publish M events by POST; every delivery's latency into an HDR histogram.
    Fanout(Common),
    /// Connect, read the first event, close; K times at concurrency C.
    Churn(Common),
    /// Hold N streams, then drop every one at once and reconnect them all.
    Storm(Common),
    /// Run the benchmark against a freshly started mio-sse and write bench/results.json and SVG plots.
    Bench(mio_sse_load::bench::BenchArgs),
}

/// How the fan-out's publisher sends its `POST`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PublisherKind {
    Wait,
    Pipeline,
}

/// Which run a subcommand asks for, before its flags make it a [`Mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hold,
    Fanout,
    Churn,
    Storm,
}

impl Kind {
    /// The subcommand's name, passed on to `--procs` workers.
    fn name(self) -> &'static str {
        match self {
            Kind::Hold => "hold",
            Kind::Fanout => "fanout",
            Kind::Churn => "churn",
            Kind::Storm => "storm",
        }
    }
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The event stream's URL (an IP address, not a name).
    #[arg(long, default_value = "http://127.0.0.1:8080/home/events")]
    url: String,
    /// Streams to open (fanout: subscribers).
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// New streams per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Source addresses to spread connections over: a range `127.0.0.1-127.0.0.8` or a list `a,b,c`.
    #[arg(long)]
    source_ips: Option<String>,
    /// Longest run, seconds (hold and storm run this long).
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// Behave like a browser: honour retry:, send Last-Event-ID, stop on a non-200.
    #[arg(long)]
    reconnect: bool,
    /// Seconds a connection attempt may take to get its response head before it counts as failed (in a
    /// connect storm, a handshake whose SYN was dropped waits for retransmits: 1, 3, 7, 15 s).
    #[arg(long, default_value_t = 10.0)]
    connect_timeout_s: f64,
    /// Share of streams (0..1) that stop reading after the head, with a tiny receive buffer.
    #[arg(long, default_value_t = 0.0)]
    slow_share: f64,
    /// The server's tick interval in ms, to measure how late ticks arrive (0: not measured).
    #[arg(long, default_value_t = 0)]
    tick_interval_ms: u64,
    /// Fanout: where to POST (default: the stream's URL without its query).
    #[arg(long)]
    publish_url: Option<String>,
    /// Fanout: events to publish.
    #[arg(long, default_value_t = 100)]
    events: u64,
    /// Fanout: publishes per second, scheduled by the clock (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Fanout: `wait`: each POST waits for the answer to the one before, as most real publishers do (an
    /// application server calling the publish endpoint); `pipeline`: POSTs go at their scheduled times
    /// without waiting for answers.
    #[arg(long, value_enum, default_value_t = PublisherKind::Wait)]
    publisher: PublisherKind,
    /// Fanout: bytes of each event's data.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Churn: cycles in all.
    #[arg(long, default_value_t = 1000)]
    cycles: u64,
    /// Churn: cycles at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Storm: seconds before every stream is dropped.
    #[arg(long, default_value_t = 5.0)]
    storm_after_s: f64,
    /// Run K client processes (each with its own fd limit) and merge their reports.
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Print the report as JSON (one line) instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress line each second.
    #[arg(long)]
    quiet: bool,
    /// Internal: this is worker I of a --procs run.
    #[arg(long, hide = true)]
    worker: Option<usize>,
}

fn main() -> ExitCode {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let cli = Cli::parse();
    let (kind, common) = match cli.command {
        Command_::Hold(c) => (Kind::Hold, c),
        Command_::Fanout(c) => (Kind::Fanout, c),
        Command_::Churn(c) => (Kind::Churn, c),
        Command_::Storm(c) => (Kind::Storm, c),
        Command_::Bench(args) => {
            return match mio_sse_load::bench::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mio-sse-load bench: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let result = if common.procs > 1 && common.worker.is_none() {
        run_procs(kind, &common)
    } else {
        run_one(kind, &common)
    };
    match result {
        Ok(report) => {
            if common.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", report.table());
            }
            let ok = report.failure_count() == 0 && report.gaps == 0 && report.delivered >= report.expected;
            if ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
        }
        Err(e) => {
            eprintln!("mio-sse-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The driver's mode for a subcommand, with the flags only that mode reads; `publishes`: this process
/// publishes (a fan-out's worker 0, or the only process).
fn mode(kind: Kind, c: &Common, publish_url: &str, publishes: bool) -> Result<Mode, String> {
    Ok(match kind {
        Kind::Hold => Mode::Hold,
        Kind::Fanout => Mode::Fanout(Fanout {
            target: Target::parse(publish_url)?,
            events: c.events,
            rate_per_s: c.rate,
            payload_bytes: c.payload_bytes,
            publishes,
            waits_for_answers: c.publisher == PublisherKind::Wait,
        }),
        Kind::Churn => Mode::Churn { cycles: c.cycles, concurrency: c.concurrency },
        Kind::Storm => Mode::Storm { after: Duration::from_secs_f64(c.storm_after_s) },
    })
}

/// One process's run (a worker of `--procs`, or the whole run).
fn run_one(kind: Kind, c: &Common) -> Result<Report, String> {
    let target = Target::parse(&c.url)?;
    let publish_url =
        c.publish_url.clone().unwrap_or_else(|| c.url.split('?').next().unwrap_or(&c.url).to_owned());
    let (go, ready) = match c.worker {
        Some(_) => {
            // This worker says READY on stdout once its streams are settled; the parent says GO on stdin
            // once every worker is ready.
            let go = Arc::new(AtomicBool::new(false));
            let ready = Arc::new(AtomicBool::new(false));
            let (go_flag, ready_flag) = (Arc::clone(&go), Arc::clone(&ready));
            std::thread::spawn(move || {
                while !ready_flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10)); // a side thread; the loop never sleeps
                }
                println!("READY");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line).is_ok() {
                    go_flag.store(true, Ordering::Relaxed);
                }
            });
            (Some(go), Some(ready))
        }
        None => (None, None),
    };
    let plan = Plan {
        mode: mode(kind, c, &publish_url, c.worker.is_none_or(|w| w == 0))?,
        target,
        streams: c.streams,
        ramp_per_s: c.ramp,
        source_ips: parse_ips(c.source_ips.as_deref())?,
        duration: Duration::from_secs_f64(c.duration_s),
        reconnect: c.reconnect || kind == Kind::Storm,
        connect_timeout: Duration::from_secs_f64(c.connect_timeout_s),
        slow_share: c.slow_share,
        tick_interval_ms: c.tick_interval_ms,
        progress: !c.quiet && !c.json,
        go,
        ready,
        stop: None,
    };
    driver::run(plan).map_err(|e| e.to_string())
}

/// `--procs K`: K workers of this binary, each with 1/K of the streams (and of the churn cycles); worker 0
/// publishes once all are READY. Their JSON reports are merged.
fn run_procs(kind: Kind, c: &Common) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let subcommand = kind.name();
    let mut children = Vec::new();
    for worker in 0..c.procs {
        let share = |total: usize| total / c.procs + usize::from(worker < total % c.procs);
        let mut cmd = Command::new(&exe);
        cmd.arg(subcommand)
            .args(["--url", &c.url, "--streams", &share(c.streams).to_string()])
            .args([
                "--ramp",
                &(c.ramp / c.procs as f64).to_string(),
                "--duration-s",
                &c.duration_s.to_string(),
            ])
            .args([
                "--slow-share",
                &c.slow_share.to_string(),
                "--tick-interval-ms",
                &c.tick_interval_ms.to_string(),
            ])
            .args(["--connect-timeout-s", &c.connect_timeout_s.to_string()])
            .args(["--events", &c.events.to_string(), "--rate", &c.rate.to_string()])
            .args(["--payload-bytes", &c.payload_bytes.to_string()])
            .args([
                "--cycles",
                &share(c.cycles as usize).to_string(),
                "--concurrency",
                &share(c.concurrency).to_string(),
            ])
            .args([
                "--storm-after-s",
                &c.storm_after_s.to_string(),
                "--json",
                "--quiet",
                "--worker",
                &worker.to_string(),
            ]);
        if let Some(url) = &c.publish_url {
            cmd.args(["--publish-url", url]);
        }
        if let Some(ips) = &c.source_ips {
            cmd.args(["--source-ips", ips]);
        }
        if c.reconnect {
            cmd.arg("--reconnect");
        }
        let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
        children.push(child);
    }
    let mut readers: Vec<_> =
        children.iter_mut().map(|ch| std::io::BufReader::new(ch.stdout.take().unwrap())).collect();
    // Barrier: every worker connected (or failed) all its streams, then GO to all at once. A worker whose
    // run ended before it was ready has already printed its report: keep it.
    let mut reports: Vec<String> = vec![String::new(); readers.len()];
    for (reader, report) in readers.iter_mut().zip(&mut reports) {
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(|e| e.to_string())? > 0 && line.trim() != "READY" {
            if line.starts_with('{') {
                *report = line.trim().to_owned();
            }
            line.clear();
        }
    }
    if !c.quiet && !c.json {
        eprintln!("{} workers ready; go", c.procs);
    }
    for child in &mut children {
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = writeln!(stdin, "GO");
        }
    }
    let mut merged = Report::default();
    for ((reader, mut child), mut last) in readers.into_iter().zip(children).zip(reports) {
        for line in reader.lines() {
            let line = line.map_err(|e| e.to_string())?;
            if line.starts_with('{') {
                last = line;
            }
        }
        let _ = child.wait();
        let report: Report =
            serde_json::from_str(&last).map_err(|e| format!("a worker's report: {e}: `{last}`"))?;
        merged.merge(&report);
    }
    // Each worker counted what its own subscribers expect; only worker 0 published: the sums are right.
    Ok(merged)
}

/// `127.0.0.1-127.0.0.8` or `a,b,c`.
fn parse_ips(spec: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let Some(spec) = spec else { return Ok(Vec::new()) };
    if let Some((from, to)) = spec.split_once('-') {
        let (from, to): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (
            from.trim().parse().map_err(|_| "bad --source-ips")?,
            to.trim().parse().map_err(|_| "bad --source-ips")?,
        );
        return Ok((u32::from(from)..=u32::from(to)).map(|n| IpAddr::V4(n.into())).collect());
    }
    spec.split(',')
        .map(|ip| ip.trim().parse().map_err(|_| format!("bad address {ip:?} in --source-ips")))
        .collect()
}
