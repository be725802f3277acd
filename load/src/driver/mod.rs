//! The load generator's event loop: one `mio::Poll` drives every subscriber, the publisher, the ramp,
//! reconnections and the progress line, by the same rules as the server's loop (edge-triggered, drained,
//! bounded work per turn, deadlines as the poll timeout).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::client::{Client, Seen, Target};
use super::publisher::Publisher;
use super::report::Report;
use mio_sse_wire::parser::Parser;
use retry_queue::RetryQueue;

mod retry_queue;

/// The publisher's token (subscribers use their slab slot).
const PUBLISHER: Token = Token(usize::MAX);
/// New connections opened per turn at most, whatever the ramp asks.
const OPENS_PER_TURN: usize = 256;

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Open the streams and hold them for the duration.
    Hold,
    /// Open the streams, then publish and measure every delivery.
    Fanout,
    /// Connect, read the first event, close; again and again.
    Churn,
    /// Hold, then drop every stream at once and reconnect them all.
    Storm,
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub target: Target,
    pub streams: usize,
    /// New streams per second (0: as fast as the loop opens them).
    pub ramp_per_s: f64,
    /// Source addresses to spread connections over (to pass one address's ephemeral ports).
    pub source_ips: Vec<IpAddr>,
    /// How long to hold (hold, storm) or the longest a run may take (others).
    pub duration: Duration,
    /// Behave like a browser: reconnect after `retry:`, send `Last-Event-ID`, stop on a non-200.
    pub reconnect: bool,
    /// How long a connection attempt may take to get its response head before it counts as failed.
    pub connect_timeout: Duration,
    /// Share of streams that stop reading after the head (with a tiny receive buffer).
    pub slow_share: f64,
    /// The server's tick interval, to measure tick lateness (0: not measured).
    pub tick_interval_ms: u64,
    /// Fan-out: where to publish, how many, how fast (0: as fast as possible), how big.
    pub publish_target: Option<Target>,
    pub publish_count: u64,
    pub publish_rate: f64,
    pub payload_bytes: usize,
    /// Churn: cycles in all, at this concurrency.
    pub cycles: u64,
    pub concurrency: usize,
    /// Storm: when to drop every stream.
    pub storm_after: Duration,
    /// Print a progress line each second (stderr).
    pub progress: bool,
    /// With `--procs`: subscribers wait for this before publishing starts (set by the parent's GO).
    pub go: Option<Arc<AtomicBool>>,
    /// With `--procs`: this worker publishes (worker 0) or only subscribes.
    pub publishes: bool,
    /// Set once every stream has connected (or failed): `--procs` workers say READY, the benchmark
    /// starts measuring.
    pub ready: Option<Arc<AtomicBool>>,
    /// Ends the run when set (the benchmark stops a hold when it has measured).
    pub stop: Option<Arc<AtomicBool>>,
}

/// One subscriber slot: the client of the current attempt, and what outlives attempts.
struct Sub {
    client: Option<Client>,
    /// The parser of the last attempt, kept for the next (its last event id), and its retry time.
    parser: Option<Parser>,
    retry_ms: u64,
    last_id: Option<u64>,
    /// The first tick's time of day (ms), the origin of this stream's tick grid.
    tick_origin: Option<u64>,
    got_event: bool,
    /// Stop for good (a non-200, or churn finished).
    stopped: bool,
    slow: bool,
    source: Option<IpAddr>,
    /// Its first attempt has ended in a head or a failure (counted once in `Driver::settled`).
    settled: bool,
}

/// Runs a plan to its end and returns what it measured.
pub fn run(plan: Plan) -> io::Result<Report> {
    Driver::new(plan)?.run()
}

struct Driver {
    plan: Plan,
    poll: Poll,
    subs: Slab<Sub>,
    reconnects: RetryQueue,
    report: Report,
    started: Instant,
    opened: usize,
    publisher: Option<Publisher>,
    published_at: Option<Instant>,
    last_delivery: Option<Instant>,
    scratch: Vec<u8>,
    ready_said: bool,
    /// When every stream had settled.
    ready_at: Option<Instant>,
    stormed: bool,
    /// Streams whose first attempt got a head or failed: the run is ready when all have.
    settled: usize,
    /// Streams stopped for good (a non-200 answer).
    stopped: usize,
    /// Subscribers a per-turn read bound stopped: driven again next turn.
    again: Vec<usize>,
    next_timeout_check: Instant,
}

