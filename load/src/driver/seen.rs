//! Counting what a subscriber's client saw ([`Seen`]): a stream opened or refused, a comment, an event
//! (its id checked, its delivery or tick timed, a churn cycle made ready), or the connection's end.
//!
//! Rules:
//! - An event's own id is checked by the run's rule ([`crate::ids`]); a duplicate is not a delivery.
//! - Latency is measured from the publisher's stamp (the event's intended time), tick lateness from the
//!   stream's own grid of ticks, and only in steady state: once at receipt (all of it) and once at the
//!   tick's own stamp (the server's share: how late it wrote the tick).
//! - A head is timed into `connect_us` on a stream's first attempt and into `reconnect_us` after; a
//!   dropped stream's drop-to-head time goes into `recovery_us`.
//! - A browser gives up on any status but 200 (204 is the polite stop): so does a refused stream.
//! - A stream that ends after connecting is a drop (by cause); with `--reconnect` it tries again after its
//!   `retry:` time and counts as not back until it has.
//! - A stream is *completed*, not dropped, when its body ends cleanly (the server's close, with
//!   `close_notify` over TLS, or the last chunk) and the run does not reconnect (a browser would: then it
//!   is a drop as before), or when an event's data is `--until-data` (the client closes it). Churn's
//!   cycles are closed by readiness, never completed.

use std::time::{Duration, Instant};

use super::Driver;
use super::plan::{Mode, ReadyOn};
use super::stamps::{Clock, DAY_MS, ideal_tick_ms, lateness_ms, publish_stamp, tick_time};
use crate::client::Seen;
use crate::topics;

impl Driver {
    /// Counts one thing `slot`'s current client saw, at `clock` (read once per read batch: the events
    /// of one batch arrived together, and reading the clock per event cost a tenth of the client's time).
    /// An event's data and id are spans of `text`, the drive's scratch text.
    pub(super) fn on_seen(&mut self, slot: usize, item: Seen, text: &str, clock: Clock) {
        let now = clock.now;
        let Some(client) = self.subs.get(slot).and_then(|sub| sub.client.as_ref()) else { return };
        let since_attempt = now.saturating_duration_since(client.attempt_started);
        match item {
            Seen::Head { status: 200, event_stream: true } => self.on_stream_opened(slot, now, since_attempt),
            Seen::Head { status, event_stream } => self.on_refused(slot, status, event_stream),
            Seen::Comment => self.on_ready(slot, ReadyOn::Comment),
            Seen::Event { data, id } => {
                self.on_event(slot, clock, since_attempt, data.of(text), id.map(|id| id.of(text)));
            }
            Seen::Ended(why) => self.on_ended(slot, now, why),
            Seen::Completed => self.on_completed(slot, now, false),
        }
    }

    /// A `200 text/event-stream` head: the stream is connected (or back).
    fn on_stream_opened(&mut self, slot: usize, now: Instant, since_attempt: Duration) {
        self.report.connected += 1;
        self.second.connect_us.record(since_attempt.as_micros() as u64);
        if let Some(sub) = self.subs.get_mut(slot) {
            sub.transient_failures = 0;
            if sub.attempts <= 1 {
                self.report.connect_us.record(since_attempt.as_micros() as u64);
            } else {
                self.report.reconnect_us.record(since_attempt.as_micros() as u64);
            }
            if let Some(dropped) = sub.dropped_at.take() {
                self.report.recovery_us.record(now.saturating_duration_since(dropped).as_micros() as u64);
            }
        }
        self.settle(slot);
        self.on_ready(slot, ReadyOn::Head);
    }

    /// Any other head: a failure, and this subscriber stops for good.
    fn on_refused(&mut self, slot: usize, status: u16, event_stream: bool) {
        let cause = if status == 200 && !event_stream {
            "200 without text/event-stream".to_owned()
        } else {
            format!("status {status}")
        };
        self.report.fail(cause);
        self.settle(slot);
        self.retire(slot);
    }

    fn on_event(&mut self, slot: usize, clock: Clock, since_attempt: Duration, data: &str, id: Option<&str>) {
        self.report.events += 1;
        if let Some(sub) = self.subs.get_mut(slot) {
            sub.events = sub.events.saturating_add(1);
            if matches!(self.plan.mode, Mode::Stream { .. }) {
                let at = u32::try_from(since_attempt.as_micros()).unwrap_or(u32::MAX);
                if sub.got_event {
                    self.report.event_gap_us.record(u64::from(at.saturating_sub(sub.last_event_us)));
                }
                sub.last_event_us = at;
            }
        }
        self.note_first_event(slot, since_attempt);
        let new = match (id, self.subs.get_mut(slot)) {
            (Some(id), Some(sub)) => {
                // The first id of an attempt after the first is where a jump (a server restart) may show:
                // not the first event, which may be a tick without an id sent with the head.
                let reconnected = sub.attempts > 1 && !sub.got_id;
                sub.got_id = true;
                sub.ids.check(self.plan.ids, id, reconnected, &mut self.report.ids)
            }
            _ => true,
        };
        if let Some(sent_ns) = publish_stamp(data).filter(|_| new) {
            if !self.on_its_topic(slot, data) {
                return;
            }
            self.record_delivery(clock, sent_ns);
        } else if self.plan.tick_interval_ms > 0
            && let Some(tick_ms) = tick_time(data)
        {
            if let Some(sub) = self.subs.get_mut(slot) {
                sub.ticks = sub.ticks.saturating_add(1);
            }
            self.record_tick(slot, clock, tick_ms);
        }
        if self.plan.until_data.as_deref() == Some(data) {
            return self.on_completed(slot, clock.now, true);
        }
        self.on_ready(slot, ReadyOn::Event);
    }

