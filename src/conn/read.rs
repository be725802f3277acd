//! Reading: requests while the connection reads requests, and read-and-discard once it is a stream or
//! closing (to notice the peer leaving, and for the lingering close).
//!
//! Rules:
//! - Read until `WouldBlock`, but at most [`MAX_READS_PER_TURN`] reads per turn; stopped by the bound, a
//!   connection returns [`Next::Again`] and is driven again next turn.
//! - Every complete request buffered is answered in order before reading more (pipelining), unless the
//!   outbox is over [`OUTBOX_HIGH_WATER`] (backpressure: the rest waits in the kernel's buffers) or a
//!   publish is awaiting Redis (its answer must come first).
//! - Only an unfinished head is kept between reads, in `inbuf`; between requests `inbuf` holds no memory.
//! - After a request that ends reading (a stream started, or the connection is closing), what the client
//!   sent is not a request: it is counted (streams) and dropped, never parsed.

use std::time::Instant;

use super::inbuf::InBuf;
use super::socket::{ReadResult, read_some};
use super::{
    Connection, Flags, MAX_READS_PER_TURN, Next, OUTBOX_HIGH_WATER, STREAM_INPUT_LIMIT, Socket, State,
};
use crate::context::LoopContext;
use crate::http::request::{self, Parse};
use crate::metrics::CloseReason;

