//! `--workers` as an operator sees it: one scrape of `/metrics` on the service's address shows the whole
//! service, whichever worker answers; a supervisor that never takes the service down (a worker killed
//! again and again, a binary that is gone for a while); and a rolling restart on SIGHUP.

mod support;

use std::time::{Duration, Instant};

use support::{Redis, Server, count_frames, read_until};

/// The pid in a "worker N started (pid P)" line.
fn pid_of(line: &str) -> String {
    line.rsplit("pid ").next().unwrap().trim_end_matches(')').to_string()
}

/// The latest "worker `index` started" line other than those of `old` pids.
fn wait_started(server: &Server, index: usize, old: &[String]) -> String {
    let needle = format!("worker {index} started (pid ");
    let line = server.wait_for_log_matching(&needle, |l| {
        l.contains(&needle) && !old.iter().any(|p| l.contains(&format!("pid {p})")))
    });
    pid_of(&line)
}

fn kill9(pid: &str) {
    let status = std::process::Command::new("kill").args(["-KILL", pid]).status().unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

#[test]
fn one_scrape_shows_the_whole_service() {
    let redis = Redis::start();
    let url = redis.url();
    let server = Server::start(&["--redis", &url, "--workers", "3", "--interval-ms", "0"]);
    let mut streams: Vec<_> = (0..30).map(|_| server.open_stream()).collect();
    for stream in &mut streams {
        read_until(stream, |b| count_frames(b) >= 2);
    }
    // The kernel spreads scrapes over the workers too; every one of them must tell the same totals.
    server.wait_for_metrics("3 workers, 30 streams", |m| {
        m.get("mio_sse_workers") == Some(3) && m.get("mio_sse_open_streams") == Some(30)
    });
    // Every worker gets the totals within a second or two; then eight scrapes in a row (spread over the
    // workers by the kernel) must all tell them. Polled with a deadline, not slept on once: a noisy
    // machine may take longer, never forever.
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let scrapes: Vec<_> = (0..8).map(|_| server.metrics()).collect();
        let whole = |m: &support::Metrics| {
            (m.get("mio_sse_workers"), m.get("mio_sse_open_streams")) == (Some(3), Some(30))
        };
        match scrapes.iter().find(|m| !whole(m)) {
            None => break,
            Some(m) if Instant::now() > deadline => {
                panic!("a scrape did not show the whole service:\n{}", m.text)
            }
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn a_worker_killed_again_and_again_is_restarted_and_the_service_stays_up() {
    let redis = Redis::start();
    let url = redis.url();
    let mut server = Server::start(&["--redis", &url, "--workers", "2", "--interval-ms", "0"]);
    let mut pids = vec![wait_started(&server, 0, &[])];
    for _ in 0..5 {
        kill9(pids.last().unwrap());
        let next = wait_started(&server, 0, &pids);
        pids.push(next);
    }
    let mut stream = server.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 2);
    assert!(server.try_exit().is_none(), "the supervisor is still there");
}

#[test]
fn a_binary_gone_for_a_while_is_retried_until_it_is_back() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = std::env::temp_dir().join(format!("mio-sse-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("mio-sse");
    std::fs::copy(env!("CARGO_BIN_EXE_mio-sse"), &exe).unwrap();
    let mut server = Server::start_exe(&exe, &["--redis", &url, "--workers", "2", "--interval-ms", "0"]);
    let first = wait_started(&server, 0, &[]);
    let away = dir.join("moved-away");
    std::fs::rename(&exe, &away).unwrap();
    kill9(&first);
    server.wait_for_log("cannot start worker 0");
    let mut stream = server.open_stream(); // worker 1 still serves
    read_until(&mut stream, |b| count_frames(b) >= 2);
    assert!(server.try_exit().is_none(), "the supervisor does not fall over");
    std::fs::rename(&away, &exe).unwrap();
    let back = Instant::now();
    wait_started(&server, 0, &[first]);
    assert!(back.elapsed() < Duration::from_secs(15), "retried within the back-off");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_restarts_the_workers_one_after_another() {
    let redis = Redis::start();
    let url = redis.url();
    let server = Server::start(&[
        "--redis",
        &url,
        "--workers",
        "2",
        "--interval-ms",
        "100",
        "--shutdown-timeout-ms",
        "2000",
    ]);
    let old: Vec<String> = (0..2).map(|i| wait_started(&server, i, &[])).collect();
    let mut stream = server.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    server.signal("HUP");
    server.wait_for_log("rolling restart done");
    for i in 0..2 {
        wait_started(&server, i, &old);
    }
    // The old stream was ended with a retry: (its worker drained); the service serves on.
    let got = read_until(&mut stream, |b| String::from_utf8_lossy(b).contains("retry: "));
    assert!(String::from_utf8_lossy(&got).contains("retry: "));
    let mut again = server.open_stream();
    read_until(&mut again, |b| count_frames(b) >= 2);
}
