//! The flags of each mode, as clap `Args` structs flattened per subcommand, so `hold --help` lists only
//! what `hold` takes and `hold --cycles 5` is refused (exit code 2) instead of ignored.
//!
//! Rules:
//! - A group of flags is one struct ([`TargetArgs`], [`StreamArgs`], [`ReconnectArgs`], [`PublishArgs`],
//!   [`CycleArgs`], [`StormOnlyArgs`], [`RunArgs`]); a mode is the groups it takes.
//! - A value is checked where it is parsed (a share in 0..=1, `--procs` ≥ 1, a range low to high, a
//!   threshold's syntax): a bad one never reaches the run.
//! - Each group writes itself back as flags ([`TargetArgs::to_args`] ...) for the `--procs` workers, so
//!   a worker runs exactly the flags its parent was given, with its share of the counts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::request::RequestArgs;
use crate::bench::BenchArgs;
use crate::driver::ReadyOn;
use crate::ids::IdCheck;
use crate::verdict::Threshold;

/// The exit codes, at the end of every `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 passed (every check held) · 1 failed (a failure, a lost, repeated or \
reordered event, work not done, a --threshold not held) · 2 bad input (refused flags; nothing ran) · 3 the load \
generator could not run (an I/O error, a worker that died).";

#[derive(Parser, Debug)]
#[command(
    name = "mio-sse-load",
    version,
    about = "An SSE load generator: streams, fan-out latency, churn, storms",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: ModeCommand,
}

#[derive(Subcommand, Debug)]
pub enum ModeCommand {
    /// Open N streams at a ramp rate and hold them; count events, ids, silences.
    #[command(after_help = EXIT_CODES)]
    Hold(HoldArgs),
    /// N subscribers, then publish M events by POST; every delivery's latency into an HDR histogram.
    #[command(after_help = EXIT_CODES)]
    Fanout(FanoutArgs),
    /// Connect, wait until ready (--ready-on), close; exactly K cycles at concurrency C.
    #[command(after_help = EXIT_CODES)]
    Churn(ChurnArgs),
    /// Hold N streams, then drop every one at once and reconnect them all; how long until all are back.
    #[command(after_help = EXIT_CODES)]
    Storm(StormArgs),
    /// Request-shaped streams on an open arrival model: R new streams a second by the clock, each run to
    /// its end (at most K at once: an arrival beyond is refused); head, first event, gaps, durations.
    #[command(after_help = EXIT_CODES)]
    Stream(StreamModeArgs),
    /// The benchmark: a freshly started mio-sse (or any server, --url), bench/results.json and SVG plots.
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct HoldArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub cycles: CycleArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub storm: StormOnlyArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StreamModeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub arrivals: ArrivalArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The `stream` mode's open arrivals.
#[derive(Args, Debug, Clone)]
pub struct ArrivalArgs {
    /// New streams per second, scheduled by the clock: a slow server cannot slow the schedule.
    #[arg(long, default_value_t = 10.0, value_parser = positive_rate)]
    pub arrival_rate: f64,
    /// Streams running at once at most: an arrival that finds this many is refused (counted), not delayed.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_inflight: u64,
    /// Streams to start in all (default: the arrival rate × --duration-s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub total: Option<u64>,
}

/// Where to connect, from where, for how long.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The event stream's URL, http:// or https:// (a host name is resolved once at start; streams are
    /// spread over its addresses).
    #[arg(long, default_value = "http://127.0.0.1:8080/home/events")]
    pub url: String,
    /// Source addresses to spread connections over: a range `127.0.0.1-127.0.0.8` or a list `a,b,c`
    /// (each must be an address of this machine).
    #[arg(long, value_parser = source_ips)]
    pub source_ips: Option<SourceIps>,
    /// Longest run, seconds (hold and storm run this long).
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    pub duration_s: f64,
    /// Seconds a connection attempt may take to get its response head before it counts as failed (in a
    /// connect storm, a handshake whose SYN was dropped waits for retransmits: 1, 3, 7, 15 s); churn: to
    /// get ready after its head.
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    pub connect_timeout_s: f64,
    /// The request and TLS.
    #[command(flatten)]
    pub request: RequestArgs,
}

/// The streams to hold and what to measure on them.
#[derive(Args, Debug, Clone)]
pub struct StreamArgs {
    /// Streams to open (fanout: subscribers).
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// New streams per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub ramp: f64,
    /// Share of streams (0..1) that stop reading after the head, with a tiny receive buffer.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub slow_share: f64,
    /// The server's tick interval in ms, to measure how late ticks arrive (0: not measured).
    #[arg(long, default_value_t = 0)]
    pub tick_interval_ms: u64,
    /// How event ids are checked: `sequential` (each is the previous + 1: missing events are counted),
    /// `increasing` (ids only grow, as timestamps do: decreases and repeats are counted), `opaque` (only
    /// repeats, by value). A jump across a reconnection (a server restart) is counted apart.
    #[arg(long, value_enum, default_value_t = IdCheck::Increasing)]
    pub ids: IdCheck,
    #[command(flatten)]
    pub topics: crate::topics::TopicArgs,
}

