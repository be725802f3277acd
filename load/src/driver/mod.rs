//! The load generator's event loop: one `mio::Poll` drives every subscriber, the publisher, the ramp,
//! reconnections and the per-second samples, by the same rules as the server's loop:
//! - edge-triggered: a socket is read to `WouldBlock` (or, when its event reported no hangup, to a plain
//!   read that did not fill the buffer, which emptied it: see `client::Reads`) or, when its per-turn bound
//!   stops it first, driven again next turn without waiting for an edge that will not come;
//! - bounded work per turn: so many opens, reads and publishes a turn, so no part starves the others;
//! - deadlines are the poll timeout: the next open on the ramp, the next reconnection, the next publish,
//!   the next second's sample (and at most a second, and 20 ms while waiting for GO or a stop);
//! - every attempt is accounted for: when the run ends, an attempt still without its head is a failure
//!   (`no response head when the run ended`), a dropped stream not yet back is counted as not back.
//!
//! | module           | its one job                                                              |
//! |------------------|--------------------------------------------------------------------------|
//! | [`plan`]         | what a run is asked to do: [`Plan`], [`Mode`], [`Fanout`]                |
//! | `subscribers`    | opening, attempts, closes, reconnections, timeouts, the storm, settling  |
//! | `seen`           | counting what a client saw: heads, events (ids, latency, ticks), ends    |
//! | `churn`          | churn cycles: readiness, exactly the cycles asked, at most C at once      |
//! | `timeline`       | the sample of each second, sent to whoever reads them                     |
//! | `publishing`     | a fan-out's schedule, publisher, and end                                 |
//! | [`stamps`]       | the publisher's stamp and the server's ticks in event data (pure)        |
//! | `retry_queue`    | when each dropped stream tries again                                     |
//!
//! Reading order: [`run`] and the loop in `Driver::run` here, then `subscribers`, then `seen`.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use slab::Slab;

use crate::client::{Reads, Scratch, Seen};
use crate::report::TopicTally;
use crate::report::{Report, Sample};
use crate::target::Target;
use crate::topics;
use publishing::Publishing;
use retry_queue::RetryQueue;
use subscribers::Sub;

mod churn;
pub mod plan;
mod publishing;
mod retry_queue;
mod seen;
pub mod stamps;
mod subscribers;
mod timeline;

pub use plan::{Fanout, Mode, Plan, ReadyOn};

/// The publisher's token (subscribers use their slab slot).
const PUBLISHER: Token = Token(usize::MAX);
/// Subscriber events handled between two looks at a publisher waiting for its answer.
const PUBLISHER_CHECK_EVERY: usize = 32;

/// Runs a plan to its end and returns what it measured.
pub fn run(plan: Plan) -> io::Result<Report> {
    Driver::new(plan)?.run()
}

/// One run's loop and everything it counts.
struct Driver {
    plan: Plan,
    poll: Poll,
    subs: Slab<Sub>,
    reconnects: RetryQueue,
    report: Report,
    started: Instant,
    /// Streams opened so far (churn opens a fresh one in a finished cycle's place).
    opened: usize,
    /// The fan-out's publishing (`None` in the other modes).
    publishing: Option<Publishing>,
    last_delivery: Option<Instant>,
    /// The read buffer every socket shares (one loop, one read at a time).
    scratch: Scratch,
    /// What a subscriber's drive saw, reused from one drive to the next.
    seen: Vec<Seen>,
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
    /// This second's sample so far, and the cumulative counts at its start.
    second: Sample,
    second_base: timeline::Counts,
    /// With `--topics`: the stream target of each topic (its URL with `topic=tK`), made once.
    topic_targets: Vec<Target>,
}

impl Driver {
    fn new(plan: Plan) -> io::Result<Driver> {
        let (streams, cycles_asked) = match plan.mode {
            Mode::Churn { cycles, concurrency, .. } => (concurrency, cycles),
            _ => (plan.streams, 0),
        };
        let report = Report {
            mode: plan.mode.name().to_owned(),
            streams: streams as u64,
            cycles_asked,
            id_check: plan.ids,
            reconnecting: plan.reconnect,
            ..Report::default()
        };
        let publishing = match &plan.mode {
            Mode::Fanout(fanout) => Some(Publishing::new((**fanout).clone())),
            _ => None,
        };
        let mut report = report;
        let topic_targets = match &plan.topics {
            Some(spread) => {
                report.topics = TopicTally::new(spread);
                let on = |topic| Target {
                    path: topics::with_topic(&plan.target.path, topic),
                    ..plan.target.clone()
                };
                (0..spread.count()).map(on).collect()
            }
            None => Vec::new(),
        };
        Ok(Driver {
            poll: Poll::new()?,
            subs: Slab::with_capacity(streams),
            reconnects: RetryQueue::default(),
            report,
            started: Instant::now(),
            opened: 0,
            publishing,
            last_delivery: None,
            scratch: Scratch::new(64 * 1024),
            seen: Vec::new(),
            ready_said: false,
            ready_at: None,
            stormed: false,
            settled: 0,
            stopped: 0,
            again: Vec::new(),
            topic_targets,
            next_timeout_check: Instant::now(),
            second: Sample::default(),
            second_base: timeline::Counts::default(),
            plan,
        })
    }

