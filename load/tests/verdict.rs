//! The verdict is true: a run that did not do what it was asked fails, every attempt is accounted for,
//! and the exit code says so (0 passed, 1 failed, 2 bad input). Each test is named for the behaviour it
//! pins; each runs the real binary over real sockets (the real server, or a tiny fake one).

mod support;

use support::{FakeSse, dead_addr, events_url, run, run_json, start_server};

#[test]
fn refused_connections_fail_at_once_and_the_exit_code_says_so() {
    let url = format!("http://{}/home/events", dead_addr());
    let started = std::time::Instant::now();
    let r = run_json("hold", &url, &["--streams", "5", "--duration-s", "12"]);
    assert_eq!(r.report["failures"]["connect: refused"].as_u64(), Some(5), "{}", r.report);
    assert_eq!(r.n("attempts"), 5, "{}", r.report);
    assert_eq!(r.code, 1, "a run where nothing connected fails: {}", r.report);
    assert!(started.elapsed().as_secs() < 5, "refused is known at once, not after the connect timeout");
}

#[test]
fn timestamp_ids_are_not_counted_as_millions_of_missing_events() {
    let server = FakeSse::start(None, |_, index| (1_795_678_000_000u64 + 41 * index as u64).to_string());
    let r = run_json("hold", &server.url(), &["--streams", "2", "--duration-s", "1"]);
    assert_eq!(r.report["ids"]["check"], "increasing", "the default says what it checked: {}", r.report);
    assert_eq!(r.n("ids.missing"), 0, "{}", r.report);
    assert_eq!(r.code, 0, "a healthy server passes: {}\n{}", r.report, r.stderr);
    // Asked to check sequential ids, the same server is missing 40 events between each two.
    let r =
        run_json("hold", &server.url(), &["--streams", "1", "--duration-s", "0.5", "--ids", "sequential"]);
    let events = r.n("events");
    assert_eq!(r.n("ids.missing"), 40 * (events - 1), "{}", r.report);
    assert_eq!(r.code, 1, "{}", r.report);
}

#[test]
fn a_jump_across_a_reconnection_is_one_jump_not_missing_events() {
    // Each of the first 3 connections is a server life: 5 sequential ids seeded from a clock-like number,
    // then a close; the fourth life lasts.
    let server = FakeSse::start(Some((5, 3)), |life, index| {
        (1_000_000_000 * (life as u64 + 1) + index as u64).to_string()
    });
    let r = run_json(
        "hold",
        &server.url(),
        &["--streams", "1", "--duration-s", "1", "--reconnect", "--ids", "sequential"],
    );
    assert_eq!(r.n("reconnects"), 3, "{}", r.report);
    assert_eq!(r.n("ids.missing"), 0, "{}", r.report);
    assert_eq!(r.n("ids.jumps"), r.n("reconnects"), "one jump per reconnection: {}", r.report);
    assert_eq!(r.code, 0, "nothing was lost: {}", r.report);
}

#[test]
fn opaque_ids_are_checked_for_repeats_by_value() {
    let server = FakeSse::start(Some((4, usize::MAX)), |_, index| ["a", "b", "a", "c"][index].to_string());
    let r = run_json("hold", &server.url(), &["--streams", "1", "--duration-s", "0.5", "--ids", "opaque"]);
    assert_eq!(r.n("ids.duplicates"), 1, "{}", r.report);
    assert_eq!(r.code, 1, "{}", r.report);
}

#[test]
fn a_refused_publish_is_reported_by_its_status() {
    let server = start_server(&["--interval-ms", "0", "--publish-token", "s3cret"]);
    let r =
        run_json("fanout", &events_url(&server), &["--streams", "3", "--events", "5", "--duration-s", "10"]);
    assert_eq!(r.report["publish_failures"]["publish: 401 Unauthorized"].as_u64(), Some(1), "{}", r.report);
    assert_eq!(r.code, 1, "{}", r.report);
}

#[test]
fn churn_runs_exactly_the_cycles_asked_and_accounts_for_every_attempt() {
    let server = start_server(&["--interval-ms", "1000"]);
    let r = run_json("churn", &events_url(&server), &["--cycles", "1000", "--concurrency", "50"]);
    assert_eq!(r.n("cycles"), 1000, "{}", r.report);
    assert_eq!(r.n("attempts"), 1000, "{}", r.report);
    let failures: u64 = r.report["failures"].as_object().unwrap().values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(r.n("attempts"), r.n("connected") + failures, "{}", r.report);
    assert_eq!(r.code, 0, "{}", r.report);
}

#[test]
fn churn_that_never_gets_ready_fails_and_ready_on_head_completes() {
    let server = start_server(&["--interval-ms", "0"]);
    let url = events_url(&server);
    let r = run_json("churn", &url, &["--cycles", "200", "--concurrency", "20", "--duration-s", "2"]);
    assert!(r.n("cycles") < 200, "{}", r.report);
    assert_eq!(r.code, 1, "a run that did not do what was asked fails: {}", r.report);
    let r = run_json("churn", &url, &["--cycles", "200", "--concurrency", "20", "--ready-on", "head"]);
    assert_eq!(r.n("cycles"), 200, "{}", r.report);
    assert_eq!(r.code, 0, "{}", r.report);
}

#[test]
fn bad_input_is_refused_with_exit_code_2() {
    let url = format!("http://{}/home/events", dead_addr());
    let cases: [&[&str]; 5] = [
        &["hold", "--slow-share", "2"],
        &["hold", "--procs", "0"],
        &["hold", "--source-ips", "127.0.0.9-127.0.0.1"],
        &["hold", "--cycles", "5", "--events", "3"],
        &["churn", "--ready-on", "never"],
    ];
    for args in cases {
        let mut all = args.to_vec();
        all.extend(["--url", &url, "--duration-s", "0.5", "--quiet"]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?} must be refused: {}\n{}", r.stdout, r.stderr);
    }
}

#[test]
fn a_source_address_not_on_this_machine_is_named_at_start() {
    let url = format!("http://{}/home/events", dead_addr());
    let r = run(&["hold", "--url", &url, "--source-ips", "10.1.1.1", "--duration-s", "0.5", "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot assign requested address"), "{}", r.stderr);
}

#[test]
fn more_streams_than_the_fd_limit_allows_are_refused_with_the_procs_that_fit() {
    let url = format!("http://{}/home/events", dead_addr());
    let r = run(&["hold", "--url", &url, "--streams", "50000000", "--duration-s", "0.5", "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--procs"), "says which --procs would fit: {}", r.stderr);
}