impl Driver {
    fn new(plan: Plan) -> io::Result<Driver> {
        let mode = format!("{:?}", plan.mode).to_lowercase();
        let report = Report { mode, streams: plan.streams as u64, ..Report::default() };
        Ok(Driver {
            poll: Poll::new()?,
            subs: Slab::with_capacity(plan.streams.max(plan.concurrency)),
            reconnects: RetryQueue::default(),
            report,
            started: Instant::now(),
            opened: 0,
            publisher: None,
            published_at: None,
            last_delivery: None,
            scratch: vec![0; 64 * 1024],
            ready_said: false,
            ready_at: None,
            stormed: false,
            settled: 0,
            stopped: 0,
            again: Vec::new(),
            next_timeout_check: Instant::now(),
            plan,
        })
    }

    fn run(mut self) -> io::Result<Report> {
        let mut events = Events::with_capacity(1024);
        let mut next_progress = self.started + Duration::from_secs(1);
        let mut last_events = 0;
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now, next_progress);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() == PUBLISHER {
                    self.drive_publisher();
                } else {
                    self.drive_sub(event.token().0);
                }
            }
            for slot in std::mem::take(&mut self.again) {
                self.drive_sub(slot);
            }
            let now = Instant::now();
            self.open_due(now);
            self.reconnect_due(now);
            self.publish_due(now);
            if now >= self.next_timeout_check {
                // Walks every stream: once a second, not every turn.
                self.check_timeouts(now);
                self.next_timeout_check = now + Duration::from_secs(1);
            }
            if self.plan.mode == Mode::Storm && !self.stormed && now >= self.started + self.plan.storm_after {
                self.storm(now);
            }
            if now >= next_progress {
                if self.plan.progress {
                    let rate = self.report.events - last_events;
                    eprintln!(
                        "t={:>4.0}s connected={} events/s={} delivered={} errors={} reconnects={}",
                        now.duration_since(self.started).as_secs_f64(),
                        self.open_streams(),
                        rate,
                        self.report.delivered,
                        self.report.failure_count(),
                        self.report.reconnects
                    );
                }
                last_events = self.report.events;
                next_progress += Duration::from_secs(1);
            }
            if self.finished(now) {
                break;
            }
        }
        self.finish();
        Ok(self.report)
    }

    fn poll_timeout(&self, now: Instant, next_progress: Instant) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let mut until = next_progress;
        if let Some(at) = self.reconnects.next_deadline() {
            until = until.min(at);
        }
        if self.opened < self.wanted_open() {
            until = until.min(self.next_open_at());
        }
        if let Some(at) = self.next_publish_at() {
            until = until.min(at);
        }
        // Waiting for the parent's GO, or for a stop, is polled, not signalled: look every 20 ms.
        if self.plan.go.is_some() || self.plan.stop.is_some() {
            until = until.min(now + Duration::from_millis(20));
        }
        until.saturating_duration_since(now).min(Duration::from_secs(1))
    }

    /// Streams to open in all: the target count, or in churn the concurrency.
    fn wanted_open(&self) -> usize {
        if self.plan.mode == Mode::Churn {
            self.plan.concurrency.min(self.plan.cycles as usize)
        } else {
            self.plan.streams
        }
    }

    fn next_open_at(&self) -> Instant {
        if self.plan.ramp_per_s <= 0.0 {
            return self.started;
        }
        self.started + Duration::from_secs_f64(self.opened as f64 / self.plan.ramp_per_s)
    }

    /// Opens the streams the ramp has made due, at most [`OPENS_PER_TURN`] a turn.
    fn open_due(&mut self, now: Instant) {
        let mut budget = OPENS_PER_TURN;
        while self.opened < self.wanted_open() && self.next_open_at() <= now && budget > 0 {
            let n = self.opened;
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
        let parser = sub.parser.take().unwrap_or_else(|| Parser::new(super::client::MAX_LINE));
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
                self.report.fail(format!("connect: {}", super::client::short(&e)));
                if self.plan.reconnect {
                    self.reconnects.schedule(Instant::now() + Duration::from_millis(sub.retry_ms), slot);
                }
                self.settle(slot);
            }
        }
    }

    fn drive_sub(&mut self, slot: usize) {
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

    fn on_seen(&mut self, slot: usize, item: Seen) {
        let now = Instant::now();
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let Some(client) = sub.client.as_ref() else { return };
        let since_attempt = now.saturating_duration_since(client.attempt_started);
        match item {
            Seen::Head { status: 200, event_stream: true } => {
                self.report.connected += 1;
                self.report.connect_us.record(since_attempt.as_micros() as u64);
                self.settle(slot);
            }
            Seen::Head { status, event_stream } => {
                let cause = if status == 200 && !event_stream {
                    "200 without text/event-stream".to_owned()
                } else {
                    format!("status {status}")
                };
                self.report.fail(cause);
                sub.stopped = true; // a browser gives up on any status but 200 (204 is the polite stop)
                self.stopped += 1;
                self.close(slot);
                self.settle(slot);
            }
            Seen::Event { data, id } => {
                self.report.events += 1;
                if !sub.got_event {
                    sub.got_event = true;
                    self.report.first_event_us.record(since_attempt.as_micros() as u64);
                }
                // An event with its own id is new only if the id is past the last one: a repeat is a
                // duplicate (and is not counted as a delivery), a jump is a gap.
                let mut new = true;
                if let Some(Ok(id)) = id.map(|id| id.parse::<u64>()) {
                    match sub.last_id {
                        Some(last) if id > last + 1 => self.report.gaps += id - last - 1,
                        Some(last) if id <= last => {
                            self.report.duplicates += 1;
                            new = false;
                        }
                        _ => {}
                    }
                    if new {
                        sub.last_id = Some(id);
                    }
                }
                if let Some(sent_ns) = publish_stamp(&data).filter(|_| new) {
                    self.report.delivered += 1;
                    self.report.latency_us.record(unix_ns().saturating_sub(sent_ns) / 1000);
                    self.last_delivery = Some(now);
                } else if self.plan.tick_interval_ms > 0
                    && let Some(tick_ms) = tick_time(&data)
                {
                    let interval = self.plan.tick_interval_ms;
                    let origin = *sub.tick_origin.get_or_insert(tick_ms);
                    let steps = ((tick_ms + 86_400_000 - origin) % 86_400_000 + interval / 2) / interval;
                    let ideal = (origin + steps * interval) % 86_400_000;
                    let received = (unix_ns() / 1_000_000) % 86_400_000;
                    // Steady state only: from a second after every stream settled, so that the connect
                    // storm of the ramp (SYN retransmits, the accept queue) is not counted as lateness.
                    if self.ready_at.is_some_and(|at| now >= at + Duration::from_secs(1)) {
                        self.report.tick_lateness_ms.record(lateness_ms(received, ideal));
                    }
                }
                if self.plan.mode == Mode::Churn {
                    self.report.cycles += 1;
                    sub.stopped = true;
                    self.close(slot);
                    self.subs.remove(slot);
                    if self.report.cycles + (self.subs.len() as u64) < self.plan.cycles {
                        self.opened -= 1; // open a fresh one in its place
                    }
                }
            }
            Seen::Ended(why) => {
                let was_streaming = client.streamed;
                if !was_streaming || !self.plan.reconnect {
                    self.report.fail(why);
                }
                let retry = Duration::from_millis(client.retry_ms);
                self.close(slot);
                if self.plan.reconnect
                    && let Some(sub) = self.subs.get(slot)
                    && !sub.stopped
                {
                    self.reconnects.schedule(now + retry, slot);
                }
                self.settle(slot);
            }
        }
    }

    /// Ends the current attempt of `slot`, keeping what a browser keeps.
    fn close(&mut self, slot: usize) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        if let Some(mut client) = sub.client.take() {
            let _ = self.poll.registry().deregister(&mut client.socket);
            sub.retry_ms = client.retry_ms;
            sub.parser = Some(client.parser);
        }
    }

    fn reconnect_due(&mut self, now: Instant) {
        while let Some((_, slot)) = self.reconnects.pop_expired(now) {
            if self.subs.get(slot).is_some_and(|s| s.client.is_none() && !s.stopped) {
                self.report.reconnects += 1;
                self.attempt(slot);
            }
        }
    }

    /// Attempts that got no head within the connect timeout fail.
    fn check_timeouts(&mut self, now: Instant) {
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

    fn open_streams(&self) -> usize {
        self.subs.iter().filter(|(_, s)| s.client.as_ref().is_some_and(Client::is_streaming)).count()
    }

    /// Every stream is connected or has failed: the publishing may start. O(1): counted as streams settle.
    fn all_settled(&self) -> bool {
        self.opened >= self.wanted_open() && self.settled >= self.opened
    }

    /// Counts `slot` as settled (once) and says READY when every stream is.
    fn settle(&mut self, slot: usize) {
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

    fn go(&self) -> bool {
        self.plan.go.as_ref().is_none_or(|go| go.load(Ordering::Relaxed))
    }

    fn next_publish_at(&self) -> Option<Instant> {
        let start = self.published_at?;
        if self.report.published >= self.plan.publish_count {
            return None;
        }
        if self.plan.publish_rate <= 0.0 {
            return Some(start);
        }
        Some(start + Duration::from_secs_f64(self.report.published as f64 / self.plan.publish_rate))
    }

    /// Publishes what the schedule has made due (fan-out), each stamped with its intended time.
    fn publish_due(&mut self, now: Instant) {
        if self.plan.mode != Mode::Fanout || !self.plan.publishes {
            return;
        }
        if self.published_at.is_none() {
            if !(self.ready_said || self.all_settled()) || !self.go() {
                return;
            }
            let Some(target) = self.plan.publish_target.clone() else { return };
            match Publisher::connect(&target) {
                Ok(mut publisher) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut publisher.socket, PUBLISHER, interest)
                    {
                        self.report.fail(format!("publisher register: {e}"));
                        return;
                    }
                    self.publisher = Some(publisher);
                    self.published_at = Some(now);
                }
                Err(e) => {
                    self.report.fail(format!("publisher connect: {e}"));
                    self.plan.publish_count = 0;
                    return;
                }
            }
        }
        let (Some(start), Some(target)) = (self.published_at, self.plan.publish_target.clone()) else {
            return;
        };
        let mut budget = 1000; // bounded per turn, as fast as possible or not
        while self.report.published < self.plan.publish_count && budget > 0 {
            let intended = if self.plan.publish_rate > 0.0 {
                start + Duration::from_secs_f64(self.report.published as f64 / self.plan.publish_rate)
            } else {
                now
            };
            if intended > now {
                break;
            }
            let intended_ns =
                unix_ns().saturating_sub(now.saturating_duration_since(intended).as_nanos() as u64);
            let mut body = format!("seq={} t={intended_ns}", self.report.published);
            if body.len() < self.plan.payload_bytes {
                body.push(' ');
                body.extend(std::iter::repeat_n('x', self.plan.payload_bytes - body.len()));
            }
            let Some(publisher) = self.publisher.as_mut() else { return };
            if let Err(why) = publisher.send(&target, &body) {
                self.report.fail(why);
                self.plan.publish_count = self.report.published;
                return;
            }
            self.report.published += 1;
            budget -= 1;
        }
    }

    fn drive_publisher(&mut self) {
        let Some(publisher) = self.publisher.as_mut() else { return };
        if let Err(why) = publisher.drive(&mut self.scratch) {
            self.report.fail(why);
            self.plan.publish_count = self.report.published;
        }
    }

    /// Storm: drop every open stream at once and reconnect them all now.
    fn storm(&mut self, now: Instant) {
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

    fn finished(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.plan.duration
            || self.plan.stop.as_ref().is_some_and(|stop| stop.load(Ordering::Relaxed))
        {
            return true;
        }
        match self.plan.mode {
            Mode::Hold | Mode::Storm => false,
            Mode::Churn => self.report.cycles >= self.plan.cycles,
            Mode::Fanout => {
                let subscribers = (self.subs.len() - self.stopped) as u64;
                let expected = self.plan.publish_count * subscribers;
                let all_in = self.plan.publish_count > 0 && self.report.delivered >= expected;
                // Done when every delivery arrived, or 5 s after the last publish (the rest are lost). A
                // worker that only subscribes knows publishing is under way once GO came.
                let publishing_done = if self.plan.publishes {
                    self.published_at.is_some() && self.next_publish_at().is_none()
                } else {
                    self.go() && self.ready_said
                };
                let drained = self
                    .last_delivery
                    .is_some_and(|t| now.saturating_duration_since(t) > Duration::from_secs(5));
                (publishing_done && (all_in || drained)) || (self.plan.publish_count == 0 && self.ready_said)
            }
        }
    }

    fn finish(&mut self) {
        let now = Instant::now();
        self.report.elapsed_s = now.duration_since(self.started).as_secs_f64();
        let subscribers = self.subs.iter().filter(|(_, s)| !s.stopped).count() as u64;
        if self.plan.mode == Mode::Fanout {
            self.report.expected = self.plan.publish_count_for_report() * subscribers;
        }
        if let (Some(start), Some(end)) = (self.published_at, self.last_delivery) {
            self.report.delivery_window_s = end.saturating_duration_since(start).as_secs_f64();
        }
        for (_, sub) in &self.subs {
            if let Some(client) = &sub.client {
                let silence = client.silence(now).as_millis() as u64;
                self.report.max_silence_ms = self.report.max_silence_ms.max(silence);
            }
        }
    }
}

