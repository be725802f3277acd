//! The graceful shutdown: what the first SIGINT or SIGTERM starts, and the last line the server logs.
//!
//! Rules:
//! - Nothing a client already sent is reset. Before the listener closes, what waits in its accept queue
//!   is accepted (closing a listener resets its queued connections, unless `net.ipv4.tcp_migrate_req`
//!   moves them to another listener of the `SO_REUSEPORT` group); then every connection reads what its
//!   socket already holds (events are hints: a request may be there before its readable edge was seen),
//!   so a request in flight is answered, and a stream request opens and ends at once with its `retry:`.
//!   Closing a socket with unread input would send a reset instead of a clean end.
//! - The listener is then closed (with `SO_REUSEPORT`, new connections go to the other workers).
//! - A connection that has not sent a request yet gets [`IDLE_GRACE`] to send one (a client that just
//!   connected is writing it); then it closes. A request in progress is answered and closed; every stream
//!   ends once it has sent what it owes, with a `retry:` drawn from a spread that grows with the number
//!   of streams ([`retry_spread_ms`]), so that clients come back at their own moments, not in one storm.
//! - The loop ends when every connection is gone or the `--shutdown-timeout-ms` deadline passes; a second
//!   signal ends it at once (see `Server::run`).

use std::time::{Duration, Instant};

use super::handling::key_of;
use super::{Server, Transport};
use crate::conn::Next;
use crate::conn::State;
use crate::token::ConnKey;

/// How long a connection without a request may still send one once the shutdown has begun: the
/// client of a connection just accepted is writing its request, and closing before it arrives would
/// answer that request with a reset. (Like `LINGER`: a peer's next packet, on a loaded machine.)
pub const IDLE_GRACE: Duration = Duration::from_secs(2);

/// The spread of `retry:` times a draining server gives `streams` streams: ~2,000 reconnects a second
/// at most come back to the service from one draining process, whatever its size (2 s to 60 s).
pub fn retry_spread_ms(streams: u64) -> u64 {
    (streams / 2).clamp(2_000, 60_000)
}

impl<S: Transport> Server<S> {
    /// First signal: take what the listener has queued, stop accepting, read what every connection has
    /// sent, end every stream (once it has sent what it owes) with a jittered `retry:`, give connections
    /// without a request [`IDLE_GRACE`] and the rest until the deadline.
    pub(super) fn begin_shutdown(&mut self, signal: i32, now: Instant) {
        let timeout = Duration::from_millis(self.cx.config.shutdown_timeout_ms);
        let queued = self.accept_backlog(now);
        let streams = self.cx.gauges.open_streams;
        let spread_ms = retry_spread_ms(streams);
        log::info!(
            "signal {signal}: shutting down; ending {streams} streams (clients come back within {spread_ms} ms), {} \
             connections open ({queued} taken from the accept queue), {timeout:?} to flush",
            self.conns.len()
        );
        self.shutdown_deadline = Some(now + timeout);
        self.idle_close_at = Some(now + IDLE_GRACE.min(timeout / 2));
        self.cx.shutdown_spread_ms = Some(spread_ms);
        // Closed, not only deregistered: an open listener in a `SO_REUSEPORT` group keeps being handed
        // new connections that nobody would accept.
        if let Some(mut listener) = self.listener.take()
            && let Err(e) = self.poll.registry().deregister(&mut listener)
        {
            log::debug!("deregister the listener: {e}");
        }
        self.listener_ready = false;
        let keys: Vec<ConnKey> = self.conns.iter().map(|(slot, conn)| key_of(slot, conn)).collect();
        for key in keys {
            self.with_conn(key, now, |conn, cx| {
                conn.on_readiness(true);
                match conn.drive(cx, now) {
                    Next::Close(reason) => Next::Close(reason),
                    // Not closed yet if it has sent nothing: its request may be on the way.
                    _ if awaits_request(conn.state()) => Next::Wait,
                    _ => conn.on_shutdown(cx, now),
                }
            });
        }
    }

    /// Once a turn while shutting down: closes the connections still without a request once their grace
    /// is over; returns true when the loop should end (every connection gone, or the deadline passed),
    /// after the last line.
    pub(super) fn shutdown_step(&mut self, now: Instant) -> bool {
        let Some(deadline) = self.shutdown_deadline else { return false };
        if self.idle_close_at.is_some_and(|at| now >= at) {
            self.idle_close_at = None;
            let idle: Vec<ConnKey> = self
                .conns
                .iter()
                .filter(|(_, conn)| awaits_request(conn.state()))
                .map(|(slot, conn)| key_of(slot, conn))
                .collect();
            for key in idle {
                self.with_conn(key, now, |conn, cx| conn.on_shutdown(cx, now));
            }
        }
        if self.conns.is_empty() || now >= deadline {
            self.log_summary(deadline, now);
            return true;
        }
        false
    }

    /// The last line: how the shutdown went and what the server did in its life.
    fn log_summary(&self, deadline: Instant, now: Instant) {
        let c = &self.cx.counters;
        if !self.conns.is_empty() {
            log::warn!(
                "shutdown deadline passed with {} connections still open; closing them",
                self.conns.len()
            );
        }
        let waited = now
            .saturating_duration_since(deadline - Duration::from_millis(self.cx.config.shutdown_timeout_ms));
        log::info!(
            "stopped after {:.3} s of shutdown: {} connections accepted, {} streams served, {} events sent, {} \
             published, {} bytes written",
            waited.as_secs_f64(),
            c.accepted,
            c.streams_opened,
            c.events_sent,
            c.publishes,
            c.bytes_sent
        );
    }
}

/// A connection with no request under way: new, or idle between two requests.
fn awaits_request(state: &State) -> bool {
    matches!(state, State::ReadingRequest { head_started: false, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_spread_keeps_a_draining_process_near_two_thousand_reconnects_a_second() {
        assert_eq!(retry_spread_ms(0), 2_000, "a few streams still get a spread");
        assert_eq!(retry_spread_ms(19_000), 9_500);
        assert_eq!(retry_spread_ms(1_000_000), 60_000, "never more than a minute");
    }
}
