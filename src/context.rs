//! The loop context: what the event loop owns on behalf of every connection and lends to one
//! connection at a time, for one call (`&mut LoopContext`).
//!
//! Rules:
//! - One loop, one context: there is no global state and no lock. A connection's handler gets the context
//!   for the length of one call and keeps no reference to it, so the borrow checker shows that no two
//!   connections touch it at once.
//! - Buffers that would otherwise exist once per connection live here once: the read buffer every
//!   connection reads into ([`LoopContext::scratch`]), the buffer ticks are encoded into
//!   ([`LoopContext::frame`]). A connection keeps only what must outlive the call (an unfinished head).
//! - The time is not in here, only the loop's epoch: every handler takes `now` as an argument, so tests
//!   pass the time they want.

use std::time::Instant;

use crate::backplane::Backplane;
use crate::clock::{DateCache, LoopClock};
use crate::cluster::Figures;
use crate::config::Config;
use crate::http::request::Limits;
use crate::hub::{self, Hub};
use crate::jitter::Jitter;
use crate::log_budget::LogBudget;
use crate::metrics::{Counters, Gauges};
use crate::static_files::StaticFiles;
use crate::token::ConnKey;

/// Everything the connections share, owned by the server and lent to one connection at a time.
pub struct LoopContext {
    pub config: Config,
    /// The loop's epoch: what a connection's compact time stamps count from.
    pub clock: LoopClock,
    pub files: StaticFiles,
    pub limits: Limits,
    /// The one read buffer of the whole server: connections only keep bytes of an unfinished head.
    pub scratch: Box<[u8]>,
    /// The one buffer ticks are encoded into before they are written.
    pub frame: Vec<u8>,
    pub dates: DateCache,
    pub jitter: Jitter,
    pub hub: Hub,
    /// The Redis backplane, with `--redis`: publishes go there and come back to the hub from there. A
    /// publish waiting for Redis is named by its connection's key.
    pub backplane: Option<Backplane<ConnKey>>,
    pub counters: Counters,
    pub gauges: Gauges,
    /// Set while shutting down: the range (ms) over which ending streams spread their clients' returns.
    pub shutdown_spread_ms: Option<u64>,
    /// With `--workers`: the whole service's figures, from the supervisor (see [`crate::cluster`]).
    pub cluster_totals: Option<Figures>,
    /// The per-stream "opened" and "closed" lines: each past a few a second becomes one summary.
    pub opened_lines: LogBudget,
    pub closed_lines: LogBudget,
    /// The "TLS handshake refused" lines.
    pub tls_failure_lines: LogBudget,
    /// The connection a handler runs for, set by the server before each one: a connection keeps only
    /// its generation (its slot is where the slab keeps it), and finds its whole key here.
    pub handling: ConnKey,
}

impl LoopContext {
    /// Size of the shared read buffer.
    pub const SCRATCH_BYTES: usize = 16 * 1024;

    /// The context of a loop that starts at `epoch`.
    pub fn new(config: Config, files: StaticFiles, epoch: Instant) -> Result<LoopContext, String> {
        // A burst may take half of --max-pending-bytes per fan-out lap: a reader that keeps up stays under it.
        let (events, bytes, turn) =
            (config.replay_events as usize, config.replay_bytes, (config.max_pending_bytes / 2) as usize);
        let topics = config.max_topics as usize;
        let (hub, backplane) = match &config.redis {
            Some(url) => (Hub::following(events, bytes, turn, topics), Some(Backplane::new(url, events)?)),
            None => (Hub::with_limits(hub::clock_seed(), events, bytes, turn, topics), None),
        };
        Ok(LoopContext {
            clock: LoopClock::new(epoch),
            files,
            limits: Limits { max_head_bytes: config.max_head_bytes as usize },
            scratch: vec![0; Self::SCRATCH_BYTES].into_boxed_slice(),
            frame: Vec::with_capacity(256),
            dates: DateCache::default(),
            jitter: Jitter::from_entropy(),
            hub,
            backplane,
            config,
            counters: Counters::default(),
            gauges: Gauges::default(),
            shutdown_spread_ms: None,
            cluster_totals: None,
            opened_lines: LogBudget::new("streams opened"),
            closed_lines: LogBudget::new("streams closed"),
            tls_failure_lines: LogBudget::new("TLS handshakes refused"),
            handling: ConnKey { slot: 0, generation: 0 },
        })
    }

    /// Writes the summaries of held-back log lines that are due.
    pub fn summarize_logs(&mut self, now: Instant) {
        self.opened_lines.summarize(now);
        self.closed_lines.summarize(now);
        self.tls_failure_lines.summarize(now);
    }

    /// When a summary of held-back log lines is due, for the poll timeout.
    pub fn log_deadline(&self) -> Option<Instant> {
        [self.opened_lines.deadline(), self.closed_lines.deadline(), self.tls_failure_lines.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// This process's figures as they stand (with the replay ring's size and the topics, which are read from the hub, not counted).
    pub fn figures(&self) -> Figures {
        let mut gauges = self.gauges.clone();
        let (events, bytes) = self.hub.ring_len();
        (gauges.replay_events, gauges.replay_bytes) = (events as u64, bytes as u64);
        gauges.topics = self.hub.topics.len() as u64;
        let mut counters = self.counters.clone();
        counters.topics_refused = self.hub.topics.refused;
        Figures { counters, gauges }
    }

    /// Whether the server is shutting down (every answer then closes its connection).
    pub fn shutting_down(&self) -> bool {
        self.shutdown_spread_ms.is_some()
    }
}
