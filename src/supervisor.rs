//! `--workers N`: one supervisor process, N worker processes.
//!
//! Each worker is this same binary with the same flags, its own single-threaded event loop, and its own
//! listener on the same address with `SO_REUSEPORT`: the kernel spreads new connections over them (the
//! nginx model), and each worker has its own fd limit, so N workers hold N times the streams. Workers share
//! events and ids only through the Redis backplane, hence `--redis` is required for N > 1.
//!
//! The supervisor does nothing else: it restarts a worker that dies (and logs it), forwards SIGINT and
//! SIGTERM so that every worker drains gracefully, and on a second signal stops them at once. It is not an
//! event loop: it looks at its children ten times a second.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;

/// How often the supervisor looks at its workers and signals.
const TICK: Duration = Duration::from_millis(100);
/// A worker that dies sooner than this after its start is restarted only after this long (no hot loop of
/// restarts when every start fails).
const MIN_LIFE: Duration = Duration::from_secs(1);

struct Worker {
    index: usize,
    child: Option<Child>,
    started: Instant,
}

/// Runs the supervisor until its workers have stopped after a signal.
pub fn supervise(config: &Config) -> Result<ExitCode, String> {
    if config.redis.is_none() {
        return Err(format!(
            "--workers {} needs --redis: without a shared backplane each worker would publish its own events \
             with its own ids, and a client that lands on another worker would get the wrong ones",
            config.workers
        ));
    }
    let addr = fixed_port(config.listen)?;
    // A bind error shows now, with the address, rather than as workers failing one after another.
    drop(
        crate::server::bind_listener(addr, true)
            .map_err(|e| crate::server::listen_error(addr, &e).to_string())?,
    );
    let args = worker_args(addr);
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    let mut workers: Vec<Worker> = (0..config.workers as usize)
        .map(|index| Worker { index, child: None, started: Instant::now() })
        .collect();
    for worker in &mut workers {
        start(worker, &args)?;
    }
    // Say "listening" only once a worker is: a client told the address may connect at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&addr, TICK).is_err() {
        if Instant::now() > deadline {
            return Err(format!("no worker is listening on {addr} after 10 s"));
        }
        for worker in &mut workers {
            if let Some(Ok(Some(status))) = worker.child.as_mut().map(Child::try_wait) {
                return Err(format!("worker {} exited at start ({status}); its log says why", worker.index));
            }
        }
        std::thread::sleep(Duration::from_millis(10)); // the supervisor's own pace, not an event loop
    }
    log::info!(
        "listening on http://{addr} with {} workers (supervisor pid {})",
        workers.len(),
        std::process::id()
    );
    let mut stopping: Option<Instant> = None;
    loop {
        for signal in signals.pending() {
            if stopping.is_some() {
                log::warn!("signal {signal} during shutdown: stopping the workers now");
                for worker in &mut workers {
                    if let Some(child) = worker.child.as_mut() {
                        let _ = child.kill();
                    }
                }
                return Ok(ExitCode::from(130));
            }
            log::info!("signal {signal}: draining {} workers", workers.len());
            stopping = Some(Instant::now());
            for worker in &workers {
                if let Some(child) = &worker.child {
                    forward(child, signal);
                }
            }
        }
        let mut running = 0;
        for worker in &mut workers {
            let Some(child) = worker.child.as_mut() else { continue };
            match child.try_wait() {
                Ok(None) => running += 1,
                Ok(Some(status)) if stopping.is_some() => {
                    log::info!("worker {} stopped ({status})", worker.index);
                    worker.child = None;
                }
                Ok(Some(status)) => {
                    log::warn!(
                        "worker {} (pid {}) exited ({status}); restarting it",
                        worker.index,
                        child.id()
                    );
                    worker.child = None;
                    if worker.started.elapsed() < MIN_LIFE {
                        std::thread::sleep(MIN_LIFE); // the supervisor's own pace, not an event loop
                    }
                    start(worker, &args)?;
                    running += 1;
                }
                Err(e) => return Err(format!("waiting for worker {}: {e}", worker.index)),
            }
        }
        if stopping.is_some() && running == 0 {
            log::info!("all workers stopped");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(TICK);
    }
}

/// In a worker: drain (SIGTERM) when the supervisor dies, however it dies (a SIGKILL cannot be forwarded),
/// rather than serve on alone, unsupervised. Returns false if the supervisor is already gone.
pub fn follow_supervisor(supervisor: u32) -> bool {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    // The supervisor may have died before that took effect: then this worker has a new parent.
    rustix::process::getppid().is_some_and(|ppid| ppid.as_raw_nonzero().get() as u32 == supervisor)
}

fn start(worker: &mut Worker, args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .args(args)
        .args(["--worker-index".to_string(), worker.index.to_string()])
        .spawn()
        .map_err(|e| format!("start worker {}: {e}", worker.index))?;
    log::info!("worker {} started (pid {})", worker.index, child.id());
    worker.child = Some(child);
    worker.started = Instant::now();
    Ok(())
}

/// Sends `signal` to a worker.
fn forward(child: &Child, signal: i32) {
    let signal = if signal == SIGINT { rustix::process::Signal::INT } else { rustix::process::Signal::TERM };
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// With port 0, every worker must listen on the same port: pick one now.
fn fixed_port(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr).map_err(|e| format!("pick a port on {addr}: {e}"))?;
    probe.local_addr().map_err(|e| e.to_string())
}

/// This process's flags for a worker: the same, but one worker, this address, and `SO_REUSEPORT`.
fn worker_args(addr: SocketAddr) -> Vec<String> {
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == "--workers" || arg == "--listen" || arg == "--supervisor-pid" || arg == "--worker-index" {
            skip_value = true;
            continue;
        }
        if arg.starts_with("--workers=") || arg.starts_with("--listen=") {
            continue;
        }
        args.push(arg);
    }
    args.extend(["--workers".into(), "1".into(), "--reuse-port".into(), "--listen".into(), addr.to_string()]);
    args.extend(["--supervisor-pid".into(), std::process::id().to_string()]);
    args
}
