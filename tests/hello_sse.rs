//! `examples/hello_sse.rs` over real sockets: the head, ticks that are whole frames, and hangups reaped.
//!
//! The example is a binary of its own, which `cargo test --test hello_sse` does not build: the test builds
//! it (or finds it next to this test's own binary, as a full `cargo test` builds examples first).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running example; killed (by its PID, through `Child`) when the test ends, pass or fail.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/hello_sse`, built first when it is missing or older than its source.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("examples").join("hello_sse");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/hello_sse.rs");
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if modified(&binary).is_none() || modified(&binary) < modified(&source) {
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo.args(["build", "--quiet", "--example", "hello_sse"]);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("cargo runs");
        assert!(status.success(), "cargo build --example hello_sse failed");
    }
    binary
}

/// Starts the example on a free port (port 0) and reads the address it prints.
fn start() -> Example {
    let mut child = Command::new(example_binary())
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("its first line");
    let addr = line.trim().trim_start_matches("listening on http://").trim_end_matches('/');
    let addr = addr.parse().unwrap_or_else(|_| panic!("an address in {line:?}"));
    Example { child, addr }
}

fn subscribe(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("send the request");
    stream
}

/// Reads until `done` holds for everything read so far, or fails at the deadline (never one `read()`).
fn read_until(stream: &mut TcpStream, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&got)) {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        let left = left.unwrap_or_else(|| panic!("timed out; got {:?}", String::from_utf8_lossy(&got)));
        stream.set_read_timeout(Some(left)).expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed early; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The complete frames (ended by their blank line) after the head, or in all of `got` if it has no head.
fn frames(got: &str) -> Vec<&str> {
    let body = got.split_once("\r\n\r\n").map_or(got, |(_, body)| body);
    let mut frames: Vec<&str> = body.split("\n\n").collect();
    frames.pop(); // whatever follows the last blank line is not a whole frame yet
    frames
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count()
}

#[test]
fn a_stream_gets_the_event_stream_head_then_a_tick_a_second_each_ending_with_a_blank_line() {
    let example = start();
    let mut stream = subscribe(example.addr);
    let response = read_until(&mut stream, Duration::from_secs(5), |got| frames(got).len() >= 3);
    let (head, _) = response.split_once("\r\n\r\n").expect("a head");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK", "{head}");
    assert!(lines.contains(&"Content-Type: text/event-stream"), "{head}");
    assert!(lines.contains(&"Cache-Control: no-cache"), "{head}");
    for frame in frames(&response) {
        let time = frame.strip_prefix("data: ").unwrap_or_else(|| panic!("a data line: {frame:?}"));
        let parts: Vec<&str> = time.split(':').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
            "{frame:?}"
        );
    }
}

#[test]
fn clients_that_hang_up_with_fin_or_reset_are_reaped_at_once_and_the_server_serves_on() {
    let example = start();
    let pid = example.child.id();
    // A first stream settles the fds the process keeps anyway (epoll, the listener, stdio).
    let mut first = subscribe(example.addr);
    read_until(&mut first, Duration::from_secs(5), |got| !frames(got).is_empty());
    let baseline = open_fds(pid);

    let mut clients: Vec<TcpStream> = (0..50).map(|_| subscribe(example.addr)).collect();
    for client in &mut clients {
        read_until(client, Duration::from_secs(5), |got| !frames(got).is_empty());
    }
    assert_eq!(open_fds(pid), baseline + 50);

    // Half hang up with a FIN, half with a reset (linger 0), none says a word first.
    for (i, client) in clients.into_iter().enumerate() {
        if i % 2 == 1 {
            socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).expect("linger 0");
        }
        drop(client);
    }
    // Reaped on the hangup's own event, well before any tick or deadline could do it.
    let deadline = Instant::now() + Duration::from_millis(500);
    while open_fds(pid) > baseline {
        assert!(Instant::now() < deadline, "{} fds open, {baseline} before", open_fds(pid));
        std::thread::sleep(Duration::from_millis(10)); // polling /proc, not waiting for the server
    }

    let mut next = subscribe(example.addr);
    read_until(&mut next, Duration::from_secs(5), |got| !frames(got).is_empty());
    read_until(&mut first, Duration::from_secs(5), |got| frames(got).len() >= 2);
}
