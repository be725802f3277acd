//! HTTPS end to end, with a certificate made for the test: curl and the npm `eventsource` client trusting
//! it, finite streams (`/home/stream?count=5&done=1`, GET and POST) over plain HTTP and TLS, and
//! everything that must be refused cleanly without disturbing a stream that is ticking: a certificate
//! that cannot be used (the start fails, saying why), plain HTTP on the TLS port, a handshake that never
//! finishes (closed at the first-request deadline), garbage records after a handshake.
//! (The demo page in Chromium over HTTPS is in tests/browser.rs.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::tls::{self, TestCert};
use support::{PATIENCE, Server, is_tick, split_head};

/// Starts a server on HTTPS with `cert` and `args`.
fn start_tls(cert: &TestCert, args: &[&str]) -> Server {
    let flags = cert.flags();
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    Server::start(&all)
}

/// The frames of an event-stream body, each with its blank line.
fn frames(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec()).expect("UTF-8").split_inclusive("\n\n").map(str::to_owned).collect()
}

/// Asserts a whole finite-stream answer: 200, the preamble, exactly `n` ticks, `data: [DONE]`, then EOF.
fn assert_count_then_done(answer: &[u8], n: usize) {
    let (head, body) = split_head(answer);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream\r\n"), "{head}");
    let frames = frames(&body);
    assert_eq!(frames.len(), n + 3, "{frames:?}");
    assert_eq!(frames[..2], [": ok\n\n", "retry: 3000\n\n"]);
    assert!(frames[2..2 + n].iter().all(|f| is_tick(f)), "{frames:?}");
    assert_eq!(frames[n + 2], "data: [DONE]\n\n");
}

