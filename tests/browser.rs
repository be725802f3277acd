//! End to end in a real browser: the demo page (`static/index.html`) in Debian's Chromium, driven by
//! `tests/browser/demo_page.mjs` (Node.js and playwright-core), against the real `mio-sse` binary.
//!
//! What these tests pin: a browser's `EventSource` accepts our stream (status, headers, framing) and the
//! page shows the ticks, the published events (from its own form and from elsewhere) and the chart of
//! `/metrics`; when the server goes away and comes back on the same port, the browser reconnects by
//! itself and the ticks resume; and the events published on the new server before the browser came back
//! are replayed to it (it sends `Last-Event-ID`), each once, with none of the old server's again. A page
//! subscribed to two topics shows their events and no other topic's, and named events show.
//!
//! They need three things outside cargo: Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), Node.js >= 20,
//! and `tests/browser/node_modules` (from `npm ci` in `tests/browser`). When one is missing the tests
//! FAIL and say so: a browser test that skips quietly is one nobody notices is not running.
//!
//! Rules, as in `tests/support`: no bare sleeps; every wait has a deadline and says what it waited for.
//! The driver takes commands on stdin and answers each with one JSON line on stdout (the commands are
//! listed at the top of `demo_page.mjs`); its stderr is shown when a test fails.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;

use support::{PATIENCE, Server, exchange, split_head};

/// The page's test hooks are cheap to reach; the browser's start is not. The driver's own waits are
/// [`PATIENCE`] each (launch, load, ticks, reconnect), so ours allow three of them per step.
const DRIVER_PATIENCE: std::time::Duration = PATIENCE.saturating_mul(3);

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
    support::require_node_packages("browser tests", &["playwright-core"], missing);
}

/// A running `demo_page.mjs`, killed when dropped. Commands go to its stdin; its stdout arrives line by
/// line on a channel; its stderr is collected for failure messages.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Driver {
    /// Starts `node tests/browser/demo_page.mjs <url>` from the crate's folder and waits for its first
    /// line: the page's state once it shows ticks on an open stream.
    fn start(url: &str) -> (Driver, String) {
        Driver::start_with(url, "")
    }

    /// [`Driver::start`] with more Chromium flags (space-separated).
    fn start_with(url: &str, chromium_args: &str) -> (Driver, String) {
        require_browser_tools();
        let mut cmd = Command::new("node");
        cmd.env("CHROMIUM_EXTRA_ARGS", chromium_args);
        cmd.arg("tests/browser/demo_page.mjs")
            .arg(url)
            .current_dir(manifest_dir())
            // Plain text in failure messages: playwright colours its call logs even into a pipe.
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::piped());
        let mut piped = support::spawn_piped(cmd, "node tests/browser/demo_page.mjs");
        let stdin = piped.child.stdin.take();
        let mut driver = Driver { child: piped.child, stdin, stdout: piped.lines, stderr: piped.stderr };
        let ready = driver.answer("the page showing ticks");
        (driver, ready)
    }

    /// Sends one command (see the top of `demo_page.mjs`) and returns its answer, a flat JSON object.
    fn command(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("the driver's stdin is open until finish()");
        if let Err(e) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            self.fail(&format!("could not send {command:?} to the browser driver ({e})"));
        }
        self.answer(&format!("an answer to {command:?}"))
    }

    /// The driver's next stdout line. Fails the test, with the driver's stderr, if the driver exits or
    /// says nothing within [`DRIVER_PATIENCE`].
    fn answer(&mut self, what: &str) -> String {
        match self.stdout.recv_timeout(DRIVER_PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(&format!("the browser driver exited before {what}"))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("no {what} from the browser driver within {DRIVER_PATIENCE:?}"))
            }
        }
    }

    /// Closes the driver's stdin (it closes the browser and exits) and checks that it exited cleanly,
    /// having said nothing more.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + DRIVER_PATIENCE;
        let mut extra = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => extra.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("the browser driver did not exit within {DRIVER_PATIENCE:?}"))
                }
            }
        }
        let status = self.child.wait().expect("wait for the browser driver");
        if !status.success() || !extra.is_empty() {
            self.fail(&format!("the browser driver ended with {status}, after printing {extra:?}"));
        }
    }

    /// Kills the driver and fails the test with `why` and everything the driver wrote to stderr.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        panic!("{why}; its stderr:\n{stderr}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Where a test leaves its screenshot, to look at when it fails (or when the page changes).
