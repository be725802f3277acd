//! Event streams over real sockets: the exact head and frames, timing by order and count, hangups,
//! slow readers, many streams at once, and curl as a client.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Server, count_frames, has_head, is_tick, read_until, split_head};

/// The frames after the head, each with its blank line.
fn frames(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8(body.to_vec()).expect("frames are UTF-8");
    text.split_inclusive("\n\n").map(str::to_owned).collect()
}

/// Milliseconds of the UTC day in a tick's `HH:MM:SS.mmm`.
fn tick_ms(frame: &str) -> u64 {
    let t = &frame["data: ".len().."data: ".len() + 12];
    let n = |r: std::ops::Range<usize>| t[r].parse::<u64>().unwrap();
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
}

fn now_ms_of_day() -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() % 86_400_000) as u64
}

/// What every stream starts with after its head: a comment (so the head gets through proxies at once)
/// and the reconnection time.
const PREAMBLE: [&str; 2] = [": ok\n\n", "retry: 3000\n\n"];

/// Reads a stream until `n` frames have arrived after the head and the preamble; returns those frames.
fn read_frames(stream: &mut TcpStream, n: usize) -> Vec<String> {
    let got = read_until(stream, |b| count_frames(b) >= n + PREAMBLE.len());
    let (_, body) = split_head(&got);
    let frames = frames(&body);
    assert_eq!(frames[..PREAMBLE.len()], PREAMBLE, "the stream's preamble");
    frames[PREAMBLE.len()..].to_vec()
}

#[test]
fn stream_head_and_first_tick_are_exact() {
    let server = Server::start(&[]);
    let mut stream = server.open_stream();
    let got = read_until(&mut stream, |b| count_frames(b) >= 3);
    let (head, body) = split_head(&got);
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert!(lines[1].starts_with("Date: ") && lines[1].ends_with(" GMT"), "{head}");
    assert_eq!(
        &lines[2..],
        [
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache, no-transform",
            "X-Accel-Buffering: no",
            "Connection: close",
            "",
            ""
        ],
        "{head}"
    );
    let frames = frames(&body);
    assert_eq!(frames.len(), 3, "a comment, the retry and one tick at once: {frames:?}");
    assert_eq!(frames[..2], PREAMBLE);
    let frames = &frames[2..];
    assert!(is_tick(&frames[0]), "{:?}", frames[0]);
    // The time is the server's time of day now (UTC), within a few seconds either way of midnight.
    let skew = tick_ms(&frames[0]).abs_diff(now_ms_of_day());
    assert!(!(5_000..=86_395_000).contains(&skew), "tick {:?} is not the time now", frames[0]);
}

#[test]
fn ticks_arrive_in_order_and_never_early() {
    let server = Server::start(&["--interval-ms", "100"]);
    let started = Instant::now();
    let mut stream = server.open_stream();
    let frames = read_frames(&mut stream, 6);
    let elapsed = started.elapsed();
    assert!(frames.len() >= 6);
    assert!(frames.iter().all(|f| is_tick(f)), "{frames:?}");
    // One tick at once, then one per interval: six ticks cannot arrive before five intervals passed.
    assert!(elapsed >= Duration::from_millis(500), "6 ticks in {elapsed:?}");
    let times: Vec<u64> = frames.iter().map(|f| tick_ms(f)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1] || w[0] > 86_000_000), "in order: {times:?}");
}

#[test]
fn a_client_that_hangs_up_without_sending_is_reaped() {
    // Ticks an hour apart: no write will ever fail for it, so only reading EOF can notice it left.
    let server = Server::start(&["--interval-ms", "3600000"]);
    let mut stream = server.open_stream();
    read_frames(&mut stream, 1);
    let peer_closed = r#"mio_sse_closed_total{reason="peer_closed"}"#;
    let before = server.wait_for_metrics("the stream open", |m| m.get("mio_sse_open_streams") == Some(1));
    drop(stream);
    let m = server.wait_for_metrics("the stream reaped", |m| m.get("mio_sse_open_streams") == Some(0));
    assert_eq!(m.value(peer_closed), before.value(peer_closed) + 1, "closed as the peer leaving: {}", m.text);
    assert_eq!(m.value("mio_sse_events_sent_total"), 1, "its one tick, no more: {}", m.text);
}

