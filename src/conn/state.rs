//! The connection state machine: every state a connection can be in, the one diagram, and the one
//! function through which every change of state goes.
//!
//! ```text
//!  accept
//!    │
//!    ▼            answered, kept alive: the same state with a new deadline
//!  ReadingRequest ◄──────────────────────────────────────────────────────────────┐
//!    │ │ │ │                                                                     │
//!    │ │ │ └─ POST /home/events ──► ReadingBody ── body whole, published here ───┤
//!    │ │ │                               │                                       │
//!    │ │ │                               └─ (--redis) ──► AwaitingPublish ─ id ──┘
//!    │ │ │                                                   │ Redis failed or timed out: 503
//!    │ │ └─ GET /home/events ──► Streaming                   │
//!    │ │                            │ shutdown, caught up    │
//!    │ │                            │ (jittered `retry:`)    │
//!    │ └─ refusal that closes, ─────┼────────────────────────┤
//!    │    `Connection: close`,      ▼                        ▼
//!    │    408, EOF after requests  Draining ◄────────────────┘
//!    │                              │ outbox empty: shut the write side (FIN)
//!    │                              ▼
//!    │                            Lingering ── peer's EOF, or LINGER passed ──► Closed
//!    │
//!    └─ from any state: peer closed or reset, write failed, idle/write timeout,
//!       fell behind, slow reader, too much input ─────────────────────────────► Closed
//! ```
//!
//! `/home/stream` takes the same paths as `GET /home/events`; its POST reads its body in `ReadingBody`
//! (dropped, not published) and then streams; a finite one (`?count=N`) goes from `Streaming` to
//! `Draining` after its last tick, as a stream does at shutdown.
//!
//! Rules:
//! - Every change of state goes through `Connection::set_state`; nothing else assigns the state. It
//!   traces `old => new` (at `trace`), and it is the one place that accounts for a stream's life: entering
//!   `Streaming` counts and logs the stream's opening, leaving it counts and logs its end, whatever the
//!   cause (the client left, it fell behind, the server shut down).
//! - A state carries the data only it needs (its deadline, the publish in progress, the stream's
//!   figures), so a field cannot be read in a state where it means nothing.
//! - `Closed` is final: the server removes a closed connection from the slab in the same call.

use std::fmt;
use std::time::Instant;

use crate::clock::Stamp;

use super::Connection;
use super::inbuf::InBuf;
use crate::config::Config;
use crate::context::LoopContext;
use crate::http::response::{Cors, Persistence};
use crate::metrics::CloseReason;
use crate::routes::{MIN_PAYLOAD_BYTES, StreamOptions};

/// The protocol phase of a connection, with the data only that phase needs.
#[derive(Debug)]
pub enum State {
    /// Waiting for a request head. `head_started` tells a head in progress (deadline: the request
    /// timeout) from an idle connection (deadline: the keep-alive or first-byte timeout).
    ReadingRequest { deadline: Stamp, head_started: bool, inbuf: InBuf },
    /// Reading the body of a publish.
    ReadingBody { deadline: Stamp, publish: Box<PendingPublish>, inbuf: InBuf },
    /// A publish was sent to the backplane; its answer waits for Redis's reply (later requests wait too).
    AwaitingPublish { deadline: Stamp, publish: Box<PendingPublish>, inbuf: InBuf },
    /// An event stream.
    Streaming(Stream),
    /// Writing the last response, then the write side is shut.
    Draining { deadline: Stamp },
    /// Write side shut; waiting for the peer to close.
    Lingering { deadline: Stamp },
    /// Done: the server frees the slot.
    Closed(CloseReason),
}

/// Unparsed bytes go from one reading state to the next (a body after its head, pipelined requests
/// after an answer); into a stream they count as its client's input and are dropped (a stream reads no
/// more requests); into any other state they are dropped.
fn carry_inbuf(old: &mut State, new: &mut State) {
    let Some(carried) = old.inbuf_mut().map(std::mem::take) else { return };
    if carried.is_empty() {
        return;
    }
    match new {
        State::Streaming(stream) => {
            let len = u16::try_from(carried.len()).unwrap_or(u16::MAX);
            stream.input_bytes = stream.input_bytes.saturating_add(len);
        }
        other => {
            if let Some(inbuf) = other.inbuf_mut() {
                *inbuf = carried;
            }
        }
    }
}

