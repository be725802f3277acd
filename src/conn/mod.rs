//! One client connection: its socket, its state machine, its unsent output.
//!
//! ```text
//!                 complete request head
//!   accept ──► ReadingRequest ──────────────────────────────────────┐
//!                 │  ▲   │  GET /home/events                        │ keep-alive response
//!                 │  │   └──────────────────────► Streaming ──┐     │ queued: read the next
//!                 │  └────────────────────────────────────────┼─────┘ (pipelined) request
//!                 │ error, Connection: close,                 │ peer closes or resets,
//!                 │ over capacity, timeout (408)              │ write fails
//!                 ▼                                           ▼
//!              Draining ── outbox empty: half-close ──► Lingering ── peer's EOF or 2 s ──► closed
//! ```
//!
//! - `ReadingRequest`: bytes are read into the server's shared scratch buffer and only an unfinished
//!   head is kept here (`inbuf`, empty and unallocated between requests). Complete heads
//!   are answered in order, pipelined or not. The state's deadline is the request timeout while a head
//!   is arriving and the keep-alive timeout between requests.
//! - `Streaming`: the connection is an event stream. It keeps read interest only to notice the peer
//!   leaving (EOF or reset); anything a client sends after its request is read and thrown away, up to
//!   [`STREAM_INPUT_LIMIT`] bytes, past which it is closed. The deadline is the next tick.
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
//!   partial write, resumed on the next writable edge. A tick that falls due while output is still
//!   pending is skipped and counted, never piled up.
//! - Backpressure: while more than [`OUTBOX_HIGH_WATER`] bytes are unsent, no more requests are read or
//!   parsed; they wait in the kernel's buffers until the client reads its answers.
//! - Nothing here touches the timer queue or the slab: a handler returns a [`Next`], and the connection's
//!   wanted deadline is read back by the server through [`Connection::deadline`].

pub mod outbox;

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use mio::Token;
use mio::net::TcpStream;

use crate::clock::{self, DateCache};
use crate::config::Config;
use crate::http::request::{self, Limits, Parse, Request, RequestError};
use crate::http::response::{self, Persistence};
use crate::jitter::Jitter;
use crate::metrics::{CloseReason, Counters};
use crate::routes::{self, Route};
use crate::sse;
use crate::static_files::StaticFiles;
use outbox::{Flush, Outbox};

/// Reads one connection may do in one loop turn, so one busy client cannot starve the others.
pub const MAX_READS_PER_TURN: usize = 16;
/// Unsent bytes past which a connection's further requests wait (backpressure).
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;
/// Bytes a stream's client may send after its request before the stream is closed.
pub const STREAM_INPUT_LIMIT: u64 = 64 * 1024;
/// How long a closing connection waits for the peer's EOF after the last response.
pub const LINGER: Duration = Duration::from_secs(2);
/// Range of the `retry:` (ms) sent to event-stream requests over the connection cap: spread over
/// seconds, so that thousands of refused clients do not all come back in the same instant.
pub const OVER_CAPACITY_RETRY_MS: (u64, u64) = (1_000, 10_000);
/// `Retry-After` (s) for other requests over the cap.
pub const OVER_CAPACITY_RETRY_AFTER_S: &str = "5";

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
    pub counters: Counters,
}

impl Shared {
    /// Size of the shared read buffer.
    pub const SCRATCH_BYTES: usize = 16 * 1024;

    pub fn new(config: Config, files: StaticFiles) -> Shared {
        Shared {
            config,
            files,
            limits: Limits::default(),
            scratch: vec![0; Self::SCRATCH_BYTES].into_boxed_slice(),
            frame: Vec::with_capacity(256),
            dates: DateCache::default(),
            jitter: Jitter::from_entropy(),
            counters: Counters::default(),
        }
    }

    /// Streams open now.
    pub fn open_streams(&self) -> u64 {
        self.counters.streams_opened - self.counters.streams_closed
    }
}

