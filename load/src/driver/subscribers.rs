//! The subscribers' lifecycle in the driver: opening streams at the ramp's pace, each connection
//! attempt, driving a socket, closing an attempt, reconnecting, connect timeouts, the storm, and
//! counting streams as they settle.
//!
//! Rules:
//! - A subscriber is a slab slot ([`Sub`]) that outlives its attempts: between two attempts it keeps what
//!   a browser keeps (the parser with the last event id, the `retry:` time).
//! - At most [`OPENS_PER_TURN`] new streams a turn, whatever the ramp asks.
//! - A client whose per-turn read bound stopped it before `WouldBlock` is driven again next turn: no new
//!   edge will come for bytes already in its socket.
//! - Each stream settles once (its first attempt got a head or failed); the run is ready when all have.
//! - An attempt ends once, in one count: connected, or a failure by cause; or, for a dropped stream
//!   coming back (`--reconnect`), a retry by cause ([`Driver::attempt_failed`]): a server that restarts
//!   resets or refuses some reconnections, and a browser simply tries again after its `retry:` time. A
//!   subscriber that will not try again is retired once ([`Driver::retire`]): stopped (churn: removed,
//!   its cycle over).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use mio_sse_wire::parser::Parser;

use super::Driver;
use super::plan::Mode;
use super::stamps::Clock;
use crate::client::{self, Client, Reads};
use crate::ids::StreamIds;

/// Tries of a connect that fails for a shortage of the moment before it counts as a failure.
const MAX_TRANSIENT_RETRIES: u8 = 8;
/// The first pause before such a try; it doubles each time (50 ms … 6.4 s).
const TRANSIENT_PAUSE: Duration = Duration::from_millis(50);

/// New connections opened per turn at most, whatever the ramp asks.
const OPENS_PER_TURN: usize = 256;

/// One subscriber slot: the client of the current attempt, and what outlives attempts.
pub(super) struct Sub {
    pub(super) client: Option<Client>,
    /// The parser of the last attempt, kept for the next (its last event id), and its retry time.
    parser: Option<Box<Parser>>,
    /// (32 bits: a `retry:` of 49 days is plenty, and the table entry stays small.)
    retry_ms: u32,
    /// The stream's ids so far, checked across its attempts.
    pub(super) ids: StreamIds,
    /// Attempts made (the first is a connect, the others reconnects).
    pub(super) attempts: u32,
    /// When the stream was dropped (by the storm or the server), until it is back.
    pub(super) dropped_at: Option<Instant>,
    /// The first tick's time of day (ms, below 86,400,000: 32 bits), the origin of this stream's tick grid.
    pub(super) tick_origin: Option<u32>,
    pub(super) got_event: bool,
    /// This attempt has seen an event with an id (the first one is checked as a reconnection's).
    pub(super) got_id: bool,
    /// Stop for good (a non-200, or churn finished).
    pub(super) stopped: bool,
    slow: bool,
    /// Its source address: an index into the plan's list (4 bytes, not an 18-byte `IpAddr`; none when
    /// the list is empty).
    source: u32,
    /// Its first attempt has ended in a head or a failure (counted once in `Driver::settled`).
    settled: bool,
    /// Connect attempts in a row that failed for a shortage of the moment (see `client::is_transient`).
    pub(super) transient_failures: u8,
    /// Ticks received over all its attempts (saturating; counted with `--tick-interval-ms`).
    pub(super) ticks: u32,
    /// Events received over all its attempts (saturating), and when the last came (µs into its attempt,
    /// saturating: 71 minutes; a `u32`, so the table entry stays small).
    pub(super) events: u32,
    pub(super) last_event_us: u32,
    /// Its topic, with `--topics` (an index into the run's topics; 0 otherwise).
    pub(super) topic: u32,
}