fn screenshot_path(name: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name).display().to_string()
}

/// Publishes `body` with `POST /home/events` + `query` from outside the browser; returns the event's id.
fn publish(server: &Server, query: &str, body: &str) -> u64 {
    let raw = format!(
        "POST /home/events{query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let got = exchange(server, raw.as_bytes());
    let (head, answer) = split_head(&got);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "publishing {body:?} got:\n{head}{answer}");
    json_number(&answer, "id")
}

/// A comma-separated list of ids, as the driver reports them.
fn ids(list: &[u64]) -> String {
    list.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn demo_page_shows_ticks_publishes_from_its_form_and_charts_the_metrics() {
    let server = Server::start(&["--interval-ms", "300"]);
    let (mut driver, ready) = Driver::start(&format!("http://{}/", server.addr));
    assert_eq!(json_field(&ready, "state"), "open", "page: {ready}");
    assert!(json_number(&ready, "count") >= 2, "page: {ready}");
    assert!(support::is_time_of_day(json_field(&ready, "last")), "page: {ready}");
    assert_eq!(json_field(&ready, "last_id"), "none yet", "page: {ready}");

    // The form publishes; the event comes back through the stream with the id the form showed.
    let sent = driver.command("publish hello from the form");
    let form_id = json_number(&sent, "id");
    assert!(json_field(&sent, "result").contains(&format!("id {form_id} ")), "{sent}");
    assert_eq!(json_field(&sent, "name"), "message", "{sent}");
    assert_eq!(json_field(&sent, "data"), "hello from the form", "{sent}");
    // A named event: the page listens for the name the form publishes under.
    let named = driver.command("publish-named news extra extra");
    assert_eq!(json_number(&named, "id"), form_id + 1, "{named}");
    assert_eq!(json_field(&named, "name"), "news", "{named}");
    assert_eq!(json_field(&named, "data"), "extra extra", "{named}");
    // And an event published by someone else.
    let other = publish(&server, "", "from another publisher");

    let shown = driver.command("published 3");
    assert_eq!(json_field(&shown, "ids"), ids(&[form_id, form_id + 1, other]), "{shown}");
    assert_eq!(json_field(&shown, "names"), "message,news,message", "{shown}");
    assert_eq!(
        json_field(&shown, "data"),
        "hello from the form,extra extra,from another publisher",
        "{shown}"
    );
    assert_eq!(json_number(&shown, "lost"), 0, "{shown}");
    assert_eq!(json_number(&shown, "last_id"), other, "{shown}");

    // The chart: the page's own stream is open, and ticks every 300 ms make about 3.3 events a second.
    let chart = driver.command("chart");
    assert!(json_number(&chart, "streams") >= 1, "{chart}");
    let rate: f64 = json_field(&chart, "events_per_second").parse().expect("a rate");
    assert!(rate > 0.0, "{chart}");
    assert!(json_number(&chart, "events_pixels") > 10, "no events/s line drawn: {chart}");
    assert!(json_number(&chart, "streams_pixels") > 10, "no open-streams line drawn: {chart}");

    let shot = screenshot_path("browser-demo-page.png");
    driver.command(&format!("screenshot {shot}"));
    let status = driver.command("status");
    assert_eq!(json_field(&status, "state"), "open", "page: {status}");
    driver.finish();
    eprintln!("browser showed {shown} and {chart}; screenshot: {shot}");
}

/// Topics and named events: README's own example (`?event=greeting`) shows on a page on the default
/// topic; a page subscribed to two topics shows the events of both, in id order, and none of a third
/// topic's nor of the default topic's; its form publishes to a topic, says when the page is not on it;
/// a name typed into the named-events field is listened for at once.
#[test]
fn demo_page_on_two_topics_shows_both_not_a_third_and_named_events() {
    let server = Server::start(&["--interval-ms", "300"]);
    let (mut driver, _) = Driver::start(&format!("http://{}/", server.addr));

    // README: `curl -d 'hello' 'http://127.0.0.1:8080/home/events?event=greeting'`.
    let greeting = publish(&server, "?event=greeting", "hello");
    let shown = driver.command("published 1");
    assert_eq!(json_field(&shown, "ids"), ids(&[greeting]), "{shown}");
    assert_eq!(json_field(&shown, "names"), "greeting", "{shown}");
    assert_eq!(json_field(&shown, "data"), "hello", "{shown}");

    let subscribed = driver.command("subscribe a, b");
    assert_eq!(json_field(&subscribed, "url"), "/home/events?topic=a&topic=b", "{subscribed}");
    assert_eq!(
        json_field(&subscribed, "publish_topic"),
        "a",
        "the form publishes where the page is: {subscribed}"
    );
    let listening = driver.command("listen greeting, alert");
    assert_eq!(json_field(&listening, "listen"), "greeting, alert", "{listening}");

    let a1 = publish(&server, "?topic=a", "a1");
    publish(&server, "?topic=c", "c1");
    let b1 = publish(&server, "?topic=b&event=alert", "b1 alert");
    publish(&server, "", "on the default topic");
    publish(&server, "?topic=c&event=alert", "c2 alert");
    let a2 = publish(&server, "?topic=a&event=greeting", "a2 greeting");
    // From the form: to c (the page says it will not show it), then to b under a new name.
    let elsewhere = driver.command("publish-elsewhere c c3 from the form");
    assert!(json_field(&elsewhere, "result").contains("is not on that topic"), "{elsewhere}");
    let from_form = driver.command("publish-to b news b2 from the form");
    let b2 = json_number(&from_form, "id");
    assert!(json_field(&from_form, "result").contains("to topic b (1 stream on this server)"), "{from_form}");

    // Events arrive in id order: had c's or the default topic's reached the page, they would be before b2.
    let shown = driver.command("published 5");
    assert_eq!(json_field(&shown, "ids"), ids(&[greeting, a1, b1, a2, b2]), "{shown}");
    assert_eq!(json_field(&shown, "names"), "greeting,message,alert,greeting,news", "{shown}");
    assert_eq!(json_field(&shown, "data"), "hello,a1,b1 alert,a2 greeting,b2 from the form", "{shown}");
    assert_eq!(json_number(&shown, "lost"), 0, "{shown}");
    let status = driver.command("status");
    assert_eq!(json_field(&status, "state"), "open", "ticks go on on the new stream: {status}");
    let shot = screenshot_path("browser-demo-page-topics.png");
    driver.command(&format!("screenshot {shot}"));
    driver.finish();
    eprintln!("browser showed {shown}; screenshot: {shot}");
}

/// Over HTTPS, with a certificate made for the test and trusted by its key's hash alone
/// (`--ignore-certificate-errors-spki-list`, not "ignore every certificate error"): the page streams,
/// publishes from its form (an `https://` origin is the page's own) and charts the metrics.
#[test]
fn demo_page_over_https_shows_ticks_and_publishes_from_its_form() {
    let cert = support::tls::TestCert::new("browser-https");
    let flags = cert.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--interval-ms", "300"]);
    let server = Server::start(&args);
    let trust = format!("--ignore-certificate-errors-spki-list={}", cert.spki_sha256);
    let (mut driver, ready) =
        Driver::start_with(&format!("https://127.0.0.1:{}/", server.addr.port()), &trust);
    assert_eq!(json_field(&ready, "state"), "open", "page: {ready}");
    assert!(json_number(&ready, "count") >= 2, "page: {ready}");
    let sent = driver.command("publish hello over https");
    assert_eq!(json_field(&sent, "data"), "hello over https", "{sent}");
    let chart = driver.command("chart");
    assert!(json_number(&chart, "streams") >= 1, "{chart}");
    driver.finish();
}

#[test]
fn demo_page_reconnects_after_server_restart_on_same_port() {
    let first = Server::start(&["--interval-ms", "300"]);
    let addr = first.addr;
    let (mut driver, _) = Driver::start(&format!("http://{addr}/"));

    // The server goes away (its stream breaks under the page) and a new one takes the same port.
    driver.command("outage");
    drop(first);
    let listen = addr.to_string();
    let _second = Server::start(&["--interval-ms", "300", "--listen", &listen]);

    // The driver checks that 2 ticks came after the reconnection, newer than the last one before it.
    let report = driver.command("reconnected");
    assert_eq!(json_field(&report, "state"), "open", "page: {report}");
    assert!(json_number(&report, "reconnects") >= 1, "page: {report}");
    assert!(json_number(&report, "count") >= 4, "page: {report}");
    assert!(support::is_time_of_day(json_field(&report, "last")), "page: {report}");
    // Nothing was published, so the browser had no id to send back.
    assert_eq!(json_field(&report, "last_event_id_sent"), "", "page: {report}");
    let shot = screenshot_path("browser-demo-page-reconnected.png");
    driver.command(&format!("screenshot {shot}"));
    driver.finish();
    eprintln!("browser saw {report}; screenshot: {shot}");
}

/// The restart case of replay: server B's buffer starts empty, and the browser comes back with the id of
/// A's last event. B's ids are higher (they are seeded from the clock), so B replays everything it has:
/// the 3 events published before the browser's reconnection, and nothing of A's, and no `lost` signal.
#[test]
fn demo_page_gets_events_published_while_the_server_restarted_once_each() {
    let first = Server::start(&["--interval-ms", "300"]);
    let addr = first.addr;
    let (mut driver, _) = Driver::start(&format!("http://{addr}/"));
    let a = [publish(&first, "", "A1"), publish(&first, "", "A2")];
    let shown = driver.command("published 2");
    assert_eq!(json_field(&shown, "ids"), ids(&a), "{shown}");

    // A goes away; while it is down there is nothing to publish to.
    driver.command("outage");
    drop(first);
    assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still accepts connections after A stopped");

    // B takes the port, and 3 events are published on it at once: the browser is still waiting out its
    // reconnection delay (`retry: 3000`, counted from when A's stream broke), so they reach it as replay.
    let listen = addr.to_string();
    let second = Server::start(&["--interval-ms", "300", "--listen", &listen]);
    let b = [publish(&second, "", "B1"), publish(&second, "", "B2"), publish(&second, "", "B3")];
    assert!(b[0] > a[1], "B's first id {} is not above A's last {}", b[0], a[1]);

    // Once 2 ticks came after the reconnection, the replay (which comes before them) is all there.
    let report = driver.command("reconnected");
    assert_eq!(
        json_number(&report, "last_event_id_sent"),
        a[1],
        "the reconnection's Last-Event-ID: {report}"
    );
    let shown = driver.command("published 5");
    assert_eq!(json_number(&shown, "count"), 5, "A's 2 and B's 3, each once: {shown}");
    assert_eq!(json_field(&shown, "ids"), ids(&[a[0], a[1], b[0], b[1], b[2]]), "{shown}");
    assert_eq!(json_field(&shown, "data"), "A1,A2,B1,B2,B3", "{shown}");
    assert_eq!(json_number(&shown, "lost"), 0, "no event was lost: {shown}");
    assert_eq!(json_number(&shown, "last_id"), b[2], "{shown}");
    // B's side: the browser's stream opened with a replay of all 3 (not live, which would be a race
    // lost: the browser would have come back before B had them).
    assert!(
        second.log_lines().iter().any(|line| line.contains("opened") && line.contains("replaying 3 events")),
        "B did not replay 3 events to the browser; B's log:\n{}",
        second.log_lines().join("\n")
    );
    let shot = screenshot_path("browser-demo-page-replayed.png");
    driver.command(&format!("screenshot {shot}"));
    driver.finish();
    eprintln!("browser saw {shown} after {report}; screenshot: {shot}");
}
