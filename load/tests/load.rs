//! The load generator end to end, small: it drives the real server and its counts come out exact.
//! Counts, never speed: these machines are shared.
//!
//! The server is the `mio-sse` binary beside `mio-sse-load` in the workspace's shared target directory
//! (`cargo test --workspace` builds both); under cargo it is brought up to date first, so
//! `cargo test -p mio-sse-load` works alone too.

use std::path::Path;
use std::process::Command;

use mio_sse_load::bench::server::{ServerProcess, server_beside};

/// Starts a fresh `mio-sse` on a free loopback port with `args`; killed when dropped.
fn start_server(args: &[&str]) -> ServerProcess {
    let load = Path::new(env!("CARGO_BIN_EXE_mio-sse-load"));
    let release = load.parent().and_then(Path::file_name).is_some_and(|profile| profile == "release");
    let exe = server_beside(load, release).unwrap_or_else(|e| panic!("{e}"));
    ServerProcess::start(&exe, args).unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
}

/// Runs `mio-sse-load` with `args` against `server`; returns its JSON report.
fn load(server: &ServerProcess, args: &[&str]) -> serde_json::Value {
    let url = format!("http://{}/home/events", server.addr);
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse-load"))
        .args(args)
        .args(["--url", &url, "--json", "--quiet"])
        .output()
        .expect("run mio-sse-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("no JSON report ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

fn n(report: &serde_json::Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("{key} in {report}"))
}

#[test]
fn hold_counts_every_stream_and_tick() {
    let server = start_server(&["--interval-ms", "100"]);
    let report =
        load(&server, &["hold", "--streams", "200", "--duration-s", "1.5", "--tick-interval-ms", "100"]);
    assert_eq!(n(&report, "connected"), 200, "{report}");
    assert_eq!(report["failures"].as_object().unwrap().len(), 0, "{report}");
    assert!(n(&report, "events") >= 200 * 5, "ticks at 100 ms for 1.5 s: {report}");
    assert!(report["tick_lateness_ms"]["count"].as_u64().is_some_and(|n| n > 0), "{report}");
    // Each tick is timed twice, at receipt and at its own stamp; a tick is never received before it was
    // written (one machine, one clock), so no percentile of the share at send exceeds the whole.
    let (whole, at_send) = (&report["tick_lateness_ms"], &report["tick_send_lateness_ms"]);
    assert_eq!(whole["count"], at_send["count"], "{report}");
    for q in ["p50", "p99", "max"] {
        let (whole_q, at_send_q) = (whole[q].as_f64().expect(q), at_send[q].as_f64().expect(q));
        assert!(at_send_q <= whole_q, "{q}: {report}");
    }
    assert!(report.get("histograms").is_none(), "raw histograms only on request: {report}");
}

#[test]
fn fanout_delivers_every_event_to_every_subscriber_once() {
    let server = start_server(&["--interval-ms", "0"]);
    let report = load(&server, &["fanout", "--streams", "200", "--events", "20", "--rate", "0"]);
    assert_eq!(n(&report, "expected"), 4000, "{report}");
    assert_eq!(n(&report, "delivered"), 4000, "{report}");
    assert_eq!((report["ids"]["missing"].as_u64(), report["ids"]["duplicates"].as_u64()), (Some(0), Some(0)));
    let latency = &report["latency_ms"];
    assert_eq!(latency["count"].as_u64(), Some(4000), "{report}");
    assert!(
        latency["p50"].as_f64() <= latency["p99"].as_f64()
            && latency["p99"].as_f64() <= latency["max"].as_f64()
    );
    assert_eq!(report["exit_code"].as_u64(), Some(0), "{report}");
}

#[test]
fn fanout_with_either_publisher_delivers_everything() {
    let server = start_server(&["--interval-ms", "0"]);
    for publisher in ["wait", "pipeline"] {
        let args = ["fanout", "--streams", "300", "--events", "50", "--rate", "0", "--publisher", publisher];
        let report = load(&server, &args);
        assert_eq!(n(&report, "expected"), 300 * 50, "{publisher}: {report}");
        assert_eq!(n(&report, "delivered"), 300 * 50, "{publisher}: {report}");
    }
}

#[test]
fn fanout_in_several_processes_merges_their_reports() {
    let server = start_server(&["--interval-ms", "0"]);
    let report =
        load(&server, &["fanout", "--streams", "150", "--events", "10", "--rate", "50", "--procs", "3"]);
    assert_eq!(n(&report, "connected"), 150, "{report}");
    assert_eq!(n(&report, "delivered"), 1500, "{report}");
    assert_eq!(n(&report, "expected"), 1500, "{report}");
}

#[test]
fn churn_completes_its_cycles() {
    let server = start_server(&["--interval-ms", "1000"]);
    let report = load(&server, &["churn", "--cycles", "300", "--concurrency", "20"]);
    assert_eq!(n(&report, "cycles"), 300, "{report}");
    assert_eq!(report["failures"].as_object().unwrap().len(), 0, "{report}");
}

#[test]
fn a_storm_reconnects_every_stream_without_losing_an_event() {
    let server = start_server(&["--interval-ms", "100", "--retry-ms", "100"]);
    let report = load(
        &server,
        &[
            "storm",
            "--streams",
            "100",
            "--storm-after-s",
            "0.5",
            "--duration-s",
            "1.5",
            "--ids",
            "sequential",
        ],
    );
    assert_eq!(n(&report, "reconnects"), 100, "{report}");
    assert_eq!(n(&report, "connected"), 200, "{report}");
    assert_eq!(report["ids"]["missing"].as_u64(), Some(0), "{report}");
    // How long until every stream was back, first connects and reconnects apart.
    assert_eq!(report["recovery_ms"]["count"].as_u64(), Some(100), "{report}");
    assert_eq!(report["connect_ms"]["count"].as_u64(), Some(100), "{report}");
    assert_eq!(report["reconnect_ms"]["count"].as_u64(), Some(100), "{report}");
    assert_eq!(n(&report, "not_back"), 0, "{report}");
    assert_eq!(report["exit_code"].as_u64(), Some(0), "{report}");
}

#[test]
fn a_non_200_stops_a_browser_like_client() {
    let server = start_server(&["--interval-ms", "100"]);
    let url = format!("http://{}/nope", server.addr);
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse-load"))
        .args([
            "hold",
            "--streams",
            "3",
            "--duration-s",
            "1",
            "--reconnect",
            "--json",
            "--quiet",
            "--url",
            &url,
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failures"]["status 404"].as_u64(), Some(3), "{report}");
    assert_eq!(n(&report, "reconnects"), 0, "a 404 stops it for good: {report}");
}
