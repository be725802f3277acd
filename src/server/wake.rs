//! A precise wake-up for the loop: a `timerfd` armed for its next deadline.
//!
//! Why: `Poll::poll` sleeps in whole milliseconds (epoll_wait's unit), and mio rounds a timeout *up* so
//! that it never wakes early. A tick due 0.2 ms from now woke the loop a whole millisecond later; with the
//! deadlines themselves kept to the millisecond and rounded up too ([`crate::clock`]), a tick went out
//! ~1 ms after its time on average and up to ~2 ms, before any other delay: most of a 2 ms budget for tick
//! lateness. A timerfd fires at its time to the microsecond (plus the kernel's 50 µs timer slack), so the
//! loop wakes when the deadline is due, not at the next whole millisecond after it.
//!
//! Rules:
//! - It only ever makes a wake earlier: `poll` keeps its millisecond timeout, so a loop whose kernel
//!   refuses a timerfd (or whose arming failed) runs exactly as without one.
//! - Armed only when the deadline moved (one `timerfd_settime` for a turn that fired timers, none for a
//!   turn that did not): a thousand syscalls a second at most beside 19,000 tick writes.
//! - Its readiness is never read: re-arming resets its count of expiries and with it the readiness, so the
//!   next expiry is a new edge (timerfd_settime(2)); an expiry that is not re-armed has nothing more to
//!   say. A stale arming (the deadline went away) wakes the loop once for nothing, which is harmless.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

/// The loop's precise alarm.
#[derive(Debug)]
pub struct Wake {
    fd: OwnedFd,
    /// The deadline it is armed for, if any.
    armed: Option<Instant>,
}

impl Wake {
    /// A timerfd on the monotonic clock (the one `Instant` reads), registered under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Wake> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Wake { fd, armed: None })
    }

    /// Arms the alarm for `deadline` (as read at `now`), unless it is armed for it already or it is due
    /// (then `poll` does not wait at all). A failure is logged and otherwise ignored: see the rules.
    pub fn arm(&mut self, deadline: Option<Instant>, now: Instant) {
        let Some(deadline) = deadline else { return };
        if self.armed == Some(deadline) || deadline <= now {
            return;
        }
        let after = deadline - now; // more than zero: an all-zero value would disarm it
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 }, // one expiry, no period
            it_value: Timespec { tv_sec: after.as_secs() as _, tv_nsec: after.subsec_nanos() as _ },
        };
        match rustix::time::timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec) {
            Ok(_) => self.armed = Some(deadline),
            Err(e) => {
                self.armed = None;
                log::debug!("timerfd_settime: {e}; waking on poll's timeout alone");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Duration;

    #[test]
    fn the_alarm_wakes_poll_at_its_deadline_never_before_and_again_when_rearmed() {
        let mut poll = Poll::new().expect("poll");
        let mut wake = Wake::new(poll.registry(), Token(7)).expect("timerfd");
        let mut events = Events::with_capacity(8);
        for round in 0..2 {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(3);
            wake.arm(Some(deadline), start);
            wake.arm(Some(deadline), start); // the same deadline again: nothing to do
            assert_eq!(wake.armed, Some(deadline));
            // A poll that would sleep 10 s is woken by the alarm (edge-triggered: round 1 is a new edge
            // although round 0's expiry was never read).
            poll.poll(&mut events, Some(Duration::from_secs(10))).expect("poll");
            let woke = Instant::now();
            assert!(events.iter().any(|e| e.token() == Token(7)), "round {round}: woken by the alarm");
            assert!(woke >= deadline, "round {round}: never early");
            assert!(woke < start + Duration::from_secs(5), "round {round}: not by poll's own timeout");
        }
        let now = Instant::now();
        wake.arm(Some(now), now);
        wake.arm(None, now);
        assert!(wake.armed.is_some_and(|at| at < now), "a due or absent deadline arms nothing");
    }
}
