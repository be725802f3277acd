//! The load generator over HTTPS and with any request, against the real server: `https://` with
//! `--ca-file` (every stream gets ticks), a certificate not trusted (counted as `tls: …`, exit 1),
//! `--insecure`, and finite LLM-style streams (`POST`, a header, a JSON body, `[DONE]`) that complete
//! with an exact count of events each, over plain HTTP and TLS.

mod support;

use support::{TestCert, run_json, start_server, start_tls_server};

fn https_url(server: &mio_sse_load::bench::server::ServerProcess, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.addr.port())
}

#[test]
fn hold_over_https_with_the_ca_file_gets_ticks_on_every_stream() {
    let cert = TestCert::new("hold");
    let server = start_tls_server(&cert, &["--interval-ms", "100"]);
    let url = https_url(&server, "/home/events");
    let ca = cert.cert_path();
    let args = ["--streams", "50", "--duration-s", "1.5", "--tick-interval-ms", "100", "--ca-file", &ca];
    let run = run_json("hold", &url, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.n("connected"), 50, "{}", run.report);
    assert_eq!(run.n("failure_count"), 0, "{}", run.report);
    assert!(run.n("min_ticks_per_stream") >= 3, "every stream ticks: {}", run.report);
}

#[test]
fn every_other_mode_works_over_https_too() {
    let cert = TestCert::new("modes");
    let server = start_tls_server(&cert, &["--interval-ms", "100"]);
    let url = https_url(&server, "/home/events");
    let ca = cert.cert_path();
    // fanout: the streams and the publisher (waiting for each answer) over TLS.
    let fanout =
        run_json("fanout", &url, &["--streams", "30", "--events", "10", "--rate", "0", "--ca-file", &ca]);
    assert_eq!(fanout.code, 0, "{}\n{}", fanout.report, fanout.stderr);
    assert_eq!((fanout.n("expected"), fanout.n("delivered")), (300, 300), "{}", fanout.report);
    let churn = run_json("churn", &url, &["--cycles", "40", "--concurrency", "8", "--ca-file", &ca]);
    assert_eq!(churn.code, 0, "{}\n{}", churn.report, churn.stderr);
    assert_eq!(churn.n("cycles"), 40, "{}", churn.report);
    let storm = run_json(
        "storm",
        &url,
        &["--streams", "20", "--storm-after-s", "1", "--duration-s", "4", "--ca-file", &ca],
    );
    assert_eq!(storm.code, 0, "{}\n{}", storm.report, storm.stderr);
    assert_eq!(storm.n("not_back"), 0, "{}", storm.report);
}

#[test]
fn a_certificate_not_trusted_is_counted_as_a_tls_failure_and_fails_the_run() {
    let (cert, other) = (TestCert::new("untrusted"), TestCert::new("other-ca"));
    let server = start_tls_server(&cert, &[]);
    let url = https_url(&server, "/home/events");
    let run =
        run_json("hold", &url, &["--streams", "10", "--duration-s", "5", "--ca-file", &other.cert_path()]);
    assert_eq!(run.code, 1, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.n("connected"), 0, "{}", run.report);
    // (Both test certificates carry rcgen's issuer name: the trusted one of that name did not sign it.)
    let failures = run.report["failures"].as_object().expect("failures");
    let tls: u64 = failures
        .iter()
        .filter(|(cause, _)| cause.starts_with("tls: certificate not trusted"))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert_eq!((tls, run.n("failure_count")), (10, 10), "{}", run.report);
}

#[test]
fn insecure_skips_verification_and_says_so() {
    let cert = TestCert::new("insecure");
    let server = start_tls_server(&cert, &["--interval-ms", "50"]);
    let url = https_url(&server, "/home/events");
    let run = run_json("hold", &url, &["--streams", "10", "--duration-s", "0.5", "--insecure"]);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.n("connected"), 10, "{}", run.report);
    assert!(run.stderr.contains("WARNING: --insecure"), "said loudly: {}", run.stderr);
}

