//! What the benchmark measures: a `mio-sse` binary it starts fresh for each workload, or any server at a
//! URL (`bench --url`), whose memory and CPU are read only if its process is named (`--server-pid`).
//!
//! Rules: a started server is configured per workload (tick interval, replay ring); a given one is
//! taken as it is, so the figures that need a configured server (ticks per second, CPU per tick, tick
//! lateness) are left at 0 and the run says so; server figures without a pid are 0 (not measured).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::server::{ServerProcess, cpu_of, metric_of, rss_kib_of};
use crate::client::Target;

/// The server under test, before a workload.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A `mio-sse` binary, started fresh for each workload.
    Binary(PathBuf),
    /// Any SSE server at a URL (its `POST` to the same path publishes), and its process if known.
    Given { target: Target, pid: Option<u32> },
}

/// The server during a workload.
pub enum Server {
    Started(ServerProcess),
    Given { target: Target, pid: Option<u32> },
}

impl Subject {
    /// The server for one workload: a fresh `mio-sse` with `args`, or the given one as it is.
    pub fn start(&self, args: &[&str]) -> Result<Server, String> {
        match self {
            Subject::Binary(exe) => Ok(Server::Started(ServerProcess::start(exe, args)?)),
            Subject::Given { target, pid } => Ok(Server::Given { target: target.clone(), pid: *pid }),
        }
    }

    /// Whether the server can be configured per workload (ticks on and off).
    pub fn is_started(&self) -> bool {
        matches!(self, Subject::Binary(_))
    }
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Started(process) => process.addr,
            Server::Given { target, .. } => target.addr,
        }
    }

    /// The event stream (and publishing endpoint).
    pub fn events_target(&self) -> Target {
        match self {
            Server::Started(p) => Target::at(p.addr, "/home/events"),
            Server::Given { target, .. } => target.clone(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Server::Started(process) => Some(process.pid()),
            Server::Given { pid, .. } => *pid,
        }
    }

    /// Resident memory, KiB (0: not measured).
    pub fn rss_kib(&self) -> u64 {
        self.pid().map_or(0, rss_kib_of)
    }

    /// CPU time so far (zero: not measured).
    pub fn cpu(&self) -> Duration {
        self.pid().map_or(Duration::ZERO, cpu_of)
    }

    /// One value from `mio-sse`'s /metrics.
    pub fn metric(&self, name: &str) -> Result<u64, String> {
        metric_of(self.addr(), name)
    }
}