impl Driver {
    /// Streams to open in all: the target count, or in churn one per cycle.
    pub(super) fn wanted_open(&self) -> usize {
        match self.plan.mode {
            Mode::Churn { cycles, .. } => cycles as usize,
            Mode::Stream { total, .. } => total as usize,
            _ => self.plan.streams,
        }
    }

    /// Whether another stream may open now: churn keeps at most its concurrency at once.
    fn room_to_open(&self) -> bool {
        match self.plan.mode {
            Mode::Churn { concurrency, .. } => self.subs.len() < concurrency,
            _ => true,
        }
    }

    pub(super) fn next_open_at(&self) -> Instant {
        if self.plan.ramp_per_s <= 0.0 {
            return self.started;
        }
        self.started + Duration::from_secs_f64(self.opened as f64 / self.plan.ramp_per_s)
    }

    /// Opens the streams the ramp has made due, at most [`OPENS_PER_TURN`] a turn.
    pub(super) fn open_due(&mut self, now: Instant) {
        let mut budget = OPENS_PER_TURN;
        while self.opened < self.wanted_open()
            && self.next_open_at() <= now
            && budget > 0
            && self.room_to_open()
        {
            let n = self.opened;
            if let Mode::Stream { max_inflight, .. } = self.plan.mode
                && self.subs.len() >= max_inflight
            {
                // Open arrivals: one that finds the limit reached is refused, and the schedule goes on.
                (self.opened, self.report.refused, budget) = (n + 1, self.report.refused + 1, budget - 1);
                continue;
            }
            // Spreads the slow share evenly: stream n is slow when n × share crosses an integer.
            let slow = self.plan.slow_share > 0.0
                && (n as f64 * self.plan.slow_share).fract() + self.plan.slow_share >= 1.0;
            let source = (n % self.plan.source_ips.len().max(1)) as u32;
            let slot = self.subs.insert(Sub {
                client: None,
                parser: None,
                retry_ms: 3000,
                ids: StreamIds::default(),
                attempts: 0,
                dropped_at: None,
                tick_origin: None,
                got_event: false,
                got_id: false,
                stopped: false,
                slow,
                source,
                settled: false,
                transient_failures: 0,
                ticks: 0,
                events: 0,
                last_event_us: 0,
                topic: self.plan.topics.as_ref().map_or(0, |spread| spread.stream_topic(n as u64)),
            });
            self.opened += 1;
            self.report.opened += 1;
            budget -= 1;
            self.attempt(slot);
        }
    }

