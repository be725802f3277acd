//! A rolling restart (SIGHUP): every worker slot replaced in turn, paced so that the service never has
//! fewer listeners than slots and takes one draining process's reconnections at a time.
//!
//! One slot, step by step:
//! 1. **Replace**: the slot's process is set aside (still serving, still listening) and its replacement
//!    starts at once.
//! 2. **Await the replacement**: until the new process reports to the supervisor (it reports once it
//!    listens). Only then is the old one told to drain, so the `SO_REUSEPORT` group never shrinks and
//!    what the old listener had queued moves to a live one.
//! 3. **Drain**: SIGTERM to the old process; its streams end with a jittered `retry:`
//!    ([`crate::server::retry_spread_ms`]) and come back with `Last-Event-ID`, to the other workers or
//!    the replacement. The next slot goes once the old process is gone and the service holds as many
//!    streams as before (give or take 1% of the old process's), or, if clients do not all come back (they
//!    may have left), once their `retry:` and its spread are over, plus [`SETTLE`].
//!
//! Rules:
//! - Nothing here waits: each step is looked at once a turn of the supervisor's loop (which wakes at
//!   least once a second, for the totals).
//! - One draining process at a time: a restart of N workers holding S streams reconnects at most ~2,000
//!   streams a second, however large N and S are.

use std::time::{Duration, Instant};

use signal_hook::consts::SIGTERM;

use super::{Old, Supervisor, forward};

/// After the spread of `retry:` times, the time left for the last clients to connect and be counted
/// (reports are a second old, connects under load take a few more).
pub const SETTLE: Duration = Duration::from_secs(5);

/// A replacement not listening after this long is logged (once); the old process serves on meanwhile.
pub const SLOW_START: Duration = Duration::from_secs(60);

/// Where a rolling restart stands.
#[derive(Debug)]
pub struct Roll {
    /// The slot being replaced (== the number of slots: done).
    pub slot: usize,
    pub started: Instant,
    pub step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The slot's process is to be set aside and its replacement started.
    Replace,
    /// The replacement started; the old process serves on until the replacement reports.
    AwaitReplacement { since: Instant, old_pid: u32, warned: bool },
    /// The old process was told to drain at `since`; the service held `before` streams then, the old
    /// process `old_streams` of them; its clients are due back by `due`.
    Drain { old_pid: u32, before: u64, old_streams: u64, due: Instant },
}

impl Roll {
    pub fn new(now: Instant) -> Roll {
        Roll { slot: 0, started: now, step: Step::Replace }
    }
}

/// Whether the streams a drained process held are back in the service: `now_open` within 1% of that
/// process's streams of what the service held before it drained.
pub fn streams_back(before: u64, old_streams: u64, now_open: u64) -> bool {
    now_open + old_streams / 100 >= before
}

/// When a drained process's clients are due back at the latest: its `retry:` plus the spread it draws
/// from, plus [`SETTLE`].
pub fn due_back(now: Instant, retry_ms: u64, old_streams: u64) -> Instant {
    now + Duration::from_millis(retry_ms + crate::server::retry_spread_ms(old_streams)) + SETTLE
}

impl Supervisor {
    /// A rolling restart's next step (see [`roll`]): replace a slot, drain its old process once the
    /// replacement listens, go on once the old process is gone and its streams are back.
    pub(super) fn roll_on(&mut self, now: Instant) {
        let Some(mut roll) = self.roll.take() else { return };
        if roll.slot >= self.workers.len() {
            log::info!(
                "rolling restart done in {:.1} s",
                now.saturating_duration_since(roll.started).as_secs_f64()
            );
            return;
        }
        let slot = roll.slot;
        match roll.step {
            Step::Replace => {
                let worker = &mut self.workers[slot];
                let Some(old) = worker.child.take() else {
                    roll.slot += 1; // no process in this slot now (it is being restarted): nothing to drain
                    self.roll = Some(roll);
                    return;
                };
                let old_pid = old.id();
                log::info!(
                    "worker {slot}: its replacement starts; the old process (pid {old_pid}) serves until it listens"
                );
                self.draining.push(Old { index: slot, child: old, report: worker.report.take() });
                worker.exited(now, true);
                worker.start_if_due(&self.exe, &self.args, now);
                roll.step = Step::AwaitReplacement { since: now, old_pid, warned: false };
            }
            Step::AwaitReplacement { since, old_pid, warned } => {
                if !self.workers[slot].ready {
                    if !warned && now.saturating_duration_since(since) > SLOW_START {
                        log::warn!(
                            "worker {slot}: the replacement is not listening after {:?}; the old process serves on",
                            SLOW_START
                        );
                        roll.step = Step::AwaitReplacement { since, old_pid, warned: true };
                    }
                    self.roll = Some(roll);
                    return;
                }
                let before = self.open_streams();
                let old = self.draining.iter_mut().find(|old| old.child.id() == old_pid);
                let old_streams =
                    old.as_ref().and_then(|o| o.report.as_ref()).map_or(0, |r| r.gauges.open_streams);
                if let Some(old) = old {
                    forward(&mut old.child, SIGTERM);
                }
                log::info!(
                    "worker {slot}: the replacement listens; the old process (pid {old_pid}) drains {old_streams} streams"
                );
                let due = due_back(now, self.retry_ms, old_streams);
                roll.step = Step::Drain { old_pid, before, old_streams, due };
            }
            Step::Drain { old_pid, before, old_streams, due } => {
                let old_gone = !self.draining.iter().any(|old| old.child.id() == old_pid);
                let back = streams_back(before, old_streams, self.open_streams());
                if old_gone && (back || now >= due) {
                    if !back {
                        log::info!(
                            "worker {slot}: {} of {old_streams} streams not back by their retry time; going on",
                            before.saturating_sub(self.open_streams())
                        );
                    }
                    roll.slot += 1;
                    roll.step = Step::Replace;
                }
            }
        }
        self.roll = Some(roll);
    }

    /// Streams open in the service, by the latest reports (the old processes' included).
    fn open_streams(&self) -> u64 {
        let current = self.workers.iter().filter_map(|w| w.report.as_ref());
        current
            .chain(self.draining.iter().filter_map(|old| old.report.as_ref()))
            .map(|r| r.gauges.open_streams)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_done_when_its_streams_are_back_or_their_time_is_over() {
        assert!(streams_back(1_000_000, 19_000, 1_000_000));
        assert!(streams_back(1_000_000, 19_000, 999_810), "1% of the old process's may have left");
        assert!(!streams_back(1_000_000, 19_000, 990_000), "half of them still away");
        let t0 = Instant::now();
        assert_eq!(due_back(t0, 3_000, 19_000), t0 + Duration::from_millis(3_000 + 9_500) + SETTLE);
    }
}
