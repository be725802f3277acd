//! `c1m`: a million streams (or N) on this machine in one command, through a rolling restart if asked.
//!
//! It applies the kernel settings N streams need ([`kernel`]; each put back at the end, also after
//! Ctrl-C), starts Redis, the server with as many workers as the fd limit requires, and the load generator
//! with as many processes and source addresses; opens the streams, holds them, optionally restarts the
//! workers one after another (SIGHUP to the supervisor) while publishing an event a second, and prints a
//! progress line a second ([`watch`]), a table, and one JSON line last.
//!
//! Rules:
//! - It orchestrates, it does not serve: plain blocking code paced by a one-second tick is right here.
//! - Every process it starts is stopped (by pid) however it ends; every setting it changed is restored.
//! - The verdict is the figures': exit 0 only if every stream was held with no failure and, through a
//!   restart, no event was lost or repeated.

pub mod kernel;
pub mod watch;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `c1m [STREAMS] [options]`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "c1m",
    about = "Hold a million SSE streams (or STREAMS) on this machine: kernel settings, \
Redis, mio-sse workers, mio-sse-load processes, figures; optionally through a rolling restart"
)]
pub struct Args {
    /// Streams to hold.
    #[arg(default_value_t = 1_000_000)]
    pub streams: u64,
    /// Seconds to hold once every stream is open.
    #[arg(long, default_value_t = 60)]
    pub hold_s: u64,
    /// Milliseconds between ticks on every stream.
    #[arg(long, default_value_t = 20_000)]
    pub interval_ms: u64,
    /// Streams opened per second, over all load-generator processes.
    #[arg(long, default_value_t = 12_000)]
    pub ramp: u64,
    /// Streams per server worker (one process each; a process may hold 20,000 fds here).
    #[arg(long, default_value_t = 19_000)]
    pub per_worker: u64,
    /// Streams per load-generator process.
    #[arg(long, default_value_t = 19_000)]
    pub per_load_process: u64,
    /// After the hold, restart the workers one after another (SIGHUP to the supervisor) and report how
    /// every stream came back.
    #[arg(long)]
    pub rolling_restart: bool,
    /// Publish an event this often during the hold and the restart (ms; 0: never).
    #[arg(long, default_value_t = 1000)]
    pub publish_every_ms: u64,
    /// Where the server's log and the load generator's log, time series and report go.
    #[arg(long, default_value = "target/c1m")]
    pub out_dir: PathBuf,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
}

/// Processes started, stopped (SIGTERM, then SIGKILL after a grace) when dropped.
#[derive(Default)]
struct Started(Vec<(String, Child)>);