    /// Starts a connection attempt for `slot` (again, after a transient failure).
    fn attempt(&mut self, slot: usize) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let parser = sub.parser.take().unwrap_or_else(|| Box::new(Parser::new(client::MAX_LINE)));
        self.report.attempts += 1;
        sub.attempts += 1;
        sub.got_event = false;
        sub.got_id = false;
        let retry = Duration::from_millis(sub.retry_ms.into());
        // Streams are spread over every address the host resolved to.
        let target = self.topic_targets.get(sub.topic as usize).unwrap_or(&self.plan.target);
        let addrs = &target.addrs;
        let addr = addrs.get(slot % addrs.len().max(1)).copied().unwrap_or(target.addr);
        let source = self.plan.source_ips.get(sub.source as usize).copied();
        let cause = match Client::connect(target, addr, source, parser, sub.retry_ms, sub.slow) {
            Ok(mut client) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                match self.poll.registry().register(&mut client.socket, Token(slot), interest) {
                    Ok(()) => {
                        sub.client = Some(client);
                        return;
                    }
                    Err(e) => format!("register: {e}"),
                }
            }
            Err(cause) => cause,
        };
        if client::is_transient(&cause) && sub.transient_failures < MAX_TRANSIENT_RETRIES {
            // No free port this instant (a connect storm): pause and try again, counted as a retry.
            let pause = TRANSIENT_PAUSE * 2u32.pow(u32::from(sub.transient_failures));
            sub.transient_failures += 1;
            sub.attempts -= 1;
            self.report.attempts -= 1;
            self.report.connect_retries += 1;
            self.reconnects.schedule(Instant::now() + pause, slot);
            return;
        }
        // Known at once (refused, no source address): counted now, not after the connect timeout.
        self.attempt_failed(slot, cause);
        self.settle(slot);
        if self.plan.reconnect {
            self.reconnects.schedule(Instant::now() + retry, slot);
        } else {
            self.retire(slot);
        }
    }

    /// An attempt of `slot` that got no head: a failure; but for a dropped stream coming back with
    /// `--reconnect`, a retry (it tries again after its `retry:` time and is not back until it is).
    pub(super) fn attempt_failed(&mut self, slot: usize, cause: String) {
        let coming_back = self.plan.reconnect && self.subs.get(slot).is_some_and(|s| s.dropped_at.is_some());
        if coming_back { self.report.retry(cause) } else { self.report.fail(cause) }
    }

    /// This subscriber will not try again: stopped for good (churn: removed, its cycle over).
    pub(super) fn retire(&mut self, slot: usize) {
        self.close(slot);
        if matches!(self.plan.mode, Mode::Churn { .. } | Mode::Stream { .. }) {
            if self.subs.contains(slot) {
                self.subs.remove(slot);
            }
            return;
        }
        if let Some(sub) = self.subs.get_mut(slot)
            && !sub.stopped
        {
            sub.stopped = true;
            self.stopped += 1;
        }
    }

    /// Does what `slot`'s socket allows (reading as far as `reads` says), then counts what its client saw.
    pub(super) fn drive_sub(&mut self, slot: usize, reads: Reads) {
        let mut seen = std::mem::take(&mut self.seen);
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let Some(client) = sub.client.as_mut() else { return };
        let before = client.last_bytes();
        if client.drive(&mut self.scratch, &mut seen, reads) {
            self.again.push(slot); // not drained to WouldBlock: no new edge will come for it
        }
        let after = client.last_bytes();
        let silence = after.saturating_duration_since(before).as_millis() as u64;
        self.report.max_silence_ms = self.report.max_silence_ms.max(silence);
        let clock = Clock::read();
        let text = std::mem::take(&mut self.scratch.text); // the events' data and ids
        for item in seen.drain(..) {
            self.on_seen(slot, item, &text, clock);
        }
        (self.seen, self.scratch.text) = (seen, text); // keep the allocations for the next drive
    }

    /// Ends the current attempt of `slot`, keeping what a browser keeps.
    pub(super) fn close(&mut self, slot: usize) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        if let Some(mut client) = sub.client.take() {
            let _ = self.poll.registry().deregister(&mut client.socket);
            sub.retry_ms = client.retry_ms;
            sub.parser = Some(client.parser);
        }
    }

    /// Starts the attempts whose reconnection time has come (stale entries are skipped here).
    pub(super) fn reconnect_due(&mut self, now: Instant) {
        while let Some((_, slot)) = self.reconnects.pop_expired(now) {
            if let Some(sub) = self.subs.get(slot).filter(|s| s.client.is_none() && !s.stopped) {
                if sub.transient_failures == 0 {
                    self.report.reconnects += 1; // (a retry after a shortage is counted as one already)
                }
                self.attempt(slot);
            }
        }
    }

    /// Attempts that got no head within the connect timeout fail.
    pub(super) fn check_timeouts(&mut self, now: Instant) {
        let stuck: Vec<usize> = self
            .subs
            .iter()
            .filter_map(|(slot, sub)| {
                let client = sub.client.as_ref()?;
                (!client.is_streaming()
                    && now.saturating_duration_since(client.attempt_started) > self.plan.connect_timeout)
                    .then_some(slot)
            })
            .collect();
        for slot in stuck {
            self.settle(slot);
            self.attempt_failed(slot, format!("no response head within {:?}", self.plan.connect_timeout));
            if self.plan.reconnect {
                self.close(slot);
                self.reconnects.schedule(now, slot);
            } else {
                self.retire(slot);
            }
        }
        self.check_ready_timeouts(now);
    }

    /// Storm: drop every open stream at once and reconnect them all now. An attempt still waiting for
    /// its head is not a stream yet: it goes on (cutting it would leave it neither connected nor failed).
    pub(super) fn storm(&mut self, now: Instant) {
        self.stormed = true;
        let slots: Vec<usize> = self
            .subs
            .iter()
            .filter(|(_, s)| s.client.as_ref().is_some_and(Client::is_streaming))
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            self.close(slot);
            if let Some(sub) = self.subs.get_mut(slot) {
                sub.dropped_at = Some(now);
            }
            self.reconnects.schedule(now, slot);
        }
    }

    /// At the end of the run: an attempt still without its head failed (the end cut it short), and a
    /// dropped stream whose reconnection was due and is not back is counted as not back.
    pub(super) fn account_unfinished(&mut self) {
        let now = Instant::now();
        let churn = matches!(self.plan.mode, Mode::Churn { .. });
        let stream = matches!(self.plan.mode, Mode::Stream { .. });
        let mut unfinished = 0;
        let (mut cut, mut cut_coming_back) = (0, 0);
        let mut not_ready = 0;
        for (_, sub) in &self.subs {
            let connecting = sub.client.as_ref().is_some_and(|c| !c.is_streaming());
            if connecting && self.plan.reconnect && sub.dropped_at.is_some() {
                cut_coming_back += 1;
            } else if connecting {
                cut += 1;
            } else if churn && sub.client.is_some() {
                not_ready += 1;
            } else if stream && sub.client.is_some() {
                unfinished += 1;
            }
            // Not back: its reconnection was due and it is not streaming. One dropped less than its
            // `retry:` time ago has not been asked to be back yet.
            let due = sub.dropped_at.is_some_and(|at| now >= at + Duration::from_millis(sub.retry_ms.into()));
            if due && !sub.stopped {
                self.report.not_back += 1;
            }
        }
        for _ in 0..cut {
            self.report.fail("no response head when the run ended");
        }
        for _ in 0..cut_coming_back {
            self.report.retry("no response head when the run ended");
        }
        for _ in 0..unfinished {
            self.report.drop_stream("not finished when the run ended");
        }
        for _ in 0..not_ready {
            self.report.drop_stream("not ready when the run ended");
        }
    }

    /// Streams whose response head has arrived.
    pub(super) fn open_streams(&self) -> usize {
        self.subs.iter().filter(|(_, s)| s.client.as_ref().is_some_and(Client::is_streaming)).count()
    }

    /// Every stream is connected or has failed: the publishing may start. O(1): counted as streams settle.
    pub(super) fn all_settled(&self) -> bool {
        self.opened >= self.wanted_open() && self.settled >= self.opened
    }

    /// Counts `slot` as settled (once) and says READY when every stream is.
    pub(super) fn settle(&mut self, slot: usize) {
        if let Some(sub) = self.subs.get_mut(slot)
            && !sub.settled
        {
            sub.settled = true;
            self.settled += 1;
        }
        self.maybe_ready();
    }

    fn maybe_ready(&mut self) {
        if !self.ready_said && self.all_settled() {
            self.ready_said = true;
            self.ready_at = Some(Instant::now());
            if let Some(ready) = &self.plan.ready {
                ready.store(true, Ordering::Relaxed);
            }
        }
    }
}
#[cfg(test)]
mod tests {
    /// What a held stream costs the load generator (docs/load-generator.md states it): its subscriber
    /// entry stays small, the parser and a chunked decoder live behind pointers.
    #[test]
    fn a_subscriber_takes_at_most_184_bytes_in_the_table() {
        // (A debug build's mio socket carries 16 bytes more, to check which registry it is on.)
        let limit = if cfg!(debug_assertions) { 200 } else { 184 };
        assert!(std::mem::size_of::<super::Sub>() <= limit, "{}", std::mem::size_of::<super::Sub>());
    }
}
