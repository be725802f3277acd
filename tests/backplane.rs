//! Several instances on one Redis backplane: the same events with the same ids everywhere, replay on any
//! instance, Redis going away and coming back, and a worker that dies being restarted.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::{Redis, Server, count_frames, exchange, find, read_until, split_head};

/// Publishes `body` on `server`; returns (status, answer body).
fn publish(server: &Server, body: &str) -> (u16, String) {
    let raw = format!(
        "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let got = exchange(server, raw.as_bytes());
    (
        String::from_utf8_lossy(&got[9..12]).parse().unwrap(),
        String::from_utf8_lossy(&split_head(&got).1).into_owned(),
    )
}

fn publish_id(server: &Server, body: &str) -> u64 {
    // With workers, the kernel may hand the publish to one that has just (re)started and is still
    // connecting to Redis: it answers 503 with Retry-After, and a publisher tries again, as this one does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, answer) = loop {
        let (status, answer) = publish(server, body);
        if status != 503 || std::time::Instant::now() >= deadline {
            break (status, answer);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status, 200, "{answer}");
    answer.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap()
}

/// `(id, data)` of each published event in an SSE body.
fn events(body: &[u8]) -> Vec<(u64, String)> {
    let text = String::from_utf8_lossy(body);
    text.split("\n\n")
        .filter_map(|block| {
            let id = block.lines().find_map(|l| l.strip_prefix("id: "))?.parse().ok()?;
            let data = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
            Some((id, data))
        })
        .collect()
}

/// Reads `stream` until `n` published events arrived (counting from this read); returns them.
fn read_events(stream: &mut TcpStream, n: usize) -> Vec<(u64, String)> {
    events(&read_until(stream, |b| events(b).len() >= n))
}

fn instance(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", &url, "--interval-ms", "0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    server.wait_for_metric("mio_sse_backplane_up", |v| v == 1);
    server
}

#[test]
fn a_publish_on_one_instance_reaches_every_instance_once_with_the_same_id() {
    let redis = Redis::start();
    let (a, b) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut on_a = a.open_stream();
    let mut on_b = b.open_stream();
    read_until(&mut on_a, |b| count_frames(b) >= 2);
    read_until(&mut on_b, |b| count_frames(b) >= 2);
    let first = publish_id(&a, "from A");
    let second = publish_id(&b, "from B");
    assert_eq!(second, first + 1, "one global sequence");
    let want = vec![(first, "from A".to_string()), (second, "from B".to_string())];
    assert_eq!(read_events(&mut on_a, 2), want);
    assert_eq!(read_events(&mut on_b, 2), want);
}

#[test]
fn a_client_moving_to_another_instance_gets_exactly_what_it_missed() {
    let redis = Redis::start();
    let a = instance(&redis, &[]);
    let mut on_a = a.open_stream();
    read_until(&mut on_a, |b| count_frames(b) >= 2);
    publish_id(&a, "one");
    let seen = read_events(&mut on_a, 1);
    drop(on_a);
    let missed: Vec<u64> = (0..3).map(|i| publish_id(&a, &format!("missed {i}"))).collect();
    // B starts after all of it: it reads the backlog from Redis.
    let b = instance(&redis, &[]);
    let mut on_b = b.connect();
    write!(on_b, "GET /home/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: {}\r\n\r\n", seen[0].0)
        .unwrap();
    let replay = read_events(&mut on_b, 3);
    assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), missed);
    assert!(!String::from_utf8_lossy(&read_until(&mut on_b, |_| true)).contains("event: lost"));
}

