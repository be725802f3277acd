//! A hostile network over real sockets: shutdown by signal, slow readers, bounded memory under a publish
//! flood, running out of file descriptors, junk on streams, half-closes, slowloris, smuggling shapes, and
//! no fd left behind after all of it.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use support::{PATIENCE, Server, count_frames, exchange, find, read_to_close, read_until, split_head};

/// A client socket with a tiny receive buffer, so that a server's writes to it block quickly.
fn tiny_client(server: &Server) -> TcpStream {
    client_with_recv_buffer(server, 2048)
}

/// A connection whose receive buffer is set to `bytes` before it connects (the kernel doubles it).
fn client_with_recv_buffer(server: &Server, bytes: usize) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A reader whose kernel takes a whole burst (up to `rmem_max`, ~400 KB by default) even while its test
/// thread waits for a CPU: under a loaded test run it must not look like a slow reader.
fn roomy_stream(server: &Server) -> TcpStream {
    let mut stream = client_with_recv_buffer(server, 1 << 20);
    stream.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream
}

/// Sends pipelined publishes of `body` on one connection (not reading the answers).
fn publish_burst(server: &Server, count: usize, body: &str) -> TcpStream {
    let mut publisher = server.connect();
    let mut raw = Vec::new();
    for _ in 0..count {
        write!(
            raw,
            "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    publisher.write_all(&raw).unwrap();
    publisher
}

/// The ids of published events in an SSE body.
fn ids(body: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn a_signal_ends_every_stream_with_a_jittered_retry_and_the_server_exits_0() {
    let mut server = Server::start(&["--retry-ms", "1000", "--interval-ms", "100"]);
    let mut streams: Vec<TcpStream> = (0..8).map(|_| server.open_stream()).collect();
    for stream in &mut streams {
        read_until(stream, |b| count_frames(b) >= 3);
    }
    let mut idle = server.connect();
    idle.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_until(&mut idle, |b| b.ends_with(b"</svg>\n") || b.ends_with(b"</svg>"));
    // The signal finds the eight streams open.
    server.wait_for_metric("mio_sse_open_streams", |v| v == 8);
    server.signal("TERM");
    let mut retries = Vec::new();
    for stream in &mut streams {
        let rest = String::from_utf8(read_to_close(stream)).unwrap();
        let last = rest.trim_end().lines().last().unwrap_or_default().to_owned();
        let retry: u64 = last
            .strip_prefix("retry: ")
            .unwrap_or_else(|| panic!("ends with a retry: {rest:?}"))
            .parse()
            .unwrap();
        assert!((1000..=3000).contains(&retry), "{retry} within retry-ms and the spread");
        retries.push(retry);
    }
    retries.dedup();
    assert!(retries.len() > 1, "the retries are spread, not one value: {retries:?}");
    assert!(read_to_close(&mut idle).is_empty(), "the idle keep-alive connection is closed");
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&["--shutdown-timeout-ms", "60000"]);
    // An idle keep-alive connection, which the first signal closes at once.
    let mut idle = server.scraper();
    // A request half sent keeps the shutdown waiting (until its request timeout, 10 s).
    let mut half = server.connect();
    half.write_all(b"GET / HTTP/1.1\r\nHost").unwrap();
    // Both connections in: the half head was read by the server before any signal sent after this scrape
    // (it came in with the connection, and the scrape was answered in a later turn of the loop).
    idle.wait_for_metric("mio_sse_open_connections", |v| v == 2);
    server.signal("INT");
    // The first signal is in once the idle connection is closed, without a word.
    assert!(read_to_close(idle.stream()).is_empty(), "the idle connection is closed at the first signal");
    let started = Instant::now();
    server.signal("INT");
    assert_eq!(server.wait_exit(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5), "it did not wait for the half-sent request");
    drop(half);
}

#[test]
fn a_slow_reader_is_dropped_while_others_get_every_event_and_it_catches_up_after() {
    let server =
        Server::start(&["--interval-ms", "0", "--max-pending-bytes", "60000", "--send-buffer-bytes", "4096"]);
    let mut slow = tiny_client(&server);
    slow.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut fast = roomy_stream(&server);
    read_until(&mut fast, |b| count_frames(b) >= 2);
    server.wait_for_metric("mio_sse_open_streams", |v| v == 2); // the slow one's too
    let body = "z".repeat(2000);
    let _publisher = publish_burst(&server, 100, &body);
    // The fast reader gets all 100, in order.
    let got = read_until(&mut fast, |b| ids(b).len() >= 100);
    let fast_ids = ids(&got);
    assert_eq!(fast_ids.len(), 100);
    assert!(fast_ids.windows(2).all(|w| w[1] == w[0] + 1));
    // The slow one is dropped as a slow reader (the fast one got everything: it is not the one), and
    // counted.
    server.wait_for_metric(r#"mio_sse_closed_total{reason="slow_reader"}"#, |v| v == 1);
    // It comes back with the last id it got and catches up from the replay buffer: nothing lost.
    let seen = ids(&split_head(&read_to_close(&mut slow)).1);
    let last = seen.last().copied().unwrap_or(fast_ids[0] - 1);
    let mut again = server.connect();
    write!(again, "GET /home/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: {last}\r\n\r\n").unwrap();
    let replay = ids(&split_head(&read_until(&mut again, |b| ids(b).last() == fast_ids.last())).1);
    let mut all = seen.clone();
    all.extend(&replay);
    assert_eq!(all, fast_ids, "before the drop and after the comeback: every event once, in order");
    let metrics = exchange(&server, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&metrics).contains("mio_sse_closed_total{reason=\"slow_reader\"} 1"));
}

#[test]
fn memory_stays_bounded_with_a_thousand_clients_that_do_not_read() {
    let server =
        Server::start(&["--interval-ms", "0", "--replay-bytes", "1048576", "--send-buffer-bytes", "4096"]);
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut client = tiny_client(&server);
        client.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        clients.push(client);
    }
    // All connected (the answer head reached each) before the flood.
    for client in &mut clients {
        read_until(client, |b| count_frames(b) >= 2);
    }
    let before = server.rss_bytes();
    // 8 MiB of events in 4 KiB bodies: eight times the replay buffer, thousands of times what the
    // kernel buffers of each client hold.
    let body = "m".repeat(4096);
    let mut publisher = publish_burst(&server, 2048, &body);
    let answers =
        read_until(&mut publisher, |b| b.windows(9).filter(|w| w == b"\"streams\"").count() >= 2048);
    assert!(find(&answers, b"HTTP/1.1 200 OK").is_some());
    let after = server.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "RSS with 1,000 non-reading clients: {} KiB before the flood, {} KiB after 8 MiB published (+{} KiB)",
        before / 1024,
        after / 1024,
        growth / 1024
    );
    // The replay ring (1 MiB) plus at most one partial frame per client; nothing per event per client.
    assert!(growth < 12 * 1024 * 1024, "memory grew by {growth} bytes");
    drop(clients);
}

