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

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use mio_sse_wire::parser::Parser;

use super::Driver;
use super::plan::Mode;
use crate::client::{self, Client};

/// New connections opened per turn at most, whatever the ramp asks.
const OPENS_PER_TURN: usize = 256;

/// One subscriber slot: the client of the current attempt, and what outlives attempts.
pub(super) struct Sub {
    pub(super) client: Option<Client>,
    /// The parser of the last attempt, kept for the next (its last event id), and its retry time.
    parser: Option<Parser>,
    retry_ms: u64,
    pub(super) last_id: Option<u64>,
    /// The first tick's time of day (ms), the origin of this stream's tick grid.
    pub(super) tick_origin: Option<u64>,
    pub(super) got_event: bool,
    /// Stop for good (a non-200, or churn finished).
    pub(super) stopped: bool,
    slow: bool,
    source: Option<IpAddr>,
    /// Its first attempt has ended in a head or a failure (counted once in `Driver::settled`).
    settled: bool,
}

impl Driver {
    /// Streams to open in all: the target count, or in churn the concurrency.
    pub(super) fn wanted_open(&self) -> usize {
        match self.plan.mode {
            Mode::Churn { cycles, concurrency } => concurrency.min(cycles as usize),
            _ => self.plan.streams,
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
        while self.opened < self.wanted_open() && self.next_open_at() <= now && budget > 0 {
            let n = self.opened;
            // Spreads the slow share evenly: stream n is slow when n × share crosses an integer.
            let slow = self.plan.slow_share > 0.0
                && (n as f64 * self.plan.slow_share).fract() + self.plan.slow_share >= 1.0;
            let source = (!self.plan.source_ips.is_empty())
                .then(|| self.plan.source_ips[n % self.plan.source_ips.len()]);
            let slot = self.subs.insert(Sub {
                client: None,
                parser: None,
                retry_ms: 3000,
                last_id: None,
                tick_origin: None,
                got_event: false,
                stopped: false,
                slow,
                source,
                settled: false,
            });
            self.attempt(slot);
            self.opened += 1;
            budget -= 1;
        }
    }

    /// Starts a connection attempt for `slot`.
    fn attempt(&mut self, slot: usize) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let parser = sub.parser.take().unwrap_or_else(|| Parser::new(client::MAX_LINE));
        self.report.attempts += 1;
        match Client::connect(&self.plan.target, sub.source, parser, sub.retry_ms, sub.slow) {
            Ok(mut client) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().register(&mut client.socket, Token(slot), interest) {
                    self.report.fail(format!("register: {e}"));
                    return;
                }
                sub.got_event = false;
                sub.client = Some(client);
            }
            Err(e) => {
                self.report.fail(format!("connect: {}", client::short(&e)));
                if self.plan.reconnect {
                    self.reconnects.schedule(Instant::now() + Duration::from_millis(sub.retry_ms), slot);
                }
                self.settle(slot);
            }
        }
    }

    /// Does what `slot`'s socket allows, then counts what its client saw.
    pub(super) fn drive_sub(&mut self, slot: usize) {
        let mut seen = Vec::new();
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let Some(client) = sub.client.as_mut() else { return };
        let before = client.last_bytes;
        if client.drive(&mut self.scratch, &mut seen) {
            self.again.push(slot); // not drained to WouldBlock: no new edge will come for it
        }
        let after = client.last_bytes;
        let silence = after.saturating_duration_since(before).as_millis() as u64;
        self.report.max_silence_ms = self.report.max_silence_ms.max(silence);
        for item in seen {
            self.on_seen(slot, item);
        }
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
            if self.subs.get(slot).is_some_and(|s| s.client.is_none() && !s.stopped) {
                self.report.reconnects += 1;
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
            self.report.fail(format!("no response head within {:?}", self.plan.connect_timeout));
            self.close(slot);
            if let Some(sub) = self.subs.get_mut(slot) {
                sub.stopped = !self.plan.reconnect;
            }
            if self.plan.reconnect {
                self.reconnects.schedule(now, slot);
            }
        }
    }

    /// Storm: drop every open stream at once and reconnect them all now.
    pub(super) fn storm(&mut self, now: Instant) {
        self.stormed = true;
        let slots: Vec<usize> =
            self.subs.iter().filter(|(_, s)| s.client.is_some()).map(|(slot, _)| slot).collect();
        if self.plan.progress {
            eprintln!("storm: dropping {} streams at once", slots.len());
        }
        for slot in slots {
            self.close(slot);
            self.reconnects.schedule(now, slot);
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