impl Plan {
    /// Events every subscriber should get: the planned count (all workers count the same publishes).
    fn publish_count_for_report(&self) -> u64 {
        self.publish_count
    }
}

/// The publisher's stamp in a fan-out event's data: `seq=N t=UNIX_NS ...`.
pub fn publish_stamp(data: &str) -> Option<u64> {
    let rest = data.strip_prefix("seq=")?;
    let t = rest.split(' ').nth(1)?.strip_prefix("t=")?;
    t.parse().ok()
}

/// The time of day (ms) at the start of a tick's data (`HH:MM:SS.mmm`), if it is one.
pub fn tick_time(data: &str) -> Option<u64> {
    let b = data.as_bytes();
    if b.len() < 12 || b[2] != b':' || b[5] != b':' || b[8] != b'.' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| data.get(r)?.parse::<u64>().ok();
    Some(((n(0..2)? * 60 + n(3..5)?) * 60 + n(6..8)?) * 1000 + n(9..12)?)
}

/// How late `received` is after `ideal`, both ms of the day: the signed difference across midnight,
/// where "early" (a millisecond of rounding between two clocks' readings) counts as on time.
pub fn lateness_ms(received: u64, ideal: u64) -> u64 {
    const DAY: i64 = 86_400_000;
    let diff = (received as i64 - ideal as i64).rem_euclid(DAY);
    let signed = if diff >= DAY / 2 { diff - DAY } else { diff };
    signed.max(0) as u64
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_ticks_are_read_from_data() {
        assert_eq!(publish_stamp("seq=3 t=1795678000000000000 xxxx"), Some(1_795_678_000_000_000_000));
        assert_eq!(publish_stamp("seq=3"), None);
        assert_eq!(publish_stamp("hello"), None);
        assert_eq!(tick_time("07:05:09.042"), Some(((7 * 60 + 5) * 60 + 9) * 1000 + 42));
        assert_eq!(tick_time("07:05:09.042 xxxx"), Some(25_509_042));
        assert_eq!(tick_time("not a tick"), None);
    }

    #[test]
    fn lateness_across_midnight_and_early_by_rounding() {
        assert_eq!(lateness_ms(1_005, 1_000), 5);
        assert_eq!(lateness_ms(999, 1_000), 0, "early by rounding is on time");
        assert_eq!(lateness_ms(3, 86_399_998), 5, "across midnight");
        assert_eq!(lateness_ms(86_399_998, 3), 0);
    }

    #[test]
    fn the_tick_grid_survives_midnight() {
        // Origin 23:59:59.000, 1 s interval: the tick at 00:00:01.003 is step 2, 3 ms late.
        let (origin, tick, interval) = (86_399_000u64, 1_003u64, 1000u64);
        let steps = ((tick + 86_400_000 - origin) % 86_400_000 + interval / 2) / interval;
        let ideal = (origin + steps * interval) % 86_400_000;
        assert_eq!((steps, lateness_ms(tick, ideal)), (2, 3));
    }
}