#[test]
fn a_client_that_resets_is_reaped() {
    let server = Server::start(&["--interval-ms", "3600000"]);
    let stream = server.open_stream();
    let mut reader = stream.try_clone().unwrap();
    read_until(&mut reader, |b| count_frames(b) >= 1);
    let gone = |m: &support::Metrics| {
        m.value(r#"mio_sse_closed_total{reason="peer_reset"}"#)
            + m.value(r#"mio_sse_closed_total{reason="peer_closed"}"#)
    };
    let before = server.wait_for_metrics("the stream open", |m| m.get("mio_sse_open_streams") == Some(1));
    // SO_LINGER 0: close sends RST instead of FIN.
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
    drop(reader);
    let after = server.wait_for_metrics("the stream reaped", |m| m.get("mio_sse_open_streams") == Some(0));
    assert_eq!(gone(&after), gone(&before) + 1, "closed as the peer leaving: {}", after.text);
}

#[test]
fn a_slow_reader_gets_whole_frames_in_order_and_skipped_ticks_are_counted() {
    // A tick every millisecond into a client with a tiny receive buffer that does not read: the kernel
    // buffers fill, writes stop short or would block, and ticks must be skipped, not piled up.
    let server = Server::start(&["--interval-ms", "1", "--send-buffer-bytes", "4096"]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    // Not reading until the server counts a tick skipped (for us: the only stream) because bytes were
    // still unsent.
    server.wait_for_metric("mio_sse_ticks_skipped_total", |v| v > 0);
    let started = Instant::now();
    let got = read_until(&mut stream, |b| count_frames(b) >= 3000);
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    let frames = frames(&body)[PREAMBLE.len()..].to_vec();
    let whole = frames.len() - usize::from(!frames.last().unwrap().ends_with("\n\n"));
    for frame in &frames[..whole] {
        assert!(is_tick(frame), "a torn or interleaved frame: {frame:?}");
    }
    let times: Vec<u64> = frames[..whole].iter().map(|f| tick_ms(f)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1] || w[0] > 86_000_000), "frames out of order");
    drop(stream);
    let m = server.wait_for_metrics("the stream reaped", |m| m.get("mio_sse_open_streams") == Some(0));
    let (sent, skipped) = (m.value("mio_sse_events_sent_total"), m.value("mio_sse_ticks_skipped_total"));
    assert!(skipped > 0, "ticks were skipped while the client did not read");
    eprintln!(
        "read {} frames in {:?} after the stall; {sent} ticks sent, {skipped} skipped",
        frames.len(),
        started.elapsed()
    );
}

#[test]
fn two_thousand_concurrent_streams_each_get_their_ticks() {
    const STREAMS: usize = 2000;
    let server = Server::start(&["--interval-ms", "500"]);
    let mut streams: Vec<TcpStream> = (0..STREAMS).map(|_| server.open_stream()).collect();
    for stream in &mut streams {
        let got = read_until(stream, |b| count_frames(b) > PREAMBLE.len());
        assert!(has_head(&got));
    }
    server.wait_for_metric("mio_sse_open_streams", |v| v == STREAMS as u64);
    let gone = |m: &support::Metrics| {
        m.value(r#"mio_sse_closed_total{reason="peer_reset"}"#)
            + m.value(r#"mio_sse_closed_total{reason="peer_closed"}"#)
    };
    let before = gone(&server.metrics());
    // Every stream gets its next tick too: the loop serves all of them, not just the first few.
    for stream in &mut streams {
        let got = read_until(stream, |b| b.ends_with(b"\n\n"));
        let text = String::from_utf8(got).unwrap();
        assert!(text.split_inclusive("\n\n").all(is_tick), "{text:?}");
    }
    drop(streams);
    let after = server.wait_for_metrics("every stream reaped", |m| m.get("mio_sse_open_streams") == Some(0));
    // Each left with a FIN, or a reset where a tick arrived unread: either way, as the peer leaving.
    assert_eq!(gone(&after), before + STREAMS as u64, "{}", after.text);
}

#[test]
fn fan_out_in_slices_reaches_every_stream_in_order_with_a_publisher_that_waits() {
    const STREAMS: usize = 1000;
    const EVENTS: usize = 20;
    let server = Server::start(&["--interval-ms", "0", "--heartbeat-ms", "0"]);
    let mut streams: Vec<TcpStream> = (0..STREAMS).map(|_| server.open_stream()).collect();
    server.wait_for_metric("mio_sse_open_streams", |v| v == STREAMS as u64);
    let slices_before = server.metrics().value("mio_sse_fan_out_slices_total");
    for i in 0..EVENTS {
        // Each publish waits for its answer, as most real publishers do.
        let body = format!("event {i}");
        let raw = format!(
            "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = support::exchange(&server, raw.as_bytes());
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }
    for stream in &mut streams {
        let got = read_until(stream, |b| {
            String::from_utf8_lossy(b).contains(&format!("data: event {}\n\n", EVENTS - 1))
        });
        let text = String::from_utf8_lossy(&got);
        let seen: Vec<usize> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: event "))
            .map(|n| n.parse().expect("an event number"))
            .collect();
        assert_eq!(seen, (0..EVENTS).collect::<Vec<_>>(), "every event once, in order");
    }
    // A lap over 1,000 streams takes at least 1,000 / FAN_OUT_SLICE slices: the walk was bounded per turn.
    let slices = server.metrics().value("mio_sse_fan_out_slices_total") - slices_before;
    assert!(slices >= STREAMS.div_ceil(mio_sse::server::FAN_OUT_SLICE) as u64, "{slices} slices");
}

#[test]
fn curl_receives_ticks() {
    let server = Server::start(&["--interval-ms", "100"]);
    let mut curl = std::process::Command::new("curl")
        .args(["--silent", "--no-buffer", "--max-time", "20"])
        .arg(format!("http://{}/home/events", server.addr))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed");
    let lines: Vec<String> = BufReader::new(curl.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with("data:"))
        .take(3)
        .collect();
    let _ = curl.kill();
    let _ = curl.wait();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| is_tick(&format!("{l}\n\n"))), "{lines:?}");
}

#[test]
fn with_ticks_off_a_silent_stream_gets_heartbeats() {
    let server = Server::start(&["--interval-ms", "0", "--heartbeat-ms", "100"]);
    let mut stream = server.open_stream();
    let frames = read_frames(&mut stream, 3);
    assert!(frames.iter().all(|f| f == ": heartbeat\n\n"), "only heartbeats, no ticks: {frames:?}");
    drop(stream);
    let m = server.wait_for_metrics("the stream reaped", |m| m.get("mio_sse_open_streams") == Some(0));
    assert_eq!(m.value("mio_sse_events_sent_total"), 0, "no event sent: {}", m.text);
    assert!(m.value("mio_sse_heartbeats_total") >= 3, "{}", m.text);
}

#[test]
fn heartbeats_only_fill_silence() {
    // Ticks every 50 ms keep the stream busy: a 200 ms heartbeat never has silence to fill.
    let server = Server::start(&["--interval-ms", "50", "--heartbeat-ms", "200"]);
    let mut stream = server.open_stream();
    let frames = read_frames(&mut stream, 12);
    assert!(frames.iter().all(|f| is_tick(f)), "{frames:?}");
}
