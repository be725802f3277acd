//! The worker table: one entry per worker slot, its process, and when to (re)start it.
//!
//! Rules:
//! - A worker that exits unasked is restarted after a back-off that doubles from [`MIN_BACKOFF`] to
//!   [`MAX_BACKOFF`] per slot, and starts over once a worker has lived [`STABLE`]: a binary that crashes
//!   at once, or that is missing, is retried calmly and forever, never in a hot loop.
//! - Nothing here sleeps: a restart is a deadline the supervisor's loop waits for in `poll`, so a signal
//!   is handled at once whatever the workers are doing.
//! - A slot in a rolling restart gets its replacement at once; the old process drains on beside it
//!   (`draining`) until it exits.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::cluster::Figures;

/// The first wait before restarting a worker that exited.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between restarts of one worker.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A worker that lived this long was healthy: its next restart waits only [`MIN_BACKOFF`].
pub const STABLE: Duration = Duration::from_secs(10);

/// One worker slot.
#[derive(Debug)]
pub struct Worker {
    pub index: usize,
    pub child: Option<Child>,
    pub started: Instant,
    /// When to start a process for this slot (none while one runs).
    pub restart_at: Option<Instant>,
    backoff: Duration,
    /// The process reported to the supervisor since it started: it is listening.
    pub ready: bool,
    /// Its latest figures.
    pub report: Option<Figures>,
}

impl Worker {
    /// A slot whose first process starts at `now`.
    pub fn new(index: usize, now: Instant) -> Worker {
        Worker {
            index,
            child: None,
            started: now,
            restart_at: Some(now),
            backoff: MIN_BACKOFF,
            ready: false,
            report: None,
        }
    }

    /// Starts this slot's process if its time has come; a failure to start is logged and retried later.
    pub fn start_if_due(&mut self, exe: &Path, args: &[String], now: Instant) {
        if self.child.is_some() || self.restart_at.is_none_or(|at| at > now) {
            return;
        }
        let mut command = Command::new(exe);
        command.args(args).args(["--worker-index".to_string(), self.index.to_string()]);
        if let Some(stderr) = crate::log_sink::real_stderr_for_child() {
            command.stderr(stderr); // whole lines straight to the real stderr (see `log_sink`)
        }
        let spawned = command.spawn();
        match spawned {
            Ok(child) => {
                log::info!("worker {} started (pid {})", self.index, child.id());
                self.child = Some(child);
                self.started = now;
                self.restart_at = None;
                self.ready = false;
                self.report = None;
            }
            Err(e) => {
                let wait = self.next_backoff(now);
                log::error!(
                    "cannot start worker {} ({}: {e}); trying again in {wait:?}",
                    self.index,
                    exe.display()
                );
            }
        }
    }

    /// The process exited unasked: schedule its restart (at once when `immediately`, else backed off).
    pub fn exited(&mut self, now: Instant, immediately: bool) -> Duration {
        self.child = None;
        self.ready = false;
        self.report = None;
        if now.saturating_duration_since(self.started) >= STABLE {
            self.backoff = MIN_BACKOFF;
        }
        if immediately {
            self.restart_at = Some(now);
            return Duration::ZERO;
        }
        self.next_backoff(now)
    }

    /// Schedules a restart one back-off from `now` and doubles the next back-off.
    fn next_backoff(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.restart_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_a_healthy_life_starts_over() {
        let t0 = Instant::now();
        let mut worker = Worker::new(0, t0);
        let waits: Vec<Duration> = (0..10).map(|_| worker.exited(t0, false)).collect();
        assert_eq!(waits[0], MIN_BACKOFF);
        assert_eq!(waits[1], MIN_BACKOFF * 2);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "never shorter: {waits:?}");
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF, "capped");
        worker.started = t0;
        assert_eq!(worker.exited(t0 + STABLE, false), MIN_BACKOFF, "after a healthy life, quick again");
        assert_eq!(worker.exited(t0, true), Duration::ZERO, "a rolling restart's replacement: at once");
        assert_eq!(worker.restart_at, Some(t0));
    }

    #[test]
    fn a_missing_binary_is_retried_later_never_in_a_hot_loop() {
        let t0 = Instant::now();
        let mut worker = Worker::new(3, t0);
        worker.start_if_due(Path::new("/nonexistent/mio-sse"), &[], t0);
        assert!(worker.child.is_none());
        assert_eq!(worker.restart_at, Some(t0 + MIN_BACKOFF));
        worker.start_if_due(Path::new("/nonexistent/mio-sse"), &[], t0);
        assert_eq!(worker.restart_at, Some(t0 + MIN_BACKOFF), "not due yet: not tried again");
    }
}