#[test]
fn without_redis_streams_go_on_publishes_get_503_and_delivery_resumes_when_it_is_back() {
    let mut redis = Redis::start();
    let url = redis.url();
    let a = Server::start(&["--redis", &url, "--interval-ms", "100"]);
    a.wait_for_metric("mio_sse_backplane_up", |v| v == 1);
    let mut stream = a.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    let before = publish_id(&a, "before");
    assert_eq!(read_events(&mut stream, 1)[0].0, before);
    redis.stop();
    a.wait_for_metric("mio_sse_backplane_up", |v| v == 0);
    // The stream keeps ticking, publishes are refused clearly, metrics say so.
    let ticks = read_until(&mut stream, |b| b.windows(2).filter(|w| w == b"\n\n").count() >= 3);
    assert!(String::from_utf8_lossy(&ticks).contains("data: "));
    let (status, answer) = publish(&a, "while away");
    assert_eq!(status, 503, "{answer}");
    let metrics = exchange(&a, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(find(&metrics, b"mio_sse_backplane_up 0").is_some());
    // Redis comes back (empty): the same stream gets what is published next.
    redis.restart();
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let after = loop {
        let (status, answer) = publish(&a, "after");
        if status == 200 {
            break answer
                .split("\"id\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "publishes never worked again: {answer}");
        std::thread::sleep(std::time::Duration::from_millis(50)); // waiting for the reconnection
    };
    assert!(after > before, "ids keep increasing across Redis's restart");
    let got = read_events(&mut stream, 1);
    assert_eq!(got, vec![(after, "after".to_string())]);
}

#[test]
fn workers_share_one_port_and_a_killed_worker_is_restarted() {
    let redis = Redis::start();
    let url = redis.url();
    let supervisor = Server::start(&["--redis", &url, "--workers", "2", "--interval-ms", "0"]);
    let started: Vec<String> =
        (0..2).map(|i| supervisor.wait_for_log(&format!("worker {i} started"))).collect();
    let pid = |line: &String| line.rsplit("pid ").next().unwrap().trim_end_matches(')').to_string();
    // Both workers serve the one port.
    let mut stream = supervisor.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 2);
    let id = publish_id(&supervisor, "to everyone");
    assert_eq!(read_events(&mut stream, 1)[0].0, id);
    // Kill worker 0: the supervisor restarts it.
    let status = std::process::Command::new("kill").args(["-KILL", &pid(&started[0])]).status().unwrap();
    assert!(status.success());
    // (The log says so: this is about processes, and a scrape would reach only one of them.)
    supervisor.wait_for_log_matching("worker 0 started again", |l| {
        l.contains("worker 0 started") && !l.contains(&pid(&started[0]))
    });
    // Whoever was on it reconnects with its last id and gets what was published meanwhile.
    let meanwhile = publish_id(&supervisor, "meanwhile");
    let mut again = supervisor.connect();
    write!(again, "GET /home/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: {id}\r\n\r\n").unwrap();
    assert_eq!(read_events(&mut again, 1)[0].0, meanwhile);
}

#[test]
fn more_than_one_worker_needs_redis() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mio-sse"))
        .args(["--workers", "2", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --redis"));
}

#[test]
fn a_signal_to_the_supervisor_drains_every_worker() {
    let redis = Redis::start();
    let url = redis.url();
    // Serving means both workers were started: the supervisor starts all before it looks at signals.
    let mut supervisor = Server::start(&["--redis", &url, "--workers", "2", "--interval-ms", "100"]);
    let mut stream = supervisor.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    supervisor.signal("TERM");
    // The stream's worker ends it with a retry: and closes; every worker stops; the supervisor exits 0.
    let rest = support::read_to_close(&mut stream);
    assert!(String::from_utf8_lossy(&rest).contains("retry: "), "{}", String::from_utf8_lossy(&rest));
    // It exits 0 only once every worker stopped: nothing serves the port any more.
    assert_eq!(supervisor.wait_exit(), Some(0));
    let refused = TcpStream::connect(supervisor.addr).map(|_| ()).map_err(|e| e.kind());
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused), "a worker still listens");
}

#[test]
fn workers_do_not_outlive_a_supervisor_killed_outright() {
    let redis = Redis::start();
    let url = redis.url();
    let supervisor = Server::start(&["--redis", &url, "--workers", "2", "--interval-ms", "0"]);
    let pids: Vec<String> = (0..2)
        .map(|i| {
            let line = supervisor.wait_for_log(&format!("worker {i} started"));
            line.rsplit("pid ").next().unwrap().trim_end_matches(')').to_string()
        })
        .collect();
    drop(supervisor); // SIGKILL: nothing can be forwarded; the workers must notice on their own
    let deadline = std::time::Instant::now() + support::PATIENCE;
    for pid in pids {
        while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
        {
            assert!(std::time::Instant::now() < deadline, "worker {pid} outlived its supervisor");
            std::thread::sleep(std::time::Duration::from_millis(20)); // polling a condition, with a deadline
        }
    }
}
