//! Test helpers shared by the integration tests: start the real `mio-sse` binary on a free port, talk to
//! it over real sockets, and read its `/metrics`.
//!
//! Rules the helpers keep (so that tests stay honest on a shared, noisy machine):
//! - never one bare `read()` and never a bare `sleep`: read until a condition holds or a deadline passes;
//! - every wait has a deadline, and a failed wait says what it was waiting for and shows the server's log;
//! - what a test checks is what a client can see: bytes on the wire, and `/metrics` (polled until it
//!   says what is expected). The log is output for people; a test waits on it only where the log line
//!   is the very thing tested, or where it speaks of processes (the supervisor's workers).
#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails. Generous: CI machines are shared.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `mio-sse` process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Log>,
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Server {
    /// Starts the server binary with `args`, on a free loopback port unless `args` has `--listen`, and
    /// waits until its loop serves connections (see [`Server::wait_ready`]).
    pub fn start(args: &[&str]) -> Server {
        Self::start_in(args, None)
    }

    /// Like [`Server::start`], with the process's working directory set to `dir`.
    pub fn start_in(args: &[&str], dir: Option<&std::path::Path>) -> Server {
        Self::launch(|| Command::new(env!("CARGO_BIN_EXE_mio-sse")), args, dir)
    }

    /// Like [`Server::start`], running the binary at `exe` (a copy the test may move away).
    pub fn start_exe(exe: &std::path::Path, args: &[&str]) -> Server {
        Self::launch(|| Command::new(exe), args, None)
    }

    /// Like [`Server::start`], in a process whose open-file limit is `nofile` (soft and hard).
    pub fn start_with_fd_limit(args: &[&str], nofile: u64) -> Server {
        let make = || {
            let mut cmd = Command::new("sh");
            let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
            cmd.args(["-c", &script, env!("CARGO_BIN_EXE_mio-sse")]);
            cmd
        };
        Self::launch(make, args, None)
    }

    /// Starts the process `make` builds and waits until it serves. Without `--listen` in `args`, the port
    /// is one that was free a moment ago: should another process take it first, the server cannot bind
    /// and exits, and a new port is tried (a few times).
    fn launch(make: impl Fn() -> Command, args: &[&str], dir: Option<&std::path::Path>) -> Server {
        let given = args.iter().position(|a| *a == "--listen").map(|i| {
            let addr: SocketAddr = args.get(i + 1).and_then(|a| a.parse().ok()).expect("--listen ADDR");
            assert_ne!(addr.port(), 0, "with --listen, give the port: the tests find the server by it");
            addr
        });
        let mut failures = Vec::new();
        for _ in 0..5 {
            let addr = given.unwrap_or_else(free_port);
            let mut cmd = make();
            if given.is_none() {
                cmd.args(["--listen", &addr.to_string()]);
            }
            let mut server = Self::spawn(cmd, addr, args, dir);
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) if given.is_none() && why.starts_with("exited") => {
                    failures.push(format!("on {addr}: {why}; log:\n{}", server.log_lines().join("\n")));
                }
                Err(why) => panic!(
                    "the server did not start on {addr}: {why}; log:\n{}",
                    server.log_lines().join("\n")
                ),
            }
        }
        panic!("the server did not start on any of 5 free ports:\n{}", failures.join("\n"));
    }

    fn spawn(mut cmd: Command, addr: SocketAddr, args: &[&str], dir: Option<&std::path::Path>) -> Server {
        if !args.contains(&"--static-dir") && dir.is_none() {
            cmd.args(["--static-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/static")]);
        }
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // A binary this test just copied may be "busy" for a moment: another test thread's fork can hold
        // the copy's write descriptor until its exec closes it (ETXTBSY). Try again, briefly.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 40 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                spawned => break spawned.expect("start the mio-sse binary"),
            }
        };
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("MIO_SSE_TEST_ECHO").is_some() {
                    eprintln!("server| {line}");
                }
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
        });
        Server { child, addr, log }
    }

    /// Waits until the server's loop serves: a connection to it is accepted, and when this side closes
    /// without a word, the server closes it too (it read the EOF). A listening socket alone would accept
    /// the connection into its backlog before any loop runs; the close proves the loop. The probe leaves
    /// nothing behind in the server but counts: one connection accepted and one closed as `peer_closed`
    /// (its fd is gone before this side reads the EOF). Fails if the process exits first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("no connection yet");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited ({status}) before it served"));
            }
            if let Ok(mut probe) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                let _ = probe.shutdown(std::net::Shutdown::Write);
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                probe.set_read_timeout(Some(left)).unwrap();
                match probe.read(&mut [0u8; 64]) {
                    Ok(0) => return Ok(()),
                    Ok(n) => last = format!("the probe got {n} bytes instead of a close"),
                    Err(e) => last = format!("the probe's read failed: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not serving on {} within {PATIENCE:?} ({last})", self.addr));
            }
            std::thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`kill -SIG`) to the server.
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the server to exit on its own; returns its exit code.
    /// The exit status if the process has exited (without waiting).
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit; log:\n{}",
                self.log_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10)); // polling the exit, with a deadline
        }
    }

    /// CPU time the server has used so far, in nanoseconds from /proc/PID/schedstat (its one thread;
    /// /proc/PID/stat would count in 10 ms ticks).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid())).unwrap();
        Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap())
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle` and returns the first such line.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_log_matching(needle, |line| line.contains(needle))
    }

    /// Waits until a log line satisfies `pred`; `what` names the wait in the failure message.
    pub fn wait_for_log_matching(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!("no log line {what:?} within {PATIENCE:?}; log:\n{}", lines.join("\n"));
            }
            lines = self.log.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Opens a TCP connection with a read timeout of [`PATIENCE`].
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to the server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// Opens a connection and sends `GET /home/events`.
    pub fn open_stream(&self) -> TcpStream {
        let mut stream = self.connect();
        stream
            .write_all(b"GET /home/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        stream
    }

    /// Resident memory of the server process in bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Number of open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    /// One scrape of `/metrics` on a fresh connection (closed after the answer, so the server counts it
    /// `finished`). Panics unless the answer is a 200.
    pub fn metrics(&self) -> Metrics {
        scrape_once(self.addr, Instant::now() + PATIENCE)
            .unwrap_or_else(|e| panic!("GET /metrics: {e}; log:\n{}", self.log_lines().join("\n")))
    }

    /// Scrapes `/metrics` until the sample `name` (labels included, as exposed:
    /// `mio_sse_closed_total{reason="slow_reader"}`) has a value that satisfies `pred`; returns it.
    /// Metrics are per process: with `--workers`, each scrape lands on whichever worker accepts it.
    pub fn wait_for_metric(&self, name: &str, pred: impl Fn(u64) -> bool) -> u64 {
        self.wait_for_metrics(name, |m| m.get(name).is_some_and(&pred)).value(name)
    }

    /// Scrapes `/metrics` until one scrape satisfies `pred`; returns that scrape. A scrape that is not
    /// answered 200 (the server over its connection cap answers 503) counts as not yet.
    pub fn wait_for_metrics(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        let addr = self.addr;
        poll_metrics(what, &self.log, pred, |deadline| scrape_once(addr, deadline))
    }

    /// A kept-alive connection for scraping `/metrics` again and again, accepted by the time this
    /// returns.
    pub fn scraper(&self) -> Scraper {
        let mut scraper = Scraper { stream: self.connect(), pending: Vec::new(), log: Arc::clone(&self.log) };
        scraper.scrape();
        scraper
    }
}

/// A loopback address whose port was free a moment ago.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// One scrape of `/metrics`: every sample, by its name with labels, as the server exposed it.
pub struct Metrics {
    pub text: String,
}

impl Metrics {
    /// The value of the sample `name` (`mio_sse_open_streams`, `mio_sse_closed_total{reason="finished"}`),
    /// if the scrape has it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .find(|(sample, _)| *sample == name)
            .map(|(_, value)| value.parse().unwrap_or_else(|_| panic!("{name} has value {value:?}")))
    }

    /// Like [`Metrics::get`], failing the test if the sample is missing.
    pub fn value(&self, name: &str) -> u64 {
        self.get(name).unwrap_or_else(|| panic!("no sample {name} in the scrape:\n{}", self.text))
    }
}

/// A connection kept alive for scraping `/metrics` again and again. Accepted once, it can scrape while
/// the server cannot accept (out of file descriptors, shutting down), and it adds no connection to what
/// it measures; while it waits between requests it is an idle keep-alive connection.
pub struct Scraper {
    stream: TcpStream,
    pending: Vec<u8>,
    log: Arc<Log>,
}

impl Scraper {
    /// One scrape; panics unless it is answered 200.
    pub fn scrape(&mut self) -> Metrics {
        self.try_scrape(Instant::now() + PATIENCE).unwrap_or_else(|e| {
            panic!("GET /metrics: {e}; log:\n{}", self.log.lines.lock().unwrap().join("\n"))
        })
    }

    /// Scrapes until the sample `name` satisfies `pred` (as [`Server::wait_for_metric`]); returns it.
    pub fn wait_for_metric(&mut self, name: &str, pred: impl Fn(u64) -> bool) -> u64 {
        let log = Arc::clone(&self.log);
        let metrics = poll_metrics(name, &log, |m| m.get(name).is_some_and(&pred), |d| self.try_scrape(d));
        metrics.value(name)
    }

    /// The connection, to read what the server does with it.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    fn try_scrape(&mut self, deadline: Instant) -> Result<Metrics, String> {
        self.stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let complete = |b: &[u8]| {
            let end = find(b, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&b[..end]);
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("Content-Length: "))?.trim().parse().ok()?;
            (b.len() >= end + 4 + length).then_some(end + 4 + length)
        };
        let mut buf = [0u8; 16 * 1024];
        let len = loop {
            if let Some(len) = complete(&self.pending) {
                break len;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no whole answer in time: {:?}", String::from_utf8_lossy(&self.pending)));
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("closed: {:?}", String::from_utf8_lossy(&self.pending))),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let answer: Vec<u8> = self.pending.drain(..len).collect();
        parse_scrape(&answer)
    }
}

/// Scrapes with `scrape` until `pred` holds or [`PATIENCE`] passes; a failed wait shows the last scrape
/// (or why it failed) and the server's log.
fn poll_metrics(
    what: &str,
    log: &Log,
    pred: impl Fn(&Metrics) -> bool,
    mut scrape: impl FnMut(Instant) -> Result<Metrics, String>,
) -> Metrics {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match scrape(deadline) {
            Ok(metrics) if pred(&metrics) => return metrics,
            Ok(metrics) => metrics.text,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!(
                "/metrics never showed {what:?} within {PATIENCE:?}; last scrape:\n{last}\nlog:\n{}",
                log.lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a condition, with a deadline
    }
}

/// `GET /metrics` on a new connection that asks to be closed after the answer, read to the close.
fn scrape_once(addr: SocketAddr, deadline: Instant) -> Result<Metrics, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no close in time: {:?}", String::from_utf8_lossy(&answer)));
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    parse_scrape(&answer)
}

/// The body of a 200 answer to `GET /metrics`.
fn parse_scrape(answer: &[u8]) -> Result<Metrics, String> {
    let text = String::from_utf8_lossy(answer);
    if !text.starts_with("HTTP/1.1 200 ") {
        return Err(format!("answered {:?}", text.lines().next().unwrap_or_default()));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok(Metrics { text: body.to_owned() })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails the test, naming every missing prerequisite: `node`, the npm `packages` of tests/browser, and
/// what the caller found missing already (`missing`). `tests` names the tests in the message. A test that
/// skips quietly is one nobody notices is not running.
pub fn require_node_packages(tests: &str, packages: &[&str], mut missing: Vec<String>) {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!("a working `node` (`node --version` said {:?})", out.status)),
        Err(e) => missing.push(format!("`node` on PATH ({e})")),
    }
    for package in packages {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/browser/node_modules/{package}/package.json"));
        if !manifest.is_file() {
            missing.push(format!("the npm package {package} ({} is missing)", manifest.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "the {tests} cannot run; missing:\n  - {}\nrun `scripts/test.sh`, which installs them (Debian's \
         `chromium` package, then `npm ci` in tests/browser)",
        missing.join("\n  - ")
    );
}

/// A child process whose stdout lines arrive on a channel (so waits can have deadlines) and whose stderr
/// is collected for failure messages.
pub struct Piped {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub stderr: Option<std::thread::JoinHandle<String>>,
}

/// Spawns `cmd` with stdout and stderr piped as [`Piped`] says (stdin is the caller's choice).
pub fn spawn_piped(mut cmd: Command, what: &str) -> Piped {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Piped { child, lines, stderr: Some(stderr) }
}

/// Reads from `stream` until `done(bytes so far)` is true, the peer closes, or [`PATIENCE`] passes.
/// Returns every byte read.
pub fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; read so far: {:?}", String::from_utf8_lossy(&got));
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed: {e}; read so far: {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// Reads until the peer closes the connection; returns every byte.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    read_until(stream, |_| false)
}

/// True once `bytes` holds a complete HTTP response head (through the blank line).
pub fn has_head(bytes: &[u8]) -> bool {
    find(bytes, b"\r\n\r\n").is_some()
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Number of complete SSE frames (ending in a blank line, LF line ends) after the response head.
pub fn count_frames(bytes: &[u8]) -> usize {
    match find(bytes, b"\r\n\r\n") {
        Some(end) => bytes[end + 4..].windows(2).filter(|w| w == b"\n\n").count(),
        None => 0,
    }
}

/// Splits a response into (head, body) at the blank line.
pub fn split_head(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = find(bytes, b"\r\n\r\n").expect("a complete response head");
    (String::from_utf8_lossy(&bytes[..end + 4]).into_owned(), bytes[end + 4..].to_vec())
}

/// Sends one raw request on a fresh connection and reads the whole answer (the server closes after it,
/// or the request asks it to with `Connection: close`).
pub fn exchange(server: &Server, raw: &[u8]) -> Vec<u8> {
    let mut stream = server.connect();
    stream.write_all(raw).unwrap();
    read_to_close(&mut stream)
}

/// True if `frame` is exactly a tick: `data: HH:MM:SS.mmm` and a blank line.
pub fn is_tick(frame: &str) -> bool {
    frame.strip_prefix("data: ").and_then(|f| f.strip_suffix("\n\n")).is_some_and(is_time_of_day)
}

/// True for exactly `HH:MM:SS.mmm`.
pub fn is_time_of_day(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// One event of a stream as the standard's parser dispatches it (the fields the server sends, LF line
/// ends): its type (`message` unless named), its `id:` if it had one, its data lines joined by LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub id: Option<String>,
    pub data: String,
}

/// The events with data in an SSE body; comments, `retry:`, blocks without data and an unfinished last
/// block are skipped.
pub fn parse_events(body: &[u8]) -> Vec<Event> {
    let text = String::from_utf8_lossy(body);
    let mut events = Vec::new();
    for block in text.split_inclusive("\n\n").filter(|b| b.ends_with("\n\n")) {
        let (mut kind, mut id, mut data) = (String::from("message"), None, Vec::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = v.to_string();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            }
        }
        if !data.is_empty() {
            events.push(Event { kind, id, data: data.join("\n") });
        }
    }
    events
}

/// A `redis-server` on a free loopback port, without persistence, stopped when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts one (Debian's `redis-server`, which `scripts/test.sh` installs).
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Redis { child: None, port };
        redis.restart();
        redis
    }

    /// The `--redis` URL for it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10)); // polling a condition, with a deadline
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