/// Browser-like reconnection (storm always reconnects).
#[derive(Args, Debug, Clone)]
pub struct ReconnectArgs {
    /// Behave like a browser: honour retry:, send Last-Event-ID, stop on a non-200.
    #[arg(long)]
    pub reconnect: bool,
}

/// How the fan-out publishes.
#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    /// Where to POST (default: the stream's URL without its query).
    #[arg(long)]
    pub publish_url: Option<String>,
    /// Events to publish.
    #[arg(long, default_value_t = 100)]
    pub events: u64,
    /// Publishes per second, scheduled by the clock (0: as fast as possible).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub rate: f64,
    /// `wait`: each POST waits for the answer to the one before, as most real publishers do (an
    /// application server calling the publish endpoint); `pipeline`: POSTs go at their scheduled times
    /// without waiting for answers.
    #[arg(long, value_enum, default_value_t = PublisherKind::Wait)]
    pub publisher: PublisherKind,
    /// Bytes of each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
}

/// How the fan-out's publisher sends its `POST`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublisherKind {
    Wait,
    Pipeline,
}

/// Churn's cycles.
#[derive(Args, Debug, Clone)]
pub struct CycleArgs {
    /// Cycles in all (exactly this many are started).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: u64,
    /// Cycles at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// When a cycle's stream is ready, and closed: its `head` (200 text/event-stream), its first
    /// `comment` or event, or its first `event`.
    #[arg(long, value_enum, default_value_t = ReadyOn::Event)]
    pub ready_on: ReadyOn,
}

/// The storm's moment.
#[derive(Args, Debug, Clone)]
pub struct StormOnlyArgs {
    /// Seconds before every stream is dropped.
    #[arg(long, default_value_t = 5.0, value_parser = non_negative)]
    pub storm_after_s: f64,
}

/// Processes, output, verdict.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run K client processes (each with its own fd limit) and merge their reports.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub procs: u64,
    /// Print the report as JSON (one line: counts, rates, checks, latency percentiles in ms).
    #[arg(long)]
    pub json: bool,
    /// With --json: add the raw histograms (value/count pairs; large).
    #[arg(long)]
    pub json_histograms: bool,
    /// Write a time series to FILE: one CSV row per second (open streams, events/s, failures, latency
    /// percentiles of that second).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// A pass/fail check, repeatable: `p99<100ms`, `failures==0`, `delivered>=99.9%` (see
    /// docs/load-generator.md); one on a figure a default check reads replaces that check.
    #[arg(long, value_parser = Threshold::parse)]
    pub threshold: Vec<Threshold>,
    /// No progress line each second.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: this is worker I of a --procs run.
    #[arg(long, hide = true)]
    pub worker: Option<usize>,
}

/// `--source-ips` as given (kept as text for the workers) and as addresses.
#[derive(Debug, Clone)]
pub struct SourceIps {
    pub spec: String,
    pub ips: Vec<IpAddr>,
}

/// The most addresses a range may name (a /16): more is almost surely a typo.
const MAX_SOURCE_IPS: u32 = 65_536;

/// `127.0.0.1-127.0.0.8` (low to high) or `a,b,c`.
fn source_ips(spec: &str) -> Result<SourceIps, String> {
    let ips = if let Some((from, to)) = spec.split_once('-') {
        let parse =
            |s: &str| s.trim().parse::<Ipv4Addr>().map_err(|_| format!("{s:?} is not an IPv4 address"));
        let (from, to) = (u32::from(parse(from)?), u32::from(parse(to)?));
        if from > to {
            return Err(format!("the range {spec} runs backwards: write it low to high"));
        }
        if to - from >= MAX_SOURCE_IPS {
            return Err(format!("the range {spec} names over {MAX_SOURCE_IPS} addresses"));
        }
        (from..=to).map(|n| IpAddr::V4(n.into())).collect()
    } else {
        spec.split(',')
            .map(|ip| ip.trim().parse().map_err(|_| format!("{ip:?} is not an IP address")))
            .collect::<Result<Vec<IpAddr>, String>>()?
    };
    Ok(SourceIps { spec: spec.to_owned(), ips })
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("{text:?} is not a number"))
}

fn share(text: &str) -> Result<f64, String> {
    Some(number(text)?).filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| "a share is between 0 and 1".into())
}

fn non_negative(text: &str) -> Result<f64, String> {
    Some(number(text)?).filter(|v| *v >= 0.0).ok_or_else(|| "must be 0 or more".into())
}

