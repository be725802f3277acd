//! One client connection: its socket, its state machine ([`state`]: every state and the diagram), its
//! unsent output ([`outbox`]).
//!
//! | file          | what it does                                                                  |
//! |---------------|-------------------------------------------------------------------------------|
//! | this one      | `Connection`; `drive` (flush, read, act), deadlines, shutdown, close, flush   |
//! | [`state`]     | the states, the diagram, the one `set_state`                                  |
//! | [`socket`]    | what a connection needs of a socket (a real one, or the tests' fake)         |
//! | `read`        | reading requests to `WouldBlock`, bounded; pipelining; backpressure           |
//! | `answer`      | a request in, a response or a change of state out                             |
//! | [`stream`]    | what only event streams do: ticks, heartbeats, catching up                    |
//! | [`outbox`]    | output not yet taken by the kernel; partial writes keep their tail            |
//! | [`tls`]       | HTTPS: a socket that is TLS (rustls) over a TCP stream                        |
//!
//! The rules of the socket (see [`crate::server`] for the loop's):
//! - Reads are drained to `WouldBlock` (an edge-triggered event that is not drained never comes again),
//!   at most [`MAX_READS_PER_TURN`] per turn; a connection stopped by that bound asks to be driven again
//!   next turn ([`Next::Again`]) instead of waiting for an edge that will not come.
//! - Output goes through the [`outbox::Outbox`]: written at once when possible, the tail kept on a
//!   partial write, resumed on the next writable edge. A stream's published events are not copied into
//!   it: they are read from the hub's ring at the stream's cursor by the same `writev`. A tick that falls
//!   due while output is still pending is skipped and counted, never piled up.
//! - Backpressure: while more than [`OUTBOX_HIGH_WATER`] bytes are unsent, no more requests are read or
//!   parsed; they wait in the kernel's buffers until the client reads its answers.
//! - Nothing here touches the timer queue or the slab: a handler returns a [`Next`], and the connection's
//!   wanted deadline is read back by the server through [`Connection::deadline`]. Time is always passed
//!   in (`now`), never read here, so the unit tests (`conn::tests`, a fake socket) choose it.

mod answer;
pub mod inbuf;
pub mod outbox;
pub mod peer;
mod read;
pub mod socket;
pub mod state;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod tls;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::clock::Stamp;
use crate::context::LoopContext;
use crate::http::refusal::Refusal;
use crate::metrics::CloseReason;
use crate::token::ConnKey;
use inbuf::InBuf;
use outbox::{Flush, Outbox};
use peer::PeerAddr;
pub use socket::Socket;
pub use state::{PendingPublish, State, Stream};

/// Reads one connection may do in one loop turn, so one busy client cannot starve the others.
pub const MAX_READS_PER_TURN: usize = 16;
/// Unsent bytes past which a connection's further requests wait (backpressure).
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;
/// Bytes a stream's client may send after its request before the stream is closed.
pub const STREAM_INPUT_LIMIT: u16 = 60 * 1024;
/// How long a closing connection waits for the peer's EOF after the last response.
pub const LINGER: Duration = Duration::from_secs(2);

/// What the loop should do with a connection after a handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to do until the next readiness event or deadline.
    Wait,
    /// A per-turn bound stopped work that is ready now: drive it again next turn.
    Again,
    /// Close it now.
    Close(CloseReason),
}

impl From<Result<(), CloseReason>> for Next {
    fn from(result: Result<(), CloseReason>) -> Next {
        match result {
            Ok(()) => Next::Wait,
            Err(reason) => Next::Close(reason),
        }
    }
}

/// One client connection, over a socket `S` (a `TcpStream` in the server, a fake in the unit tests).
pub struct Connection<S = TcpStream> {
    socket: S,
    pub peer: PeerAddr,
    /// The generation of its slot when it was accepted: with the slot (where the slab keeps it), its
    /// [`ConnKey`]. A handler finds the whole key in [`LoopContext::handling`].
    pub generation: u32,
    state: State,
    outbox: Outbox,
    /// Five yes/no facts in one byte (see [`Flags`]).
    flags: Flags,
    /// When bytes last went out (or the connection was accepted): heartbeats measure silence from it,
    /// and a response still being written is timed by its progress, not by the request's deadline.
    last_write: Stamp,
}

impl<S: Socket> Connection<S> {
    /// A connection accepted at `now`, waiting for its first request.
    pub fn new(
        socket: S,
        peer: SocketAddr,
        key: ConnKey,
        over_capacity: bool,
        cx: &LoopContext,
        now: Instant,
    ) -> Self {
        Connection {
            socket,
            peer: PeerAddr::from(peer),
            generation: key.generation,
            state: State::ReadingRequest {
                deadline: cx.clock.stamp(now + cx.config.request_timeout()),
                head_started: false,
                inbuf: InBuf::default(),
            },
            outbox: Outbox::default(),
            flags: if over_capacity { Flags::OVER_CAPACITY } else { Flags::NONE },
            last_write: cx.clock.stamp(now),
        }
    }

