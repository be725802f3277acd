//! The server's figures: counters, gauges, close reasons, and their Prometheus text exposition.
//!
//! Every figure has one name (the constants in [`render`]'s table, all under the `mio_sse_` prefix, with
//! `_total` on counters, `_bytes` on byte counts, as Prometheus naming asks) and one place that changes it.
//! Counters only grow; gauges are kept current by the loop in O(1) per change, so a scrape never walks
//! the connection table.

use std::fmt::{self, Write};

/// Why a connection was closed, for the log and for `mio_sse_closed_total{reason=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (read returned 0).
    PeerClosed,
    /// The peer reset the connection, or it was gone when we wrote (ECONNRESET, EPIPE, ECONNABORTED).
    PeerReset,
    /// Another I/O error.
    IoError(std::io::ErrorKind),
    /// A keep-alive connection sat idle past `--keepalive-timeout-ms`, or a new one never sent a byte.
    IdleTimeout,
    /// The last response could not be written in time.
    WriteTimeout,
    /// The last response was written and the connection was meant to close after it.
    Finished,
    /// A stream's client kept sending bytes past the limit.
    TooMuchInput,
    /// A stream fell so far behind that events it had not sent left the replay ring: it is closed, and
    /// its client comes back with `Last-Event-ID` to learn what it lost.
    FellBehind,
    /// A stream was more than `--max-pending-bytes` behind.
    SlowReader,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 9] = [
        CloseReason::PeerClosed,
        CloseReason::PeerReset,
        CloseReason::IoError(std::io::ErrorKind::Other),
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Finished,
        CloseReason::TooMuchInput,
        CloseReason::FellBehind,
        CloseReason::SlowReader,
    ];

    /// A position in [`CloseReason::ALL`], for counting.
    pub fn index(self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::PeerReset => 1,
            CloseReason::IoError(_) => 2,
            CloseReason::IdleTimeout => 3,
            CloseReason::WriteTimeout => 4,
            CloseReason::Finished => 5,
            CloseReason::TooMuchInput => 6,
            CloseReason::FellBehind => 7,
            CloseReason::SlowReader => 8,
        }
    }

    /// The label value in metrics.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::PeerReset => "peer_reset",
            CloseReason::IoError(_) => "io_error",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Finished => "finished",
            CloseReason::TooMuchInput => "too_much_input",
            CloseReason::FellBehind => "fell_behind",
            CloseReason::SlowReader => "slow_reader",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::PeerReset => f.write_str("peer reset"),
            CloseReason::IoError(kind) => write!(f, "i/o error: {kind}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::WriteTimeout => f.write_str("write timeout"),
            CloseReason::Finished => f.write_str("finished"),
            CloseReason::TooMuchInput => f.write_str("too much input on a stream"),
            CloseReason::FellBehind => f.write_str("fell behind the replay buffer"),
            CloseReason::SlowReader => f.write_str("slow reader: over --max-pending-bytes behind"),
        }
    }
}

/// Counters since the server started.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Connections accepted (including those answered "over capacity").
    pub accepted: u64,
    /// Connections closed at accept because even the overflow slots were full.
    pub refused_at_accept: u64,
    /// Times accepting paused because the process had no free file descriptor (EMFILE/ENFILE).
    pub accept_pauses: u64,
    /// Requests answered "come back later" because the server was at its cap.
    pub over_capacity: u64,
    /// Connections closed, by [`CloseReason::index`].
    pub closed: [u64; CloseReason::ALL.len()],
    /// Event streams started.
    pub streams_opened: u64,
    /// Event streams ended, for any reason.
    pub streams_closed: u64,
    /// Frames handed to streams whole (ticks and published events; heartbeats and comments aside).
    pub events_sent: u64,
    /// Ticks skipped because the stream still had unsent bytes.
    pub ticks_skipped: u64,
    /// Heartbeat comments sent.
    pub heartbeats: u64,
    /// Events published.
    pub publishes: u64,
    /// Published events sent to reconnecting clients from the replay ring.
    pub replayed: u64,
    /// Bytes written to sockets.
    pub bytes_sent: u64,
    /// Requests answered (any status, streams included).
    pub requests: u64,
    /// Requests refused with a 4xx or 5xx status.
    pub errors: u64,
    /// Turns of the event loop (returns from `poll`).
    pub loop_turns: u64,
    /// Shaped streams refused because they would go past `--max-shaped-bytes-per-s`.
    pub shaped_refused: u64,
    /// Slices of the fan-out's walk (each writes to at most `FAN_OUT_SLICE` streams).
    pub fan_out_slices: u64,
    /// TLS handshakes that finished (HTTPS only).
    pub tls_handshakes: u64,
    /// TLS handshakes refused (bad records, no common version or protocol) or not finished before the
    /// connection closed (the peer left, or the first-request deadline passed).
    pub tls_handshakes_failed: u64,
    /// Streams and publishes refused for want of room for their topic (`--max-topics`).
    pub topics_refused: u64,
}