fn positive_rate(text: &str) -> Result<f64, String> {
    Some(number(text)?).filter(|v| *v > 0.0).ok_or_else(|| "must be above 0".into())
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    Some(number(text)?)
        .filter(|v| *v > 0.0 && *v <= 86_400.0)
        .ok_or_else(|| "seconds, above 0 and at most a day".into())
}

/// `total` split over `procs`: worker `worker`'s share (the first ones take the remainder).
pub fn share_of(total: u64, procs: u64, worker: u64) -> u64 {
    total / procs + u64::from(worker < total % procs)
}

impl TargetArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--url".into(),
            self.url.clone(),
            "--duration-s".into(),
            self.duration_s.to_string(),
            "--connect-timeout-s".into(),
            self.connect_timeout_s.to_string(),
        ];
        if let Some(ips) = &self.source_ips {
            args.extend(["--source-ips".into(), ips.spec.clone()]);
        }
        args.extend(self.request.to_args());
        args
    }
}

impl StreamArgs {
    /// Worker `worker`'s flags, with its share of the streams and of the ramp.
    pub fn to_args(&self, procs: u64, worker: u64) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--streams".into(),
            share_of(self.streams as u64, procs, worker).to_string(),
            "--ramp".into(),
            (self.ramp / procs as f64).to_string(),
            "--slow-share".into(),
            self.slow_share.to_string(),
            "--tick-interval-ms".into(),
            self.tick_interval_ms.to_string(),
            "--ids".into(),
            self.ids.name().into(),
        ];
        args.extend(self.topics.to_args(procs, worker));
        args
    }
}

impl ReconnectArgs {
    pub fn to_args(&self) -> Vec<String> {
        if self.reconnect { vec!["--reconnect".into()] } else { Vec::new() }
    }
}

impl PublishArgs {
    pub fn to_args(&self) -> Vec<String> {
        let publisher = match self.publisher {
            PublisherKind::Wait => "wait",
            PublisherKind::Pipeline => "pipeline",
        };
        let mut args = vec![
            "--events".into(),
            self.events.to_string(),
            "--rate".into(),
            self.rate.to_string(),
            "--publisher".into(),
            publisher.into(),
            "--payload-bytes".into(),
            self.payload_bytes.to_string(),
        ];
        if let Some(url) = &self.publish_url {
            args.extend(["--publish-url".into(), url.clone()]);
        }
        args
    }
}

impl CycleArgs {
    /// Worker `worker`'s flags, with its share of the cycles and of the concurrency (at least 1).
    pub fn to_args(&self, procs: u64, worker: u64) -> Vec<String> {
        vec![
            "--cycles".into(),
            share_of(self.cycles, procs, worker).to_string(),
            "--concurrency".into(),
            share_of(self.concurrency, procs, worker).max(1).to_string(),
            "--ready-on".into(),
            self.ready_on.name().into(),
        ]
    }
}

impl ArrivalArgs {
    /// Worker `worker`'s flags: its share of the rate, of the streams at once, and of the total.
    pub fn to_args(&self, procs: u64, worker: u64) -> Vec<String> {
        let mut args = vec![
            "--arrival-rate".into(),
            (self.arrival_rate / procs as f64).to_string(),
            "--max-inflight".into(),
            share_of(self.max_inflight, procs, worker).max(1).to_string(),
        ];
        if let Some(total) = self.total {
            args.extend(["--total".into(), share_of(total, procs, worker).max(1).to_string()]);
        }
        args
    }
}

impl StormOnlyArgs {
    pub fn to_args(&self) -> Vec<String> {
        vec!["--storm-after-s".into(), self.storm_after_s.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ranges_run_low_to_high_and_lists_are_addresses() {
        assert_eq!(source_ips("127.0.0.1-127.0.0.3").unwrap().ips.len(), 3);
        assert!(source_ips("127.0.0.9-127.0.0.1").unwrap_err().contains("backwards"));
        assert_eq!(source_ips("127.0.0.1, 127.0.0.2").unwrap().ips.len(), 2);
        assert!(source_ips("127.0.0.1,nope").is_err());
        assert!(source_ips("10.0.0.0-10.255.255.255").is_err());
    }

    #[test]
    fn values_out_of_range_are_refused() {
        assert!(share("2").is_err() && share("-0.1").is_err() && share("0.25").is_ok());
        assert!(positive_seconds("0").is_err() && positive_seconds("NaN").is_err());
        assert!(non_negative("-1").is_err());
    }

    #[test]
    fn shares_add_up_to_the_total() {
        let total: u64 = (0..3).map(|w| share_of(1000, 3, w)).sum();
        assert_eq!((total, share_of(1000, 3, 0), share_of(1000, 3, 2)), (1000, 334, 333));
    }
}