/// The protocol phase of a connection, with the data only that phase needs.
#[derive(Debug)]
pub enum State {
    /// Waiting for a request head. `head_started` tells a head in progress (deadline: the request
    /// timeout) from an idle connection (deadline: the keep-alive or first-byte timeout).
    ReadingRequest { deadline: Instant, head_started: bool },
    /// An event stream.
    Streaming(Stream),
    /// Writing the last response, then the write side is shut.
    Draining { deadline: Instant },
    /// Write side shut; waiting for the peer to close.
    Lingering { deadline: Instant },
}

/// The state of one event stream.
#[derive(Debug)]
pub struct Stream {
    pub opened: Instant,
    /// When the next tick falls due (`None` when ticks are off).
    pub next_tick: Option<Instant>,
    /// Frames queued for this client (a queued frame is always sent whole unless the client leaves).
    pub events: u64,
    /// Ticks skipped because output was still pending when they fell due.
    pub skipped: u64,
    /// Bytes the client sent after its request (read and discarded).
    pub input_bytes: u64,
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
            | State::Draining { deadline }
            | State::Lingering { deadline } => Some(*deadline),
            State::Streaming(stream) => stream.next_tick,
        }
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
        if let Err(reason) = self.flush() {
            return Next::Close(reason);
        }
        let next = match self.state {
            State::ReadingRequest { .. } => self.read_requests(shared, now),
            _ => self.read_and_discard(),
        };
        if let Next::Close(_) = next {
            return next;
        }
        match self.finish_writes(now) {
            Ok(()) => next,
            Err(reason) => Next::Close(reason),
        }
    }

    /// Acts on this connection's deadline, which the server found due at `now`.
    pub fn on_deadline(&mut self, shared: &mut Shared, now: Instant) -> Next {
        if self.deadline().is_none_or(|deadline| deadline > now) {
            return Next::Wait; // not due (the timer was re-armed meanwhile)
        }
        match &mut self.state {
            State::ReadingRequest { head_started: false, .. } => Next::Close(CloseReason::IdleTimeout),
            State::ReadingRequest { head_started: true, .. } => {
                log::warn!(
                    "{}: 408 request head not complete within {:?}",
                    self.peer,
                    shared.config.request_timeout()
                );
                self.refuse(
                    shared,
                    now,
                    408,
                    "request head not complete in time",
                    None,
                    false,
                    Persistence::Close,
                );
                match self.finish_writes(now) {
                    Ok(()) => Next::Wait,
                    Err(reason) => Next::Close(reason),
                }
            }
            State::Streaming(_) => self.tick(shared, now),
            State::Draining { .. } => Next::Close(CloseReason::WriteTimeout),
            State::Lingering { .. } => Next::Close(CloseReason::Finished),
        }
    }

    /// Sends a tick, or skips it if output is still pending, and moves the deadline one interval on.
    fn tick(&mut self, shared: &mut Shared, now: Instant) -> Next {
        let State::Streaming(stream) = &mut self.state else {
            return Next::Wait;
        };
        let (Some(due), Some(interval)) = (stream.next_tick, shared.config.tick_interval()) else {
            return Next::Wait;
        };
        if self.outbox.is_empty() {
            shared.frame.clear();
            sse::write_tick(&mut shared.frame, &clock::time_of_day(SystemTime::now()));
            if let Flush::Failed(error) = self.outbox.write_through(&mut self.socket, &shared.frame) {
                return Next::Close(close_reason(&error));
            }
            stream.events += 1;
            shared.counters.ticks_sent += 1;
            log::debug!("{}: tick {}", self.peer, stream.events);
        } else {
            stream.skipped += 1;
            shared.counters.ticks_skipped += 1;
            log::debug!("{}: tick skipped, {} bytes still unsent", self.peer, self.outbox.pending_bytes());
        }
        let (next, missed) = next_on_grid(due, interval, now);
        stream.next_tick = Some(next);
        stream.skipped += missed;
        shared.counters.ticks_skipped += missed;
        Next::Wait
    }

    /// `ReadingRequest`: answer buffered requests, read more, repeat, within the per-turn bound.
    fn read_requests(&mut self, shared: &mut Shared, now: Instant) -> Next {
        let mut scanned = 0; // leading bytes of `inbuf` already searched for the end of a head
        let mut reads = 0;
        loop {
            self.serve_buffered(shared, now, scanned);
            if !matches!(self.state, State::ReadingRequest { .. }) {
                // Became a stream or is closing: what the client sent after that request is not a request.
                self.discard_inbuf();
                return self.read_and_discard();
            }
            if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                if let Err(reason) = self.flush() {
                    return Next::Close(reason);
                }
                if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                    return Next::Wait; // resumed by the writable edge that drains the outbox
                }
                continue;
            }
            if !self.readable {
                return Next::Wait;
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

    /// Answers every complete request head in `inbuf`, in order, until the buffer holds no complete head,
    /// the state leaves `ReadingRequest`, or backpressure stops it.
    fn serve_buffered(&mut self, shared: &mut Shared, now: Instant, mut scanned: usize) {
        while !self.inbuf.is_empty() && self.outbox.pending_bytes() <= OUTBOX_HIGH_WATER {
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
                    if !matches!(self.state, State::ReadingRequest { .. }) {
                        return;
                    }
                    // Kept alive: the next head has the request timeout if it has begun, else idle time.
                    let head_started = !self.inbuf.is_empty();
                    let wait = if head_started {
                        shared.config.request_timeout()
                    } else {
                        shared.config.keepalive_timeout()
                    };
                    self.state = State::ReadingRequest { deadline: now + wait, head_started };
                }
            }
        }
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new(); // between requests a connection holds no buffer
        }
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

    /// Answers one complete request; may turn the connection into a stream or start closing it.
    fn answer(&mut self, request: &Request, shared: &mut Shared, now: Instant) {
        shared.counters.requests += 1;
        let persistence = if request.keep_alive && !request.has_body() && !self.over_capacity {
            Persistence::KeepAlive { http10: request.minor_version == 0 }
        } else {
            // A body we do not read must not be parsed as the next request: close after answering.
            Persistence::Close
        };
        let date = shared.dates.get(SystemTime::now());
        match routes::route(request, &shared.files, self.over_capacity) {
            Route::EventStream { head_only: false } => {
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, date);
                sse::write_tick(&mut out, &clock::time_of_day(SystemTime::now()));
                self.outbox.push_owned(out);
                let next_tick = shared.config.tick_interval().map(|interval| now + interval);
                self.state = State::Streaming(Stream {
                    opened: now,
                    next_tick,
                    events: 1,
                    skipped: 0,
                    input_bytes: 0,
                });
                shared.counters.streams_opened += 1;
                shared.counters.ticks_sent += 1;
                log::info!("stream from {} opened ({} open)", self.peer, shared.open_streams());
            }
            Route::EventStream { head_only: true } => {
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, date);
                self.outbox.push_owned(out);
                self.start_draining(&shared.config, now);
            }
            Route::File { file, head_only } => {
                let mut out = Vec::with_capacity(256);
                response::start(&mut out, 200, date);
                response::header(&mut out, "Content-Type", file.content_type);
                response::header(&mut out, "Cache-Control", "no-cache");
                response::header(&mut out, "X-Content-Type-Options", "nosniff");
                response::finish(&mut out, file.body.len(), persistence);
                self.outbox.push_owned(out);
                if !head_only {
                    self.outbox.push_shared(file.body.clone());
                }
                log::debug!("{}: {} -> 200 ({} bytes)", self.peer, request.target, file.body.len());
                if persistence == Persistence::Close {
                    self.start_draining(&shared.config, now);
                }
            }
            Route::StreamOverCapacity => {
                let retry = shared.jitter.between(OVER_CAPACITY_RETRY_MS.0, OVER_CAPACITY_RETRY_MS.1);
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, date);
                sse::write_comment(&mut out, "the server is at its connection limit; come back later");
                sse::write_retry(&mut out, retry);
                self.outbox.push_owned(out);
                self.start_draining(&shared.config, now);
                shared.counters.over_capacity += 1;
                log::debug!("{}: over capacity, told to retry in {retry} ms", self.peer);
            }
            Route::Refuse { status, reason, allow } => {
                let head_only = request.method == request::Method::Head;
                match status {
                    404 | 405 => {
                        log::info!("{}: {status} for {}: {}", self.peer, request.target, reason)
                    }
                    503 => {
                        shared.counters.over_capacity += 1;
                        log::debug!("{}: 503 {}", self.peer, reason);
                    }
                    _ => log::warn!("{}: {status} for {}: {}", self.peer, request.target, reason),
                }
                self.refuse(shared, now, status, reason, allow, head_only, persistence);
            }
        }
    }

    /// A head that cannot be parsed: answer its status and close.
    fn refuse_malformed(&mut self, shared: &mut Shared, now: Instant, error: RequestError) {
        log::warn!("{}: {} {}", self.peer, error.status(), error);
        let reason = match error {
            RequestError::Malformed(what) => what,
            RequestError::UriTooLong => "request line too long",
            RequestError::HeadTooLarge => "request head too large",
            RequestError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are served",
        };
        self.refuse(shared, now, error.status(), reason, None, false, Persistence::Close);
    }

    /// Queues a short plain-text error answer; closes after it unless `persistence` keeps the connection.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        shared: &mut Shared,
        now: Instant,
        status: u16,
        reason: &str,
        allow: Option<&str>,
        head_only: bool,
        persistence: Persistence,
    ) {
        shared.counters.errors += 1;
        let mut extra = Vec::new();
        if let Some(allow) = allow {
            extra.push(("Allow", allow));
        }
        if status == 503 {
            extra.push(("Retry-After", OVER_CAPACITY_RETRY_AFTER_S));
        }
        // Only a 404 or 405 leaves the request stream in a known state; after anything else, close.
        let persistence = if matches!(status, 404 | 405) { persistence } else { Persistence::Close };
        let mut out = Vec::with_capacity(256);
        response::plain(
            &mut out,
            shared.dates.get(SystemTime::now()),
            status,
            reason,
            &extra,
            head_only,
            persistence,
        );
        self.outbox.push_owned(out);
        if persistence == Persistence::Close {
            self.start_draining(&shared.config, now);
        }
    }

    fn start_draining(&mut self, config: &Config, now: Instant) {
        self.state = State::Draining { deadline: now + config.request_timeout() };
    }

    /// Bytes buffered after the request that ended reading: counted as stream input, then dropped.
    fn discard_inbuf(&mut self) {
        if let State::Streaming(stream) = &mut self.state {
            stream.input_bytes += self.inbuf.len() as u64;
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
                        stream.input_bytes += n as u64;
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

    /// Writes what is pending; once a closing connection's last byte is out, shuts its write side.
    fn finish_writes(&mut self, now: Instant) -> Result<(), CloseReason> {
        self.flush()?;
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

    /// Writes pending output until done or `WouldBlock`.
    fn flush(&mut self) -> Result<(), CloseReason> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        match self.outbox.flush(&mut self.socket) {
            Flush::Done | Flush::WouldBlock => Ok(()),
            Flush::Failed(error) => Err(close_reason(&error)),
        }
    }
}

/// The first deadline after `now` on the grid `due + k × interval`, and how many grid points were missed
/// on the way (ticks the loop was too late to send; skipped, never sent in a burst).
pub fn next_on_grid(due: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = due + interval;
    if next > now {
        return (next, 0);
    }
    let missed = ((now - next).as_nanos() / interval.as_nanos().max(1)) as u64 + 1;
    let skip = Duration::from_nanos((interval.as_nanos() as u64).saturating_mul(missed));
    (next + skip, missed)
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

    #[test]
    fn ticks_stay_on_their_grid_without_drift() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // On time, or a little late: the next deadline is the previous plus the interval, not now plus it.
        assert_eq!(next_on_grid(t0, ms(100), t0), (t0 + ms(100), 0));
        assert_eq!(next_on_grid(t0, ms(100), t0 + ms(37)), (t0 + ms(100), 0));
        // More than an interval late: the missed grid points are skipped and counted, the phase kept.
        assert_eq!(next_on_grid(t0, ms(100), t0 + ms(100)), (t0 + ms(200), 1));
        assert_eq!(next_on_grid(t0, ms(100), t0 + ms(250)), (t0 + ms(300), 2));
        assert_eq!(next_on_grid(t0, ms(1), t0 + ms(1000)), (t0 + ms(1001), 1000));
    }
}