impl Counters {
    /// Every counter, in one fixed order: what the workers of one service send and sum (see
    /// [`crate::cluster`]). A counter missing here would be missing from the totals (a test checks).
    pub fn values_mut(&mut self) -> Vec<&mut u64> {
        let mut values = vec![
            &mut self.accepted,
            &mut self.refused_at_accept,
            &mut self.accept_pauses,
            &mut self.over_capacity,
            &mut self.streams_opened,
            &mut self.streams_closed,
            &mut self.events_sent,
            &mut self.ticks_skipped,
            &mut self.heartbeats,
            &mut self.publishes,
            &mut self.replayed,
            &mut self.bytes_sent,
            &mut self.requests,
            &mut self.errors,
            &mut self.loop_turns,
            &mut self.shaped_refused,
            &mut self.fan_out_slices,
            &mut self.tls_handshakes,
            &mut self.tls_handshakes_failed,
            &mut self.topics_refused,
        ];
        values.extend(self.closed.iter_mut());
        values
    }
}

/// Gauges: how things stand now.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub open_connections: u64,
    pub open_streams: u64,
    /// Bytes waiting in connections' own outboxes (heads, ticks, partial-write tails).
    pub write_queue_bytes: u64,
    pub timer_queue_size: u64,
    pub replay_events: u64,
    pub replay_bytes: u64,
    /// Bytes per second the open shaped streams ask for together (their tick sizes over their intervals).
    pub shaped_bytes_per_s: u64,
    /// Topics that exist (the default one included; with workers, summed over them).
    pub topics: u64,
    /// With `--redis`: 1 while the backplane is connected, else 0 (absent without `--redis`).
    pub backplane_up: Option<u64>,
    /// With `--workers`: the workers whose figures are in this page's totals (absent otherwise).
    pub workers: Option<u64>,
}

impl Gauges {
    /// Every gauge but the optional ones, in one fixed order (see [`Counters::values_mut`]).
    pub fn values_mut(&mut self) -> Vec<&mut u64> {
        vec![
            &mut self.open_connections,
            &mut self.open_streams,
            &mut self.write_queue_bytes,
            &mut self.timer_queue_size,
            &mut self.replay_events,
            &mut self.replay_bytes,
            &mut self.shaped_bytes_per_s,
            &mut self.topics,
        ]
    }
}

