//! The graceful shutdown: what the first SIGINT or SIGTERM starts, and the last line the server logs.
//!
//! Rules:
//! - The listener is closed at once (with `SO_REUSEPORT`, new connections then go to the other workers).
//! - Idle connections close now; a request in progress is answered and closed; every stream ends once it
//!   has sent what it owes, with a `retry:` drawn from a spread that grows with the number of streams, so
//!   that clients come back to a restarted server at their own moments, not in one storm.
//! - The loop ends when every connection is gone or the `--shutdown-timeout-ms` deadline passes; a second
//!   signal ends it at once (see `Server::run`).

use std::time::{Duration, Instant};

use super::{Server, Transport};
use crate::token::ConnKey;

impl<S: Transport> Server<S> {
    /// First signal: stop accepting, close idle connections, end every stream (once it has sent what it
    /// owes) with a jittered `retry:`, and give the rest until the deadline.
    pub(super) fn begin_shutdown(&mut self, signal: i32, now: Instant) {
        let timeout = Duration::from_millis(self.cx.config.shutdown_timeout_ms);
        let streams = self.cx.gauges.open_streams;
        // Spread the comeback so that a restarted server sees at most ~2,000 reconnects a second.
        let spread_ms = (streams / 2).clamp(2_000, 60_000);
        log::info!(
            "signal {signal}: shutting down; ending {streams} streams (clients come back within {spread_ms} ms), {} \
             connections open, {timeout:?} to flush",
            self.conns.len()
        );
        self.shutdown_deadline = Some(now + timeout);
        self.cx.shutdown_spread_ms = Some(spread_ms);
        // Closed, not only deregistered: an open listener in a `SO_REUSEPORT` group keeps being handed
        // new connections that nobody would accept. (Those already queued are reset, or moved to another
        // worker where `net.ipv4.tcp_migrate_req` is on.)
        if let Some(mut listener) = self.listener.take()
            && let Err(e) = self.poll.registry().deregister(&mut listener)
        {
            log::debug!("deregister the listener: {e}");
        }
        self.listener_ready = false;
        let keys: Vec<ConnKey> = self.conns.iter().map(|(_, conn)| conn.key).collect();
        for key in keys {
            self.with_conn(key, now, |conn, cx| conn.on_shutdown(cx, now));
        }
    }

    /// The last line: how the shutdown went and what the server did in its life.
    pub(super) fn log_summary(&self, deadline: Instant, now: Instant) {
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
