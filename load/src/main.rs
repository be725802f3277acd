//! `mio-sse-load`: an SSE load generator for any SSE server, on one mio loop per process.
//!
//! ```text
//! mio-sse-load hold   --url http://127.0.0.1:8080/home/events --streams 10000 --ramp 2000
//! mio-sse-load fanout --streams 10000 --events 200 --rate 0 --threshold 'p99<100ms'
//! mio-sse-load churn  --cycles 20000 --concurrency 200
//! mio-sse-load storm  --streams 5000 --storm-after-s 5
//! mio-sse-load bench                                                  # the benchmark (see README)
//! ```
//!
//! Thin on purpose: the flow from flags to exit code is the library's [`mio_sse_load::cli`].

fn main() -> std::process::ExitCode {
    mio_sse_load::cli::main()
}
