//! One client connection: its socket, its state machine, its unsent output.
//!
//! ```text
//!                 complete request head
//!   accept ──► ReadingRequest ──────────────────────────────────────┐
//!               │  ▲  ▲  │  │ GET /home/events                      │ keep-alive response
//!               │  │  │  │  └───────────────────► Streaming ──┐     │ queued: read the next
//!               │  │  │  │ POST /home/events                  │     │ (pipelined) request
//!               │  │  │  └──► ReadingBody ── body complete:   │     │
//!               │  │  └────────────────────── publish, answer │     │
//!               │  └──────────────────────────────────────────┼─────┘
//!               │ error, Connection: close,                   │ peer closes or resets,
//!               │ over capacity, timeout (408)                │ write fails, fell behind
//!               ▼                                             ▼
//!            Draining ── outbox empty: half-close ──► Lingering ── peer's EOF or 2 s ──► closed
//! ```
//!
//! This file holds the state machine and the socket work; `answer` turns a request into a response or a
//! state change, and [`stream`] holds what only event streams do (ticks, heartbeats, catching up with
//! published events).
//!
//! - `ReadingRequest`: bytes are read into the server's shared scratch buffer and only an unfinished
//!   head is kept here (`inbuf`, empty and unallocated between requests). Complete heads
//!   are answered in order, pipelined or not. The state's deadline is the request timeout while a head
//!   is arriving and the keep-alive timeout between requests.
//! - `ReadingBody`: a publish's head was accepted; its body (bounded by `--max-body-bytes`) arrives in
//!   `inbuf`, under the request timeout.
//! - `AwaitingPublish` (with `--redis`): the publish went to Redis; the answer, with the event's id, waits
//!   for Redis's reply, and so does anything the client pipelined behind it (nothing more is read).
//! - `Streaming`: the connection is an event stream. It keeps read interest only to notice the peer
//!   leaving (EOF or reset); anything a client sends after its request is read and thrown away, up to
//!   [`STREAM_INPUT_LIMIT`] bytes, past which it is closed. The deadline is the next tick or heartbeat.
//! - `Draining`: the last response is queued; once the kernel took it, the write side is shut.
//! - `Lingering`: the write side is shut and input is read and discarded until the peer closes (or
//!   [`LINGER`] passes). Closing with unread input would make the kernel send a reset that can destroy
//!   the response before the client reads it; this is nginx's "lingering close".
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
//!   wanted deadline is read back by the server through [`Connection::deadline`].

mod answer;
pub mod outbox;
pub mod stream;

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::Token;
use mio::net::TcpStream;

use crate::clock::DateCache;
use crate::config::Config;
use crate::http::request::{self, Limits, Parse};
use crate::http::response::{Cors, Persistence};
use crate::hub::Hub;
use crate::jitter::Jitter;
use crate::metrics::{CloseReason, Counters, Gauges};
use crate::static_files::StaticFiles;
use outbox::{Flush, Outbox};
pub use stream::Stream;

/// Reads one connection may do in one loop turn, so one busy client cannot starve the others.
pub const MAX_READS_PER_TURN: usize = 16;
/// Unsent bytes past which a connection's further requests wait (backpressure).
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;
/// Bytes a stream's client may send after its request before the stream is closed.
pub const STREAM_INPUT_LIMIT: u32 = 64 * 1024;
/// How long a closing connection waits for the peer's EOF after the last response.
pub const LINGER: Duration = Duration::from_secs(2);

#[cfg(not(target_pointer_width = "64"))]
compile_error!("tokens pack a slot and a generation into 64 bits");

/// Names one connection: its slab slot and the generation of the connection that holds it. A slot is
/// reused after a close; the generation is not, so an event or timer meant for the old connection can
/// never act on the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey {
    pub slot: u32,
    pub generation: u32,
}

