//! Accepting: taking new connections off the listener without letting a connect storm, a flood past the
//! cap, or running out of file descriptors hurt the streams already open.
//!
//! Rules:
//! - At most [`ACCEPTS_PER_TURN`] accepts per turn: the ticks of open streams go on during a storm. Cut
//!   short by the bound, the listener stays marked ready and the next poll does not wait (rule 7).
//! - Past `--max-connections`, a connection still gets one of [`OVERFLOW_SLOTS`] slots, only to read its
//!   request and be told to come back later; past those, it is closed at once, so a flood can never take
//!   the fds that open streams need.
//! - Out of file descriptors (EMFILE/ENFILE), accepting pauses for [`ACCEPT_PAUSE`]: the pending
//!   connection stays in the backlog, and retrying at once would spin the loop at 100% CPU. Logged once
//!   per episode.
//! - New connections are accepted after the turn's events, so a slot freed in this batch is not reused
//!   while the batch may still name it (rule 6).
//! - A worker of `--workers` (`SO_REUSEPORT`) that reaches `--max-connections` leaves the group: it closes
//!   its listener, and rejoins (binds a new one) once [`REJOIN_ROOM`] connections are free again. The
//!   kernel spreads connections over a group evenly, not by load: in a rolling restart the drained
//!   streams would otherwise pile onto the workers not restarted yet, past their fd limit (at a million
//!   on 53 workers, ~50,000 each), and every connection past the cap would be closed with its request
//!   unread, a reset. Out of the group, new connections go to workers with room; what its queue held
//!   moves to them where `net.ipv4.tcp_migrate_req` is on. A single server keeps its listener and the
//!   overflow answer.
//! - At shutdown the whole accept queue is taken before the listener closes ([`Server::accept_backlog`]):
//!   a connection left queued in a closing listener would be reset.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::{TcpListener, TcpStream};

use super::{Server, Transport};
use crate::config::OVERFLOW_SLOTS;
use crate::conn::{Connection, Next};
use crate::token::{ConnKey, LISTENER};

/// Connections accepted per turn at most: a connect storm must not delay the ticks of open streams. An
/// accept with its socket options and registration costs 20-50 µs in a storm here (measured): 256 a
/// turn held the loop 5-16 ms, 64 hold it 1-4 ms, and the rate of accepts is the same.
pub const ACCEPTS_PER_TURN: usize = 64;
/// How long accepting pauses when the process is out of file descriptors (EMFILE/ENFILE): retrying at
/// once would spin the loop at 100% CPU, since the pending connection stays in the backlog.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Listen backlog: connections the kernel completes for us between two accept rounds.
pub const BACKLOG: i32 = 4096;
/// A worker that left its `SO_REUSEPORT` group at the cap rejoins once this many connections are free
/// (hysteresis: not a bind and a close for every stream that ends).
pub const REJOIN_ROOM: usize = 256;

