//! Counting what a subscriber's client saw ([`Seen`]): a stream opened or refused, an event (its id
//! checked, its delivery or tick timed, a churn cycle completed), or the connection's end.
//!
//! Rules:
//! - An event with its own id is new only if the id is past the last one: a repeat or a step back is a
//!   duplicate (and is not counted as a delivery), a jump is a gap.
//! - Latency is measured from the publisher's stamp (the event's intended time), tick lateness from the
//!   stream's own grid of ticks, and only in steady state.
//! - A browser gives up on any status but 200 (204 is the polite stop): so does a refused stream.

use std::time::{Duration, Instant};

use super::Driver;
use super::plan::Mode;
use super::stamps::{DAY_MS, ideal_tick_ms, lateness_ms, publish_stamp, tick_time, unix_ns};
use crate::client::Seen;

impl Driver {
    /// Counts one thing `slot`'s current client saw.
    pub(super) fn on_seen(&mut self, slot: usize, item: Seen) {
        let now = Instant::now();
        let Some(client) = self.subs.get(slot).and_then(|sub| sub.client.as_ref()) else { return };
        let since_attempt = now.saturating_duration_since(client.attempt_started);
        match item {
            Seen::Head { status: 200, event_stream: true } => self.on_stream_opened(slot, since_attempt),
            Seen::Head { status, event_stream } => self.on_refused(slot, status, event_stream),
            Seen::Event { data, id } => self.on_event(slot, now, since_attempt, &data, id.as_deref()),
            Seen::Ended(why) => self.on_ended(slot, now, why),
        }
    }

    /// A `200 text/event-stream` head: the stream is connected.
    fn on_stream_opened(&mut self, slot: usize, since_attempt: Duration) {
        self.report.connected += 1;
        self.report.connect_us.record(since_attempt.as_micros() as u64);
        self.settle(slot);
    }

    /// Any other head: a failure, and this subscriber stops for good.
    fn on_refused(&mut self, slot: usize, status: u16, event_stream: bool) {
        let cause = if status == 200 && !event_stream {
            "200 without text/event-stream".to_owned()
        } else {
            format!("status {status}")
        };
        self.report.fail(cause);
        if let Some(sub) = self.subs.get_mut(slot) {
            sub.stopped = true;
        }
        self.stopped += 1;
        self.close(slot);
        self.settle(slot);
    }

    fn on_event(&mut self, slot: usize, now: Instant, since_attempt: Duration, data: &str, id: Option<&str>) {
        self.report.events += 1;
        self.note_first_event(slot, since_attempt);
        let new = self.check_id(slot, id);
        if let Some(sent_ns) = publish_stamp(data).filter(|_| new) {
            self.record_delivery(now, sent_ns);
        } else if self.plan.tick_interval_ms > 0
            && let Some(tick_ms) = tick_time(data)
        {
            self.record_tick(slot, now, tick_ms);
        }
        if let Mode::Churn { cycles, .. } = self.plan.mode {
            self.complete_cycle(slot, cycles);
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

    /// Checks an event's own id against the stream's last one (gaps, duplicates); returns whether the
    /// event is new. Events without a numeric id are new.
    fn check_id(&mut self, slot: usize, id: Option<&str>) -> bool {
        let Some(Ok(id)) = id.map(str::parse::<u64>) else { return true };
        let Some(sub) = self.subs.get_mut(slot) else { return true };
        match sub.last_id {
            Some(last) if id > last + 1 => self.report.gaps += id - last - 1,
            Some(last) if id <= last => {
                self.report.duplicates += 1;
                return false;
            }
            _ => {}
        }
        sub.last_id = Some(id);
        true
    }

    /// A published event arrived: its latency from its intended send time.
    fn record_delivery(&mut self, now: Instant, sent_ns: u64) {
        self.report.delivered += 1;
        self.report.latency_us.record(unix_ns().saturating_sub(sent_ns) / 1000);
        self.last_delivery = Some(now);
    }

    /// A tick arrived: how late it is on its stream's grid (whose origin is the stream's first tick).
    fn record_tick(&mut self, slot: usize, now: Instant, tick_ms: u64) {
        let Some(sub) = self.subs.get_mut(slot) else { return };
        let origin = *sub.tick_origin.get_or_insert(tick_ms);
        let ideal = ideal_tick_ms(origin, tick_ms, self.plan.tick_interval_ms);
        let received = (unix_ns() / 1_000_000) % DAY_MS;
        // Steady state only: from a second after every stream settled, so that the connect storm of the
        // ramp (SYN retransmits, the accept queue) is not counted as lateness.
        if self.ready_at.is_some_and(|at| now >= at + Duration::from_secs(1)) {
            self.report.tick_lateness_ms.record(lateness_ms(received, ideal));
        }
    }

    /// Churn: the first event ends the cycle; a fresh stream takes the slot's place while cycles remain.
    fn complete_cycle(&mut self, slot: usize, cycles: u64) {
        self.report.cycles += 1;
        if let Some(sub) = self.subs.get_mut(slot) {
            sub.stopped = true;
        }
        self.close(slot);
        self.subs.remove(slot);
        if self.report.cycles + (self.subs.len() as u64) < cycles {
            self.opened -= 1; // open a fresh one in its place
        }
    }

    /// The connection ended: a failure unless it was a streaming browser-like client's drop, which
    /// reconnects after its `retry:` time.
    fn on_ended(&mut self, slot: usize, now: Instant, why: String) {
        let Some(client) = self.subs.get(slot).and_then(|sub| sub.client.as_ref()) else { return };
        let (was_streaming, retry) = (client.streamed, Duration::from_millis(client.retry_ms));
        if !was_streaming || !self.plan.reconnect {
            self.report.fail(why);
        }
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