    /// The socket, to register with or deregister from `Poll`.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The stream's figures, if this connection is an event stream.
    pub fn stream(&self) -> Option<&Stream> {
        match &self.state {
            State::Streaming(stream) => Some(stream),
            _ => None,
        }
    }

    pub fn is_over_capacity(&self) -> bool {
        self.flags.has(Flags::OVER_CAPACITY)
    }

    /// Marks the connection as on the server's list to drive again next turn; returns whether it
    /// already was (the server's bookkeeping: one more drive per turn, not one per event).
    pub fn queue_again(&mut self) -> bool {
        self.flags.replace(Flags::QUEUED_AGAIN, true)
    }

    /// Takes the connection off the server's list to drive again.
    pub fn unqueue(&mut self) {
        self.flags.replace(Flags::QUEUED_AGAIN, false);
    }

    /// The deadline the current state wants armed.
    pub fn deadline(&self) -> Option<Stamp> {
        self.state.deadline()
    }

    /// Bytes in this connection's own outbox (for the write-queue gauge).
    pub fn queued_bytes(&self) -> usize {
        self.outbox.pending_bytes()
    }

    /// Records that the socket reported readiness. Only readability needs remembering: writability is
    /// implied by the outbox (a non-empty outbox is always waiting for a writable edge, so every event
    /// retries it). `readable` covers read-closed and error events too: the read finds out which.
    pub fn on_readiness(&mut self, readable: bool) {
        if readable {
            self.flags.replace(Flags::READABLE, true);
        }
    }

    /// Does whatever the socket allows now: write pending output, read and act on input.
    pub fn drive(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        if let Err(reason) = self.flush(cx, now) {
            return Next::Close(reason);
        }
        let next = if self.is_reading() { self.read_requests(cx, now) } else { self.read_and_discard() };
        if let Next::Close(_) = next {
            return next;
        }
        match self.finish_writes(cx, now) {
            Ok(()) => next,
            Err(reason) => Next::Close(reason),
        }
    }

    /// Reading a request head or a body, or holding pipelined requests behind a publish: the states that
    /// keep unparsed bytes (one list of them, in [`State::inbuf`]).
    fn is_reading(&self) -> bool {
        self.state.inbuf().is_some()
    }

    /// Acts on this connection's deadline, which the server found due at `now`.
    pub fn on_deadline(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        let clock = cx.clock;
        if self.deadline().is_none_or(|deadline| clock.instant(deadline, now) > now) {
            return Next::Wait; // not due (the timer was re-armed meanwhile)
        }
        let last_write = clock.instant(self.last_write, now);
        // A response still going out is timed by its progress: a client reading a large answer steadily
        // keeps its connection, one that stopped reading loses it after the stall timeout.
        if !self.outbox.is_empty() && !matches!(self.state, State::Streaming(_)) {
            let limit = cx.config.write_stall_timeout().unwrap_or(cx.config.request_timeout());
            if now.saturating_duration_since(last_write) >= limit {
                return Next::Close(CloseReason::WriteTimeout);
            }
            self.state.move_deadline(clock.stamp(last_write + limit));
            return Next::Wait;
        }
        // An idle keep-alive connection is idle from when its last answer went out, not from when it
        // was queued.
        if let State::ReadingRequest { head_started: false, .. } = self.state
            && self.flags.has(Flags::ANSWERED)
            && last_write + cx.config.keepalive_timeout() > now
        {
            self.state.move_deadline(clock.stamp(last_write + cx.config.keepalive_timeout()));
            return Next::Wait;
        }
        match &self.state {
            State::ReadingRequest { head_started: false, .. } => Next::Close(CloseReason::IdleTimeout),
            State::ReadingRequest { head_started: true, .. } | State::ReadingBody { .. } => {
                self.refuse_and_close(cx, now, Refusal::RequestTimeout); // unread bytes go with the state
                self.finish_writes(cx, now).into()
            }
            State::AwaitingPublish { .. } => {
                self.refuse_and_close(cx, now, Refusal::PublishOutcomeUnknown);
                self.finish_writes(cx, now).into()
            }
            State::Streaming(_) => self.on_stream_deadline(cx, now),
            State::Draining { .. } => Next::Close(CloseReason::WriteTimeout),
            State::Lingering { .. } => Next::Close(CloseReason::Finished),
            State::Closed(reason) => Next::Close(*reason),
        }
    }

