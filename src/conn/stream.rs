//! What only event streams do: start (head, comment, `retry:`, replay), tick, heartbeat, and catch up with
//! published events.
//!
//! Rules:
//! - A stream's output is its outbox (head, ticks, comments, partial-write tails) followed by the hub's
//!   ring from its cursor. A tick or heartbeat is only written when the stream is *caught up* (outbox
//!   empty, cursor at the ring's end): it then goes straight to the socket, and its bytes can never land
//!   between a published event's bytes.
//! - Ticks keep their phase: each deadline is the previous one plus the interval, never "now" plus the
//!   interval, which would drift by the loop's lateness on every tick. A tick that falls due while the
//!   stream is not caught up is skipped and counted: a stale clock reading helps nobody.
//! - A finite stream (`/home/stream?count=N`) counts the ticks it sends; after the last one, being caught
//!   up (the tick was just written), it queues `data: [DONE]` if asked and starts draining: everything
//!   written, then the FIN. With `count=0` it ends once the preamble and any replay are out.
//! - Heartbeats are lazy: the timer is armed once per heartbeat period and, when it fires, checks how long
//!   the stream has really been silent. Writes never touch the timer queue.

use std::time::{Duration, Instant, SystemTime};

use super::state::{State, Stream, StreamEnd, shaped_bytes_per_s};
use super::{Connection, Next, Socket};
use crate::clock;
use crate::config::Config;
use crate::context::LoopContext;
use crate::http::refusal::Refusal;
use crate::http::response::{self, Cors};
use crate::hub;
use crate::metrics::CloseReason;
use crate::routes::StreamOptions;
use crate::sse;

/// The comment sent to a stream that has been silent for `--heartbeat-ms`.
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

impl<S: Socket> Connection<S> {
    /// Turns this connection into an event stream: queues the head, a comment (so that the head and
    /// `open` get through proxies at once), `retry:`, the `lost` signal if events the client had not
    /// seen were dropped, and the first tick. Published events to replay follow from the ring.
    pub(super) fn start_stream(
        &mut self,
        cx: &mut LoopContext,
        now: Instant,
        options: StreamOptions,
        cors: Option<&Cors>,
    ) {
        // On its topics first: with no room for a new topic, the request is refused before any byte.
        let Ok(subscription) = cx.hub.topics.subscribe(cx.handling, &options.topics) else {
            self.refuse_and_close(cx, now, Refusal::TooManyTopics);
            return;
        };
        let resume = cx.hub.resume(subscription, options.last_event_id);
        let replay = cx.hub.owed(subscription, resume.cursor).count() as u64;
        let mut out = Vec::with_capacity(320);
        response::event_stream_head(&mut out, cx.dates.get(SystemTime::now()), cors);
        sse::write_comment(&mut out, "ok");
        sse::write_retry(&mut out, cx.config.retry_ms);
        if let Some((last, first_available)) = resume.lost {
            hub::write_lost(&mut out, last, first_available);
        }
        let (end, mut ticks_left) = match options.end {
            None => (StreamEnd::Never, 0),
            Some(finite) if finite.done => (StreamEnd::AfterCountThenDone, finite.count),
            Some(finite) => (StreamEnd::AfterCount, finite.count),
        };
        let finished = end != StreamEnd::Never && ticks_left == 0;
        let mut events = 0u32;
        let mut next_tick = options.interval.map(|interval| now + interval);
        if options.interval.is_some() || finished {
            if replay == 0 && !finished {
                write_tick(&mut out, options.payload_bytes); // the first tick goes out with the head
                events = 1;
                ticks_left = ticks_left.saturating_sub(1);
            } else if replay > 0 {
                next_tick = Some(now); // after the replay, still this turn if the kernel takes it all
            }
        }
        self.outbox.push_owned(out);
        let clock = cx.clock;
        let interval_ms = options.interval.map_or(0, |i| i.as_millis() as u32);
        let stream = State::Streaming(Stream {
            opened_tenths: clock.tenths(now),
            next_tick: next_tick.map(|at| clock.stamp(at)),
            interval_ms,
            payload_bytes: options.payload_bytes,
            cursor: resume.cursor,
            events,
            skipped: 0,
            input_bytes: 0,
            ticks_left,
            end,
            shaped: shaped_bytes_per_s(&cx.config, interval_ms, options.payload_bytes) > 0,
            watch_at: next_watch(&cx.config, true, now, now).map(|at| clock.stamp(at)),
        });
        self.set_state(stream, cx, now);
        cx.counters.events_sent += u64::from(events);
        cx.counters.replayed += replay;
        if replay == 0 && end != StreamEnd::Never && ticks_left == 0 {
            self.end_finite_stream(cx, now); // `count=1` (its tick went with the head) or `count=0`
        }
    }

