//! Output people and programs can read: per-mode help, the JSON summary, thresholds, the merged progress
//! of `--procs`, and the `--csv` time series. Each runs the real binary against the real server.

mod support;

use std::process::Command;

use support::{events_url, run, run_json, start_server};

fn help(mode: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse-load")).args([mode, "--help"]).output().expect("run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_mode_lists_only_its_own_flags_and_the_exit_codes() {
    let hold = help("hold");
    for foreign in ["--cycles", "--events", "--storm-after-s", "--ready-on", "--publisher"] {
        assert!(!hold.contains(foreign), "hold --help lists {foreign}:\n{hold}");
    }
    let churn = help("churn");
    for foreign in ["--streams", "--reconnect", "--events", "--slow-share"] {
        assert!(!churn.contains(foreign), "churn --help lists {foreign}:\n{churn}");
    }
    assert!(help("fanout").contains("--publisher") && help("storm").contains("--storm-after-s"));
    for mode in ["hold", "fanout", "churn", "storm"] {
        assert!(help(mode).contains("Exit codes: 0 passed"), "{mode} --help states the exit codes");
    }
}

#[test]
fn the_json_is_a_summary_with_percentiles_and_histograms_only_on_request() {
    let server = start_server(&["--interval-ms", "0"]);
    let args = ["--streams", "400", "--events", "10", "--rate", "0"];
    let r = run_json("fanout", &events_url(&server), &args);
    let latency = &r.report["latency_ms"];
    for key in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(latency[key].as_f64().is_some(), "latency_ms.{key} in {}", r.report);
    }
    assert!(r.report["rates"]["deliveries_per_s"].as_f64().is_some_and(|v| v > 0.0), "{}", r.report);
    assert!(r.report.get("histograms").is_none());
    assert!(r.stdout.len() < 8_000, "a summary, not raw histograms: {} bytes", r.stdout.len());
    let mut with = args.to_vec();
    with.push("--json-histograms");
    let r = run_json("fanout", &events_url(&server), &with);
    assert!(r.report["histograms"]["latency_us"].as_array().is_some_and(|h| !h.is_empty()), "{}", r.report);
}

#[test]
fn thresholds_decide_the_exit_code_and_the_report_says_which_held() {
    let server = start_server(&["--interval-ms", "0"]);
    let url = events_url(&server);
    let base = ["--streams", "50", "--events", "5", "--rate", "0"];
    let with = |threshold: &str| {
        let mut args = base.to_vec();
        args.extend(["--threshold", threshold, "--threshold", "delivered>=99.9%"]);
        run_json("fanout", &url, &args)
    };
    let r = with("p99<60s");
    assert_eq!(r.code, 0, "{}", r.report);
    let r = with("p99<0.001ms");
    assert_eq!(r.code, 1, "{}", r.report);
    let checks = r.report["checks"].as_array().expect("checks");
    let p99 =
        checks.iter().find(|c| c["check"].as_str().is_some_and(|t| t.starts_with("p99<"))).expect("p99");
    assert_eq!(p99["held"], false, "{}", r.report);
    let delivered = checks.iter().find(|c| c["check"] == "delivered>=99.9%").expect("delivered");
    assert_eq!(delivered["held"], true, "{}", r.report);
    let refused = run(&["fanout", "--url", &url, "--threshold", "p99<fast"]);
    assert_eq!(refused.code, 2, "a threshold that does not parse is bad input: {}", refused.stderr);
}

#[test]
fn procs_print_one_merged_progress_line_a_second_and_csv_has_a_row_a_second() {
    let server = start_server(&["--interval-ms", "100"]);
    let csv = std::env::temp_dir().join(format!("mio-sse-load-{}.csv", std::process::id()));
    let csv_path = csv.to_string_lossy().into_owned();
    let url = events_url(&server);
    let r = run(&[
        "hold",
        "--url",
        &url,
        "--streams",
        "40",
        "--procs",
        "2",
        "--duration-s",
        "3.2",
        "--csv",
        &csv_path,
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let progress: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(progress.len() >= 3, "a line a second: {}", r.stderr);
    assert!(progress.iter().any(|l| l.contains("open=40 ")), "merged over both workers: {progress:?}");
    let text = std::fs::read_to_string(&csv).expect("the CSV");
    let _ = std::fs::remove_file(&csv);
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("t_s,open_streams,events_per_s"), "{text}");
    assert!(rows.len() >= 4, "a header and a row a second: {text}");
    assert!(rows[1..].iter().any(|row| row.starts_with("2,40,")), "{text}");
}

#[test]
fn bench_measures_any_server_at_a_url_and_reads_its_process_when_named() {
    let server = start_server(&["--interval-ms", "0"]);
    let out_dir = std::env::temp_dir().join(format!("mio-sse-load-bench-{}", std::process::id()));
    let (url, pid) = (events_url(&server), server.pid().to_string());
    let r = run(&[
        "bench",
        "--url",
        &url,
        "--server-pid",
        &pid,
        "--counts",
        "40",
        "--fanout-streams",
        "40",
        "--fanout-events",
        "5",
        "--latency-seconds",
        "1",
        "--out-dir",
        &out_dir.to_string_lossy(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"))
            .expect("JSON");
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(results["hold"][0]["failures"], 0, "{results}");
    assert!(results["hold"][0]["rss_kib"].as_u64().is_some_and(|kib| kib > 0), "read from /proc: {results}");
    assert_eq!(results["fanout_max_rate"]["delivered"], 200, "{results}");
}
