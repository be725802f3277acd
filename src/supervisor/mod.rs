//! `--workers N`: one supervisor process, N worker processes.
//!
//! Each worker is this same binary with the same flags, its own single-threaded event loop, and its own
//! listener on the same address with `SO_REUSEPORT`: the kernel spreads new connections over them (the
//! nginx model), and each worker has its own fd limit, so N workers hold N times the streams. Workers share
//! events and ids only through the Redis backplane, hence `--redis` is required for N > 1.
//!
//! The supervisor is a small event loop of its own (one `mio::Poll`): signals, the workers' links
//! ([`crate::cluster`]), and deadlines for restarts and for sending the service's totals. It
//! - restarts a worker that dies, with a back-off per worker (`workers`), and never exits for a
//!   worker's sake: only on a signal, or when started wrong (no `--redis`, the address taken);
//! - on SIGINT or SIGTERM forwards the signal so every worker drains, and exits once all have; on a
//!   second signal stops them at once;
//! - on SIGHUP restarts the workers one after another (a rolling restart, paced as `roll.rs` says): each
//!   slot's replacement starts first, the old process drains once the replacement listens, and the next
//!   slot goes once the old process is gone and its streams are back;
//! - sums the workers' figures once a second and sends the totals to every worker, so `/metrics` on the
//!   service's address shows the whole service. A link's process is known by the kernel's word
//!   (`SO_PEERCRED`), so a draining process and its replacement, which share a slot, are counted apart;
//!   the counters of processes gone are kept, so the service's counters never go back.
//!
//! Nothing in it sleeps: everything it waits for is a deadline or an event in `poll`.

mod roll;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::time::Instant;

use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::cluster::{self, Figures, Link, REPORT_EVERY};
use crate::config::Config;
use roll::Roll;
use workers::Worker;

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
/// Links accepted per turn at most.
const ACCEPTS_PER_TURN: usize = 64;

/// A worker's link, and the process at its other end (`SO_PEERCRED`; `None` if the kernel would not say).
struct Linked {
    link: Link,
    pid: Option<u32>,
}

/// A slot's old process in a rolling restart: set aside while its replacement starts, then draining.
struct Old {
    index: usize,
    child: Child,
    /// Its latest figures (its streams count in the service's until it is gone).
    report: Option<Figures>,
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
    // Resolved once: a binary replaced or removed later is restarted from the same path.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let mut supervisor = Supervisor::new(config.workers as usize, exe, worker_args(addr), addr)
        .map(|s| Supervisor { retry_ms: config.retry_ms, ..s })
        .map_err(|e| format!("cannot start supervising: {e}"))?;
    supervisor.run().map_err(|e| format!("supervisor: {e}"))
}

struct Supervisor {
    poll: Poll,
    signals: Signals,
    listener: UnixListener,
    links: Slab<Linked>,
    workers: Vec<Worker>,
    /// Old processes of a rolling restart, beside their replacements.
    draining: Vec<Old>,
    /// The counters of processes gone: part of the service's totals, which never go back.
    retired: Figures,
    /// The workers' `--retry-ms`: with the spread, when a drained process's clients are due back.
    retry_ms: u64,
    exe: PathBuf,
    args: Vec<String>,
    addr: SocketAddr,
    said_listening: bool,
    stopping: bool,
    roll: Option<Roll>,
    next_totals: Instant,
}