impl ConnKey {
    /// The mio token: the generation in the high 32 bits, the slab slot in the low 32.
    pub fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.slot as usize)
    }

    /// The key a token was made from.
    pub fn from_token(token: Token) -> ConnKey {
        ConnKey { slot: token.0 as u32, generation: (token.0 >> 32) as u32 }
    }
}

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

/// Everything the connections share, owned by the server and lent to one connection at a time.
pub struct Shared {
    pub config: Config,
    pub files: StaticFiles,
    pub limits: Limits,
    /// The one read buffer of the whole server: connections only keep bytes of an unfinished head.
    pub scratch: Box<[u8]>,
    /// The one buffer ticks are encoded into before they are written.
    pub frame: Vec<u8>,
    pub dates: DateCache,
    pub jitter: Jitter,
    pub hub: Hub,
    /// The Redis backplane, with `--redis`: publishes go there and come back to the hub from there.
    pub backplane: Option<crate::backplane::Backplane>,
    pub counters: Counters,
    pub gauges: Gauges,
    /// Set while shutting down: the range (ms) over which ending streams spread their clients' returns.
    pub shutdown_spread_ms: Option<u64>,
}

impl Shared {
    /// Size of the shared read buffer.
    pub const SCRATCH_BYTES: usize = 16 * 1024;

    pub fn new(config: Config, files: StaticFiles) -> Result<Shared, String> {
        // A burst may take half of --max-pending-bytes per turn: a reader that keeps up stays under it.
        let (events, bytes, turn) =
            (config.replay_events as usize, config.replay_bytes, (config.max_pending_bytes / 2) as usize);
        let (hub, backplane) = match &config.redis {
            Some(url) => {
                (Hub::following(events, bytes, turn), Some(crate::backplane::Backplane::new(url, events)?))
            }
            None => (Hub::with_turn_limit(crate::hub::clock_seed(), events, bytes, turn), None),
        };
        Ok(Shared {
            files,
            limits: Limits { max_head_bytes: config.max_head_bytes as usize },
            scratch: vec![0; Self::SCRATCH_BYTES].into_boxed_slice(),
            frame: Vec::with_capacity(256),
            dates: DateCache::default(),
            jitter: Jitter::from_entropy(),
            hub,
            backplane,
            config,
            counters: Counters::default(),
            gauges: Gauges::default(),
            shutdown_spread_ms: None,
        })
    }
}

/// The protocol phase of a connection, with the data only that phase needs.
#[derive(Debug)]
pub enum State {
    /// Waiting for a request head. `head_started` tells a head in progress (deadline: the request
    /// timeout) from an idle connection (deadline: the keep-alive or first-byte timeout).
    ReadingRequest { deadline: Instant, head_started: bool },
    /// Reading the body of a publish (`length` bytes), to answer as `persistence` says.
    ReadingBody { deadline: Instant, publish: Box<PendingPublish> },
    /// A publish was sent to the backplane; its answer waits for Redis's reply (later requests wait too).
    AwaitingPublish { deadline: Instant, publish: Box<PendingPublish> },
    /// An event stream.
    Streaming(Stream),
    /// Writing the last response, then the write side is shut.
    Draining { deadline: Instant },
    /// Write side shut; waiting for the peer to close.
    Lingering { deadline: Instant },
}

/// A publish whose body is still arriving.
#[derive(Debug)]
pub struct PendingPublish {
    pub event: Option<String>,
    pub length: usize,
    pub persistence: Persistence,
    pub cors: Option<Cors>,
}

/// One client connection.
pub struct Connection {
    socket: TcpStream,
    pub peer: SocketAddr,
    pub key: ConnKey,
    state: State,
    /// Bytes of an unfinished request head (or pipelined requests waiting behind backpressure).
    inbuf: Vec<u8>,
    outbox: Outbox,
    /// The socket may have unread bytes: set by a readable event, cleared by `WouldBlock` or EOF.
    readable: bool,
    /// Accepted past `--max-connections`: its request gets "come back later".
    over_capacity: bool,
    /// At least one request was answered (an idle timeout then counts from the last answer's end).
    answered: bool,
    /// A complete publish waits for the next turn's publishing budget.
    deferred: bool,
    /// Already on the server's list of connections to drive again next turn (the server's bookkeeping).
    pub queued_again: bool,
    /// When bytes last went out (or the connection was accepted): heartbeats measure silence from it,
    /// and a response still being written is timed by its progress, not by the request's deadline.
    last_write: Instant,
    /// The deadline armed for this connection in the server's timer queue (the server's bookkeeping).
    pub armed_timer: Option<Instant>,
}