/// The Prometheus text exposition (format 0.0.4) of every figure.
pub fn render(c: &Counters, g: &Gauges) -> String {
    let counters: [(&str, &str, u64); 19] = [
        ("mio_sse_accepted_total", "Connections accepted.", c.accepted),
        (
            "mio_sse_accept_pauses_total",
            "Accept pauses: the process was out of file descriptors.",
            c.accept_pauses,
        ),
        (
            "mio_sse_refused_at_accept_total",
            "Connections closed at accept: even the overflow slots were full.",
            c.refused_at_accept,
        ),
        (
            "mio_sse_over_capacity_total",
            "Requests told to come back later: the server was at its connection limit.",
            c.over_capacity,
        ),
        ("mio_sse_streams_opened_total", "Event streams started.", c.streams_opened),
        (
            "mio_sse_events_sent_total",
            "Events (ticks and published events) handed to streams.",
            c.events_sent,
        ),
        (
            "mio_sse_ticks_skipped_total",
            "Ticks skipped because the stream still had unsent bytes.",
            c.ticks_skipped,
        ),
        ("mio_sse_heartbeats_total", "Heartbeat comments sent to silent streams.", c.heartbeats),
        ("mio_sse_publishes_total", "Events published.", c.publishes),
        ("mio_sse_replayed_events_total", "Published events replayed to reconnecting clients.", c.replayed),
        ("mio_sse_sent_bytes_total", "Bytes written to sockets.", c.bytes_sent),
        ("mio_sse_requests_total", "Requests answered.", c.requests),
        ("mio_sse_request_errors_total", "Requests refused with a 4xx or 5xx status.", c.errors),
        ("mio_sse_loop_turns_total", "Turns of the event loop.", c.loop_turns),
        (
            "mio_sse_shaped_refused_total",
            "Shaped streams refused: they would go past --max-shaped-bytes-per-s.",
            c.shaped_refused,
        ),
        ("mio_sse_fan_out_slices_total", "Slices of the fan-out's walk round the streams.", c.fan_out_slices),
        ("mio_sse_tls_handshakes_total", "TLS handshakes completed.", c.tls_handshakes),
        (
            "mio_sse_tls_handshakes_failed_total",
            "TLS handshakes refused or not finished before the connection closed.",
            c.tls_handshakes_failed,
        ),
        (
            "mio_sse_topics_refused_total",
            "New topics refused for want of room (--max-topics): streams, publishes, and backplane events (kept under no topic).",
            c.topics_refused,
        ),
    ];
    let gauges: [(&str, &str, u64); 8] = [
        ("mio_sse_open_connections", "Open connections.", g.open_connections),
        ("mio_sse_open_streams", "Open event streams.", g.open_streams),
        ("mio_sse_write_queue_bytes", "Bytes waiting in connections' own write queues.", g.write_queue_bytes),
        ("mio_sse_timer_queue_size", "Armed timers.", g.timer_queue_size),
        ("mio_sse_replay_buffer_events", "Published events held for replay.", g.replay_events),
        ("mio_sse_replay_buffer_bytes", "Bytes of published events held for replay.", g.replay_bytes),
        (
            "mio_sse_shaped_bytes_per_second",
            "Tick bytes per second the open shaped streams ask for together.",
            g.shaped_bytes_per_s,
        ),
        ("mio_sse_topics", "Topics that exist, the default one included.", g.topics),
    ];
    let mut out = String::with_capacity(4096);
    for (name, help, value) in counters {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
    }
    let name = "mio_sse_closed_total";
    let _ = write!(out, "# HELP {name} Connections closed, by reason.\n# TYPE {name} counter\n");
    for reason in CloseReason::ALL {
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {}", reason.label(), c.closed[reason.index()]);
    }
    for (name, help, value) in gauges {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    }
    if let Some(workers) = g.workers {
        let name = "mio_sse_workers";
        let _ = write!(
            out,
            "# HELP {name} Worker processes whose figures this page sums (each at most a second old).\n\
             # TYPE {name} gauge\n{name} {workers}\n"
        );
    }
    if let Some(up) = g.backplane_up {
        let name = "mio_sse_backplane_up";
        let _ = write!(
            out,
            "# HELP {name} 1 while the Redis backplane is connected.\n# TYPE {name} gauge\n{name} {up}\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot() {
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        assert_eq!(CloseReason::IoError(std::io::ErrorKind::TimedOut).index(), 2);
    }

    #[test]
    fn exposition_lines_are_well_formed() {
        let mut c = Counters { accepted: 3, ..Counters::default() };
        c.closed[CloseReason::PeerClosed.index()] = 2;
        let text = render(&c, &Gauges { open_streams: 1, ..Gauges::default() });
        assert!(text.contains("# TYPE mio_sse_accepted_total counter\nmio_sse_accepted_total 3\n"));
        assert!(text.contains("mio_sse_closed_total{reason=\"peer_closed\"} 2\n"));
        assert!(text.contains("# TYPE mio_sse_open_streams gauge\nmio_sse_open_streams 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("mio_sse_"), "{line}");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn every_rendered_figure_is_in_the_value_lists() {
        let (mut c, mut g) = (Counters::default(), Gauges::default());
        for value in c.values_mut().into_iter().chain(g.values_mut()) {
            *value = 7;
        }
        let text = render(&c, &g);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.ends_with(" 7"), "missing from values_mut, so from a service's totals: {line}");
        }
    }
}