#[test]
fn out_of_file_descriptors_accepting_pauses_without_spinning_and_resumes() {
    // 64 fds: after stdio, epoll, the listener and the signal pipe, room for about 55 connections.
    let server = Server::start_with_fd_limit(&["--max-connections", "1000", "--interval-ms", "100"], 64);
    // Accepted now, this connection can still ask for /metrics once the server cannot accept.
    let mut scraper = server.scraper();
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..80 {
        held.push(server.open_stream()); // the kernel completes handshakes even when we cannot accept
    }
    let pauses_before = scraper.wait_for_metric("mio_sse_accept_pauses_total", |v| v >= 1);
    // While exhausted: the loop must not spin on EMFILE.
    let (cpu_before, wall) = (server.cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(1)); // measuring CPU over a second of exhaustion
    let cpu = server.cpu_time() - cpu_before;
    let pauses = scraper.scrape().value("mio_sse_accept_pauses_total") - pauses_before;
    let wall = wall.elapsed();
    eprintln!("CPU while out of fds: {cpu:?} in {wall:?}; {pauses} accept retries");
    assert!(cpu < Duration::from_millis(300), "the loop spun while out of fds: {cpu:?} of CPU in a second");
    // Accepting is retried every 100 ms (ACCEPT_PAUSE), not in a loop: at most twice that rate here.
    let most = 2 + 2 * wall.as_millis() as u64 / 100;
    assert!(pauses <= most, "{pauses} accept retries in {wall:?}: the loop retries accept in a spin");
    // Open streams keep ticking meanwhile.
    let first = &mut held[0];
    let got = read_until(first, |b| count_frames(b) >= 6);
    assert!(String::from_utf8_lossy(&got).contains("data: "));
    let logged = server.log_lines().iter().filter(|l| l.contains("pausing accepts")).count();
    assert_eq!(logged, 1, "logged once per episode");
    // Free some fds: the waiting connections are accepted by themselves (the last of them to connect
    // gets its stream).
    held.drain(..30);
    let last = held.last_mut().unwrap();
    let got = read_until(last, |b| count_frames(b) >= 3);
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn a_stream_that_cannot_write_is_closed_after_the_stall_timeout() {
    // A peer that vanished without a FIN looks like one that never reads: writes stop going out.
    let server = Server::start(&[
        "--interval-ms",
        "1",
        "--write-stall-timeout-ms",
        "300",
        "--send-buffer-bytes",
        "4096",
    ]);
    let mut stuck = tiny_client(&server);
    stuck.write_all(b"GET /home/events?bytes=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let me = stuck.local_addr().unwrap();
    server.wait_for_metric(r#"mio_sse_closed_total{reason="write_timeout"}"#, |v| v == 1);
    assert_eq!(server.metrics().value("mio_sse_open_streams"), 0);
    // The operator is told which peer stalled.
    server.wait_for_log(&format!("{me}: nothing could be written for"));
}

#[test]
fn a_stderr_nobody_reads_does_not_stall_the_loop() {
    // The server's stderr is a pipe this test never reads: once its 64 KiB fill up, a logger writing
    // straight to it would block the loop. 1,500 streams log 1,500 "opened" lines (well past 64 KiB).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mio-sse"))
        .args(["--listen", &addr, "--interval-ms", "200", "--static-dir", "/nonexistent"])
        .stderr(std::process::Stdio::piped()) // never read
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let connect = || loop {
        match TcpStream::connect(&addr) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("the server did not start: {e}"),
        }
    };
    let mut streams: Vec<TcpStream> = (0..1500)
        .map(|_| {
            let mut stream = connect();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
            stream
        })
        .collect();
    for stream in &mut streams {
        read_until(stream, |b| count_frames(b) >= 3);
    }
    // Every stream keeps ticking: ten more ticks on the first and on the last.
    let ticks = |b: &[u8]| b.windows(2).filter(|w| w == b"\n\n").count();
    let first = read_until(&mut streams[0], |b| ticks(b) >= 10);
    let last = read_until(streams.last_mut().unwrap(), |b| ticks(b) >= 10);
    assert!(ticks(&first) >= 10 && ticks(&last) >= 10);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_its_timeout() {
    let server = Server::start(&["--keepalive-timeout-ms", "200"]);
    let mut conn = server.connect();
    conn.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let started = Instant::now();
    let got = read_to_close(&mut conn); // the answer, then the close once idle for 200 ms
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK") && !String::from_utf8_lossy(&got).contains("Connection: close")
    );
    assert!(started.elapsed() >= Duration::from_millis(200), "closed only after the idle time");
}

#[test]
fn a_smaller_head_limit_is_enforced() {
    let server = Server::start(&["--max-head-bytes", "300"]);
    let long = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: {}\r\n\r\n", "l".repeat(400));
    let got = exchange(&server, long.as_bytes());
    assert!(got.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&got));
}

#[test]
fn bytes_sent_on_a_stream_are_discarded_until_too_many() {
    let server = Server::start(&["--interval-ms", "50"]);
    let mut stream = server.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    stream.write_all(&[b'j'; 10_000]).unwrap();
    let got = read_until(&mut stream, |b| b.windows(2).filter(|w| w == b"\n\n").count() >= 3);
    assert!(String::from_utf8_lossy(&got).contains("data: "), "still streaming after 10 KB of junk");
    let me = stream.local_addr().unwrap();
    let _ = stream.write_all(&[b'j'; 100_000]);
    server.wait_for_metric(r#"mio_sse_closed_total{reason="too_much_input"}"#, |v| v == 1);
    assert_eq!(server.metrics().value("mio_sse_open_streams"), 0);
    // The operator is told which peer sent too much.
    server.wait_for_log(&format!("{me}: sent"));
}

#[test]
fn a_client_that_half_closes_still_gets_its_answer() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let got = read_to_close(&mut stream);
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.starts_with(b"<svg"));
}

