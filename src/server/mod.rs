//! The event loop: one thread, one `mio::Poll`, one listener, a slab of connections, one timer queue.
//!
//! # The loop's rules
//!
//! These are the rules every line of this server keeps; they follow from how `mio::Poll` (epoll, in
//! edge-triggered mode) reports readiness, as its documentation describes.
//!
//! 1. **Nothing blocks.** No sleep, no blocking syscall, no disk access (static files are in memory), no
//!    loop without a bound. The only wait is `Poll::poll`, and its timeout is the earliest deadline in
//!    the timer queue: that is how ticks happen without a thread or a sleep per client.
//! 2. **Readiness is edge-triggered.** An event says "something changed", once. A reader must drain the
//!    socket until `WouldBlock` and a writer must write until `WouldBlock` or nothing is left, or the
//!    event never comes again and the connection stalls silently.
//! 3. **Events are hints.** `read() == 0` (EOF) and the errors of `read`/`write` are the truth; mio may
//!    also deliver spurious events, which cost one `WouldBlock` each and nothing else.
//! 4. **Bytes produced outside a writable event are written at once** (a tick, a response): the writable
//!    edge for an empty send buffer came long ago and will not come again.
//! 5. **A partial write keeps its tail** and resumes on the next writable edge (see `conn::outbox`).
//! 6. **A token may outlive its connection.** mio only promises that a deregistered token is absent from
//!    *future* polls; an event already in this batch, or a timer, may name a connection that closed. Each
//!    token and timer key carries the slot's generation ([`ConnKey`]), and one that does not match the
//!    slot's current owner is dropped. New connections are accepted after the batch's events, so a slot
//!    freed in this batch is not reused while the batch may still name it.
//! 7. **Bounded work per connection per turn** ([`crate::conn::MAX_READS_PER_TURN`], [`ACCEPTS_PER_TURN`],
//!    [`FAN_OUT_SLICE`]),
//!    so one client cannot starve 19,999 others. Work cut short by a bound is remembered (`again`) and
//!    the next poll does not wait.
//!
//! # One turn
//!
//! ```text
//! poll(timeout = earliest deadline, or 0 if work is left over; a timerfd armed for that deadline wakes
//!      it to the microsecond, see `wake`)
//!   ├─ connection events: record readiness, drive the connection (write, read, answer)
//!   ├─ listener event: remember it is ready
//!   ├─ accept (bounded), register each new connection for READABLE | WRITABLE once
//!   ├─ fire due timers: ticks, heartbeats, request/idle/linger timeouts
//!   ├─ drive the connections left over from the last turn's bounds
//!   └─ fan out: the next slice of streams (round robin) writes all it lacks, each in one writev
//! ```
//!
//! After any handler, `Server::settle` applies its [`crate::conn::Next`]: close the connection, or move
//! its timer to the deadline its state now wants, and queue it for another turn if a bound stopped it
//! (`handling`: how handlers are run and their outcomes applied).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

mod accept;
mod fan_out;
mod handling;
mod shutdown;
mod supervised;
pub mod transport;
mod wake;

use crate::cluster::WorkerLink;
use crate::config::Config;
use crate::conn::Connection;
use crate::conn::tls::TlsSocket;
use crate::context::LoopContext;
use crate::metrics::Counters;
use crate::static_files::StaticFiles;
use crate::timer::TimerQueue;
use crate::token::{BACKPLANE_COMMAND, BACKPLANE_READ, CLUSTER, ConnKey, LISTENER, SIGNALS, WAKE};
pub use accept::{ACCEPT_PAUSE, ACCEPTS_PER_TURN, BACKLOG, bind_listener, listen_error};
pub use fan_out::FAN_OUT_SLICE;
use fan_out::FanOut;
pub use shutdown::{IDLE_GRACE, retry_spread_ms};
pub use transport::Transport;
use wake::Wake;
/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After a signal: every stream ended and was flushed (or the shutdown deadline passed).
    Graceful,
    /// A second signal during the graceful shutdown.
    Immediate,
}

