//! The SSE protocol over real sockets: publishing, ids, replay at the buffer's edge, the `lost` signal,
//! ids across a restart, who may publish, shaped streams, CORS, metrics, and slow streams falling behind.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{
    Event, Server, count_frames, exchange, find, parse_events, read_to_close, read_until, split_head,
};

/// Publishes `body` (to `/home/events` + `query`) and returns (status, response body).
fn publish(server: &Server, query: &str, body: &str, extra_headers: &str) -> (u16, String) {
    let raw = format!(
        "POST /home/events{query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    let got = exchange(server, raw.as_bytes());
    let status = String::from_utf8_lossy(&got[9..12]).parse().unwrap();
    (status, String::from_utf8_lossy(&split_head(&got).1).into_owned())
}

/// Publishes and returns the new event's id.
fn publish_ok(server: &Server, query: &str, body: &str) -> u64 {
    let (status, answer) = publish(server, query, body, "");
    assert_eq!(status, 200, "{answer}");
    let id = answer.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()).expect("an id in the answer");
    id.parse().unwrap()
}

/// Opens a stream with a request target and extra headers.
fn open(server: &Server, target: &str, headers: &str) -> TcpStream {
    let mut stream = server.connect();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").unwrap();
    stream
}

/// Reads until `n` more events with data arrived (after the head, if this read meets it); returns them.
fn read_events(stream: &mut TcpStream, n: usize) -> Vec<Event> {
    let body = |b: &[u8]| -> Option<Vec<u8>> {
        if !b.starts_with(b"HTTP/") {
            return Some(b.to_vec());
        }
        find(b, b"\r\n\r\n").map(|end| b[end + 4..].to_vec())
    };
    let got = read_until(stream, |b| body(b).is_some_and(|body| parse_events(&body).len() >= n));
    parse_events(&body(&got).unwrap_or_default())
}

fn published(events: &[Event]) -> Vec<Event> {
    events.iter().filter(|e| e.id.is_some()).cloned().collect()
}

#[test]
fn a_publish_reaches_every_stream_with_its_id_name_and_lines() {
    let server = Server::start(&["--interval-ms", "0"]);
    let mut streams: Vec<TcpStream> = (0..3).map(|_| server.open_stream()).collect();
    for stream in &mut streams {
        read_until(stream, |b| count_frames(b) >= 2); // the comment and the retry
    }
    let first = publish_ok(&server, "", "one line");
    let second = publish_ok(&server, "?event=news", "a\nb\r\nc\rd");
    let third = publish_ok(&server, "", "");
    assert_eq!((second, third), (first + 1, first + 2), "ids increase by one");
    for stream in &mut streams {
        let events = read_events(stream, 3);
        assert_eq!(
            events,
            [
                Event { kind: "message".into(), id: Some(first.to_string()), data: "one line".into() },
                Event { kind: "news".into(), id: Some(second.to_string()), data: "a\nb\nc\nd".into() },
                Event { kind: "message".into(), id: Some(third.to_string()), data: "".into() },
            ]
        );
    }
}

#[test]
fn the_publish_answer_says_the_id_and_how_many_streams() {
    let server = Server::start(&[]);
    let mut stream = server.open_stream();
    read_until(&mut stream, |b| count_frames(b) >= 3);
    let (status, answer) = publish(&server, "", "x", "");
    assert_eq!(status, 200);
    assert!(answer.starts_with("{\"id\":\"") && answer.ends_with("\",\"streams\":1}\n"), "{answer}");
}

#[test]
fn a_burst_of_publishes_arrives_whole_and_in_order() {
    // With a ring of 10, the burst is 20 times the ring: publishing must pace itself so that a stream
    // that keeps reading never falls off the ring.
    for ring in ["1000", "10"] {
        let server = Server::start(&["--interval-ms", "0", "--replay-events", ring]);
        let mut stream = server.open_stream();
        read_until(&mut stream, |b| count_frames(b) >= 2);
        // Pipelined on one connection: many publishes per turn, fanned out together.
        let mut publisher = server.connect();
        let mut raw = Vec::new();
        for i in 0..200 {
            let body = format!("event {i}");
            write!(
                raw,
                "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        publisher.write_all(&raw).unwrap();
        let events = read_events(&mut stream, 200);
        let ids: Vec<u64> = events.iter().map(|e| e.id.as_ref().unwrap().parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "contiguous ids (ring {ring})");
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.data, format!("event {i}"), "ring {ring}");
        }
    }
}