impl Connection {
    pub fn new(
        socket: TcpStream,
        peer: SocketAddr,
        key: ConnKey,
        over_capacity: bool,
        config: &Config,
        now: Instant,
    ) -> Self {
        Connection {
            socket,
            peer,
            key,
            state: State::ReadingRequest { deadline: now + config.request_timeout(), head_started: false },
            inbuf: Vec::new(),
            outbox: Outbox::default(),
            readable: false,
            over_capacity,
            answered: false,
            deferred: false,
            queued_again: false,
            last_write: now,
            armed_timer: None,
        }
    }

    /// The socket, to register with or deregister from `Poll`.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
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
        self.over_capacity
    }

    /// The deadline the current state wants armed.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::ReadingRequest { deadline, .. }
            | State::ReadingBody { deadline, .. }
            | State::AwaitingPublish { deadline, .. }
            | State::Draining { deadline }
            | State::Lingering { deadline } => Some(*deadline),
            State::Streaming(stream) => stream.deadline(),
        }
    }

    /// Moves the current state's deadline (not a stream's: its deadlines are its ticks and watch).
    fn set_deadline(&mut self, at: Instant) {
        match &mut self.state {
            State::ReadingRequest { deadline, .. }
            | State::ReadingBody { deadline, .. }
            | State::AwaitingPublish { deadline, .. }
            | State::Draining { deadline }
            | State::Lingering { deadline } => *deadline = at,
            State::Streaming(_) => {}
        }
    }

    /// Bytes in this connection's own outbox (for the write-queue gauge).
    pub fn queued_bytes(&self) -> usize {
        self.outbox.pending_bytes()
    }

    /// Records a readiness event. Only readability needs remembering: writability is implied by the
    /// outbox (a non-empty outbox is always waiting for a writable edge, so every event retries it).
    pub fn on_readiness(&mut self, event: &mio::event::Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
    }

    /// Does whatever the socket allows now: write pending output, read and act on input.
    pub fn drive(&mut self, shared: &mut Shared, now: Instant) -> Next {
        if let Err(reason) = self.flush(shared, now) {
            return Next::Close(reason);
        }
        let next = if self.is_reading() { self.read_requests(shared, now) } else { self.read_and_discard() };
        if let Next::Close(_) = next {
            return next;
        }
        match self.finish_writes(shared, now) {
            Ok(()) => next,
            Err(reason) => Next::Close(reason),
        }
    }

    /// Reading a request head or a body.
    fn is_reading(&self) -> bool {
        matches!(
            self.state,
            State::ReadingRequest { .. } | State::ReadingBody { .. } | State::AwaitingPublish { .. }
        )
    }

    /// Acts on this connection's deadline, which the server found due at `now`.
    pub fn on_deadline(&mut self, shared: &mut Shared, now: Instant) -> Next {
        if self.deadline().is_none_or(|deadline| deadline > now) {
            return Next::Wait; // not due (the timer was re-armed meanwhile)
        }
        // A response still going out is timed by its progress: a client reading a large answer steadily
        // keeps its connection, one that stopped reading loses it after the stall timeout.
        if !self.outbox.is_empty() && !matches!(self.state, State::Streaming(_)) {
            let limit = shared.config.write_stall_timeout().unwrap_or(shared.config.request_timeout());
            if now.saturating_duration_since(self.last_write) >= limit {
                return Next::Close(CloseReason::WriteTimeout);
            }
            self.set_deadline(self.last_write + limit);
            return Next::Wait;
        }
        // An idle keep-alive connection is idle from when its last answer went out, not from when it
        // was queued.
        if let State::ReadingRequest { head_started: false, .. } = self.state
            && self.answered
            && self.last_write + shared.config.keepalive_timeout() > now
        {
            self.set_deadline(self.last_write + shared.config.keepalive_timeout());
            return Next::Wait;
        }
        match &mut self.state {
            State::ReadingRequest { head_started: false, .. } => Next::Close(CloseReason::IdleTimeout),
            State::ReadingRequest { head_started: true, .. } | State::ReadingBody { .. } => {
                let limit = shared.config.request_timeout();
                log::warn!("{}: 408 request not complete within {limit:?}", self.peer);
                self.refuse_and_close(shared, now, 408, "request not complete in time");
                self.discard_inbuf();
                match self.finish_writes(shared, now) {
                    Ok(()) => Next::Wait,
                    Err(reason) => Next::Close(reason),
                }
            }
            State::AwaitingPublish { .. } => {
                log::warn!("{}: 503 for a publish: Redis did not answer in time", self.peer);
                self.refuse_and_close(shared, now, 503, "the backplane did not answer in time");
                match self.finish_writes(shared, now) {
                    Ok(()) => Next::Wait,
                    Err(reason) => Next::Close(reason),
                }
            }
            State::Streaming(_) => self.on_stream_deadline(shared, now),
            State::Draining { .. } => Next::Close(CloseReason::WriteTimeout),
            State::Lingering { .. } => Next::Close(CloseReason::Finished),
        }
    }

    /// `ReadingRequest`, `ReadingBody`: answer what is buffered, read more, repeat, within the per-turn bound.
    fn read_requests(&mut self, shared: &mut Shared, now: Instant) -> Next {
        let mut scanned = 0; // leading bytes of `inbuf` already searched for the end of a head
        let mut reads = 0;
        loop {
            self.serve_buffered(shared, now, scanned);
            if std::mem::take(&mut self.deferred) {
                return Next::Again;
            }
            if !self.is_reading() {
                // Became a stream or is closing: what the client sent after that request is not a request.
                self.discard_inbuf();
                return self.read_and_discard();
            }
            if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                if let Err(reason) = self.flush(shared, now) {
                    return Next::Close(reason);
                }
                if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                    return Next::Wait; // resumed by the writable edge that drains the outbox
                }
                scanned = 0; // answered requests left `inbuf` since the last read: search it again
                continue;
            }
            if !self.readable || matches!(self.state, State::AwaitingPublish { .. }) {
                return Next::Wait; // (while a publish awaits Redis, nothing more is read: bounded)
            }
            if reads == MAX_READS_PER_TURN {
                return Next::Again;
            }
            reads += 1;
            scanned = self.inbuf.len();
            match read_some(&mut self.socket, &mut shared.scratch) {
                ReadResult::Data(n) => self.inbuf.extend_from_slice(&shared.scratch[..n]),
                ReadResult::WouldBlock => {
                    self.readable = false;
                    return Next::Wait;
                }
                ReadResult::Eof if self.outbox.is_empty() => {
                    return Next::Close(CloseReason::PeerClosed);
                }
                ReadResult::Eof => {
                    // The client half-closed after its requests; it may still read the answers.
                    self.readable = false;
                    self.state = State::Draining { deadline: now + shared.config.request_timeout() };
                    return Next::Wait;
                }
                ReadResult::Failed(reason) => return Next::Close(reason),
            }
        }
    }

    /// Answers every complete request (head, and body for a publish) in `inbuf`, in order, until the
    /// buffer holds no complete one, the state leaves the reading states, or backpressure stops it.
    fn serve_buffered(&mut self, shared: &mut Shared, now: Instant, mut scanned: usize) {
        while self.is_reading() && self.outbox.pending_bytes() <= OUTBOX_HIGH_WATER {
            if let State::AwaitingPublish { .. } = self.state {
                return; // the next request waits for this publish's answer, in order
            }
            if let State::ReadingBody { publish, .. } = &self.state {
                let length = publish.length;
                if self.inbuf.len() < length {
                    return; // more of the body to come
                }
                if !shared.hub.has_turn_budget() {
                    self.deferred = true; // publish next turn, after the streams caught up
                    return;
                }
                let body: Vec<u8> = self.inbuf.drain(..length).collect();
                let idle = self.idle_state(shared, now);
                if let State::ReadingBody { publish, .. } = std::mem::replace(&mut self.state, idle) {
                    self.finish_publish(shared, now, *publish, body);
                }
                scanned = 0;
                continue;
            }
            if self.inbuf.is_empty() {
                break;
            }
            match request::parse(&self.inbuf, scanned, shared.limits) {
                Ok(Parse::Partial) => {
                    self.note_head_started(&shared.config, now);
                    return;
                }
                Err(error) => {
                    self.refuse_malformed(shared, now, error);
                    return;
                }
                Ok(Parse::Complete { request, head_len }) => {
                    self.inbuf.drain(..head_len);
                    scanned = 0;
                    self.answer(&request, shared, now);
                    if let State::ReadingRequest { .. } = self.state {
                        self.state = self.idle_state(shared, now); // kept alive: a new deadline
                    }
                }
            }
        }
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new(); // between requests a connection holds no buffer
        }
    }

    /// The reading state after an answer: the next head has the request timeout if it has begun, else
    /// the keep-alive time.
    fn idle_state(&self, shared: &Shared, now: Instant) -> State {
        let head_started = !self.inbuf.is_empty();
        let wait =
            if head_started { shared.config.request_timeout() } else { shared.config.keepalive_timeout() };
        State::ReadingRequest { deadline: now + wait, head_started }
    }

    /// The first bytes of a head arrived: from now on it has the request timeout to complete.
    fn note_head_started(&mut self, config: &Config, now: Instant) {
        if let State::ReadingRequest { deadline, head_started } = &mut self.state
            && !*head_started
        {
            *head_started = true;
            *deadline = (*deadline).min(now + config.request_timeout());
        }
    }

    /// Bytes buffered after the request that ended reading: counted as stream input, then dropped.
    fn discard_inbuf(&mut self) {
        if let State::Streaming(stream) = &mut self.state {
            stream.input_bytes = stream.input_bytes.saturating_add(self.inbuf.len() as u32);
        }
        self.inbuf = Vec::new();
    }

    /// `Streaming`, `Draining`, `Lingering`: read (to notice the peer leaving) and discard, bounded.
    fn read_and_discard(&mut self) -> Next {
        let mut scratch = [0u8; 4096];
        for _ in 0..MAX_READS_PER_TURN {
            if !self.readable {
                return Next::Wait;
            }
            match read_some(&mut self.socket, &mut scratch) {
                ReadResult::Data(n) => {
                    if let State::Streaming(stream) = &mut self.state {
                        stream.input_bytes = stream.input_bytes.saturating_add(n as u32);
                    }
                }
                ReadResult::WouldBlock => {
                    self.readable = false;
                    return Next::Wait;
                }
                ReadResult::Eof => match self.state {
                    State::Streaming(_) => return Next::Close(CloseReason::PeerClosed),
                    State::Lingering { .. } => return Next::Close(CloseReason::Finished),
                    _ => {
                        self.readable = false; // half-closed while we finish writing
                        return Next::Wait;
                    }
                },
                ReadResult::Failed(reason) => return Next::Close(reason),
            }
            if let State::Streaming(stream) = &self.state
                && stream.input_bytes > STREAM_INPUT_LIMIT
            {
                log::warn!(
                    "{}: sent {} bytes on its event stream; closing it",
                    self.peer,
                    stream.input_bytes
                );
                return Next::Close(CloseReason::TooMuchInput);
            }
        }
        Next::Again
    }

    /// Writes what is pending; ends a caught-up stream if the server is shutting down; once a closing
    /// connection's last byte is out, shuts its write side.
    fn finish_writes(&mut self, shared: &mut Shared, now: Instant) -> Result<(), CloseReason> {
        self.flush(shared, now)?;
        if shared.shutdown_spread_ms.is_some() && self.end_stream_for_shutdown(shared, now) {
            self.flush(shared, now)?;
        }
        if matches!(self.state, State::Draining { .. }) && self.outbox.is_empty() {
            // The FIN tells the client the response is complete; we read until its EOF (lingering).
            let _ = self.socket.shutdown(Shutdown::Write);
            self.state = State::Lingering { deadline: now + LINGER };
            if self.read_and_discard() == Next::Close(CloseReason::Finished) {
                return Err(CloseReason::Finished);
            }
        }
        Ok(())
    }

    /// The server is shutting down: an idle connection closes now, a stream ends once it has sent what it
    /// owes, a request in progress is answered and then closed.
    pub fn on_shutdown(&mut self, shared: &mut Shared, now: Instant) -> Next {
        if let State::ReadingRequest { head_started: false, .. } = self.state {
            return Next::Close(CloseReason::Finished);
        }
        match self.finish_writes(shared, now) {
            Ok(()) => Next::Wait,
            Err(reason) => Next::Close(reason),
        }
    }

    /// Writes pending output until done or `WouldBlock`: the outbox, then, for a stream, the published
    /// events from its cursor on, all in as few `writev`s as the kernel allows.
    fn flush(&mut self, shared: &mut Shared, now: Instant) -> Result<(), CloseReason> {
        if let State::Streaming(stream) = &mut self.state {
            stream.cursor = shared.hub.normalize(stream.cursor);
        }
        let (result, progress) = match &mut self.state {
            State::Streaming(stream) if stream.cursor < shared.hub.next_id() => {
                let Some(backlog) = shared.hub.frames_from(stream.cursor) else {
                    return Err(CloseReason::FellBehind);
                };
                let (result, progress) = self.outbox.flush_with(&mut self.socket, backlog);
                stream.cursor += progress.frames as u64;
                stream.events += progress.frames as u64;
                shared.counters.events_sent += progress.frames as u64;
                (result, progress)
            }
            _ if self.outbox.is_empty() => return Ok(()),
            _ => self.outbox.flush_with(&mut self.socket, std::iter::empty()),
        };
        shared.counters.bytes_sent += progress.bytes as u64;
        if progress.bytes > 0 {
            self.last_write = now;
        }
        match result {
            Flush::Done | Flush::WouldBlock => Ok(()),
            Flush::Failed(error) => Err(close_reason(&error)),
        }
    }
}