    /// A finite stream sent its count of ticks and is caught up: `data: [DONE]` if it was asked for, then
    /// the end (draining: the FIN once everything is written).
    fn end_finite_stream(&mut self, cx: &mut LoopContext, now: Instant) {
        let State::Streaming(stream) = &mut self.state else { return };
        if stream.end == StreamEnd::AfterCountThenDone {
            self.outbox.push_owned(DONE.to_vec());
            stream.events = stream.events.saturating_add(1);
            cx.counters.events_sent += 1;
        }
        log::debug!("{}: the stream sent its count of ticks; ending it", self.peer);
        self.start_draining(cx, now); // leaves `Streaming`: the stream's end is accounted there
    }

    /// The stream's deadline passed: tick and/or check for silence.
    pub(super) fn on_stream_deadline(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        // Catch up first: a tick or heartbeat may only follow everything already owed.
        if let Err(reason) = self.flush(cx, now) {
            return Next::Close(reason);
        }
        let caught_up = self.caught_up(cx);
        let clock = cx.clock;
        let last_write = clock.instant(self.last_write, now);
        let State::Streaming(stream) = &mut self.state else { return Next::Wait };

        let mut frame = None;
        if let Some(due) = stream.next_tick.map(|at| clock.instant(at, now))
            && due <= now
        {
            if caught_up && stream.end != StreamEnd::Never && stream.ticks_left == 0 {
                frame = Some(Frame::End); // `count=0` after a replay: nothing more to send
            } else if caught_up {
                cx.frame.clear();
                write_tick(&mut cx.frame, stream.payload_bytes);
                frame = Some(Frame::Tick);
            } else {
                stream.skipped = stream.skipped.saturating_add(1);
                cx.counters.ticks_skipped += 1;
                log::debug!("{}: tick skipped, earlier output still unsent", self.peer);
            }
            let interval = Duration::from_millis(stream.interval_ms.max(1).into());
            let (next, missed) = next_on_grid(due, interval, now);
            stream.next_tick = Some(clock.stamp(next));
            stream.skipped = stream.skipped.saturating_add(missed.min(u16::MAX.into()) as u16);
            cx.counters.ticks_skipped += missed;
        }
        // The watch: a heartbeat fills a silence; a stream that owes bytes but got none out for
        // --write-stall-timeout-ms has a peer that vanished without a FIN, or never reads: it is closed.
        if let Some(check) = stream.watch_at.map(|at| clock.instant(at, now))
            && check <= now
        {
            let quiet = now.saturating_duration_since(last_write);
            if !caught_up && cx.config.write_stall_timeout().is_some_and(|limit| quiet >= limit) {
                log::info!("{}: nothing could be written for {quiet:?}; closing the stream", self.peer);
                return Next::Close(CloseReason::WriteTimeout);
            }
            if frame.is_none() && caught_up && cx.config.heartbeat().is_some_and(|period| quiet >= period) {
                cx.frame.clear();
                cx.frame.extend_from_slice(HEARTBEAT);
                frame = Some(Frame::Heartbeat);
            }
            let last = if frame.is_some() { now } else { last_write };
            stream.watch_at = next_watch(&cx.config, caught_up, last, now).map(|at| clock.stamp(at));
        }
        let Some(frame) = frame else {
            self.watch_stall(cx, now);
            return Next::Wait;
        };
        if let Frame::End = frame {
            self.end_finite_stream(cx, now);
            return self.finish_writes(cx, now).into();
        }

        let before = self.outbox.pending_bytes();
        if let super::outbox::Flush::Failed(error) = self.outbox.write_through(&mut self.socket, &cx.frame) {
            return Next::Close(super::socket::close_reason(&error));
        }
        let written = cx.frame.len() - (self.outbox.pending_bytes() - before);
        cx.counters.bytes_sent += written as u64;
        self.last_write = clock.stamp(now);
        let State::Streaming(stream) = &mut self.state else { return Next::Wait };
        match frame {
            Frame::Tick => {
                stream.events = stream.events.saturating_add(1);
                cx.counters.events_sent += 1;
                log::debug!("{}: tick {}", self.peer, stream.events);
                if stream.end != StreamEnd::Never {
                    stream.ticks_left = stream.ticks_left.saturating_sub(1);
                    if stream.ticks_left == 0 {
                        self.end_finite_stream(cx, now); // caught up: the tick was just written through
                        return self.finish_writes(cx, now).into();
                    }
                }
            }
            Frame::Heartbeat | Frame::End => {
                cx.counters.heartbeats += 1;
                log::debug!("{}: heartbeat", self.peer);
            }
        }
        Next::Wait
    }

