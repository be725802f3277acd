//! mio-sse: a Server-Sent Events server on one single-threaded `mio` event loop.
//!
//! `GET /home/events` keeps a `text/event-stream` open and sends the time of day every few seconds to
//! each client, on that client's own timer; every other path is a static file. No async runtime, no
//! thread per client: the point is to own the socket handling and to show how it is done.
//!
//! # Layout
//!
//! Modules import downward only: no module imports one that imports it back (`tests/layout.rs` checks).
//!
//! | module           | its one job                                                                  |
//! |------------------|------------------------------------------------------------------------------|
//! | [`config`]       | flags, defaults, validation (`--help` comes from here)                       |
//! | [`server`]       | the event loop: `Poll`, signals, slab, timers, fan-out; [`server::bind_listener`] and accepting; [`server::transport`] plain or TLS |
//! | [`token`]        | tokens: slab slot + generation ([`token::ConnKey`]); the fixed tokens          |
//! | [`context`]      | [`context::LoopContext`]: what the loop lends each connection for one call   |
//! | [`conn`]         | one connection: [`conn::state`] the state machine and its diagram; [`conn::stream`] ticks, heartbeats, catching up; [`conn::outbox`] unsent output; [`conn::socket`] the socket it needs; [`conn::tls`] HTTPS (rustls) as a socket |
//! | [`http`]         | HTTP/1.x: incremental request parsing, query decoding, response heads, [`http::refusal`] |
//! | [`routes`]       | the table of endpoints: request in, what to answer out; CORS                  |
//! | [`trust`]        | who may talk to the server (`Host`) and who may publish (token, loopback, `Origin`) |
//! | [`hub`]          | published events: the id sequence and the replay ring every stream reads     |
//! | [`sse`]          | the `mio-sse-wire` crate: SSE frame encoding (pure), [`sse::parser`] a standard-following parser |
//! | [`timer`]        | the timer queue (pure: time is passed in)                                    |
//! | [`static_files`] | files loaded into memory at start; path normalization                       |
//! | [`clock`]        | time-of-day and HTTP-date formatting                                         |
//! | [`jitter`]       | a small random source to spread reconnects                                   |
//! | [`metrics`]      | counters, gauges, close reasons, Prometheus text                             |
//! | [`log_budget`]   | per-stream log lines past a few a second become one summary a second         |
//! | [`log_sink`]     | stderr behind a pipe drained by threads, so logging never blocks the loop    |
//! | [`backplane`]    | `--redis`: publishing through Redis, reading every event back from it        |
//! | [`cluster`]      | `--workers`: each worker's figures to the supervisor, the service's totals back |
//! | [`supervisor`]   | `--workers`: worker processes on one port, restarted when they die           |
//!
//! Read [`server`] first: its header states the rules every other module keeps.

#![deny(unsafe_code)]

pub mod backplane;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod context;
pub mod http;
pub mod hub;
pub mod jitter;
pub mod log_budget;
pub mod log_sink;
pub mod metrics;
pub mod routes;
pub mod server;
// The SSE wire format is its own crate, shared with the load generator; `crate::sse` still names it.
pub use mio_sse_wire as sse;
pub mod static_files;
pub mod supervisor;
pub mod timer;
pub mod token;
pub mod trust;

use std::io;

pub use config::Config;
pub use server::{Server, Stop};

/// Raises the open-file limit as far as allowed, binds, and runs the server until a signal stops it.
pub fn run(config: Config) -> io::Result<Stop> {
    let fd_limit = raise_fd_limit();
    let max_connections =
        config.max_connections(fd_limit).map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
    if config.tls_cert.is_some() {
        Server::bind_tls(config, max_connections)?.run()
    } else {
        Server::bind(config, max_connections)?.run()
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (each stream is one fd) and returns the result.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            log::warn!("cannot raise the open-file limit: {e}; staying at {soft}");
            soft
        }
    }
}