/// What one read attempt found.
enum ReadResult {
    Data(usize),
    WouldBlock,
    Eof,
    Failed(CloseReason),
}

/// One `read`, retrying `Interrupted`, classifying the outcome.
fn read_some(socket: &mut TcpStream, buf: &mut [u8]) -> ReadResult {
    loop {
        return match socket.read(buf) {
            Ok(0) => ReadResult::Eof,
            Ok(n) => ReadResult::Data(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadResult::WouldBlock,
            Err(e) => ReadResult::Failed(close_reason(&e)),
        };
    }
}

/// Resets, aborts and broken pipes are a peer leaving, not a server fault.
fn close_reason(error: &io::Error) -> CloseReason {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            CloseReason::PeerReset
        }
        kind => CloseReason::IoError(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_slot_and_generation() {
        for key in [
            ConnKey { slot: 0, generation: 0 },
            ConnKey { slot: 5, generation: 1 },
            ConnKey { slot: u32::MAX - 1, generation: u32::MAX },
        ] {
            assert_eq!(ConnKey::from_token(key.token()), key);
        }
        let a = ConnKey { slot: 5, generation: 1 };
        let b = ConnKey { slot: 5, generation: 2 };
        assert_ne!(a.token(), b.token(), "a reused slot gets a new token");
    }
}
