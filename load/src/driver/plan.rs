//! What a run is asked to do: the [`Plan`] (what every mode shares) and its [`Mode`] (what only one mode
//! uses, carried in its variant, so a hold never sees a publish rate nor a fan-out a churn count).
//!
//! Rules: plain data, built by the binary from its flags or by the benchmark; the driver reads it and
//! never changes it (what changes during a run, such as a publish count cut short, is the driver's).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::client::Target;
use crate::ids::IdCheck;
use crate::report::Sample;
use crate::topics::Spread;

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What kind of run, with its own settings.
    pub mode: Mode,
    pub target: Target,
    /// Streams to open (fan-out: subscribers; churn: only reported, [`Mode::Churn`] says how many).
    pub streams: usize,
    /// New streams per second (0: as fast as the loop opens them).
    pub ramp_per_s: f64,
    /// Source addresses to spread connections over (to pass one address's ephemeral ports).
    pub source_ips: Vec<IpAddr>,
    /// How long to hold (hold, storm) or the longest a run may take (others).
    pub duration: Duration,
    /// Behave like a browser: reconnect after `retry:`, send `Last-Event-ID`, stop on a non-200.
    pub reconnect: bool,
    /// How long a connection attempt may take to get its response head before it counts as failed.
    pub connect_timeout: Duration,
    /// Share of streams that stop reading after the head (with a tiny receive buffer).
    pub slow_share: f64,
    /// The server's tick interval, to measure tick lateness (0: not measured).
    pub tick_interval_ms: u64,
    /// How event ids are checked.
    pub ids: IdCheck,
    /// With `--topics`: which topic each stream and each publish is on.
    pub topics: Option<Arc<Spread>>,
    /// An event whose data is this completes its stream (`[DONE]`): the client closes it.
    pub until_data: Option<String>,
    /// Where each second's [`Sample`] goes (progress line, time series, a `--procs` parent), if anywhere.
    pub samples: Option<Sender<Sample>>,
    /// With `--procs`: subscribers wait for this before publishing starts (set by the parent's GO).
    pub go: Option<Arc<AtomicBool>>,
    /// Set once every stream has connected (or failed): `--procs` workers say READY, the benchmark
    /// starts measuring.
    pub ready: Option<Arc<AtomicBool>>,
    /// Ends the run when set (the benchmark stops a hold when it has measured).
    pub stop: Option<Arc<AtomicBool>>,
}

/// What kind of run, and the settings only that kind uses.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Open the streams and hold them for the duration.
    Hold,
    /// Open the streams, then publish and measure every delivery.
    Fanout(Box<Fanout>),
    /// Connect, wait until ready, close; exactly `cycles` times in all, `concurrency` at once.
    Churn { cycles: u64, concurrency: usize, ready_on: ReadyOn },
    /// Hold, then drop every stream at once after `after` and reconnect them all.
    Storm { after: Duration },
    /// Request-shaped streams on an open arrival model: `total` streams started by the clock at the
    /// plan's ramp rate (a slow server cannot slow the schedule), each run to its end; an arrival that
    /// finds `max_inflight` streams running is refused, not delayed.
    Stream { total: u64, max_inflight: usize },
}

/// When a churn cycle's stream counts as ready (and is closed). Ordered: a later stage is also ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, clap::ValueEnum)]
pub enum ReadyOn {
    /// The `200 text/event-stream` response head.
    Head,
    /// The first comment or event (a server that greets with `: ok` counts).
    Comment,
    /// The first event (what a browser's `onmessage` sees).
    #[default]
    Event,
}

impl ReadyOn {
    pub fn name(self) -> &'static str {
        match self {
            ReadyOn::Head => "head",
            ReadyOn::Comment => "comment",
            ReadyOn::Event => "event",
        }
    }
}

/// A fan-out's publishing: where, how many, how fast, how big, and by whom.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Where to `POST` the events.
    pub target: Target,
    /// Events to publish.
    pub events: u64,
    /// Publishes per second, scheduled by the clock (0: as fast as possible).
    pub rate_per_s: f64,
    /// Bytes of each event's data (the stamp, then `x` padding).
    pub payload_bytes: usize,
    /// With `--procs`: this worker publishes (worker 0) or only subscribes.
    pub publishes: bool,
    /// Each `POST` waits for the answer to the one before (what most publishers do: an application
    /// server calling the publish endpoint), rather than being pipelined at its scheduled time.
    pub waits_for_answers: bool,
}

impl Mode {
    /// The mode's name: its subcommand, and the report's `mode`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Hold => "hold",
            Mode::Fanout(_) => "fanout",
            Mode::Churn { .. } => "churn",
            Mode::Storm { .. } => "storm",
            Mode::Stream { .. } => "stream",
        }
    }
}
