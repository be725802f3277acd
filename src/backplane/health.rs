//! The [`Backplane`]'s health: opening both links, coming up, going down, and the backoff between.
//!
//! # Rules
//!
//! - Both links come up together and go down together: an instance that can publish but not read (or
//!   the reverse) would answer 200 for events it never delivers.
//! - Going down answers every publish still waiting (503), closes both sockets, and schedules the next
//!   attempt after a jittered backoff (100 ms doubling to 5 s). The doubling and the "log once" start over
//!   only after a connection stayed up [`STABLE`], so a Redis that accepts and then misbehaves at once is
//!   retried ever more slowly and logged once, not 10 times a second.
//! - Logs: `lost Redis` (warn) once when an up backplane goes down, each other kind of failure once an
//!   episode (warn), repeats at debug, and `connected` (info) once after a warning. Never a password.

use std::time::{Duration, Instant};

use mio::Registry;

use super::link::{Expect, Failure, Link};
use super::{BACKOFF_FIRST, BACKOFF_MAX, Backplane, Published, STABLE};
use crate::token::{BACKPLANE_COMMAND as COMMAND_TOKEN, BACKPLANE_READ as READ_TOKEN};

impl<W: Copy> Backplane<W> {
    /// Opens both links and queues their first requests (written when each connect completes).
    pub(super) fn connect(&mut self, registry: &Registry, now: Instant) {
        self.reconnect_at = None;
        let addr = self.target.addr;
        let opened = Link::open(addr, registry, COMMAND_TOKEN, now).and_then(|command| {
            match Link::open(addr, registry, READ_TOKEN, now) {
                Ok(read) => Ok((command, read)),
                Err(e) => {
                    command.close(registry).for_each(drop);
                    Err(e)
                }
            }
        });
        let (mut command, mut read) = match opened {
            Ok(links) => links,
            Err(e) => {
                self.complain(&Failure::Io(e));
                self.schedule_reconnect(now);
                return;
            }
        };
        if let Some(auth) = &self.target.auth {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            args.extend(auth.user.as_ref().map(String::as_bytes));
            args.push(auth.password.as_bytes());
            command.send(&args, Expect::Auth, now);
            read.send(&args, Expect::Auth, now);
        }
        command.send(&[b"PING"], Expect::Ping, now);
        (self.command, self.read) = (Some(command), Some(read));
        (self.command_ready, self.read_ready, self.last_publish) = (false, false, 0);
        // The reading link reads the backlog once (for replay), then reads on from its newest entry;
        // after a reconnection it reads on from the last entry it had.
        match self.last_entry {
            None => self.read_page(None, now),
            Some(_) => self.read_live(now),
        }
    }

    pub(super) fn mark_up(&mut self, now: Instant) {
        if !self.announced {
            log::info!("backplane: connected to Redis at {}", self.target.addr);
            self.announced = true;
        }
        self.up = true;
        self.up_since = Some(now);
    }

    /// Logs a failure at warn if its kind was not logged yet this episode, else at debug.
    fn complain(&mut self, failure: &Failure) {
        let addr = self.target.addr;
        if self.complained.contains(&failure.kind()) {
            log::debug!("backplane: Redis at {addr}: {failure}");
        } else {
            log::warn!("backplane: Redis at {addr}: {failure}; publishes get 503 until it is back");
            self.complained.push(failure.kind());
            self.announced = false; // the next connection is news
        }
    }

    /// A link failed: close both, fail the publishes waiting on them, and try again later.
    pub(super) fn down(
        &mut self,
        registry: &Registry,
        now: Instant,
        failure: Failure,
        done: &mut Vec<Published<W>>,
    ) {
        if self.up_since.is_some_and(|since| now.saturating_duration_since(since) >= STABLE) {
            self.complained.clear(); // it was up a while: a new episode
            self.backoff = BACKOFF_FIRST;
        }
        if self.up && !self.complained.contains(&"lost") {
            let addr = self.target.addr;
            log::warn!("backplane: lost Redis at {addr} ({failure}); publishes get 503 until it is back");
            self.complained.extend(["lost", failure.kind()]);
            self.announced = false;
        } else {
            self.complain(&failure);
        }
        (self.up, self.up_since, self.command_ready, self.read_ready) = (false, None, false, false);
        for link in [self.command.take(), self.read.take()].into_iter().flatten() {
            for expect in link.close(registry) {
                if let Expect::Publish(waiter) = expect {
                    done.push(Published { waiter, result: Err("the backplane went down".into()) });
                }
            }
        }
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.schedule_reconnect(now);
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let ms = self.backoff.as_millis() as u64;
        let wait = Duration::from_millis(self.jitter.between(ms / 2, ms));
        self.reconnect_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}