/// A publish whose body is arriving, or whose id is awaited from the backplane.
#[derive(Debug)]
pub struct PendingPublish {
    /// The topic (`?topic=`); none: the default topic.
    pub topic: Option<String>,
    /// The event name (`?event=`), if any.
    pub event: Option<String>,
    /// The body's length (`Content-Length`).
    pub length: usize,
    /// Whether the connection stays open after the answer.
    pub persistence: Persistence,
    /// The request's CORS grant, for the answer.
    pub cors: Option<Cors>,
    /// `POST /home/stream`: the body is read and dropped, and then this stream starts (no publish).
    pub then_stream: Option<StreamOptions>,
}

impl State {
    /// The state's name, for traces and tests.
    pub fn name(&self) -> &'static str {
        match self {
            State::ReadingRequest { .. } => "ReadingRequest",
            State::ReadingBody { .. } => "ReadingBody",
            State::AwaitingPublish { .. } => "AwaitingPublish",
            State::Streaming(_) => "Streaming",
            State::Draining { .. } => "Draining",
            State::Lingering { .. } => "Lingering",
            State::Closed(_) => "Closed",
        }
    }

    /// The deadline this state wants armed.
    pub fn deadline(&self) -> Option<Stamp> {
        match self {
            State::ReadingRequest { deadline, .. }
            | State::ReadingBody { deadline, .. }
            | State::AwaitingPublish { deadline, .. }
            | State::Draining { deadline }
            | State::Lingering { deadline } => Some(*deadline),
            State::Streaming(stream) => stream.deadline(),
            State::Closed(_) => None,
        }
    }

    /// The bytes read and not yet parsed, in the states that parse requests. Only they have such bytes
    /// (an unfinished head, a body on its way, pipelined requests), so they keep them, and a stream's
    /// state, the largest, sets the connection's size without them.
    pub fn inbuf(&self) -> Option<&InBuf> {
        match self {
            State::ReadingRequest { inbuf, .. }
            | State::ReadingBody { inbuf, .. }
            | State::AwaitingPublish { inbuf, .. } => Some(inbuf),
            _ => None,
        }
    }

    /// [`State::inbuf`], to change.
    pub fn inbuf_mut(&mut self) -> Option<&mut InBuf> {
        match self {
            State::ReadingRequest { inbuf, .. }
            | State::ReadingBody { inbuf, .. }
            | State::AwaitingPublish { inbuf, .. } => Some(inbuf),
            _ => None,
        }
    }

    /// Moves the state's own deadline (not a stream's: its deadlines are its ticks and its watch).
    pub fn move_deadline(&mut self, at: Stamp) {
        match self {
            State::ReadingRequest { deadline, .. }
            | State::ReadingBody { deadline, .. }
            | State::AwaitingPublish { deadline, .. }
            | State::Draining { deadline }
            | State::Lingering { deadline } => *deadline = at,
            State::Streaming(_) | State::Closed(_) => {}
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<S> Connection<S> {
    /// The one place a connection changes state. Accounts for a stream's opening and end. Returns the
    /// state left, for the data it carried (a publish in progress).
    pub(super) fn set_state(&mut self, new: State, cx: &mut LoopContext, now: Instant) -> State {
        let mut old = std::mem::replace(&mut self.state, new);
        carry_inbuf(&mut old, &mut self.state);
        log::trace!("{}: {old} => {}", self.peer, self.state);
        match (&old, &self.state) {
            (State::Streaming(_), State::Streaming(_)) => {}
            (_, State::Streaming(stream)) => {
                let subscription = cx.hub.topics.subscription(cx.handling.slot);
                let replay = cx.hub.owed(subscription, stream.cursor).count();
                cx.counters.streams_opened += 1;
                cx.gauges.open_streams += 1;
                cx.gauges.shaped_bytes_per_s += stream.shaped_bytes_per_s(&cx.config);
                if !cx.opened_lines.allow(now) {
                    return old;
                }
                log::info!(
                    "stream from {} opened ({} open){}",
                    self.peer,
                    cx.gauges.open_streams,
                    if replay > 0 { format!(", replaying {replay} events") } else { String::new() }
                );
            }
            (State::Streaming(stream), new) => {
                // A label for the summary (no allocation for a line held back), words for the log line.
                let label = match new {
                    State::Closed(reason) => reason.label(),
                    _ if cx.shutting_down() => "shutdown", // ended by the server, with a `retry:`
                    _ => "count_reached",                  // a finite /home/stream
                };
                cx.hub.topics.unsubscribe(cx.handling.slot);
                cx.counters.streams_closed += 1;
                cx.gauges.open_streams -= 1;
                cx.gauges.shaped_bytes_per_s -= stream.shaped_bytes_per_s(&cx.config);
                if !cx.closed_lines.allow_because(now, label) {
                    return old; // summed up, with its reason, in the summary line
                }
                let why = match new {
                    State::Closed(reason) => reason.to_string(),
                    _ if cx.shutting_down() => "shutdown".to_string(),
                    _ => "its count was reached".to_string(),
                };
                log::info!(
                    "stream from {} closed after {:.1} s, {} events sent, {} skipped ({why}; {} open)",
                    self.peer,
                    f64::from(cx.clock.tenths(now).get().saturating_sub(stream.opened_tenths.get())) / 10.0,
                    stream.events,
                    stream.skipped,
                    cx.gauges.open_streams
                );
            }
            _ => {}
        }
        old
    }
}

/// The state of one event stream: 40 bytes. (`repr(C)` keeps `shaped`, a `bool`, last: the other states
/// fit before it and `State` keeps its tag in the values a `bool` cannot take: 40 bytes, not 48. A
/// finite stream's count and end fit in the 3 bytes `skipped` gave up by being 16 bits.)
#[derive(Debug)]
#[repr(C)]
pub struct Stream {
    /// Id of the next published event to send.
    pub cursor: u64,
    /// When the next tick falls due (`None` when this stream has no ticks).
    pub next_tick: Option<Stamp>,
    /// When to next look at the stream's silence: a heartbeat due, or a write stalled too long (`None`
    /// when both are off).
    pub watch_at: Option<Stamp>,
    /// This stream's tick interval in ms, 0 for none (the server's, or the client's `?interval_ms=`
    /// within bounds; flags cap it at a day, so it fits). Kept small: there is one per stream.
    pub interval_ms: u32,
    /// Length of each tick's data (`?bytes=`): the time of day, then padding.
    pub payload_bytes: u32,
    /// Frames handed to this client whole: ticks and published events (saturating: it is for the log).
    pub events: u32,
    /// When it opened, in tenths of a second since the loop's epoch ([`crate::clock::LoopClock::tenths`]).
    pub opened_tenths: std::num::NonZeroU32,
    /// Ticks skipped because output was still pending when they fell due (saturating: it is for the log;
    /// `mio_sse_ticks_skipped_total` has the exact sum).
    pub skipped: u16,
    /// Bytes the client sent after its request (read and discarded; saturating, past the limit it closes).
    pub input_bytes: u16,
    /// A finite stream's ticks still to send (see `end`).
    pub ticks_left: u16,
    /// Whether the stream ends when `ticks_left` reaches 0, and how.
    pub end: StreamEnd,
    /// Shaped by its client (`?interval_ms=`, `?bytes=`): it takes a share of `--max-shaped-bytes-per-s`.
    pub shaped: bool,
}

impl Stream {
    /// What this stream takes of `--max-shaped-bytes-per-s` (see [`shaped_bytes_per_s`]).
    pub fn shaped_bytes_per_s(&self, config: &Config) -> u64 {
        if !self.shaped {
            return 0;
        }
        shaped_bytes_per_s(config, self.interval_ms, self.payload_bytes)
    }

    /// The earliest of the next tick and the next heartbeat check.
    pub fn deadline(&self) -> Option<Stamp> {
        match (self.next_tick, self.watch_at) {
            (Some(a), Some(b)) => Some(a.earlier(b)),
            (a, b) => a.or(b),
        }
    }
}

/// How a stream ends on its own (every stream also ends when its client leaves or the server stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Never: `/home/events`, and `/home/stream` without `count`.
    Never,
    /// After its count of ticks: everything written, then a FIN (and a lingering close).
    AfterCount,
    /// The same, with a last event `data: [DONE]` before the FIN.
    AfterCountThenDone,
}

/// The tick bytes per second a stream asks for if the client shaped it (`?interval_ms=`, `?bytes=`),
/// else 0. Computed the same way when the stream opens and when it ends, so the budget is given back
/// exactly.
pub fn shaped_bytes_per_s(config: &Config, interval_ms: u32, payload_bytes: u32) -> u64 {
    let default_ms = config.tick_interval().map_or(0, |i| i.as_millis() as u64);
    let shaped = u64::from(interval_ms) != default_ms || payload_bytes != MIN_PAYLOAD_BYTES;
    if !shaped || interval_ms == 0 {
        return 0;
    }
    // A tick's frame is `data: ` + the payload + a blank line.
    (u64::from(payload_bytes) + 8) * 1000 / u64::from(interval_ms)
}