    /// After a publish: a stream waiting for nothing writes the new events now. (A stream with bytes
    /// pending is waiting for a writable edge, and that flush will take the new events too.) A stream
    /// whose cursor fell off the ring is closed now rather than at its next write.
    pub fn catch_up(&mut self, cx: &mut LoopContext, now: Instant) -> Next {
        let State::Streaming(stream) = &self.state else { return Next::Wait };
        let subscription = cx.hub.topics.subscription(cx.handling.slot);
        if cx.hub.fell_behind(subscription, stream.cursor) {
            return Next::Close(CloseReason::FellBehind);
        }
        if self.outbox.is_empty()
            && cx.hub.owes(subscription, stream.cursor)
            && let Err(reason) = self.flush(cx, now)
        {
            return Next::Close(reason);
        }
        // What is still owed after writing all the kernel would take.
        let State::Streaming(stream) = &self.state else { return Next::Wait };
        let Some(lag) = cx.hub.lag_bytes(subscription, stream.cursor) else {
            return Next::Close(CloseReason::FellBehind);
        };
        let pending = lag + self.outbox.pending_bytes() as u64;
        if pending > cx.config.max_pending_bytes {
            log::info!("{}: {pending} bytes behind; dropping the stream (--max-pending-bytes)", self.peer);
            return Next::Close(CloseReason::SlowReader);
        }
        self.watch_stall(cx, now);
        Next::Wait
    }

    /// A stream that owes bytes must be looked at when its stall timeout would run out, even if its
    /// watch was armed for a heartbeat much later (it was caught up then).
    fn watch_stall(&mut self, cx: &LoopContext, now: Instant) {
        if self.caught_up(cx) {
            return;
        }
        let last_write = cx.clock.instant(self.last_write, now);
        if let State::Streaming(stream) = &mut self.state
            && let Some(at) = next_watch(&cx.config, false, last_write, now)
        {
            let at = cx.clock.stamp(at);
            stream.watch_at = Some(stream.watch_at.map_or(at, |armed| armed.earlier(at)));
        }
    }

    /// Shutting down: once this stream has sent everything it owes, it ends with a `retry:` drawn from
    /// the spread, so that its client comes back to a restarted server at its own moment rather than in
    /// one storm with every other. Returns whether it ended.
    pub(super) fn end_stream_for_shutdown(&mut self, cx: &mut LoopContext, now: Instant) -> bool {
        let Some(spread) = cx.shutdown_spread_ms else { return false };
        if !self.caught_up(cx) {
            return false;
        }
        let retry = cx.config.retry_ms + cx.jitter.between(0, spread);
        let mut out = Vec::with_capacity(24);
        sse::write_retry(&mut out, retry);
        self.outbox.push_owned(out);
        log::debug!("{}: ending the stream for the shutdown, retry in {retry} ms", self.peer);
        self.start_draining(cx, now); // leaves `Streaming`: the stream's end is accounted there
        true
    }

    /// Whether this stream has nothing owed: its outbox is empty and no frame of its topics waits.
    fn caught_up(&self, cx: &LoopContext) -> bool {
        match &self.state {
            State::Streaming(stream) => {
                self.outbox.is_empty()
                    && !cx.hub.owes(cx.hub.topics.subscription(cx.handling.slot), stream.cursor)
            }
            _ => false,
        }
    }
}

/// When a stream's watch should next look: at the end of a heartbeat period of silence if it is caught
/// up, at the end of the stall timeout if it owes bytes; never in the past, and never unarmed while either
/// is on (a caught-up stream may start to owe bytes without touching its timer).
fn next_watch(config: &Config, caught_up: bool, last_sent: Instant, now: Instant) -> Option<Instant> {
    let (heartbeat, stall) = (config.heartbeat(), config.write_stall_timeout());
    let next = if caught_up {
        heartbeat.map(|period| last_sent + period).or(stall.map(|limit| now + limit))
    } else {
        stall.map(|limit| last_sent + limit).or(heartbeat.map(|period| now + period))
    };
    next.map(|at| at.max(now + Duration::from_millis(1)))
}

/// The last event of a finite stream asked to end with it (`done=1`).
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// What a stream deadline writes.
enum Frame {
    Tick,
    Heartbeat,
    /// Nothing: a finite stream ends.
    End,
}

/// Appends a tick with `payload_bytes` of data: the time of day now, then padding.
fn write_tick(out: &mut Vec<u8>, payload_bytes: u32) {
    sse::write_tick(out, &clock::time_of_day(SystemTime::now()), payload_bytes as usize);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Stamp;

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

    #[test]
    fn the_deadline_is_the_earlier_of_tick_and_heartbeat() {
        let ms = Stamp::from_ms;
        let mut stream = Stream {
            opened_tenths: std::num::NonZeroU32::MIN,
            next_tick: Some(ms(30)),
            interval_ms: 30,
            payload_bytes: 12,
            cursor: 0,
            events: 0,
            skipped: 0,
            input_bytes: 0,
            ticks_left: 0,
            end: StreamEnd::Never,
            shaped: false,
            watch_at: Some(ms(20)),
        };
        assert_eq!(stream.deadline(), Some(ms(20)));
        stream.watch_at = None;
        assert_eq!(stream.deadline(), Some(ms(30)));
        // Across the 32-bit wrap, the earlier one is still the earlier one.
        stream.next_tick = Some(ms(u64::from(u32::MAX) - 5));
        stream.watch_at = Some(ms(u64::from(u32::MAX) + 10));
        assert_eq!(stream.deadline(), Some(ms(u64::from(u32::MAX) - 5)));
        stream.watch_at = None;
        stream.next_tick = None;
        assert_eq!(stream.deadline(), None);
    }
}
