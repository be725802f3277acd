//! The benchmark: starts `mio-sse` (or takes any server at `--url`), runs the workloads, reads the
//! server's memory and CPU from /proc and its counters from /metrics, and writes the figures
//! (`bench/results.json`) and two SVG plots.
//!
//! Figures come from this one command on this machine, never from a timed test: machines are shared and
//! noisy, so read them as what this run measured, and compare ratios within one run.
//!
//! | module        | its one job                                                                 |
//! |---------------|-----------------------------------------------------------------------------|
//! | [`workloads`] | hold and fan-out runs against a fresh server, each returning its figures     |
//! | [`server`]    | the `mio-sse` process: found or built, started, read from /proc and /metrics |
//! | [`subject`]   | what is measured: a fresh `mio-sse` per workload, or a given server and pid  |
//! | [`floor`]     | the machine's floor: how late a loop that only sleeps wakes here             |
//! | [`figures`]   | the records in results.json, one progress line per workload, the table       |
//! | [`plots`]     | the memory and latency SVGs                                                  |

use std::path::PathBuf;

pub mod figures;
pub mod floor;
pub mod plots;
pub mod server;
pub mod subject;
pub mod workloads;

use figures::{Results, fanout_line, hold_line, summary};
use plots::{latency_svg, memory_svg};
use subject::Subject;
use workloads::{fanout_run, hold_run};

/// The benchmark's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Stream counts for the memory, accept-rate and tick runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    pub counts: Vec<usize>,
    /// Subscribers for the fan-out and latency runs.
    #[arg(long, default_value_t = 10_000)]
    pub fanout_streams: usize,
    /// Events published as fast as possible in the fan-out run.
    #[arg(long, default_value_t = 200)]
    pub fanout_events: u64,
    /// Seconds of publishing at 5 events/s in the latency run.
    #[arg(long, default_value_t = 20.0)]
    pub latency_seconds: f64,
    /// Seconds of 1 s ticks measured at each stream count.
    #[arg(long, default_value_t = 10.0)]
    pub tick_seconds: f64,
    /// Where results.json and the plots go.
    #[arg(long, default_value = "bench")]
    pub out_dir: PathBuf,
    /// The mio-sse binary [default: built with cargo, next to this one].
    #[arg(long, conflicts_with = "url")]
    pub server: Option<PathBuf>,
    /// Benchmark the SSE server at this URL instead of starting mio-sse (publishing by POST to the same
    /// URL): client-side figures; the tick runs, which need a server configured per workload, are skipped.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the server's process id, to read its memory and CPU from /proc (else not measured).
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,
}

/// Seconds of the machine's floor probe ([`floor`]), before any workload.
const FLOOR_SECONDS: f64 = 3.0;

/// Runs every workload and writes the results.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let subject = match &args.url {
        Some(url) => {
            let target = crate::client::Target::parse(url)?;
            eprintln!(
                "bench: the server at {url}{}",
                args.server_pid
                    .map_or(" (no --server-pid: server memory and CPU not measured)".into(), |pid| {
                        format!(", process {pid}")
                    })
            );
            Subject::Given { target, pid: args.server_pid }
        }
        None => Subject::Binary(server::server_binary(args.server.as_deref())?),
    };
    let exe = &subject;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "bench: the machine's floor, a loop waking every 1 ms for {FLOOR_SECONDS} s with nothing else running"
    );
    let wake_floor = floor::measure(FLOOR_SECONDS);
    eprintln!("bench: {}", wake_floor.line());
    let mut hold = Vec::new();
    for &n in &args.counts {
        eprintln!("bench: holding {n} streams with 1 s ticks");
        let figures = hold_run(exe, n, args.tick_seconds)?;
        eprintln!("bench: {}", hold_line(&figures));
        hold.push(figures);
    }
    let (streams, events) = (args.fanout_streams, args.fanout_events);
    eprintln!("bench: fan-out of {events} events to {streams} streams, as fast as a waiting publisher can");
    let fanout_max_rate = fanout_run(exe, streams, events, 0.0, true)?;
    eprintln!("bench: {}", fanout_line(&fanout_max_rate));
    eprintln!("bench: fan-out of {events} events to {streams} streams, pipelined");
    let fanout_max_rate_pipelined = fanout_run(exe, streams, events, 0.0, false)?;
    eprintln!("bench: {}", fanout_line(&fanout_max_rate_pipelined));
    let events = (args.latency_seconds * 5.0) as u64;
    eprintln!("bench: {events} events at 5/s to {streams} streams");
    let fanout_5_per_s = fanout_run(exe, streams, events, 5.0, true)?;
    eprintln!("bench: {}", fanout_line(&fanout_5_per_s));
    let results = Results {
        machine: machine(),
        wake_floor,
        hold,
        fanout_max_rate,
        fanout_max_rate_pipelined,
        fanout_5_per_s,
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("results.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("memory.svg"), memory_svg(&results.hold)).map_err(|e| e.to_string())?;
    std::fs::write(args.out_dir.join("latency.svg"), latency_svg(&results.fanout_5_per_s))
        .map_err(|e| e.to_string())?;
    print!("{}", summary(&results));
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, Linux {}", kernel.trim())
}