/// The server: everything the loop owns. `S` is what its listener speaks: plain TCP, or TLS over it
/// (see [`transport`]).
pub struct Server<S: Transport = TcpStream> {
    poll: Poll,
    /// Closed (`None`) once the shutdown begins: the kernel then stops handing this process new
    /// connections (with `SO_REUSEPORT`, they go to the other workers).
    listener: Option<TcpListener>,
    signals: Signals,
    /// Set once a signal started the graceful shutdown: when to give up waiting for connections.
    shutdown_deadline: Option<Instant>,
    /// During the shutdown: when connections that have not sent a request are closed.
    idle_close_at: Option<Instant>,
    local_addr: SocketAddr,
    conns: Slab<Connection<S>>,
    /// What turns an accepted TCP connection into an `S` (TLS: the certificate and settings).
    acceptor: S::Acceptor,
    /// Every connection's next deadline, in milliseconds since the loop's epoch (see [`crate::clock`]).
    timers: TimerQueue,
    /// Wakes the loop at its next deadline to the microsecond, where `poll` alone wakes up to a
    /// millisecond late (`None` if the kernel refused a timerfd: then `poll`'s timeout alone).
    wake: Option<Wake>,
    cx: LoopContext,
    max_connections: usize,
    /// Connections within the cap (the rest of `conns` were accepted past it).
    admitted: usize,
    next_generation: u32,
    /// The listener had a readiness event that was not drained yet.
    listener_ready: bool,
    /// Accepting is paused until then, after the process ran out of fds.
    accept_paused_until: Option<Instant>,
    /// Connections to drive again next turn (a per-turn bound stopped them).
    again: Vec<ConnKey>,
    /// Whether the last accept round logged that even the overflow slots were full (log once an episode).
    refusing: bool,
    /// In an episode of running out of file descriptors (logged once when it starts and once when it ends).
    out_of_fds: bool,
    /// The fan-out's walk round the streams.
    fan_out: FanOut,
    /// With `--workers`: this worker's link to its supervisor, for the service's figures.
    cluster: Option<WorkerLink>,
}

impl Server<TcpStream> {
    /// A plain HTTP server: binds the listener and loads the static files; the loop starts with
    /// [`Server::run`].
    pub fn bind(config: Config, max_connections: usize) -> io::Result<Server> {
        Server::open(config, max_connections)
    }
}

impl Server<TlsSocket> {
    /// An HTTPS server (`--tls-cert`, `--tls-key`): as [`Server::bind`], and the certificate and key are
    /// loaded first; a file that cannot be used is an error that says why.
    pub fn bind_tls(config: Config, max_connections: usize) -> io::Result<Server<TlsSocket>> {
        Server::open(config, max_connections)
    }
}

