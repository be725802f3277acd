//! End to end in a real browser: the demo page (`static/index.html`) in Debian's Chromium, driven by
//! `tests/browser/demo_page.mjs` (Node.js and playwright-core), against the real `mio-sse` binary.
//!
//! What these tests pin: a browser's `EventSource` accepts our stream (status, headers, framing) and the
//! page shows the ticks; and when the server goes away and comes back on the same port, the browser
//! reconnects by itself and the ticks resume.
//!
//! They need three things outside cargo: Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), Node.js >= 20,
//! and `tests/browser/node_modules` (from `npm ci` in `tests/browser`). When one is missing the tests
//! FAIL and say so: a browser test that skips quietly is one nobody notices is not running.
//!
//! Rules, as in `tests/support`: no bare sleeps; every wait has a deadline and says what it waited for.
//! The driver prints `READY` and one JSON line on stdout; its stderr is shown when a test fails.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;

use support::{PATIENCE, Server};

/// The page's test hooks are cheap to reach; the browser's start is not. The driver's own waits are
/// [`PATIENCE`] each (launch, load, ticks, reconnect), so ours allow three of them per step.
const DRIVER_PATIENCE: std::time::Duration = PATIENCE.saturating_mul(3);

const INSTALL_HINT: &str = "run the browser test command from README.md, which installs them \
     (Debian's `chromium` package, then `npm ci` in tests/browser)";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test, naming every missing prerequisite, unless Chromium, Node.js and playwright-core are
/// all there.
fn require_browser_tools() {
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("Chromium at {} (set CHROMIUM to use another)", chromium.display()));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!("a working `node` (`node --version` said {:?})", out.status)),
        Err(e) => missing.push(format!("`node` on PATH ({e})")),
    }
    let playwright = manifest_dir().join("tests/browser/node_modules/playwright-core/package.json");
    if !playwright.is_file() {
        missing.push(format!("playwright-core ({} is missing)", playwright.display()));
    }
    assert!(
        missing.is_empty(),
        "the browser tests cannot run; missing:\n  - {}\n{INSTALL_HINT}",
        missing.join("\n  - ")
    );
}

/// A running `demo_page.mjs`, killed when dropped. Its stdout arrives line by line on a channel; its
/// stderr is collected for failure messages.
struct Driver {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// What the driver printed once it has exited.
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Driver {
    /// Starts `node tests/browser/demo_page.mjs <url> <args...>` from the crate's folder.
    fn start(url: &str, args: &[&str]) -> Driver {
        require_browser_tools();
        let mut child = Command::new("node")
            .arg("tests/browser/demo_page.mjs")
            .arg(url)
            .args(args)
            .current_dir(manifest_dir())
            // Plain text in failure messages: playwright colours its call logs even into a pipe.
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node tests/browser/demo_page.mjs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
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
        Driver { child, stdout: rx, stderr: Some(stderr) }
    }

    /// Waits for the next stdout line; `None` once the driver has closed its stdout (it is exiting).
    fn next_line(&mut self, what: &str, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.stdout.recv_timeout(left) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "no {what} from the browser driver within {DRIVER_PATIENCE:?}; its stderr:\n{}",
                    self.take_stderr()
                );
            }
        }
    }

    /// Reads stdout to its end (or the deadline) and waits for the driver to exit.
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + DRIVER_PATIENCE;
        let mut stdout = Vec::new();
        while let Some(line) = self.next_line("exit", deadline) {
            stdout.push(line);
        }
        let status = self.child.wait().expect("wait for the browser driver");
        Finished { status, stdout, stderr: self.take_stderr() }
    }

    fn take_stderr(&mut self) -> String {
        self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Finished {
    /// The driver's report: its last stdout line, a flat JSON object. Fails the test unless the driver
    /// exited 0.
    fn report(&self) -> &str {
        assert!(
            self.status.success(),
            "the browser driver failed ({}):\n{}\nstdout: {:?}",
            self.status,
            self.stderr,
            self.stdout
        );
        self.stdout.last().map(String::as_str).expect("a JSON line on the driver's stdout")
    }
}

/// The value of `"key":` in a flat JSON object as `JSON.stringify` writes it (no spaces), without quotes
/// for a string. Enough for the driver's one-line report; not a JSON parser.
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern).unwrap_or_else(|| panic!("no {key:?} in {json}")) + pattern.len();
    let rest = &json[start..];
    match rest.strip_prefix('"') {
        Some(text) => &text[..text.find('"').expect("closing quote")],
        None => &rest[..rest.find([',', '}']).expect("end of value")],
    }
}

fn json_number(json: &str, key: &str) -> u64 {
    json_field(json, key).parse().unwrap_or_else(|_| panic!("{key:?} is not a whole number in {json}"))
}

/// True for `HH:MM:SS.mmm`.
fn is_time_of_day(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// Where a test leaves its screenshot, to look at when it fails (or when the page changes).
fn screenshot_path(name: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name).display().to_string()
}

#[test]
fn demo_page_shows_ticks_in_chromium() {
    let server = Server::start(&["--interval-ms", "300"]);
    let url = format!("http://{}/", server.addr);
    let shot = screenshot_path("browser-demo-page.png");

    let run = Driver::start(&url, &[&shot]).finish();
    let report = run.report();

    assert_eq!(json_field(report, "state"), "open", "report: {report}");
    assert!(json_number(report, "count") >= 2, "report: {report}");
    assert!(is_time_of_day(json_field(report, "last")), "report: {report}");
    eprintln!("browser saw {report}; screenshot: {shot}");
}

#[test]
fn demo_page_reconnects_after_server_restart_on_same_port() {
    let first = Server::start(&["--interval-ms", "300"]);
    let addr = first.addr;
    let url = format!("http://{addr}/");
    let shot = screenshot_path("browser-demo-page-reconnected.png");
    let signal = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("browser-reconnect-signal-{}", std::process::id()));
    let _ = std::fs::remove_file(&signal);

    let mut driver =
        Driver::start(&url, &[&shot, "--reconnect-signal", signal.to_str().expect("UTF-8 path")]);
    let ready = driver.next_line("READY", Instant::now() + DRIVER_PATIENCE);
    if ready.as_deref() != Some("READY") {
        let run = driver.finish();
        panic!("the driver did not print READY (got {ready:?}); stderr:\n{}", run.stderr);
    }

    // The server goes away (its stream breaks under the page) and a new one takes the same port.
    drop(first);
    let listen = addr.to_string();
    let _second = Server::start(&["--interval-ms", "300", "--listen", &listen]);
    std::fs::write(&signal, b"restarted\n").expect("write the signal file");

    let run = driver.finish();
    let _ = std::fs::remove_file(&signal);
    let report = run.report();

    assert_eq!(json_field(report, "state"), "open", "report: {report}");
    assert!(json_number(report, "reconnects") >= 1, "report: {report}");
    // At least 2 ticks before the restart and 2 after (the driver checks the "after" part itself).
    assert!(json_number(report, "count") >= 4, "report: {report}");
    assert!(is_time_of_day(json_field(report, "last")), "report: {report}");
    eprintln!("browser saw {report}; screenshot: {shot}");
}
