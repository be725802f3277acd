//! HTTP over real sockets: static files, keep-alive and pipelining, HTTP/1.0, errors, traversal
//! attempts, timeouts, the connection cap, and no fd left behind.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::{Server, count_frames, exchange, find, read_to_close, read_until, split_head};

const INDEX: &[u8] = include_bytes!("../static/index.html");

/// Reads one response with a `Content-Length` body from a kept-alive connection; returns (head, body).
fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    let complete = |b: &[u8]| match find(b, b"\r\n\r\n") {
        Some(end) => b.len() >= end + 4 + content_length(&String::from_utf8_lossy(&b[..end])),
        None => false,
    };
    if !complete(pending) {
        let more = read_until(stream, |b| {
            let mut all = pending.clone();
            all.extend_from_slice(b);
            complete(&all)
        });
        pending.extend_from_slice(&more);
    }
    let end = find(pending, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    let len = content_length(&head);
    let body = pending[end..end + len].to_vec();
    pending.drain(..end + len);
    (head, body)
}

fn content_length(head: &str) -> usize {
    head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |v| v.trim().parse().unwrap())
}

fn status(response: &[u8]) -> u16 {
    String::from_utf8_lossy(&response[9..12]).parse().unwrap()
}

#[test]
fn the_root_serves_the_demo_page() {
    let server = Server::start(&[]);
    let got = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", INDEX.len())), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert_eq!(body, INDEX);
    let svg = exchange(&server, b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(split_head(&svg).0.contains("Content-Type: image/svg+xml\r\n"));
}

#[test]
fn head_gives_the_same_head_without_a_body() {
    let server = Server::start(&[]);
    let get = exchange(&server, b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let head =
        exchange(&server, b"HEAD /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let strip_date = |h: &str| h.lines().filter(|l| !l.starts_with("Date:")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip_date(&split_head(&head).0), strip_date(&split_head(&get).0));
    assert!(split_head(&head).1.is_empty(), "HEAD has no body");
    // HEAD on the event stream: the stream's head, no frames, then a close.
    let stream_head = exchange(&server, b"HEAD /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = split_head(&stream_head);
    assert!(head.contains("Content-Type: text/event-stream\r\n") && body.is_empty(), "{head}");
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    let mut pending = Vec::new();
    // One after the other on the same connection.
    for _ in 0..3 {
        stream.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let (head, _) = read_response(&mut stream, &mut pending);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && !head.contains("Connection: close"), "{head}");
    }
    // Several in one write, the last one split across two writes: answers come back in request order.
    stream
        .write_all(
            b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n\
              HEAD /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\nGET /favicon.svg HT",
        )
        .unwrap();
    stream.write_all(b"TP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let (first, body) = read_response(&mut stream, &mut pending);
    assert!(first.starts_with("HTTP/1.1 200 OK") && body == INDEX, "{first}");
    let (second, _) = read_response(&mut stream, &mut pending);
    assert!(second.starts_with("HTTP/1.1 404 Not Found"), "{second}");
    // HEAD: the head says the length, no body follows; the next response starts right after it.
    let end = read_until(&mut stream, |b| {
        let all = [pending.as_slice(), b].concat();
        find(&all, b"\r\n\r\n").is_some()
    });
    pending.extend_from_slice(&end);
    let head_end = find(&pending, b"\r\n\r\n").unwrap() + 4;
    let third: Vec<u8> = pending.drain(..head_end).collect();
    assert!(String::from_utf8_lossy(&third).starts_with("HTTP/1.1 200 OK"));
    let (fourth, body) = read_response(&mut stream, &mut pending);
    assert!(fourth.contains("Connection: close") && body.starts_with(b"<svg"), "{fourth}");
    assert!(read_to_close(&mut stream).is_empty(), "closed after the last answer");
}

/// A static directory with one large file, for responses that take many writes.
fn big_file_dir(tag: &str, size: usize) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mio-sse-big-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), vec![b'b'; size]).unwrap();
    std::fs::write(dir.join("index.html"), "small").unwrap();
    dir
}

#[test]
fn a_request_pipelined_behind_a_large_answer_is_not_forgotten() {
    // The first answer goes over the backpressure mark; the second request, already complete in the
    // server's buffer, must be answered once the first drains, not left waiting for a 408.
    let dir = big_file_dir("pipe", 300 * 1024);
    let server = Server::start(&["--static-dir", dir.to_str().unwrap(), "--request-timeout-ms", "20000"]);
    let mut stream = server.connect();
    stream.set_nodelay(true).unwrap();
    // The first read holds all of the first head but its last byte, and is longer than the second
    // request: a search resumed at the stale offset would miss the second request's end.
    let first = format!("GET /big.bin HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r", "p".repeat(200));
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // two reads on the server's side, on purpose
    stream.write_all(b"\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let started = std::time::Instant::now();
    let got = read_to_close(&mut stream);
    assert!(got.ends_with(b"small"), "the second answer came ({} bytes)", got.len());
    assert!(started.elapsed() < Duration::from_secs(10), "without waiting for a timeout");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_large_answer_read_slowly_is_not_cut_by_the_keepalive_or_request_timeout() {
    let dir = big_file_dir("slow", 4 * 1024 * 1024);
    let server = Server::start(&[
        "--static-dir",
        dir.to_str().unwrap(),
        "--keepalive-timeout-ms",
        "300",
        "--request-timeout-ms",
        "300",
        "--send-buffer-bytes",
        "16384",
    ]);
    for close in ["", "Connection: close\r\n"] {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16384).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(support::PATIENCE)).unwrap();
        write!(stream, "GET /big.bin HTTP/1.1\r\nHost: localhost\r\n{close}\r\n").unwrap();
        // Read 4 MiB slowly: about 1.2 s, four times either timeout.
        let mut got = 0;
        let mut buf = [0u8; 16384];
        let started = std::time::Instant::now();
        while got < 4 * 1024 * 1024 {
            match std::io::Read::read(&mut stream, &mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("{e}"),
            }
            std::thread::sleep(Duration::from_micros(4000)); // a slow reader, on purpose
        }
        assert!(got >= 4 * 1024 * 1024, "only {got} bytes arrived ({close:?}) in {:?}", started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn absolute_form_targets_reach_every_endpoint() {
    let server = Server::start(&[]);
    let raw = format!(
        "GET http://{}/metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let got = exchange(&server, raw.as_bytes());
    assert_eq!(status(&got), 200, "{}", String::from_utf8_lossy(&got));
    let mut stream = server.connect();
    write!(stream, "GET http://{}/home/events HTTP/1.1\r\nHost: localhost\r\n\r\n", server.addr).unwrap();
    let got = read_until(&mut stream, |b| count_frames(b) >= 1);
    assert!(split_head(&got).0.contains("text/event-stream"));
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_parsed() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream.set_nodelay(true).unwrap();
    for byte in b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n" {
        stream.write_all(&[*byte]).unwrap();
    }
    let got = read_until(&mut stream, |b| count_frames(b) >= 1);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn http_1_0_clients_are_served() {
    let server = Server::start(&[]);
    // Closed after the response by default.
    let got = exchange(&server, b"GET / HTTP/1.0\r\n\r\n");
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("Connection: close"), "{head}");
    assert_eq!(body, INDEX);
    // Kept open when asked, and told so.
    let mut stream = server.connect();
    let mut pending = Vec::new();
    stream.write_all(b"GET /favicon.svg HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut stream, &mut pending);
    assert!(head.contains("\r\nConnection: keep-alive\r\n"), "{head}");
    stream.write_all(b"GET /favicon.svg HTTP/1.0\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut stream, &mut pending);
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    // An HTTP/1.0 event stream is close-delimited like every stream.
    let mut stream = server.connect();
    stream.write_all(b"GET /home/events HTTP/1.0\r\n\r\n").unwrap();
    let got = read_until(&mut stream, |b| count_frames(b) >= 1);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn errors_get_a_status_a_reason_and_a_log_line() {
    let server = Server::start(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(9000));
    let big_header = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"GET /missing.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "no such file",
        ),
        (
            b"DELETE / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "Allow: GET, HEAD",
        ),
        (
            b"PUT /home/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "Allow: GET, HEAD",
        ),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, "Host"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\nHost: localhost\r\n\r\n".to_vec(), 400, "invalid header name"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400, "400 Bad Request"),
        (b"GET / HTTP/3.0\r\nHost: localhost\r\n\r\n".to_vec(), 505, "HTTP/1.0 and HTTP/1.1"),
        (long_target.into_bytes(), 414, "request line too long"),
        (big_header.into_bytes(), 431, "request head too large"),
        (
            b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            501,
            "Transfer-Encoding",
        ),
    ];
    let cases_len = cases.len() as u64;
    for (raw, expected, says) in cases {
        let got = exchange(&server, &raw);
        let text = String::from_utf8_lossy(&got);
        assert_eq!(status(&got), expected, "{text}");
        assert!(text.contains(says), "{expected} should say {says:?}: {text}");
    }
    // Every refusal is counted...
    server.wait_for_metric("mio_sse_request_errors_total", |v| v == cases_len);
    // ...and logged with its status and reason (this test is about the log line too). The lines come in
    // the order of the requests, so once the last is there, so are the others.
    server.wait_for_log("431 request head too large");
    let log = server.log_lines().join("\n");
    for line in ["400 malformed request: invalid header name", "414 request line too long"] {
        assert!(log.contains(line), "no log line {line:?}:\n{log}");
    }
    // After all that, the server still serves.
    let got = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&got), 200);
}

#[test]
fn traversal_attempts_never_leave_the_static_directory() {
    // A static dir with a symlink pointing outside it, next to a secret file.
    let base = std::env::temp_dir().join(format!("mio-sse-traversal-{}", std::process::id()));
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "inside").unwrap();
    std::fs::write(base.join("secret.txt"), "SECRET").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
    let server = Server::start(&["--static-dir", root.to_str().unwrap()]);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/.%2e/secret.txt",
        "/link.txt",
        "/up/secret.txt",
        "/up/www/index.html",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/etc/passwd",
        "/index.html%00.txt",
        "/..\\secret.txt",
        "http://x/../secret.txt",
        &format!("{}", base.join("secret.txt").display()),
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let got = exchange(&server, raw.as_bytes());
        let text = String::from_utf8_lossy(&got);
        assert!(matches!(status(&got), 400 | 404), "{target}: {text}");
        assert!(!text.contains("SECRET"), "{target} leaked the secret: {text}");
    }
    let inside = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(inside.ends_with(b"inside"));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn started_elsewhere_it_serves_the_built_in_demo_page() {
    let empty = std::env::temp_dir().join(format!("mio-sse-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let server = Server::start_in(&[], Some(&empty));
    let got = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(split_head(&got).1, INDEX);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn an_incomplete_request_times_out_with_408_and_a_silent_one_is_closed() {
    let server = Server::start(&["--request-timeout-ms", "300"]);
    let mut partial = server.connect();
    partial.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let got = read_to_close(&mut partial);
    assert_eq!(status(&got), 408, "{}", String::from_utf8_lossy(&got));
    let mut silent = server.connect();
    assert!(read_to_close(&mut silent).is_empty(), "a connection that never sends is closed without a word");
}

#[test]
fn over_the_cap_streams_are_told_to_retry_and_others_get_503() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut held: Vec<TcpStream> = (0..2).map(|_| server.open_stream()).collect();
    for stream in &mut held {
        read_until(stream, |b| count_frames(b) >= 1);
    }
    // An event-stream request over the cap: 200 (an EventSource gives up on anything else), a retry
    // somewhere in the jitter range, and a close.
    let got = exchange(&server, b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("text/event-stream"), "{head}");
    let body = String::from_utf8(body).unwrap();
    let retry: u64 =
        body.lines().find_map(|l| l.strip_prefix("retry: ")).expect("a retry field").parse().unwrap();
    assert!((1_000..=10_000).contains(&retry), "{body}");
    assert!(!body.contains("data:"), "no event for a refused stream: {body}");
    // HEAD over the cap: the head alone.
    let head = exchange(&server, b"HEAD /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head_text, body) = split_head(&head);
    assert!(head_text.starts_with("HTTP/1.1 200 OK") && body.is_empty(), "{head_text} + {body:?}");
    // Anything else: 503 with Retry-After.
    let got = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status(&got), 503, "{text}");
    assert!(text.contains("\r\nRetry-After: 5\r\n"), "{text}");
    // When a stream leaves, a new one is served again.
    drop(held.pop());
    // (Until the server has seen it leave, the scrape itself is over the cap and answered 503.)
    server.wait_for_metric("mio_sse_open_streams", |v| v == 1);
    let mut stream = server.open_stream();
    let got = read_until(&mut stream, |b| count_frames(b) >= 1);
    assert!(String::from_utf8_lossy(&got).contains("data: "));
}

#[test]
fn no_file_descriptor_is_left_behind() {
    let server = Server::start(&["--interval-ms", "50", "--request-timeout-ms", "500"]);
    let baseline = server.open_fds();
    for round in 0..20 {
        let mut stream = server.open_stream();
        read_until(&mut stream, |b| count_frames(b) >= 1);
        let _ = exchange(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let _ = exchange(&server, b"garbage\r\n\r\n");
        let mut half = server.connect();
        half.write_all(b"GET / HT").unwrap();
        if round % 2 == 0 {
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        }
    }
    // Everything above is closed by now or within the request timeout; the fd count comes back.
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while server.open_fds() != baseline {
        assert!(std::time::Instant::now() < deadline, "{} fds open, {baseline} at start", server.open_fds());
        std::thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
    }
}