impl Drop for Started {
    fn drop(&mut self) {
        for (name, child) in self.0.iter_mut().rev() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("c1m: {name} did not stop in 10 s; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Settings changed, restored when dropped.
struct Restore(Vec<kernel::Setting>);

impl Drop for Restore {
    fn drop(&mut self) {
        kernel::restore(&self.0);
    }
}

fn free_port() -> Result<u16, String> {
    let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    probe.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs the whole thing; returns the exit code.
pub fn run(args: &Args) -> Result<u8, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let workers = args.streams.div_ceil(args.per_worker).max(1);
    let procs = args.streams.div_ceil(args.per_load_process).max(1);
    if procs > 250 {
        return Err(format!("{procs} load processes: at most 250 (one source address each, 127.0.0.1-250)"));
    }
    let (hard, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| e.to_string())?;
    let hard = rlimit::Resource::NOFILE.get().map(|(_, h)| h).unwrap_or(hard);
    for (what, per) in [("--per-worker", args.per_worker), ("--per-load-process", args.per_load_process)] {
        if per + 200 > hard {
            return Err(format!(
                "{what} {per}: a process may hold {hard} fds here; ask for at most {}",
                hard - 200
            ));
        }
    }
    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let (port, redis_port) = (free_port()?, free_port()?);
    eprintln!(
        "c1m: {} streams: {workers} server workers, {procs} load processes from 127.0.0.1-{procs}",
        args.streams
    );
    let _restore = Restore(kernel::apply(args.streams, procs, &[port, redis_port], args.rolling_restart)?);
    let slab_before = watch::slab_bytes();
    let mut started = Started::default();

    let redis = Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}): install it (apt-get install redis-server)"))?;
    started.0.push(("redis-server".into(), redis));
    wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", redis_port)).is_ok())
        .map_err(|_| "redis-server did not listen within 10 s".to_string())?;

    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server_log = File::create(args.out_dir.join("server.log")).map_err(|e| e.to_string())?;
    let server = Command::new(args.bin_dir.join("mio-sse"))
        .args(["--workers", &workers.to_string(), "--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .args(["--listen", &addr.to_string(), "--interval-ms", &args.interval_ms.to_string()])
        // A draining worker gets 20 s to end its ~19,000 streams with their `retry:`.
        .args(["--request-timeout-ms", "30000", "--shutdown-timeout-ms", "20000"])
        .args(["--static-dir", "/nonexistent"])
        .stderr(server_log)
        .spawn()
        .map_err(|e| format!("cannot start mio-sse ({e}); build it: cargo build --release"))?;
    let server_pid = server.id();
    started.0.push(("mio-sse".into(), server));
    wait_until(Duration::from_secs(60), || {
        watch::metrics(addr, workers > 1)
            .is_some_and(|m| workers == 1 || m.get("mio_sse_workers") == Some(&workers))
    })
    .map_err(|_| {
        format!(
            "the {workers} workers did not all report within 60 s (see {}/server.log)",
            args.out_dir.display()
        )
    })?;

    let open_s = args.streams / args.ramp.max(1) + 1;
    // A ceiling only: the run is ended (SIGTERM) once the phases are over.
    // A slot's turn: its replacement starts and reports (~2 s), the old process drains (20 s at most),
    // its clients come back within `retry:` (3 s) + the spread (≤ 60 s) + 5 s (see the supervisor's
    // `roll`). Measured at a million on 2 cores: 20-40 s a slot, the drain's CPU the limit.
    let spread_s = (args.per_worker.min(args.streams) / 2).clamp(2_000, 60_000).div_ceil(1000);
    let restart_s = if args.rolling_restart { workers * (spread_s + 40) + 120 } else { 0 };
    let duration_s = open_s * 2 + 60 + args.hold_s + restart_s;
    let csv = args.out_dir.join("load.csv");
    let _ = std::fs::remove_file(&csv);
    let load_log = File::create(args.out_dir.join("load.log")).map_err(|e| e.to_string())?;
    let mut load = Command::new(args.bin_dir.join("mio-sse-load"))
        .args([
            "hold",
            "--url",
            &format!("http://{addr}/home/events"),
            "--streams",
            &args.streams.to_string(),
        ])
        .args(["--procs", &procs.to_string(), "--source-ips", &format!("127.0.0.1-127.0.0.{procs}")])
        .args(["--ramp", &args.ramp.to_string(), "--duration-s", &duration_s.to_string()])
        .args(["--connect-timeout-s", "30", "--reconnect", "--ids", "sequential", "--json", "--quiet"])
        .args(["--tick-interval-ms", &args.interval_ms.to_string(), "--csv"])
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(load_log)
        .spawn()
        .map_err(|e| {
            format!("cannot start mio-sse-load ({e}); build it: cargo build --release -p mio-sse-load")
        })?;
    let load_pid = load.id();
    let load_stdout = load.stdout.take();
    started.0.push(("mio-sse-load".into(), load));
    let report_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = load_stdout {
            let _ = out.read_to_string(&mut text);
        }
        text
    });

    let mut run = Run::new(args, run::Started { addr, server_pid, workers, load_pid, slab_before, csv });
    run.watch(&stop)?;
    // Done: the load generator ends its run on SIGTERM and prints its report; then the rest stops.
    let _ = Command::new("kill").args(["-TERM", &load_pid.to_string()]).status();
    let _ = wait_until(Duration::from_secs(60), || !run.load_running());
    let report_text = report_reader.join().unwrap_or_default();
    drop(started); // stops what still runs (the server, then Redis)
    let report: Value = serde_json::from_str(report_text.trim()).unwrap_or(Value::Null);
    if let Err(e) = std::fs::write(args.out_dir.join("load-report.json"), report_text.trim()) {
        eprintln!("c1m: cannot keep the load generator's report in {}: {e}", args.out_dir.display());
    }
    Ok(run.finish(&report))
}

/// Waits (in steps of 50 ms) until `ready` holds, at most `patience`.
fn wait_until(patience: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + patience;
    while !ready() {
        if Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

mod run;
use run::Run;