impl Supervisor {
    fn new(count: usize, exe: PathBuf, args: Vec<String>, addr: SocketAddr) -> io::Result<Supervisor> {
        let poll = Poll::new()?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGCHLD])?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut listener = UnixListener::bind_addr(&cluster::supervisor_addr(std::process::id())?)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Supervisor {
            poll,
            signals,
            listener,
            links: Slab::new(),
            workers: (0..count).map(|index| Worker::new(index, now)).collect(),
            draining: Vec::new(),
            retired: Figures::default(),
            retry_ms: 3_000,
            exe,
            args,
            addr,
            said_listening: false,
            stopping: false,
            roll: None,
            next_totals: now + REPORT_EVERY,
        })
    }

    fn run(&mut self) -> io::Result<ExitCode> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            for worker in &mut self.workers {
                if !self.stopping {
                    worker.start_if_due(&self.exe, &self.args, now);
                }
            }
            let timeout = self.next_deadline().map(|at| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_links(),
                    SIGNALS => {
                        if let Some(code) = self.on_signals(now) {
                            return Ok(code);
                        }
                    }
                    Token(slot) => self.on_link(slot),
                }
            }
            self.reap(now);
            self.roll_on(now);
            if now >= self.next_totals {
                self.send_totals();
                self.next_totals = now + REPORT_EVERY;
            }
            let running = self.workers.iter().filter(|w| w.child.is_some()).count() + self.draining.len();
            if self.stopping && running == 0 {
                log::info!("all workers stopped");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }

    /// The earliest deadline: a restart, or the next totals. (Children's exits come as SIGCHLD.)
    fn next_deadline(&self) -> Option<Instant> {
        let restarts = self.workers.iter().filter_map(|w| w.restart_at.filter(|_| !self.stopping));
        restarts.chain([self.next_totals]).min()
    }

    fn on_signals(&mut self, now: Instant) -> Option<ExitCode> {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGHUP if self.roll.is_none() && !self.stopping => {
                    log::info!(
                        "signal {signal}: restarting {} workers one after another",
                        self.workers.len()
                    );
                    self.roll = Some(Roll::new(now));
                }
                SIGHUP => log::info!("signal {signal}: a rolling restart is already under way"),
                SIGINT | SIGTERM if self.stopping => {
                    log::warn!("signal {signal} during shutdown: stopping the workers now");
                    for child in self.children_mut() {
                        let _ = child.kill();
                    }
                    return Some(ExitCode::from(130));
                }
                SIGINT | SIGTERM => {
                    log::info!("signal {signal}: draining {} workers", self.workers.len());
                    self.stopping = true;
                    self.roll = None;
                    for child in self.children_mut() {
                        forward(child, signal);
                    }
                }
                _ => {} // SIGCHLD: a child changed; `reap` looks at every one each turn
            }
        }
        None
    }

    fn children_mut(&mut self) -> impl Iterator<Item = &mut Child> {
        let running = self.workers.iter_mut().filter_map(|w| w.child.as_mut());
        running.chain(self.draining.iter_mut().map(|old| &mut old.child))
    }

    /// Collects exited children: a worker that exited unasked is restarted (backed off).
    fn reap(&mut self, now: Instant) {
        let rolling = self.roll.as_ref().map(|r| r.slot);
        for worker in &mut self.workers {
            let Some(child) = worker.child.as_mut() else { continue };
            let Ok(Some(status)) = child.try_wait() else { continue };
            let pid = child.id();
            if self.stopping {
                log::info!("worker {} stopped ({status})", worker.index);
                worker.child = None;
                continue;
            }
            if let Some(report) = worker.report.take() {
                self.retired.add_counters(&report);
            }
            let wait = worker.exited(now, rolling == Some(worker.index));
            log::warn!("worker {} (pid {pid}) exited ({status}); restarting it in {wait:?}", worker.index);
        }
        let retired = &mut self.retired;
        self.draining.retain_mut(|old| match old.child.try_wait() {
            Ok(Some(status)) => {
                log::info!("worker {}'s old process (pid {}) exited ({status})", old.index, old.child.id());
                if let Some(report) = old.report.take() {
                    retired.add_counters(&report);
                }
                false
            }
            _ => true,
        });
    }

    fn accept_links(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((mut socket, _)) => {
                    let entry = self.links.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) = self.poll.registry().register(
                        &mut socket,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("a worker's link: register: {e}");
                        continue;
                    }
                    let pid = rustix::net::sockopt::socket_peercred(&socket)
                        .ok()
                        .map(|cred| cred.pid.as_raw_nonzero().get() as u32);
                    entry.insert(Linked { link: Link::new(socket), pid });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("accepting a worker's link: {e}");
                    return;
                }
            }
        }
    }

    /// A worker's report: its figures, and, the first time, that it is listening.
    fn on_link(&mut self, slot: usize) {
        let Some(Linked { link, pid }) = self.links.get_mut(slot) else { return };
        let pid = *pid;
        let lines = match link.flush().and_then(|()| link.read_lines()) {
            Ok(lines) => lines,
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    log::warn!("a worker's link failed: {e}");
                }
                let mut linked = self.links.remove(slot);
                let _ = self.poll.registry().deregister(&mut linked.link.socket);
                return;
            }
        };
        for line in lines {
            let Some(('r', index, figures)) = Figures::decode(&line) else {
                log::warn!("a worker sent a line that is not a report; dropping its link");
                let mut linked = self.links.remove(slot);
                let _ = self.poll.registry().deregister(&mut linked.link.socket);
                return;
            };
            let count = self.workers.len();
            let Some(worker) = self.workers.get_mut(index as usize) else { continue };
            // A slot's old process and its replacement both report as that slot: the pid tells them apart.
            let current = worker.child.as_ref().map(Child::id);
            if pid.is_some() && pid != current {
                if let Some(old) = self.draining.iter_mut().find(|old| Some(old.child.id()) == pid) {
                    old.report = Some(figures);
                }
                continue;
            }
            if !worker.ready {
                worker.ready = true;
                log::debug!("worker {} is listening", worker.index);
                if !std::mem::replace(&mut self.said_listening, true) {
                    log::info!(
                        "listening on http://{} with {} workers (supervisor pid {})",
                        self.addr,
                        count,
                        std::process::id()
                    );
                }
            }
            worker.report = Some(figures);
        }
    }

    /// Sends every worker the sum of the latest reports.
    fn send_totals(&mut self) {
        let mut totals = self.retired.clone();
        let mut reporting = 0;
        let current = self.workers.iter().filter_map(|w| w.report.as_ref());
        for report in current.chain(self.draining.iter().filter_map(|old| old.report.as_ref())) {
            totals.add(report);
            reporting += 1;
        }
        if reporting == 0 {
            return;
        }
        let line = totals.encode('t', reporting);
        let mut failed = Vec::new();
        for (slot, linked) in self.links.iter_mut() {
            if linked.link.send(&line).is_err() {
                failed.push(slot);
            }
        }
        for slot in failed {
            let mut linked = self.links.remove(slot);
            let _ = self.poll.registry().deregister(&mut linked.link.socket);
        }
    }
}

/// In a worker: drain (SIGTERM) when the supervisor dies, however it dies (a SIGKILL cannot be forwarded),
/// rather than serve on alone, unsupervised. Returns false if the supervisor is already gone.
pub fn follow_supervisor(supervisor: u32) -> bool {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    // The supervisor may have died before that took effect: then this worker has a new parent.
    rustix::process::getppid().is_some_and(|ppid| ppid.as_raw_nonzero().get() as u32 == supervisor)
}

/// Sends `signal` to a worker.
fn forward(child: &mut Child, signal: i32) {
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