#[test]
fn reconnecting_with_last_event_id_replays_what_was_missed() {
    let server = Server::start(&["--interval-ms", "0", "--replay-events", "5"]);
    let ids: Vec<u64> = (0..4).map(|i| publish_ok(&server, "", &format!("e{i}"))).collect();
    // Header form: everything after ids[1].
    let mut stream = open(&server, "/home/events", &format!("Last-Event-ID: {}\r\n", ids[1]));
    let events = read_events(&mut stream, 2);
    assert_eq!(published(&events).iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["e2", "e3"]);
    // Query form (a first connection cannot send the header).
    let mut stream = open(&server, &format!("/home/events?last_event_id={}", ids[2]), "");
    let events = read_events(&mut stream, 1);
    assert_eq!(events[0].data, "e3");
    // Then the live stream follows.
    let live = publish_ok(&server, "", "live");
    let events = read_events(&mut stream, 1);
    assert_eq!(events[0].id, Some(live.to_string()));
    // The header wins over the query: a browser reconnecting keeps its first URL.
    let mut stream = open(
        &server,
        &format!("/home/events?last_event_id={}", ids[0]),
        &format!("Last-Event-ID: {}\r\n", ids[3]),
    );
    let events = read_events(&mut stream, 1);
    assert_eq!(events[0].data, "live");
}