    /// With `--topics`: whether a published event came on its stream's topic (counted per topic); one
    /// that did not is an error, not a delivery.
    fn on_its_topic(&mut self, slot: usize, data: &str) -> bool {
        if self.plan.topics.is_none() {
            return true;
        }
        let (expected, got) = (self.subs.get(slot).map_or(0, |sub| sub.topic), topics::topic_of(data));
        if got != Some(expected) {
            self.report.topics.wrong_topic += 1;
            return false;
        }
        if let Some(delivered) = self.report.topics.delivered.get_mut(expected as usize) {
            *delivered += 1;
        }
        true
    }

    /// Churn: the stream reached what counts as ready (a head, a comment or an event): its cycle is done.
    fn on_ready(&mut self, slot: usize, reached: ReadyOn) {
        if let Mode::Churn { ready_on, .. } = self.plan.mode
            && reached >= ready_on
            && self.subs.get(slot).is_some_and(|sub| sub.client.is_some())
        {
            self.complete_cycle(slot);
        }
    }

    /// Times the attempt's first event (once per attempt).
    fn note_first_event(&mut self, slot: usize, since_attempt: Duration) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        if !sub.got_event {
            sub.got_event = true;
            self.report.first_event_us.record(since_attempt.as_micros() as u64);
        }
    }

    /// A published event arrived: its latency from its intended send time.
    fn record_delivery(&mut self, clock: Clock, sent_ns: u64) {
        let now = clock.now;
        self.report.delivered += 1;
        let latency_us = clock.unix_ns.saturating_sub(sent_ns) / 1000;
        self.report.latency_us.record(latency_us);
        self.second.latency_us.record(latency_us);
        self.last_delivery = Some(now);
    }

    /// A tick arrived: how late it is on its stream's grid (whose origin is the stream's first tick).
    fn record_tick(&mut self, slot: usize, clock: Clock, tick_ms: u64) {
        let now = clock.now;
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let origin = (*sub.tick_origin.get_or_insert(tick_ms as u32)).into(); // ms of a day fit 32 bits
        let ideal = ideal_tick_ms(origin, tick_ms, self.plan.tick_interval_ms);
        let received = (clock.unix_ns / 1_000_000) % DAY_MS;
        // Steady state only: from a second after every stream settled, so that the connect storm of the
        // ramp (SYN retransmits, the accept queue) is not counted as lateness.
        if self.ready_at.is_some_and(|at| now >= at + Duration::from_secs(1)) {
            self.report.tick_lateness_ms.record(lateness_ms(received, ideal));
            self.report.tick_send_lateness_ms.record(lateness_ms(tick_ms, ideal));
        }
    }

    /// The body ended cleanly (`until_data`: the client saw `--until-data` and ends it itself).
    fn on_completed(&mut self, slot: usize, now: Instant, until_data: bool) {
        let churn = matches!(self.plan.mode, Mode::Churn { .. });
        if churn || (self.plan.reconnect && !until_data) {
            return self.on_ended(slot, now, "closed by server".into());
        }
        self.report.completed += 1;
        if let Some(sub) = self.subs.get(slot) {
            self.report.events_per_stream.record(u64::from(sub.events));
            if let Some(client) = &sub.client {
                let duration = now.saturating_duration_since(client.attempt_started);
                self.report.stream_duration_us.record(duration.as_micros() as u64);
            }
        }
        self.settle(slot);
        self.retire(slot);
    }

    /// The connection ended. Before its head: the attempt failed. After: a drop, and a browser-like
    /// client reconnects after its `retry:` time.
    fn on_ended(&mut self, slot: usize, now: Instant, why: String) {
        let Some(client) = self.subs.get(slot).and_then(|sub| sub.client.as_ref()) else { return };
        let (streamed, retry) = (client.streamed, Duration::from_millis(client.retry_ms.into()));
        if streamed {
            self.report.drop_stream(why);
        } else {
            self.attempt_failed(slot, why);
        }
        self.settle(slot);
        if self.plan.reconnect {
            self.close(slot);
            if let Some(sub) = self.subs.get_mut(slot) {
                if streamed {
                    sub.dropped_at = Some(now);
                }
                self.reconnects.schedule(now + retry, slot);
            }
        } else {
            self.retire(slot);
        }
    }
}