impl<S: Transport> Server<S> {
    /// Accepts waiting connections, at most [`ACCEPTS_PER_TURN`] this turn.
    pub(super) fn accept_pending(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        if self.listener.is_none() {
            self.rejoin_if_room(now);
        }
        if let Some(until) = self.accept_paused_until {
            if now < until {
                return;
            }
            self.accept_paused_until = None;
            self.listener_ready = true; // retry: the backlog may still hold connections
        }
        if !self.listener_ready {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = self.listener.as_ref() else { return };
            match listener.accept() {
                Ok((socket, peer)) => {
                    if std::mem::take(&mut self.out_of_fds) {
                        log::info!("accepting again: file descriptors are free");
                    }
                    // Its own time, not the turn's: see the events loop in `Server::run`.
                    self.admit(socket, peer, Instant::now())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) if is_out_of_fds(&e) => {
                    // Once per episode: retried every ACCEPT_PAUSE, which must not fill the log.
                    if !std::mem::replace(&mut self.out_of_fds, true) {
                        log::warn!("accept: {e}; pausing accepts, retrying every {ACCEPT_PAUSE:?}");
                    }
                    self.cx.counters.accept_pauses += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) => {
                    log::error!("accept: {e}");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
        // Bound reached with connections possibly still waiting: `listener_ready` stays set, and the next
        // poll does not wait.
    }

    /// At shutdown, before the listener closes: accepts everything its queue holds (at most [`BACKLOG`]
    /// connections, the queue's size), so that none is reset with it. Returns how many were taken.
    pub(super) fn accept_backlog(&mut self, now: Instant) -> u64 {
        if self.listener.is_none() {
            return 0; // out of the group at the cap, or closed already: nothing queued here
        }
        let before = self.cx.counters.accepted;
        self.listener_ready = true;
        for _ in 0..(BACKLOG as usize).div_ceil(ACCEPTS_PER_TURN) {
            self.accept_pending(now);
            if !self.listener_ready || self.accept_paused_until.is_some() {
                break;
            }
        }
        self.cx.counters.accepted - before
    }

    /// At the cap, a worker of a `SO_REUSEPORT` group closes its listener: new connections go to the
    /// others (see the module's rules).
    fn leave_group(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            if let Err(e) = self.poll.registry().deregister(&mut listener) {
                log::debug!("deregister the listener: {e}");
            }
            self.listener_ready = false;
            log::info!(
                "at {} connections (the cap): leaving the listening group; new connections go to the other workers",
                self.max_connections
            );
        }
    }

    /// Out of the group at the cap: binds a new listener once [`REJOIN_ROOM`] connections are free (a
    /// failure is logged and retried after [`ACCEPT_PAUSE`]).
    fn rejoin_if_room(&mut self, now: Instant) {
        let room = self.max_connections.saturating_sub(self.admitted);
        if room < REJOIN_ROOM.min(self.max_connections) || self.accept_paused_until.is_some_and(|at| now < at)
        {
            return;
        }
        let bound =
            bind_listener(self.local_addr, true).map(TcpListener::from_std).and_then(|mut listener| {
                self.poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
                Ok(listener)
            });
        match bound {
            Ok(listener) => {
                self.listener = Some(listener);
                self.listener_ready = true;
                log::info!("{room} connections free: listening again");
            }
            Err(e) => {
                log::error!("cannot listen again on {}: {e}; retrying", self.local_addr);
                self.accept_paused_until = Some(now + ACCEPT_PAUSE);
            }
        }
    }

    /// Takes a new connection into the slab, within the cap or in an overflow slot, or closes it at once.
    fn admit(&mut self, socket: TcpStream, peer: SocketAddr, now: Instant) {
        self.cx.counters.accepted += 1;
        let overflow = self.conns.len() - self.admitted;
        let over_capacity = self.admitted >= self.max_connections;
        if over_capacity && overflow >= OVERFLOW_SLOTS {
            self.cx.counters.refused_at_accept += 1;
            if !self.refusing {
                log::warn!(
                    "at {} connections and {OVERFLOW_SLOTS} overflow slots busy: closing new connections",
                    self.admitted
                );
                self.refusing = true;
            }
            return; // dropping the socket closes it
        }
        self.refusing = false;
        if self.cx.config.reuse_port && self.admitted + 1 >= self.max_connections && !over_capacity {
            self.leave_group();
        }
        // Ticks are small writes: without TCP_NODELAY, Nagle's algorithm would hold one back until the
        // previous one is acknowledged (40 ms or more with delayed ACKs).
        if let Err(e) = socket.set_nodelay(true) {
            log::debug!("{peer}: set_nodelay: {e}");
        }
        if let Some(bytes) = self.cx.config.send_buffer_bytes
            && let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(bytes)
        {
            log::debug!("{peer}: set SO_SNDBUF: {e}");
        }
        let entry = self.conns.vacant_entry();
        if entry.key() > crate::timer::MAX_SLOT as usize {
            self.cx.counters.refused_at_accept += 1; // 16 million connections: past what a timer names
            return;
        }
        let key = ConnKey { slot: entry.key() as u32, generation: self.next_generation };
        self.next_generation = self.next_generation.wrapping_add(1);
        let socket = match S::wrap(socket, &self.acceptor) {
            Ok(socket) => socket,
            Err(e) => {
                log::error!("{peer}: cannot set up the connection: {e}");
                return; // dropping the socket closes it
            }
        };
        let mut conn = Connection::new(socket, peer, key, over_capacity, &self.cx, now);
        // READABLE | WRITABLE once, for the connection's whole life: no re-registration per write.
        if let Err(e) = self.poll.registry().register(
            conn.socket_mut(),
            key.token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("{peer}: register: {e}");
            return;
        }
        entry.insert(conn);
        if !over_capacity {
            self.admitted += 1;
        }
        self.cx.gauges.open_connections = self.conns.len() as u64;
        log::debug!("{peer}: accepted ({} connections)", self.conns.len());
        self.settle(key, Next::Wait, None, now); // arm the first-request deadline
    }
}

/// A listening socket with our backlog, `SO_REUSEADDR` (restart on the same port while old connections
/// sit in TIME_WAIT), `SO_REUSEPORT` for workers (each its own listener on one port; the kernel spreads
/// connections over them) and non-blocking mode.
pub fn bind_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A bind error that names the address and says what it means: `cannot listen on 127.0.0.1:8080: address
/// already in use`.
pub fn listen_error(addr: SocketAddr, error: &io::Error) -> io::Error {
    let what = match error.kind() {
        io::ErrorKind::AddrInUse => "address already in use (another process listens there)".to_string(),
        io::ErrorKind::AddrNotAvailable => "no such address on this machine".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".to_string(),
        _ => error.to_string(),
    };
    io::Error::new(error.kind(), format!("cannot listen on {addr}: {what}"))
}

/// EMFILE (process) or ENFILE (system): no file descriptor to accept into.
fn is_out_of_fds(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == 24 || code == 23)
}