fn post_stream(query: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /home/stream{query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn finite_streams_send_count_events_then_done_then_eof_over_plain_and_tls() {
    let get = b"GET /home/stream?count=5&done=1&interval_ms=20 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    let post = post_stream("?count=5&done=1&interval_ms=20", "{\"prompt\":\"a body the server ignores\"}");
    let plain = Server::start(&[]);
    let cert = TestCert::new("finite-streams");
    let https = start_tls(&cert, &[]);
    for request in [&get, &post] {
        assert_count_then_done(&support::exchange(&plain, request), 5);
        assert_count_then_done(&tls::exchange(&cert, https.addr, request), 5);
    }
    assert_eq!(
        tls::metric(&cert, https.addr, "mio_sse_publishes_total"),
        0,
        "a POST's body is not published"
    );
}

#[test]
fn curl_reads_head_and_ticks_over_https_with_the_ca() {
    let cert = TestCert::new("curl");
    let server = start_tls(&cert, &[]);
    let url = format!("https://127.0.0.1:{}/home/stream?count=3&done=1&interval_ms=50", server.addr.port());
    let cacert = cert.cert.display().to_string();
    let out = run_with_deadline(
        Command::new("curl").args(["-sS", "-N", "-i", "--max-time", "20", "--cacert", &cacert, &url]),
        "curl",
    );
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let answer = String::from_utf8(out.stdout).expect("UTF-8");
    assert_count_then_done(answer.as_bytes(), 3);
    // And without the CA, curl refuses the certificate: it is the CA that made the first run work.
    let out = run_with_deadline(Command::new("curl").args(["-sS", "--max-time", "20", &url]), "curl");
    assert!(!out.status.success(), "curl trusted a certificate it had no CA for");
}

#[test]
fn the_eventsource_library_reads_ticks_over_https() {
    support::require_node_packages("HTTPS client library test", &["eventsource"], Vec::new());
    let cert = TestCert::new("eventsource");
    let server = start_tls(&cert, &["--interval-ms", "100"]);
    let url = format!("https://127.0.0.1:{}/home/events", server.addr.port());
    let mut cmd = Command::new("node");
    cmd.args(["tests/browser/eventsource_client.mjs", &url, "--events", "3", "--deadline-ms", "20000"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NODE_EXTRA_CA_CERTS", &cert.cert)
        .stdin(Stdio::null());
    let mut client = support::spawn_piped(cmd, "node tests/browser/eventsource_client.mjs");
    let mut lines = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !lines.iter().any(|l: &String| l.contains("\"kind\":\"done\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.lines.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = client.child.kill();
                let stderr = client.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
                panic!("the client did not finish: {lines:?}; stderr:\n{stderr}");
            }
        }
    }
    let _ = client.child.wait();
    let events: Vec<&String> = lines.iter().filter(|l| l.contains("\"kind\":\"event\"")).collect();
    assert_eq!(events.len(), 3, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\"kind\":\"open\"")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("\"kind\":\"error\"")), "{lines:?}");
    assert!(events.iter().all(|l| l.contains("\"type\":\"message\"")), "{events:?}");
    assert!(lines.last().is_some_and(|l| l.contains("\"events\":3")), "{lines:?}");
}

#[test]
fn a_certificate_that_cannot_be_used_stops_the_start_saying_why() {
    let cert = TestCert::new("bad-cert");
    let garbage = cert.dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").expect("write");
    let other = TestCert::new("bad-cert-other");
    let (cert_path, key_path) = (cert.cert.display().to_string(), cert.key.display().to_string());
    let (garbage, other_key) = (garbage.display().to_string(), other.key.display().to_string());
    let cases: [(&[&str], &str); 4] = [
        (&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key_path], "cannot read the TLS certificate"),
        (&["--tls-cert", &garbage, "--tls-key", &key_path], "no PEM certificate"),
        (&["--tls-cert", &cert_path, "--tls-key", &garbage], "cannot read the TLS private key"),
        (&["--tls-cert", &cert_path, "--tls-key", &other_key], "cannot use the TLS certificate"),
    ];
    for (args, why) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mio-sse"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        let out = run_with_deadline(&mut cmd, "mio-sse");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: want {why:?} in:\n{stderr}");
    }
    // --tls-cert without --tls-key is a usage error.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mio-sse"));
    let out = run_with_deadline(cmd.args(["--listen", "127.0.0.1:0", "--tls-cert", &cert_path]), "mio-sse");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_handshakes_are_refused_and_a_stream_keeps_ticking() {
    let cert = TestCert::new("bad-handshakes");
    let server = start_tls(&cert, &["--interval-ms", "50", "--request-timeout-ms", "700"]);
    let mut stream = cert.connect(server.addr);
    stream.write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut ticker = Ticker { got: Vec::new() };
    ticker.wait_for_ticks(&mut stream, 2);

    // Plain HTTP on the TLS port: an alert record (type 21), then the close.
    let mut plain = connect(&server);
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let answer = read_all(&mut plain);
    assert_eq!(answer.first(), Some(&21), "a TLS alert, not HTTP: {answer:?}");
    ticker.wait_for_ticks(&mut stream, 2);

    // A handshake that never finishes: half a ClientHello record, then silence, until the deadline.
    let sent = Instant::now(); // before the connect: the server's deadline counts from its accept
    let mut stalled = connect(&server);
    stalled.write_all(&[22, 3, 1, 0, 200, 1, 0]).expect("send");
    let answer = read_all(&mut stalled);
    assert!(answer.is_empty(), "{answer:?}");
    assert!(sent.elapsed() >= Duration::from_millis(650), "closed before the deadline: {:?}", sent.elapsed());
    ticker.wait_for_ticks(&mut stream, 2);

    // Garbage records after a good handshake: the server's alert, then the close.
    let mut good = cert.connect(server.addr);
    good.sock.write_all(b"\x17\x03\x03\x00\x10sixteen garbage!").expect("send");
    let mut buf = [0u8; 64];
    let outcome = good.read(&mut buf);
    assert!(outcome.is_err(), "the client hears an alert: {outcome:?}");
    ticker.wait_for_ticks(&mut stream, 2);

    assert!(tls::metric(&cert, server.addr, "mio_sse_tls_handshakes_failed_total") >= 2);
    assert!(tls::metric(&cert, server.addr, "mio_sse_tls_handshakes_total") >= 3);
    assert_eq!(
        tls::metric(&cert, server.addr, "mio_sse_open_streams"),
        1,
        "the ticking stream is still open"
    );
}

/// Reads ticks off a TLS stream.
struct Ticker {
    got: Vec<u8>,
}

impl Ticker {
    /// Reads until `n` more ticks arrived than before (within [`PATIENCE`]: the socket's read timeout).
    fn wait_for_ticks(&mut self, stream: &mut impl Read, n: usize) {
        let ticks = |b: &[u8]| String::from_utf8_lossy(b).matches("\ndata: ").count();
        let want = ticks(&self.got) + n;
        let mut buf = [0u8; 4096];
        while ticks(&self.got) < want {
            let read = stream.read(&mut buf).expect("the stream keeps ticking");
            assert!(read > 0, "the stream ended: {:?}", String::from_utf8_lossy(&self.got));
            self.got.extend_from_slice(&buf[..read]);
        }
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// Every byte until the server closes (a reset after its last bytes counts as the close).
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read: {e} after {got:?}"),
        }
    }
}

/// Runs `cmd` to its end, killing it past [`PATIENCE`].
fn run_with_deadline(cmd: &mut Command, what: &str) -> std::process::Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap_or_else(|e| panic!("start {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{what} did not finish within {PATIENCE:?}");
        }
    }
}