impl<S: Socket> Connection<S> {
    /// `ReadingRequest`, `ReadingBody`: answer what is buffered, read more, repeat, within the per-turn bound.
    pub(super) fn read_requests(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        let mut scanned = 0; // leading bytes of `inbuf` already searched for the end of a head
        let mut reads = 0;
        loop {
            self.serve_buffered(cx, now, scanned);
            if self.flags.replace(Flags::DEFERRED, false) {
                return Next::Again;
            }
            if !self.is_reading() {
                // Became a stream or is closing: what the client sent after that request is not a request
                // (the state that read it took it along: see `set_state`).
                return self.read_and_discard();
            }
            if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                if let Err(reason) = self.flush(cx, now) {
                    return Next::Close(reason);
                }
                if self.outbox.pending_bytes() > OUTBOX_HIGH_WATER {
                    return Next::Wait; // resumed by the writable edge that drains the outbox
                }
                scanned = 0; // answered requests left `inbuf` since the last read: search it again
                continue;
            }
            if !self.flags.has(Flags::READABLE) || matches!(self.state, State::AwaitingPublish { .. }) {
                return Next::Wait; // (while a publish awaits Redis, nothing more is read: bounded)
            }
            if reads == MAX_READS_PER_TURN {
                return Next::Again;
            }
            reads += 1;
            scanned = self.inbuf_len();
            match read_some(&mut self.socket, &mut cx.scratch) {
                ReadResult::Data(n) => {
                    if let Some(inbuf) = self.state.inbuf_mut() {
                        inbuf.extend_from_slice(&cx.scratch[..n]); // always: `is_reading` is `inbuf().is_some()`
                    }
                }
                ReadResult::WouldBlock => {
                    self.flags.replace(Flags::READABLE, false);
                    return Next::Wait;
                }
                ReadResult::Eof if self.outbox.is_empty() => {
                    return Next::Close(CloseReason::PeerClosed);
                }
                ReadResult::Eof => {
                    // The client half-closed after its requests; it may still read the answers.
                    self.flags.replace(Flags::READABLE, false);
                    let deadline = cx.clock.stamp(now + cx.config.request_timeout());
                    self.set_state(State::Draining { deadline }, cx, now);
                    return Next::Wait;
                }
                ReadResult::Failed(reason) => return Next::Close(reason),
            }
        }
    }

    /// Answers every complete request (head, and body for a publish) in `inbuf`, in order, until the
    /// buffer holds no complete one, the state leaves the reading states, or backpressure stops it.
    fn serve_buffered(&mut self, cx: &mut LoopContext, now: Instant, mut scanned: usize) {
        while self.is_reading() && self.outbox.pending_bytes() <= OUTBOX_HIGH_WATER {
            if let State::AwaitingPublish { .. } = self.state {
                return; // the next request waits for this publish's answer, in order
            }
            if let State::ReadingBody { publish, inbuf, .. } = &mut self.state {
                if inbuf.len() < publish.length {
                    return; // more of the body to come
                }
                if publish.then_stream.is_none() && !cx.hub.has_publish_budget() {
                    self.flags.replace(Flags::DEFERRED, true); // publish in a later turn, once the fan-out's lap is over
                    return;
                }
                let body = inbuf.take_front(publish.length);
                let idle = self.idle_state(cx, now);
                if let State::ReadingBody { publish, .. } = self.set_state(idle, cx, now) {
                    self.finish_body(cx, now, *publish, body);
                }
                scanned = 0;
                continue;
            }
            let Some(inbuf) = self.state.inbuf().filter(|inbuf| !inbuf.is_empty()) else {
                break;
            };
            match request::parse(inbuf.bytes(), scanned, cx.limits) {
                Ok(Parse::Partial) => {
                    self.note_head_started(cx, now);
                    return;
                }
                Err(error) => {
                    self.refuse_and_close(cx, now, error.into());
                    return;
                }
                Ok(Parse::Complete { request, head_len }) => {
                    if let Some(inbuf) = self.state.inbuf_mut() {
                        inbuf.consume(head_len); // parsed: dropped, not copied
                    }
                    scanned = 0;
                    self.answer(&request, cx, now);
                    if let State::ReadingRequest { .. } = self.state {
                        let idle = self.idle_state(cx, now); // kept alive: a new deadline
                        self.set_state(idle, cx, now);
                    }
                }
            }
        }
    }

    /// The reading state after an answer: the next head has the request timeout if it has begun, else
    /// the keep-alive time.
    pub(super) fn idle_state(&self, cx: &LoopContext, now: Instant) -> State {
        let head_started = self.inbuf_len() > 0;
        let wait = if head_started { cx.config.request_timeout() } else { cx.config.keepalive_timeout() };
        State::ReadingRequest { deadline: cx.clock.stamp(now + wait), head_started, inbuf: InBuf::default() }
    }

    /// The first bytes of a head arrived: from now on it has the request timeout to complete.
    fn note_head_started(&mut self, cx: &LoopContext, now: Instant) {
        if let State::ReadingRequest { deadline, head_started, .. } = &mut self.state
            && !*head_started
        {
            *head_started = true;
            *deadline = deadline.earlier(cx.clock.stamp(now + cx.config.request_timeout()));
        }
    }

    /// Bytes read and not yet parsed (only a reading state has any).
    pub(super) fn inbuf_len(&self) -> usize {
        self.state.inbuf().map_or(0, InBuf::len)
    }

    /// `Streaming`, `Draining`, `Lingering`: read (to notice the peer leaving) and discard, bounded.
    pub(super) fn read_and_discard(&mut self) -> Next {
        let mut scratch = [0u8; 4096];
        for _ in 0..MAX_READS_PER_TURN {
            if !self.flags.has(Flags::READABLE) {
                return Next::Wait;
            }
            match read_some(&mut self.socket, &mut scratch) {
                ReadResult::Data(n) => {
                    if let State::Streaming(stream) = &mut self.state {
                        stream.input_bytes =
                            stream.input_bytes.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
                    }
                }
                ReadResult::WouldBlock => {
                    self.flags.replace(Flags::READABLE, false);
                    return Next::Wait;
                }
                ReadResult::Eof => match self.state {
                    State::Streaming(_) => return Next::Close(CloseReason::PeerClosed),
                    State::Lingering { .. } => return Next::Close(CloseReason::Finished),
                    _ => {
                        self.flags.replace(Flags::READABLE, false); // half-closed while we finish writing
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
}