#[test]
fn slowloris_gets_408_while_streams_keep_ticking() {
    let server = Server::start(&["--request-timeout-ms", "600", "--interval-ms", "50"]);
    let mut stream = server.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    let mut loris: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
    for (i, conn) in loris.iter_mut().enumerate() {
        conn.write_all(&b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: "[..10 + i % 20]).unwrap();
    }
    // Meanwhile the stream ticks, and an ordinary request is served at once.
    let started = Instant::now();
    let got = read_until(&mut stream, |b| b.windows(2).filter(|w| w == b"\n\n").count() >= 8);
    assert!(String::from_utf8_lossy(&got).matches("data: ").count() >= 8);
    let page =
        exchange(&server, b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(page.starts_with(b"HTTP/1.1 200 OK"));
    for conn in &mut loris {
        let answer = read_to_close(conn);
        assert!(answer.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&answer));
    }
    assert!(started.elapsed() >= Duration::from_millis(500), "408 only after the request timeout");
}

#[test]
fn smuggling_shapes_get_400_and_a_close() {
    let server = Server::start(&[]);
    for raw in [
        &b"POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n"[..],
        b"POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\rX-Bare-CR: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x10\r\n\r\n",
    ] {
        let got = exchange(&server, raw); // read to close: the server closes after the 400
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "one answer, nothing smuggled: {text}");
    }
}

