//! Helpers for the load generator's end-to-end tests: the real `mio-sse` on a free loopback port (over
//! HTTPS with a certificate made for the test), runs of `mio-sse-load` with their exit code and JSON
//! report, a port nothing listens on, and a tiny fake SSE server whose ids a test chooses (timestamps,
//! jumps, strings).
//!
//! Rules: every process and thread a helper starts ends with the value that owns it (dropped); every wait
//! is bounded.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio_sse_load::bench::server::{ServerProcess, server_beside};

/// Starts a fresh `mio-sse` on a free loopback port with `args`; killed when dropped.
pub fn start_server(args: &[&str]) -> ServerProcess {
    let load = Path::new(env!("CARGO_BIN_EXE_mio-sse-load"));
    let release = load.parent().and_then(Path::file_name).is_some_and(|profile| profile == "release");
    let exe = server_beside(load, release).unwrap_or_else(|e| panic!("{e}"));
    ServerProcess::start(&exe, args).unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
}

/// A self-signed certificate for `localhost` and `127.0.0.1` and its key, as PEM files in a fresh folder
/// (removed when dropped).
pub struct TestCert {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    pub fn new(name: &str) -> TestCert {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).expect("a test certificate");
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("load-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder for the certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
        TestCert { dir, cert, key }
    }

    pub fn cert_path(&self) -> String {
        self.cert.display().to_string()
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a fresh `mio-sse` over HTTPS with `cert`, plus `args`; killed when dropped.
pub fn start_tls_server(cert: &TestCert, args: &[&str]) -> ServerProcess {
    let (cert_path, key_path) = (cert.cert.display().to_string(), cert.key.display().to_string());
    let mut all = vec!["--tls-cert", cert_path.as_str(), "--tls-key", key_path.as_str()];
    all.extend_from_slice(args);
    start_server(&all)
}

/// What one `mio-sse-load` run said: its exit code, its JSON report (if it printed one), its stderr.
pub struct Run {
    pub code: i32,
    pub report: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A number at `path` (`a.b.c`) in the report.
    pub fn n(&self, path: &str) -> u64 {
        let mut at = &self.report;
        for key in path.split('.') {
            at = &at[key];
        }
        at.as_u64().unwrap_or_else(|| panic!("{path} in {}\nstderr: {}", self.report, self.stderr))
    }

    pub fn f(&self, path: &str) -> f64 {
        let mut at = &self.report;
        for key in path.split('.') {
            at = &at[key];
        }
        at.as_f64().unwrap_or_else(|| panic!("{path} in {}", self.report))
    }
}

/// Runs `mio-sse-load` with `args` (which include the mode and its URL).
pub fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse-load")).args(args).output().expect("run mio-sse-load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mode` with `args` against `url`, with `--json --quiet`.
pub fn run_json(mode: &str, url: &str, args: &[&str]) -> Run {
    let mut all = vec![mode, "--url", url, "--json", "--quiet"];
    all.extend_from_slice(args);
    run(&all)
}

/// The event stream's URL of a server.
pub fn events_url(server: &ServerProcess) -> String {
    format!("http://{}/home/events", server.addr)
}

/// A loopback address nothing listens on (bound, then closed).
pub fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A fake SSE server: each connection gets a head, `retry: 50`, then events whose ids `id(connection,
/// index)` chooses, 10 ms apart. With `close_after: Some((events, lives))`, each of the first `lives`
/// connections is closed after `events` events (a server life); the others stay open. Stops when dropped.
pub struct FakeSse {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeSse {
    pub fn start(
        close_after: Option<(usize, usize)>,
        id: impl Fn(usize, usize) -> String + Send + Sync + 'static,
    ) -> FakeSse {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let (id, flag) = (Arc::new(id), Arc::clone(&stop));
        std::thread::spawn(move || {
            let connections = Arc::new(AtomicUsize::new(0));
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut socket, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5)); // a test's helper thread
                    continue;
                };
                let (id, flag) = (Arc::clone(&id), Arc::clone(&flag));
                let connection = connections.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let _ = socket.set_nonblocking(false);
                    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request);
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 50\n\n";
                    if socket.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let mut index = 0;
                    let limit =
                        close_after.filter(|(_, lives)| connection < *lives).map(|(events, _)| events);
                    while !flag.load(Ordering::Relaxed) && limit.is_none_or(|n| index < n) {
                        let event = format!("id: {}\ndata: event {index}\n\n", id(connection, index));
                        if socket.write_all(event.as_bytes()).is_err() {
                            return;
                        }
                        index += 1;
                        std::thread::sleep(Duration::from_millis(10)); // the fake server's pace
                    }
                });
            }
        });
        FakeSse { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }
}

impl Drop for FakeSse {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