/// `POST` with a header and a JSON body to a finite stream: `count` ticks, then `[DONE]`.
fn llm_style(url: &str, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "--streams",
        "20",
        "--duration-s",
        "20",
        "--method",
        "POST",
        "--header",
        "Authorization: Bearer test-token",
        "--header",
        "Content-Type: application/json",
        "--body",
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    ];
    args.extend_from_slice(extra);
    run_json("hold", url, &args)
}

fn assert_every_stream_completed_with(run: &support::Run, events: u64) {
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.n("completed"), 20, "{}", run.report);
    assert_eq!((run.n("failure_count"), run.report["drops"].as_object().map(|d| d.len())), (0, Some(0)));
    assert_eq!(run.n("events_per_stream.count"), 20, "{}", run.report);
    assert_eq!(run.n("events_per_stream.min"), events, "{}", run.report);
    assert_eq!(run.n("events_per_stream.max"), events, "{}", run.report);
    assert_eq!(run.n("events"), 20 * events, "{}", run.report);
    assert!(run.f("elapsed_s") < 15.0, "the run ends when every stream has: {}", run.report);
}

#[test]
fn post_with_a_header_and_a_json_body_until_done_completes_every_stream_exactly() {
    let path = "/home/stream?count=5&done=1&interval_ms=20";
    let plain = start_server(&[]);
    let url = format!("http://{}{path}", plain.addr);
    // 5 ticks and the `[DONE]` event.
    assert_every_stream_completed_with(&llm_style(&url, &["--until-data", "[DONE]"]), 6);
    // Without --until-data, the server's clean close completes the stream.
    assert_every_stream_completed_with(&llm_style(&url, &[]), 6);
    let cert = TestCert::new("llm");
    let https = start_tls_server(&cert, &[]);
    let url = https_url(&https, path);
    let ca = cert.cert_path();
    assert_every_stream_completed_with(&llm_style(&url, &["--until-data", "[DONE]", "--ca-file", &ca]), 6);
    assert_every_stream_completed_with(&llm_style(&url, &["--ca-file", &ca]), 6);
}

#[test]
fn stream_mode_runs_each_arrival_to_its_end_and_times_it() {
    let server = start_server(&[]);
    let url = format!("http://{}/home/stream?count=3&done=1&interval_ms=20", server.addr);
    let args = ["--arrival-rate", "50", "--total", "20", "--max-inflight", "100", "--until-data", "[DONE]"];
    let run = run_json("stream", &url, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!((run.n("completed"), run.n("refused"), run.n("failure_count")), (20, 0, 0), "{}", run.report);
    assert_eq!((run.n("events_per_stream.min"), run.n("events_per_stream.max")), (4, 4), "{}", run.report);
    assert_eq!(run.n("event_gap_ms.count"), 20 * 3, "{}", run.report);
    assert_eq!(run.n("stream_duration_ms.count"), 20, "{}", run.report);
    assert_eq!(run.n("first_event_ms.count"), 20, "{}", run.report);
    assert!(run.f("rates.streams_per_s") > 0.0, "{}", run.report);
}

#[test]
fn stream_mode_refuses_arrivals_beyond_max_inflight_without_slowing_the_schedule() {
    let server = start_server(&[]);
    let url = format!("http://{}/home/stream?count=3&done=1&interval_ms=300", server.addr);
    let args = ["--arrival-rate", "100", "--total", "20", "--max-inflight", "2"];
    let run = run_json("stream", &url, &args);
    assert_eq!(run.code, 1, "refused arrivals fail the run: {}\n{}", run.report, run.stderr);
    assert_eq!(run.n("completed") + run.n("refused"), 20, "{}", run.report);
    assert_eq!(run.n("completed"), 2, "the first two ran, the others found no room: {}", run.report);
    assert!(run.f("elapsed_s") < 5.0, "{}", run.report);
}