#[test]
fn no_fd_is_left_behind_by_hostile_clients() {
    let server =
        Server::start(&["--request-timeout-ms", "300", "--interval-ms", "20", "--max-connections", "30"]);
    let baseline = server.open_fds();
    let mut keep = Vec::new();
    for round in 0..40 {
        // A reset in the middle of a stream (or of an over-capacity answer, or of a refused connection).
        let mut stream = server.open_stream();
        let _ = stream.read(&mut [0u8; 1024]);
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
        // Garbage, a half-sent head, a client gone before reading its answer, over-capacity streams.
        let mut garbage = server.connect();
        garbage.write_all(&[0xff, 0x00, b'\r', b'\n', b'\r', b'\n']).unwrap();
        let _ = garbage.read(&mut [0u8; 1024]); // an answer, a close or a reset: any is fine here
        let mut half = server.connect();
        half.write_all(b"GET /index.html HTTP/1.1\r\nHo").unwrap();
        keep.push(half);
        let mut gone = server.connect();
        gone.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let _ = gone.read(&mut [0u8; 10]);
        socket2::SockRef::from(&gone).set_linger(Some(Duration::ZERO)).unwrap();
        if round % 10 == 0 {
            keep.extend((0..35).map(|_| server.open_stream()));
        }
    }
    drop(keep);
    let deadline = Instant::now() + PATIENCE;
    while server.open_fds() != baseline {
        assert!(Instant::now() < deadline, "{} fds open, {baseline} at start", server.open_fds());
        std::thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
    }
}
