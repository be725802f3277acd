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
//! - Every answer is counted by status: only accepted publishes (2xx) are expected at the subscribers; a
//!   refused one is a `publish: STATUS REASON` failure. A publisher whose connection fails cuts the count
//!   short: requests left unanswered and events never sent are counted as publish failures too.

use std::time::{Duration, Instant};

use mio::Interest;

use super::plan::Fanout;
use super::stamps::{stamped_body, unix_ns};
use super::{Driver, PUBLISHER};
use crate::publisher::Publisher;
use crate::topics;

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
    /// When the last publish was answered (or the publisher failed).
    done_at: Option<Instant>,
}

impl Publishing {
    pub(super) fn new(settings: Fanout) -> Publishing {
        Publishing { count: settings.events, settings, publisher: None, started: None, done_at: None }
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
    pub(super) fn waiting_for_answer(&self) -> bool {
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
                    let cause = format!("publish: not sent: register: {e}");
                    *self.report.publish_failures.entry(cause).or_default() += publishing.count;
                    publishing.count = 0;
                    publishing.done_at = Some(now);
                    return false;
                }
                publishing.publisher = Some(publisher);
                publishing.started = Some(now);
                true
            }
            Err(e) => {
                let cause = format!("publish: not sent: connect: {}", crate::client::short(&e));
                *self.report.publish_failures.entry(cause).or_default() += publishing.count;
                publishing.count = 0;
                publishing.done_at = Some(now);
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
            let seq = self.report.published;
            let topic = self.plan.topics.as_ref().map(|spread| spread.publish_topic(seq));
            let body = stamped_body(seq, intended_ns, publishing.settings.payload_bytes, topic);
            let target = &publishing.settings.target;
            let topic_path = topic.map(|topic| topics::with_topic(&target.path, topic));
            let path = topic_path.as_deref().unwrap_or(&target.path);
            let Some(publisher) = publishing.publisher.as_mut() else { return };
            self.report.published += 1;
            budget -= 1;
            if let Err(why) = publisher.send(target, path, &body, topic) {
                self.publisher_failed(now, &why);
                return;
            }
        }
        self.take_answers(now);
    }

    /// Moves the publisher's answer counts into the report; notes when the last publish was answered.
    fn take_answers(&mut self, now: Instant) {
        let Some(publishing) = self.publishing.as_mut() else { return };
        let Some(publisher) = publishing.publisher.as_mut() else { return };
        self.report.publish_accepted = publisher.accepted;
        for topic in publisher.take_accepted_tags() {
            if let Some(accepted) = self.report.topics.accepted.get_mut(topic as usize) {
                *accepted += 1;
            }
        }
        for (status, n) in publisher.take_refusals() {
            *self.report.publish_failures.entry(status).or_default() += n;
        }
        if self.report.published >= publishing.count && publisher.outstanding() == 0 {
            publishing.done_at.get_or_insert(now);
        }
    }

    /// The publisher's connection failed: its answers so far are counted, then what it can no longer
    /// do (requests unanswered, events never sent) is counted as publish failures, and publishing ends.
    fn publisher_failed(&mut self, now: Instant, why: &str) {
        self.take_answers(now);
        let Some(publishing) = self.publishing.as_mut() else { return };
        let unanswered = publishing.publisher.as_ref().map_or(0, Publisher::outstanding);
        let unsent = publishing.count.saturating_sub(self.report.published);
        if unanswered > 0 {
            *self.report.publish_failures.entry(format!("publish: no answer: {why}")).or_default() +=
                unanswered;
        }
        if unsent > 0 {
            *self.report.publish_failures.entry(format!("publish: not sent: {why}")).or_default() += unsent;
        }
        if let Some(mut publisher) = publishing.publisher.take() {
            let _ = self.poll.registry().deregister(&mut publisher.socket);
        }
        publishing.count = self.report.published;
        publishing.done_at = Some(now);
    }

    /// Reads the publisher's answers and writes what it still owes; a waiting publisher whose answer
    /// came sends its next event now.
    pub(super) fn drive_publisher(&mut self, now: Instant) {
        let Some(publishing) = self.publishing.as_mut() else { return };
        let Some(publisher) = publishing.publisher.as_mut() else { return };
        if let Err(why) = publisher.drive(&mut self.scratch.bytes) {
            self.publisher_failed(now, &why);
            return;
        }
        let waits = publishing.settings.waits_for_answers;
        self.take_answers(now);
        if waits {
            self.publish_scheduled(now);
        }
    }

    /// A fan-out is over when publishing is done (every publish answered, or the publisher failed) and
    /// every accepted event reached every subscriber, or 5 s after the later of the last delivery and
    /// the end of publishing (the rest are lost).
    pub(super) fn fanout_finished(&self, publishing: &Publishing, now: Instant) -> bool {
        let subscribers = (self.subs.len() - self.stopped) as u64;
        let quiet_since =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) > Duration::from_secs(5));
        if publishing.settings.publishes {
            let Some(done_at) = publishing.done_at else { return false };
            let all_in = self.report.delivered >= self.report.publish_accepted * subscribers;
            let last = self.last_delivery.map_or(done_at, |t| t.max(done_at));
            all_in || quiet_since(Some(last))
        } else {
            // A worker that only subscribes knows publishing is under way once GO came.
            let all_in = publishing.count > 0 && self.report.delivered >= publishing.count * subscribers;
            self.go() && self.ready_said && (all_in || quiet_since(self.last_delivery))
        }
    }
}