    /// Whether a fan-out's publisher waits for an answer right now.
    fn publisher_waiting(&self) -> bool {
        self.publishing.as_ref().is_some_and(|p| p.waiting_for_answer())
    }

    /// The loop: poll, drive what is ready, then what the clock has made due; until the run is over.
    fn run(mut self) -> io::Result<Report> {
        let mut events = Events::with_capacity(1024);
        let mut next_progress = self.started + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now, next_progress);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for (i, event) in events.iter().enumerate() {
                if event.token() == PUBLISHER {
                    self.drive_publisher(Instant::now());
                } else {
                    self.drive_sub(event.token().0, Reads::after(event));
                }
                // A publisher waiting for its answer is looked at every few subscribers, not once a turn:
                // a turn of a thousand busy subscribers would otherwise stretch each round trip to it.
                if i % PUBLISHER_CHECK_EVERY == PUBLISHER_CHECK_EVERY - 1 && self.publisher_waiting() {
                    self.drive_publisher(Instant::now());
                }
            }
            for slot in std::mem::take(&mut self.again) {
                self.drive_sub(slot, Reads::UntilWouldBlock); // no event says what is there
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
            if let Mode::Storm { after } = self.plan.mode
                && !self.stormed
                && now >= self.started + after
            {
                self.storm(now);
            }
            if now >= next_progress {
                self.end_second();
                next_progress += Duration::from_secs(1);
            }
            if self.finished(now) {
                break;
            }
        }
        self.finish();
        self.end_second();
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

    /// Whether the parent said GO (always, without `--procs`).
    fn go(&self) -> bool {
        self.plan.go.as_ref().is_none_or(|go| go.load(Ordering::Relaxed))
    }

    /// Over at the duration or a stop; before that, when the mode's work is done.
    fn finished(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.plan.duration
            || self.plan.stop.as_ref().is_some_and(|stop| stop.load(Ordering::Relaxed))
        {
            return true;
        }
        match &self.plan.mode {
            // Every stream stopped for good (refused, a non-200, dropped without --reconnect): nothing
            // more can happen.
            Mode::Hold | Mode::Storm { .. } => self.all_settled() && self.stopped >= self.subs.len(),
            Mode::Churn { .. } => self.churn_finished(),
            Mode::Stream { .. } => self.opened >= self.wanted_open() && self.subs.is_empty(),
            Mode::Fanout(_) => self.publishing.as_ref().is_some_and(|p| self.fanout_finished(p, now)),
        }
    }

    /// The figures only known at the end: elapsed time, deliveries expected, the last silences, and the
    /// attempts the end cut short.
    fn finish(&mut self) {
        let now = Instant::now();
        self.report.elapsed_s = now.duration_since(self.started).as_secs_f64();
        self.account_unfinished();
        if let Some(publishing) = &self.publishing {
            // The publishing worker expects what the server accepted; a worker that only subscribes does
            // not know that, and expects every event (the merge puts the publisher's count in).
            let subscribers = self.subs.iter().filter(|(_, s)| !s.stopped).count() as u64;
            self.report.subscribers = subscribers;
            for (_, sub) in self.subs.iter().filter(|(_, s)| !s.stopped) {
                if let Some(streams) = self.report.topics.streams.get_mut(sub.topic as usize) {
                    *streams += 1;
                }
            }
            let published =
                if publishing.settings.publishes { self.report.publish_accepted } else { publishing.count };
            self.report.expected = if self.plan.topics.is_some() {
                self.report.topics.expected()
            } else {
                published * subscribers
            };
            if let (Some(start), Some(end)) = (publishing.started, self.last_delivery) {
                self.report.delivery_window_s = end.saturating_duration_since(start).as_secs_f64();
            }
        }
        if self.plan.tick_interval_ms > 0 {
            let subscribed = self.subs.iter().filter(|(_, s)| !s.stopped);
            self.report.min_ticks_per_stream = subscribed.map(|(_, s)| u64::from(s.ticks)).min();
        }
        for (_, sub) in &self.subs {
            if let Some(client) = &sub.client {
                let silence = client.silence(now).as_millis() as u64;
                self.report.max_silence_ms = self.report.max_silence_ms.max(silence);
            }
        }
    }
}
