//! `mio-sse-load`: SSE clients on one mio loop per process, for any SSE server, and the benchmark of
//! `mio-sse`. The binary (`src/main.rs`) calls [`cli::main`], which parses flags, runs [`driver::run`]
//! (or [`bench::run`]) and turns the report into output and an exit code.
//!
//! It shares only the SSE wire format with the server ([`mio_sse_wire`]), so it measures `mio-sse` the
//! way it measures any other server: over sockets, from outside.
//!
//! | module        | its one job                                                                 |
//! |---------------|-----------------------------------------------------------------------------|
//! | [`bench`](mod@bench) | the benchmark: workloads against a fresh server, figures, SVG plots        |
//! | [`c1m`]       | a million streams in one command: kernel settings, Redis, workers, processes, a rolling restart |
//! | [`cli`]       | flags per mode, checks at start, `--procs` workers, the exit code           |
//! | [`driver`]    | the loop: ramp, subscribers, publisher, reconnects, storm, samples, end     |
//! | [`ids`]       | event id checks: sequential, increasing, opaque; jumps across reconnections |
//! | [`target`]    | the URL (resolved once) and the request's bytes: method, headers, body       |
//! | [`client`]    | one subscriber: non-blocking connect, request, head, body, SSE parsing      |
//! | [`scratch`]   | what every client borrows for a read: buffers, the events' text as spans     |
//! | [`tls`]       | `https://`: roots, `--ca-file`, `--insecure`, rustls on the loop, TLS causes |
//! | [`chunked`]   | `Transfer-Encoding: chunked` decoding, in any split                         |
//! | [`publisher`] | pipelined `POST`s at their scheduled times                                  |
//! | [`report`]    | counts, failures by cause, HDR histograms, per-second samples; merging      |
//! | [`verdict`]   | default checks and `--threshold`s; exit codes                               |
//! | [`output`]    | progress line, `--csv` time series, the table, the JSON summary             |
//!
//! What it measures, and how it keeps honest:
//! - Publish-to-receive latency is measured from each event's *intended* send time (written into its data
//!   as `seq=N t=UNIX_NS`), so a server that stalls the publisher cannot hide the stall (coordinated
//!   omission).
//! - Ids are checked per stream by a stated rule (`--ids`): missing events are counted as events, and a
//!   jump across a reconnection (a server restart) on its own line.
//! - Every attempt is accounted for (connected, or failed by cause), and a run that did not do what it
//!   was asked fails: the exit code can be trusted by CI.
//! - With `--reconnect` each stream behaves like a browser's `EventSource`: it honours `retry:`, sends
//!   `Last-Event-ID`, and stops for good on any status but 200.
//! - The SSE bytes go through [`mio_sse_wire::parser`], which follows the standard to the letter.

pub mod bench;
pub mod c1m;
pub mod chunked;
pub mod cli;
pub mod client;
pub mod driver;
pub mod ids;
pub mod output;
pub mod publisher;
pub mod report;
pub mod scratch;
pub mod target;
pub mod tls;
pub mod topics;
pub mod verdict;
