//! `mio-sse-load`: SSE clients on one mio loop per process, for any SSE server, and the benchmark of
//! `mio-sse`. The binary (`src/main.rs`) parses flags and calls [`driver::run`] or [`bench::run`].
//!
//! It shares only the SSE wire format with the server ([`mio_sse_wire`]), so it measures `mio-sse` the
//! way it measures any other server: over sockets, from outside.
//!
//! | module        | its one job                                                                 |
//! |---------------|-----------------------------------------------------------------------------|
//! | [`bench`](mod@bench) | the benchmark: workloads against a fresh server, figures, SVG plots        |
//! | [`driver`]    | the loop: ramp, subscribers, publisher, reconnects, storm, progress, end    |
//! | [`client`]    | one subscriber: non-blocking connect, request, head, body, SSE parsing      |
//! | [`chunked`]   | `Transfer-Encoding: chunked` decoding, in any split                         |
//! | [`publisher`] | pipelined `POST`s at their scheduled times                                  |
//! | [`report`]    | counts, failures by cause, HDR histograms; merging, table, JSON             |
//!
//! What it measures, and how it keeps honest:
//! - Publish-to-receive latency is measured from each event's *intended* send time (written into its data
//!   as `seq=N t=UNIX_NS`), so a server that stalls the publisher cannot hide the stall (coordinated
//!   omission).
//! - Ids are checked per stream across reconnections: a jump is a gap, a repeat or a step back a duplicate.
//! - With `--reconnect` each stream behaves like a browser's `EventSource`: it honours `retry:`, sends
//!   `Last-Event-ID`, and stops for good on any status but 200.
//! - The SSE bytes go through [`mio_sse_wire::parser`], which follows the standard to the letter.

pub mod bench;
pub mod chunked;
pub mod client;
pub mod driver;
pub mod publisher;
pub mod report;
