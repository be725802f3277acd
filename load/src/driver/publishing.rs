//! A fan-out's publishing side: when it may start, which events the schedule has made due, the
//! publisher's connection, and when the fan-out is over.
//!
//! Rules:
//! - Publishing starts only once every stream has settled (connected or failed) and, with `--procs`, the
//!   parent said GO: a delivery is never measured against a subscriber still connecting.
//! - Each event is stamped with its *intended* time on the schedule, not the time it was written, so a
//!   server that stalls the publisher shows as latency (no coordinated omission).
//! - At most [`PUBLISHES_PER_TURN`] a turn, as fast as possible or not, so subscribers are read too.
//! - A publisher that waits for answers has at most one `POST` outstanding: the next goes as soon as the
//!   answer is read (in the same turn), never earlier than its scheduled time.
//! - A publisher that fails cuts the count short: the events never sent are not expected.

use std::time::{Duration, Instant};

use mio::Interest;

use super::plan::Fanout;
use super::stamps::{stamped_body, unix_ns};
use super::{Driver, PUBLISHER};
use crate::publisher::Publisher;

/// Publishes sent per loop turn at most.
const PUBLISHES_PER_TURN: usize = 1000;

/// A fan-out's publishing state.
pub(super) struct Publishing {
    pub(super) settings: Fanout,
    /// Events to publish: the plan's count, cut to those sent if the publisher fails.
    pub(super) count: u64,
    publisher: Option<Publisher>,
    /// When publishing started: the schedule's origin.
    pub(super) started: Option<Instant>,
}

impl Publishing {
    pub(super) fn new(settings: Fanout) -> Publishing {
        Publishing { count: settings.events, settings, publisher: None, started: None }
    }

    /// When the `published`-th event is due: `None` before the start, once all are sent, and while a
    /// waiting publisher's answer is outstanding (its readable event says when).
    fn due_at(&self, published: u64) -> Option<Instant> {
        let start = self.started?;
        if published >= self.count || self.waiting_for_answer() {
            return None;
        }
        Some(self.scheduled(start, published).unwrap_or(start))
    }

    /// A publisher that waits for answers has one outstanding.
    fn waiting_for_answer(&self) -> bool {
        self.settings.waits_for_answers && self.publisher.as_ref().is_some_and(|p| p.outstanding() > 0)
    }

    /// The `seq`-th event's place on a clock-driven schedule (`None` when as fast as possible).
    fn scheduled(&self, start: Instant, seq: u64) -> Option<Instant> {
        let rate = self.settings.rate_per_s;
        (rate > 0.0).then(|| start + Duration::from_secs_f64(seq as f64 / rate))
    }
}

impl Driver {
    /// When the next publish is due, for the poll timeout.
    pub(super) fn next_publish_at(&self) -> Option<Instant> {
        self.publishing.as_ref()?.due_at(self.report.published)
    }

    /// Publishes what the schedule has made due (fan-out, the publishing worker only).
    pub(super) fn publish_due(&mut self, now: Instant) {
        let Some(publishing) = &self.publishing else { return };
        if !publishing.settings.publishes {
            return;
        }
        if publishing.started.is_none() && !self.start_publishing(now) {
            return;
        }
        self.publish_scheduled(now);
    }

    /// Connects the publisher once every stream has settled and GO came; returns whether it started.
    fn start_publishing(&mut self, now: Instant) -> bool {
        if !(self.ready_said || self.all_settled()) || !self.go() {
            return false;
        }
        let Some(publishing) = self.publishing.as_mut() else { return false };
        match Publisher::connect(&publishing.settings.target) {
            Ok(mut publisher) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().register(&mut publisher.socket, PUBLISHER, interest) {
                    self.report.fail(format!("publisher register: {e}"));
                    return false;
                }
                publishing.publisher = Some(publisher);
                publishing.started = Some(now);
                true
            }
            Err(e) => {
                self.report.fail(format!("publisher connect: {e}"));
                publishing.count = 0;
                false
            }
        }
    }

    /// Sends every event whose intended time has come, each stamped with that time.
    fn publish_scheduled(&mut self, now: Instant) {
        let Some(publishing) = self.publishing.as_mut() else { return };
        let Some(start) = publishing.started else { return };
        let mut budget = PUBLISHES_PER_TURN;
        while self.report.published < publishing.count && budget > 0 && !publishing.waiting_for_answer() {
            let intended = publishing.scheduled(start, self.report.published).unwrap_or(now);
            if intended > now {
                break;
            }
            let intended_ns =
                unix_ns().saturating_sub(now.saturating_duration_since(intended).as_nanos() as u64);
            let body = stamped_body(self.report.published, intended_ns, publishing.settings.payload_bytes);
            let Some(publisher) = publishing.publisher.as_mut() else { return };
            if let Err(why) = publisher.send(&publishing.settings.target, &body) {
                self.report.fail(why);
                publishing.count = self.report.published;
                return;
            }
            self.report.published += 1;
            budget -= 1;
        }
    }

    /// Reads the publisher's answers and writes what it still owes; a waiting publisher whose answer
    /// came sends its next event now.
    pub(super) fn drive_publisher(&mut self, now: Instant) {
        let Some(publishing) = self.publishing.as_mut() else { return };
        let Some(publisher) = publishing.publisher.as_mut() else { return };
        if let Err(why) = publisher.drive(&mut self.scratch) {
            self.report.fail(why);
            publishing.count = self.report.published;
            return;
        }
        if publishing.settings.waits_for_answers {
            self.publish_scheduled(now);
        }
    }

    /// A fan-out is over when publishing is done and every delivery arrived, or 5 s after the last
    /// delivery (the rest are lost); at once if there is nothing to publish.
    pub(super) fn fanout_finished(&self, publishing: &Publishing, now: Instant) -> bool {
        let subscribers = (self.subs.len() - self.stopped) as u64;
        let expected = publishing.count * subscribers;
        let all_in = publishing.count > 0 && self.report.delivered >= expected;
        // A worker that only subscribes knows publishing is under way once GO came.
        let publishing_done = if publishing.settings.publishes {
            publishing.started.is_some() && self.next_publish_at().is_none()
        } else {
            self.go() && self.ready_said
        };
        let drained =
            self.last_delivery.is_some_and(|t| now.saturating_duration_since(t) > Duration::from_secs(5));
        (publishing_done && (all_in || drained)) || (publishing.count == 0 && self.ready_said)
    }
}
