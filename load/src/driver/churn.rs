//! Churn cycles: open a stream, wait until it is ready (`--ready-on head|comment|event`), close it;
//! exactly the cycles asked, at most the concurrency at once.
//!
//! Rules:
//! - A cycle is one attempt: it opens once and ends once, done (ready, then closed by us) or failed
//!   (by cause). So the cycles started are the cycles asked, never more, and the run ends when every
//!   started cycle has ended.
//! - A stream with its head but not ready within the connect timeout ends its cycle undone (a server
//!   with ticks off never sends the event a churn of `--ready-on event` waits for).

use std::time::Instant;

use super::Driver;
use super::plan::Mode;
use crate::client::Client;

impl Driver {
    /// The cycle of `slot` is done: close it; the slot's place goes to the next cycle.
    pub(super) fn complete_cycle(&mut self, slot: usize) {
        self.report.cycles += 1;
        self.retire(slot);
    }

    /// Churn is over when every cycle asked has started and ended.
    pub(super) fn churn_finished(&self) -> bool {
        self.opened >= self.wanted_open() && self.subs.is_empty()
    }

    /// Churn: a stream with its head but not ready within the connect timeout ends its cycle undone.
    pub(super) fn check_ready_timeouts(&mut self, now: Instant) {
        let Mode::Churn { ready_on, .. } = self.plan.mode else { return };
        let timeout = self.plan.connect_timeout;
        let stuck: Vec<usize> = self
            .subs
            .iter()
            .filter_map(|(slot, sub)| {
                let client = sub.client.as_ref().filter(|c| Client::is_streaming(c))?;
                (now.saturating_duration_since(client.attempt_started) > timeout).then_some(slot)
            })
            .collect();
        for slot in stuck {
            self.report.drop_stream(format!("not ready ({}) within {timeout:?}", ready_on.name()));
            self.retire(slot);
        }
    }
}
