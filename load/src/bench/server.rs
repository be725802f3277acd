//! The server under test: finding (or building) the `mio-sse` binary, running one fresh process per
//! workload, and reading its memory and CPU from /proc and its counters from /metrics.
//!
//! Rules: every workload gets its own process, killed when its [`ServerProcess`] is dropped, so one
//! workload's leftovers never show in the next one's figures. This module's waits block: it runs on the
//! benchmark's own thread, never on an event loop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A `mio-sse` process for one workload, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Where it listens (a free loopback port).
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `exe` on a free loopback port with no static files, plus `args`; waits for it to listen.
    pub fn start(exe: &Path, args: &[&str]) -> Result<ServerProcess, String> {
        let mut child = Command::new(exe)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info", "--static-dir", "/nonexistent"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let listening = |scheme: &str| line.split(&format!("listening on {scheme}://")).nth(1);
                if let Some(addr) = listening("http").or_else(|| listening("https")) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| "the server did not start")?;
        let addr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
        Ok(ServerProcess { child, addr })
    }

    /// The process's id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid())
    }

    /// CPU time so far (user + system): see [`cpu_of`].
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    /// One value from /metrics.
    pub fn metric(&self, name: &str) -> Result<u64, String> {
        metric_of(self.addr, name)
    }
}

/// A process's resident memory, KiB (0 if it cannot be read).
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A process's CPU time so far (user + system, its main thread), in nanoseconds from
/// /proc/PID/schedstat: /proc/PID/stat counts in 10 ms ticks, too coarse for a thousand connections.
/// `mio-sse` has one thread.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    Duration::from_nanos(stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(0))
}

/// One value from a server's /metrics (Prometheus text).
pub fn metric_of(addr: SocketAddr, name: &str) -> Result<u64, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("{name} not in /metrics"))
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (blocking, polling every 5 ms) until `flag` is set, at most `limit`.
pub fn wait_for(flag: &AtomicBool, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !flag.load(Ordering::Relaxed) {
        if Instant::now() > deadline {
            return Err("the streams did not all connect in time".into());
        }
        std::thread::sleep(Duration::from_millis(5)); // the benchmark's own thread, not an event loop
    }
    Ok(())
}

/// Lets allocations and kernel buffers settle before a reading.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// The `mio-sse` binary to benchmark: `--server` if given, else the release build beside this executable.
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    match explicit {
        Some(path) => Ok(path.to_owned()),
        None => server_beside(&std::env::current_exe().map_err(|e| e.to_string())?, true),
    }
}

/// The `mio-sse` binary in the same directory as `exe`: the workspace's packages share one target
/// directory, so `target/<profile>/mio-sse-load` finds `target/<profile>/mio-sse`. Under cargo (`CARGO` is
/// set) it is built first, for the whole workspace's manifest whatever the working directory, so it is
/// never stale; `release` picks the profile, which must be `exe`'s.
pub fn server_beside(exe: &Path, release: bool) -> Result<PathBuf, String> {
    let build = format!("cargo build{} -p mio-sse --bin mio-sse", if release { " --release" } else { "" });
    if let Ok(cargo) = std::env::var("CARGO") {
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "--manifest-path", workspace, "-p", "mio-sse", "--bin", "mio-sse"]);
        // Not the variables cargo sets for the crate running this (a test's `CARGO_MANIFEST_DIR`, ...): build
        // scripts that watch them (ring's) would see them change between this build and the test's own,
        // and each would rebuild the TLS stack for the other (tens of seconds per test).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let crates_own =
                ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
            if crates_own || name == "CARGO_TARGET_TMPDIR" || name == "CARGO_RUSTC_CURRENT_DIR" {
                command.env_remove(name.as_ref());
            }
        }
        if release {
            command.arg("--release");
        }
        if !command.status().is_ok_and(|s| s.success()) {
            return Err(format!("{build} failed"));
        }
    }
    let sibling = exe.with_file_name("mio-sse");
    if sibling.exists() {
        Ok(sibling)
    } else {
        Err(format!("no mio-sse next to {}: run `{build}` first (or pass the server's path)", exe.display()))
    }
}
