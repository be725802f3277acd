//! The server's counters: plain integers, bumped on the loop's thread, read for the log and tests.
//!
//! Kept in one struct so that every figure the server reports has one name and one place that changes
//! it. Counters only grow; gauges (open connections, streams) are read from the live tables instead.

use std::fmt;

/// Why a connection was closed, for the log and for counting.
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
    /// Requests answered "come back later" because the server was at its cap.
    pub over_capacity: u64,
    /// Event streams started.
    pub streams_opened: u64,
    /// Event streams ended, for any reason.
    pub streams_closed: u64,
    /// Ticks queued for sending.
    pub ticks_sent: u64,
    /// Ticks skipped because the stream still had unsent bytes.
    pub ticks_skipped: u64,
    /// Requests answered (any status, streams included).
    pub requests: u64,
    /// Requests refused with a 4xx or 5xx status.
    pub errors: u64,
}
