//! Starting up and logging as an operator sees it: a bind error names the address at once (with and
//! without `--workers`), workers' log lines say which worker wrote them and never run together, and a
//! burst of streams is summed up instead of a line each.

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Server;

fn run_to_exit(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse")).args(args).output().expect("run mio-sse");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bind_error_names_the_address_at_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port to take");
    let addr = taken.local_addr().expect("its address").to_string();
    let started = Instant::now();
    let (ok, log) = run_to_exit(&["--listen", &addr]);
    assert!(!ok);
    assert!(log.contains(&format!("cannot listen on {addr}: address already in use")), "{log}");
    // With workers: said by the supervisor before any worker starts, not after a 10 s wait.
    let (ok, log) = run_to_exit(&["--listen", &addr, "--workers", "2", "--redis", "redis://127.0.0.1:9"]);
    assert!(!ok);
    assert!(log.contains(&format!("cannot listen on {addr}: address already in use")), "{log}");
    assert!(!log.contains("worker 0 started"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(8), "at once: {:?}", started.elapsed());
}

#[test]
fn worker_lines_say_which_worker_and_never_run_together() {
    let mut server =
        Server::start(&["--workers", "2", "--redis", "redis://127.0.0.1:9", "--log-level", "debug"]);
    for i in 0..2 {
        server.wait_for_log(&format!("[worker {i}] "));
    }
    let mut streams: Vec<_> = (0..20).map(|_| server.open_stream()).collect();
    streams.clear();
    server.signal("TERM");
    server.wait_exit();
    for line in server.log_lines() {
        // The supervisor's own lines have no prefix; a worker's start with it; none has one in the middle.
        let rest =
            line.strip_prefix("[worker 0] ").or_else(|| line.strip_prefix("[worker 1] ")).unwrap_or(&line);
        assert!(!rest.contains("[worker "), "two lines run together: {line}");
        assert!(rest.starts_with("20") || rest.starts_with('['), "a line starts with its time: {line}");
    }
}

#[test]
fn a_burst_of_streams_is_summed_up_not_logged_line_by_line() {
    let server = Server::start(&["--interval-ms", "0"]);
    let streams: Vec<_> = (0..300).map(|_| server.open_stream()).collect();
    server.wait_for_metric("mio_sse_open_streams", |n| n == 300);
    let line = server.wait_for_log("more streams opened in the last second");
    assert!(line.contains("… and "), "{line}");
    let opened = server.log_lines().iter().filter(|l| l.contains(" opened (")).count();
    assert!((1..300).contains(&opened), "the first few a line each, not all: {opened}");
    drop(streams);
}

#[test]
fn an_unreachable_redis_is_logged_at_once() {
    let started = Instant::now();
    let server = Server::start(&["--redis", "redis://127.0.0.1:9"]);
    let line = server.wait_for_log("backplane: Redis at 127.0.0.1:9");
    assert!(line.contains("publishes get 503"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5), "at start, not at the first publish");
}
