//! Test helpers shared by the integration tests: start the real `mio-sse` binary on a free port, watch its
//! log, and talk to it over real sockets.
//!
//! Rules the helpers keep (so that tests stay honest on a shared, noisy machine):
//! - never one bare `read()` and never a bare `sleep`: read until a condition holds or a deadline passes;
//! - every wait has a deadline, and a failed wait says what it was waiting for and shows the server's log.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

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
    /// waits for its "listening on" line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_in(args, None)
    }

    /// Like [`Server::start`], with the process's working directory set to `dir`.
    pub fn start_in(args: &[&str], dir: Option<&std::path::Path>) -> Server {
        Self::launch(Command::new(env!("CARGO_BIN_EXE_mio-sse")), args, dir)
    }

    /// Like [`Server::start`], in a process whose open-file limit is `nofile` (soft and hard).
    pub fn start_with_fd_limit(args: &[&str], nofile: u64) -> Server {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_mio-sse")]);
        Self::launch(cmd, args, None)
    }

    fn launch(mut cmd: Command, args: &[&str], dir: Option<&std::path::Path>) -> Server {
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--static-dir") && dir.is_none() {
            cmd.args(["--static-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/static")]);
        }
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the mio-sse binary");
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
        let mut server = Server { child, addr: "0.0.0.0:0".parse().unwrap(), log };
        let line = server.wait_for_log("listening on http://");
        let addr = line.rsplit("http://").next().unwrap().split_whitespace().next().unwrap();
        server.addr = addr.trim_end_matches('/').parse().expect("address in the listening line");
        server
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
            .write_all(b"GET /home/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
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