    /// Writes what is pending; ends a caught-up stream if the server is shutting down; once a closing
    /// connection's last byte is out, shuts its write side.
    fn finish_writes(&mut self, cx: &mut LoopContext, now: Instant) -> Result<(), CloseReason> {
        self.flush(cx, now)?;
        if cx.shutting_down() && self.end_stream_for_shutdown(cx, now) {
            self.flush(cx, now)?;
        }
        if matches!(self.state, State::Draining { .. }) && self.outbox.is_empty() {
            // The FIN tells the client the response is complete; we read until its EOF (lingering).
            if let Err(e) = self.socket.shutdown_write() {
                log::debug!("{}: shutdown: {e}", self.peer);
            }
            self.set_state(State::Lingering { deadline: cx.clock.stamp(now + LINGER) }, cx, now);
            if self.read_and_discard() == Next::Close(CloseReason::Finished) {
                return Err(CloseReason::Finished);
            }
        }
        Ok(())
    }

    /// The server is shutting down: an idle connection closes now, a stream ends once it has sent what it
    /// owes, a request in progress is answered and then closed.
    pub fn on_shutdown(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        if let State::ReadingRequest { head_started: false, .. } = self.state {
            return Next::Close(CloseReason::Finished);
        }
        self.finish_writes(cx, now).into()
    }

    /// The server is closing this connection: the last change of state (a stream's end is accounted
    /// there). The server then frees the slot; dropping the connection closes the socket.
    pub fn close(&mut self, cx: &mut LoopContext, now: Instant, reason: CloseReason) {
        self.set_state(State::Closed(reason), cx, now);
    }

    /// Writes pending output until done or `WouldBlock`: the outbox, then, for a stream, the published
    /// events from its cursor on, all in as few `writev`s as the kernel allows.
    fn flush(&mut self, cx: &mut LoopContext, now: Instant) -> Result<(), CloseReason> {
        if let State::Streaming(stream) = &mut self.state {
            stream.cursor = cx.hub.normalize(stream.cursor);
        }
        let subscription = cx.hub.topics.subscription(cx.handling.slot);
        let (result, progress) = match &mut self.state {
            State::Streaming(stream) if cx.hub.owes(subscription, stream.cursor) => {
                let Some(backlog) = cx.hub.backlog(subscription, stream.cursor) else {
                    return Err(CloseReason::FellBehind);
                };
                let (result, progress) = self.outbox.flush_with(&mut self.socket, backlog);
                stream.cursor = cx.hub.advance(subscription, stream.cursor, progress.frames);
                stream.events = stream.events.saturating_add(progress.frames as u32);
                cx.counters.events_sent += progress.frames as u64;
                (result, progress)
            }
            // Nothing of ours is pending, but the socket may hold bytes of its own (TLS records: a
            // handshake's, or the tail of the last write) that wait for this writable edge.
            _ if self.outbox.is_empty() => return self.flush_socket(),
            _ => self.outbox.flush_with(&mut self.socket, std::iter::empty()),
        };
        cx.counters.bytes_sent += progress.bytes as u64;
        if progress.bytes > 0 {
            self.last_write = cx.clock.stamp(now);
        }
        match result {
            Flush::Done | Flush::WouldBlock => Ok(()),
            Flush::Failed(error) => Err(socket::close_reason(&error)),
        }
    }

    /// Writes what the socket itself holds (`Write::flush`: nothing for TCP, records for TLS); a full
    /// kernel buffer is not an error, the next writable edge retries.
    fn flush_socket(&mut self) -> Result<(), CloseReason> {
        loop {
            return match self.socket.flush() {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(socket::close_reason(&e)),
            };
        }
    }
}

/// Yes/no facts about a connection, one bit each: five `bool`s would take five bytes of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// The socket may have unread bytes: set by a readable event, cleared by `WouldBlock` or EOF.
    pub const READABLE: Flags = Flags(1);
    /// Accepted past `--max-connections`: its request gets "come back later".
    pub const OVER_CAPACITY: Flags = Flags(2);
    /// At least one request was answered (an idle timeout then counts from the last answer's end).
    pub const ANSWERED: Flags = Flags(4);
    /// A complete publish waits for a later turn's publishing budget.
    pub const DEFERRED: Flags = Flags(8);
    /// On the server's list of connections to drive again next turn.
    pub const QUEUED_AGAIN: Flags = Flags(16);

    pub fn has(self, flag: Flags) -> bool {
        self.0 & flag.0 != 0
    }

    /// Sets `flag` on or off; returns whether it was on.
    pub fn replace(&mut self, flag: Flags, on: bool) -> bool {
        let was = self.has(flag);
        if on {
            self.0 |= flag.0
        } else {
            self.0 &= !flag.0
        }
        was
    }
}