impl<S: Transport> Server<S> {
    /// Loads what `S` needs (a certificate), binds the listener and loads the static files.
    pub fn open(config: Config, max_connections: usize) -> io::Result<Server<S>> {
        let acceptor = S::acceptor(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let files = match StaticFiles::load(&config.static_dir) {
            Ok(files) => {
                log::info!(
                    "serving {} static files ({} bytes) from {}",
                    files.len(),
                    files.total_bytes(),
                    config.static_dir.display()
                );
                files
            }
            Err(e) => {
                log::warn!(
                    "cannot read static dir {}: {e}; serving the built-in demo page",
                    config.static_dir.display()
                );
                StaticFiles::builtin()
            }
        };
        let listener = TcpListener::from_std(
            bind_listener(config.listen, config.reuse_port).map_err(|e| listen_error(config.listen, &e))?,
        );
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        let signals = Signals::new([SIGINT, SIGTERM])?;
        let wake = Wake::new(poll.registry(), WAKE)
            .inspect_err(|e| log::info!("no timerfd ({e}): deadlines wake the loop to the millisecond"))
            .ok();
        let mut server = Server {
            poll,
            listener: Some(listener),
            signals,
            shutdown_deadline: None,
            idle_close_at: None,
            local_addr,
            conns: Slab::with_capacity(1024),
            acceptor,
            timers: TimerQueue::default(),
            wake,
            cx: LoopContext::new(config, files, Instant::now())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            max_connections,
            admitted: 0,
            next_generation: 1,
            listener_ready: false,
            accept_paused_until: None,
            again: Vec::new(),
            refusing: false,
            fan_out: FanOut::default(),
            cluster: None,
            out_of_fds: false,
        };
        if let Some(listener) = server.listener.as_mut() {
            server.poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        server.poll.registry().register(&mut server.signals, SIGNALS, Interest::READABLE)?;
        Ok(server)
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.cx.counters
    }

    /// Runs the loop until a signal stops it (or polling itself fails).
    pub fn run(&mut self) -> io::Result<Stop> {
        let interval = match self.cx.config.tick_interval() {
            Some(interval) => format!("a tick every {} ms", interval.as_millis()),
            None => "ticks off".into(),
        };
        log::info!(
            "listening on {}://{} (up to {} connections, {interval})",
            S::scheme(),
            self.local_addr,
            self.max_connections
        );
        self.join_supervisor();
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue; // a signal arrived; nothing is lost, poll again
                }
                return Err(e);
            }
            let now = Instant::now();
            self.cx.counters.loop_turns += 1;
            self.cx.gauges.timer_queue_size = self.timers.len() as u64;
            // Taken before this turn's events, so that work they leave over waits for the next turn.
            let leftovers = std::mem::take(&mut self.again);
            for event in events.iter() {
                if event.token() == LISTENER {
                    self.listener_ready = true;
                    continue;
                }
                if event.token() == WAKE {
                    continue; // only a wake: the deadlines it stands for are fired below
                }
                if event.token() == BACKPLANE_COMMAND || event.token() == BACKPLANE_READ {
                    self.on_backplane_event(Some(event.token()), now);
                    continue;
                }
                if event.token() == CLUSTER {
                    self.on_cluster_event();
                    continue;
                }
                if event.token() == SIGNALS {
                    let signals: Vec<i32> = self.signals.pending().collect();
                    for signal in signals {
                        if self.shutdown_deadline.is_some() {
                            log::warn!("signal {signal} during shutdown: exiting now");
                            return Ok(Stop::Immediate);
                        }
                        self.begin_shutdown(signal, now);
                    }
                    continue;
                }
                let key = ConnKey::from_token(event.token());
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                // The clock is read again for each connection: a turn of 1,024 events can take tens of
                // ms, and a stream opened near its end must tick on its own grid, not on the turn's
                // start (streams sharing one deadline forever would tick in one clump of thousands).
                let now = Instant::now();
                // A token of a connection closed earlier in this batch finds nothing (rule 6).
                self.with_conn(key, now, |conn, cx| {
                    conn.on_readiness(readable);
                    conn.drive(cx, now)
                });
            }
            self.on_backplane_event(None, now);
            self.accept_pending(now);
            self.fire_timers(now);
            self.cx.summarize_logs(now);
            self.report_to_supervisor(now);
            for key in leftovers {
                self.with_conn(key, now, |conn, cx| {
                    conn.unqueue();
                    conn.drive(cx, now)
                });
            }
            // Last: whatever any step above published goes out this turn, before the next poll.
            self.fan_out(now);
            if self.shutdown_step(now) {
                return Ok(Stop::Graceful);
            }
        }
    }

    /// Redis's side, on a link's event (`token`) or every turn (`None`: reconnections, deadlines, links
    /// cut short by their read bound): events read are appended to the hub (and fanned out at the end of
    /// the turn), and publishes that got their id (or failed) are answered.
    fn on_backplane_event(&mut self, token: Option<Token>, now: Instant) {
        let Some(backplane) = self.cx.backplane.as_mut() else { return };
        let (registry, hub) = (self.poll.registry(), &mut self.cx.hub);
        let answered = match token {
            Some(token) => backplane.on_event(token, registry, hub, now),
            None => backplane.on_deadline(registry, hub, now),
        };
        self.cx.gauges.backplane_up = Some(u64::from(backplane.is_up()));
        for published in answered {
            self.with_conn(published.waiter, now, |conn, cx| {
                conn.publish_answered(cx, now, published.result)
            });
        }
    }

    /// How long `poll` may wait: not at all if work is left over, else until the earliest deadline (for
    /// which the precise alarm is armed).
    fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
        let accept_ready = self.listener_ready && self.accept_paused_until.is_none();
        if accept_ready || !self.again.is_empty() || self.fan_out.walking() || self.cx.hub.topics.has_queued()
        {
            return Some(Duration::ZERO);
        }
        let backplane = self.cx.backplane.as_ref().and_then(|b| b.deadline());
        let logs = self.cx.log_deadline();
        let cluster = self.cluster.as_ref().map(WorkerLink::deadline);
        let next = [
            self.timers.next_deadline().map(|ms| self.cx.clock.at_ms(ms)),
            self.accept_paused_until,
            self.shutdown_deadline,
            self.idle_close_at,
            backplane,
            logs,
            cluster,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(wake) = self.wake.as_mut() {
            wake.arm(next, now);
        }
        next.map(|deadline| deadline.saturating_duration_since(now))
    }
}