#[test]
fn an_id_older_than_the_buffer_gets_what_is_there_and_the_lost_signal() {
    let server = Server::start(&["--interval-ms", "0", "--replay-events", "3"]);
    let ids: Vec<u64> = (0..6).map(|i| publish_ok(&server, "", &format!("e{i}"))).collect();
    // The ring holds e3..e5; a client that saw e1 missed e2 for good.
    let mut stream = open(&server, "/home/events", &format!("Last-Event-ID: {}\r\n", ids[1]));
    let events = read_events(&mut stream, 4);
    assert_eq!(events[0].kind, "lost");
    assert_eq!(events[0].id, None, "the signal does not move the client's last event id");
    assert_eq!(
        events[0].data,
        format!(r#"{{"last_event_id":"{}","first_available_id":"{}"}}"#, ids[1], ids[3])
    );
    assert_eq!(events[1..].iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["e3", "e4", "e5"]);
    // A client that saw e2 missed nothing that was dropped: no signal.
    let mut stream = open(&server, "/home/events", &format!("Last-Event-ID: {}\r\n", ids[2]));
    let events = read_events(&mut stream, 3);
    assert!(events.iter().all(|e| e.kind == "message"), "{events:?}");
}

#[test]
fn bad_event_ids_and_shapes_are_refused_with_a_reason() {
    let server = Server::start(&[]);
    for (target, says) in [
        ("/home/events?last_event_id=abc", "last_event_id"),
        ("/home/events?interval_ms=soon", "interval_ms"),
        ("/home/events?bytes=lots", "bytes"),
    ] {
        let got = exchange(&server, format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 400 ") && text.contains(says), "{target}: {text}");
    }
    // A bad Last-Event-ID header (a browser sends it on its own) is ignored, never a 400.
    let mut stream = open(&server, "/home/events", "Last-Event-ID: not-an-id\r\n");
    let got = read_until(&mut stream, |b| count_frames(b) >= 3);
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn ids_keep_increasing_across_a_restart() {
    let first_server = Server::start(&[]);
    let before = publish_ok(&first_server, "", "before");
    let port = first_server.addr.port().to_string();
    drop(first_server);
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&["--listen", &listen, "--interval-ms", "0"]);
    let after = publish_ok(&server, "", "after");
    assert!(after > before, "{after} after a restart must be above {before}");
    // A client coming back with the old id gets what the new server published, without a loss signal.
    let mut stream = open(&server, "/home/events", &format!("Last-Event-ID: {before}\r\n"));
    let events = read_events(&mut stream, 1);
    assert_eq!(events, [Event { kind: "message".into(), id: Some(after.to_string()), data: "after".into() }]);
}

#[test]
fn publish_rules_411_413_401_403_and_utf8() {
    let server = Server::start(&["--max-body-bytes", "16"]);
    let no_length = exchange(&server, b"POST /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(no_length.starts_with(b"HTTP/1.1 411 "), "{}", String::from_utf8_lossy(&no_length));
    assert_eq!(publish(&server, "", &"x".repeat(17), "").0, 413);
    assert_eq!(publish(&server, "?event=a%0Ab", "x", "").0, 400);
    let bad_utf8 = exchange(
        &server,
        b"POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n\xff\xfe",
    );
    assert!(bad_utf8.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&bad_utf8));

    let guarded = Server::start(&["--publish-token", "s3cret"]);
    let (status, answer) = publish(&guarded, "", "x", "");
    assert_eq!(status, 401, "{answer}");
    assert_eq!(publish(&guarded, "", "x", "Authorization: Bearer wrong\r\n").0, 403);
    assert_eq!(publish(&guarded, "", "x", "Authorization: Bearer s3cret\r\n").0, 200);
}

#[test]
fn expect_100_continue_gets_the_go_ahead_before_the_body() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(
            b"POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let go = read_until(&mut stream, |b| find(b, b"\r\n\r\n").is_some());
    assert_eq!(go, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let got = read_until(&mut stream, |b| find(b, b"}\n").is_some());
    assert!(got.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&got));
    // An HTTP/1.0 client cannot have asked for it: no 100, just the answer.
    let old = exchange(
        &server,
        b"POST /home/events HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    );
    assert!(old.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&old));
}

#[test]
fn shaped_streams_choose_their_interval_and_payload_within_bounds() {
    let server = Server::start(&["--min-interval-ms", "40", "--max-payload-bytes", "300"]);
    let started = Instant::now();
    let mut stream = open(&server, "/home/events?interval_ms=1&bytes=100", "");
    let events = read_events(&mut stream, 5);
    assert!(started.elapsed() >= Duration::from_millis(160), "interval raised to 40 ms");
    for event in &events {
        assert_eq!(event.data.len(), 100, "{event:?}");
        assert!(event.data.ends_with('x') && event.id.is_none());
    }
    let mut big = open(&server, "/home/events?bytes=100000&interval_ms=50", "");
    let events = read_events(&mut big, 2);
    assert!(events.iter().all(|e| e.data.len() == 300), "payload lowered to the maximum");
}

#[test]
fn cors_echoes_allowed_origins_and_answers_preflight() {
    let server = Server::start(&["--cors-origin", "https://app.example"]);
    let mut stream = open(&server, "/home/events", "Origin: https://app.example\r\n");
    let got = read_until(&mut stream, |b| count_frames(b) >= 1);
    let (head, _) = split_head(&got);
    assert!(head.contains("Access-Control-Allow-Origin: https://app.example\r\n"), "{head}");
    assert!(head.contains("Access-Control-Allow-Credentials: true\r\n"), "{head}");
    let mut other = open(&server, "/home/events", "Origin: https://evil.example\r\n");
    let got = read_until(&mut other, |b| count_frames(b) >= 1);
    assert!(!String::from_utf8_lossy(&got).contains("Access-Control"), "an unlisted origin gets nothing");
    let preflight = exchange(
        &server,
        b"OPTIONS /home/events HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\
          Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&preflight);
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
    assert!(text.contains("Access-Control-Allow-Headers: Last-Event-ID,"), "{text}");
    assert!(!text.contains("Content-Length"), "a 204 has no length: {text}");
    // A refusal carries the grant too, so the cross-origin caller can read why.
    let refused = exchange(
        &server,
        b"GET /nope HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&refused);
    assert!(
        text.starts_with("HTTP/1.1 404 ")
            && text.contains("Access-Control-Allow-Origin: https://app.example"),
        "{text}"
    );
}

#[test]
fn metrics_count_what_happened() {
    let server = Server::start(&["--interval-ms", "0"]);
    let mut streams: Vec<TcpStream> = (0..3).map(|_| server.open_stream()).collect();
    for stream in &mut streams {
        read_until(stream, |b| count_frames(b) >= 2);
    }
    publish_ok(&server, "", "x");
    for stream in &mut streams {
        read_events(stream, 1);
    }
    let got = exchange(&server, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (head, body) = split_head(&got);
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{head}");
    let text = String::from_utf8(body).unwrap();
    let value = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("mio_sse_open_streams"), 3);
    assert_eq!(value("mio_sse_publishes_total"), 1);
    assert_eq!(value("mio_sse_events_sent_total"), 3);
    assert_eq!(value("mio_sse_replay_buffer_events"), 1);
    assert!(value("mio_sse_open_connections") >= 4);
    assert!(value("mio_sse_sent_bytes_total") > 0);
    check_with_prometheus_parser(&text);
}

/// Feeds the exposition to the reference Python parser (`prometheus_client`), which `scripts/test.sh`
/// installs; fails if it rejects a line.
fn check_with_prometheus_parser(text: &str) {
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as parse\n\
                  families = list(parse(sys.stdin.read()))\nprint(len(families))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition (install it with `pip install prometheus_client`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(families >= 20, "{families} metric families");
}

#[test]
fn a_stream_that_falls_behind_the_buffer_is_closed_and_learns_what_it_lost() {
    let server =
        Server::start(&["--interval-ms", "0", "--replay-events", "20", "--send-buffer-bytes", "4096"]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut slow: TcpStream = socket.into();
    slow.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    server.wait_for_metric("mio_sse_open_streams", |v| v == 1);
    // 200 events of 1 KiB: far more than the kernel buffers hold, and ten times the replay ring.
    let payload = "y".repeat(1024);
    let mut first = None;
    for _ in 0..200 {
        let id = publish_ok(&server, "", &payload);
        first.get_or_insert(id);
    }
    let m = server.wait_for_metrics("the stream closed", |m| m.get("mio_sse_open_streams") == Some(0));
    assert_eq!(m.value(r#"mio_sse_closed_total{reason="fell_behind"}"#), 1, "{}", m.text);
    // What it had received before the close is whole frames; it comes back with its last id.
    let got = read_to_close(&mut slow);
    let events = parse_events(&split_head(&got).1);
    let last = events.last().and_then(|e| e.id.clone()).expect("it got some events");
    let mut again = open(&server, "/home/events", &format!("Last-Event-ID: {last}\r\n"));
    let events = read_events(&mut again, 21);
    assert_eq!(events[0].kind, "lost", "{:?}", events[0]);
    assert_eq!(events.len(), 21, "the lost signal and the 20 events still in the ring");
    let _ = first;
}
