//! Our streams read by a client library that is not ours: the `eventsource` npm package
//! (EventSource/eventsource, the standard's `EventSource` for Node.js), driven by
//! `tests/browser/eventsource_client.mjs`, against the real `mio-sse` binary.
//!
//! What these tests pin: every kind of frame we publish (multi-line data split on LF, CRLF and CR, blank
//! lines inside, an empty body, a named event, text that looks like SSE fields, non-ASCII text) reaches a
//! standard-following parser as exactly the event that was published, with its id as `lastEventId`; and
//! the library honours the `retry:` we send: when the server dies it tries again every `--retry-ms`, with
//! `Last-Event-ID`, and after a restart on the same port it gets the events published since.
//!
//! They need Node.js >= 20 and `tests/browser/node_modules` (from `npm ci` in `tests/browser`). When one
//! is missing the tests FAIL and say so: run `scripts/test.sh`, which installs them.
//!
//! Rules, as in `tests/support`: no bare sleeps; every wait has a deadline and says what it waited for.
//! The client prints one JSON line per thing that happens (see the top of the script); its stderr is
//! shown when a test fails.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;

use support::{PATIENCE, Server, exchange, split_head};

/// The event types the client listens for: unnamed events, the named event the tests publish, and the
/// server's `lost` signal (so that one arriving unexpectedly is seen, and fails the test).
const TYPES: &str = "message,news,lost";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test, naming every missing prerequisite, unless Node.js and the `eventsource` package are
/// there.
fn require_node_tools() {
    support::require_node_packages("client library tests", &["eventsource"], Vec::new());
}

// ---- The client's output: flat JSON objects ------------------------------------------------------------

/// A value in the client's output: the script prints only strings and numbers.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Parses one flat JSON object as `JSON.stringify` writes it: `{"key":value,...}`, values strings or
/// numbers, no nesting. Enough for the client's lines, with full string escapes (the data under test
/// holds CR, LF and non-ASCII text); not a general JSON parser.
fn parse_flat_json(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut chars = text.chars().peekable();
    let mut fields = BTreeMap::new();
    let expect = |chars: &mut Chars, want: char| match chars.next() {
        Some(c) if c == want => Ok(()),
        other => Err(format!("expected {want:?}, found {other:?}")),
    };
    expect(&mut chars, '{')?;
    if chars.peek() == Some(&'}') {
        chars.next();
    } else {
        loop {
            let key = parse_json_string(&mut chars)?;
            expect(&mut chars, ':')?;
            let value = if chars.peek() == Some(&'"') {
                Value::Str(parse_json_string(&mut chars)?)
            } else {
                let mut number = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_ascii_digit() || "+-.eE".contains(**c)) {
                    number.push(c);
                    chars.next();
                }
                Value::Num(number.parse().map_err(|_| format!("{key}: not a string or number"))?)
            };
            fields.insert(key, value);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => return Err(format!("expected ',' or '}}', found {other:?}")),
            }
        }
    }
    match chars.next() {
        None => Ok(fields),
        Some(c) => Err(format!("{c:?} after the object")),
    }
}

/// A JSON string, from its opening quote through its closing one.
fn parse_json_string(chars: &mut Chars) -> Result<String, String> {
    if chars.next() != Some('"') {
        return Err("expected a string".into());
    }
    let mut out = String::new();
    loop {
        match chars.next().ok_or("unterminated string")? {
            '"' => return Ok(out),
            '\\' => match chars.next().ok_or("unterminated escape")? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '/' => out.push('/'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let unit = hex4(chars)?;
                    // A character outside the BMP is a surrogate pair, each half escaped on its own.
                    let code = if (0xD800..0xDC00).contains(&unit) {
                        if chars.next() != Some('\\') || chars.next() != Some('u') {
                            return Err("a high surrogate without its low half".into());
                        }
                        let low = hex4(chars)?;
                        0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
                    } else {
                        unit
                    };
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                }
                other => return Err(format!("unknown escape \\{other}")),
            },
            c => out.push(c),
        }
    }
}

fn hex4(chars: &mut Chars) -> Result<u32, String> {
    let digits: String = chars.take(4).collect();
    u32::from_str_radix(&digits, 16).map_err(|_| format!("bad \\u escape {digits:?}"))
}

/// One line of the client's output.
#[derive(Debug, Clone)]
struct Line {
    fields: BTreeMap<String, Value>,
    raw: String,
}

impl Line {
    fn str(&self, key: &str) -> &str {
        match self.fields.get(key) {
            Some(Value::Str(s)) => s,
            other => panic!("no string {key:?} in the client's line {} ({other:?})", self.raw),
        }
    }

    fn num(&self, key: &str) -> f64 {
        match self.fields.get(key) {
            Some(Value::Num(n)) => *n,
            other => panic!("no number {key:?} in the client's line {} ({other:?})", self.raw),
        }
    }

    fn kind(&self) -> &str {
        self.str("kind")
    }

    fn is_event(&self) -> bool {
        self.kind() == "event"
    }

    /// An event that is a tick: unnamed, its data the server's time of day.
    fn is_tick(&self) -> bool {
        self.is_event() && self.str("type") == "message" && support::is_time_of_day(self.str("data"))
    }
}

// ---- The client process ----------------------------------------------------------------------------------

/// A running `eventsource_client.mjs`, killed when dropped. Its stdout arrives line by line on a channel;
/// every line read so far is kept in `lines`, in order.
struct Client {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    lines: Vec<Line>,
}

impl Client {
    /// Starts `node tests/browser/eventsource_client.mjs <url> --types TYPES`.
    fn start(url: &str) -> Client {
        require_node_tools();
        // The client's own deadline only backs up ours: every wait below fails well before it.
        let deadline_ms = PATIENCE.saturating_mul(6).as_millis().to_string();
        let mut cmd = Command::new("node");
        cmd.arg("tests/browser/eventsource_client.mjs")
            .args([url, "--types", TYPES, "--deadline-ms", &deadline_ms])
            .current_dir(manifest_dir())
            .stdin(Stdio::null());
        let piped = support::spawn_piped(cmd, "node tests/browser/eventsource_client.mjs");
        Client { child: piped.child, stdout: piped.lines, stderr: piped.stderr, lines: Vec::new() }
    }

    /// Reads the client's lines until `done(every line so far)` holds. Fails the test, showing what the
    /// client printed, if the client exits first or [`PATIENCE`] passes.
    fn wait_until(&mut self, what: &str, done: impl Fn(&[Line]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(raw) => match parse_flat_json(&raw) {
                    Ok(fields) => self.lines.push(Line { fields, raw }),
                    Err(e) => self.fail(&format!("the client printed {raw:?}, not a flat JSON object: {e}")),
                },
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the client exited while the test waited for {what}"))
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {what} from the client within {PATIENCE:?}"))
                }
            }
        }
    }

    /// The events received so far.
    fn events(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.is_event()).collect()
    }

    /// Kills the client and fails the test with `why`, everything it printed, and its stderr.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        let printed: Vec<&str> = self.lines.iter().map(|l| l.raw.as_str()).collect();
        panic!("{why}; it printed:\n  {}\nits stderr:\n{stderr}", printed.join("\n  "));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `body` with `POST /home/events` + `query`; returns the event's id.
fn publish(server: &Server, query: &str, body: &[u8]) -> u64 {
    let mut raw = format!(
        "POST /home/events{query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let got = exchange(server, &raw);
    let (head, answer) = split_head(&got);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "publishing {body:?} got:\n{head}{answer}");
    let fields = parse_flat_json(answer.trim_end()).unwrap_or_else(|e| panic!("answer {answer:?}: {e}"));
    match fields.get("id") {
        Some(Value::Str(id)) => id.parse().unwrap_or_else(|_| panic!("id is not decimal in {answer}")),
        _ => panic!("no string id in the answer {answer}"),
    }
}

// ---- Tests -----------------------------------------------------------------------------------------------

/// One publish and what a standard-following client must make of it.
struct Case {
    what: &'static str,
    query: &'static str,
    body: &'static str,
    event_type: &'static str,
    data: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "lines split by LF",
        query: "",
        body: "first line\nsecond line\nthird line",
        event_type: "message",
        data: "first line\nsecond line\nthird line",
    },
    Case {
        what: "lines split by CRLF",
        query: "",
        body: "one\r\ntwo\r\nthree",
        event_type: "message",
        data: "one\ntwo\nthree",
    },
    Case {
        what: "lines split by lone CR",
        query: "",
        body: "one\rtwo\rthree",
        event_type: "message",
        data: "one\ntwo\nthree",
    },
    Case {
        what: "all three line ends mixed",
        query: "",
        body: "a\rb\r\nc\nd",
        event_type: "message",
        data: "a\nb\nc\nd",
    },
    Case {
        what: "blank lines inside do not end the event early",
        query: "",
        body: "above\n\n\r\nbelow",
        event_type: "message",
        data: "above\n\n\nbelow",
    },
    Case {
        what: "an empty body is an event with empty data",
        query: "",
        body: "",
        event_type: "message",
        data: "",
    },
    Case {
        what: "a final line break ends the last line, as in a text file; it adds no empty line",
        query: "",
        body: "the only line\n",
        event_type: "message",
        data: "the only line",
    },
    Case {
        what: "a leading space survives (the parser drops only the one after the colon)",
        query: "",
        body: "  two spaces first",
        event_type: "message",
        data: "  two spaces first",
    },
    Case {
        what: "lines that look like fields stay data (no framing injection)",
        query: "",
        body: "data: not a field\nid: 42\nevent: hijack\nretry: 1\n: not a comment",
        event_type: "message",
        data: "data: not a field\nid: 42\nevent: hijack\nretry: 1\n: not a comment",
    },
    Case {
        what: "a named event",
        query: "?event=news",
        body: "headline\nbody text",
        event_type: "news",
        data: "headline\nbody text",
    },
    Case {
        what: "non-ASCII text: accents, CJK, an emoji, right-to-left",
        query: "",
        body: "héllo wörld — 日本語 — 🎉 — שלום",
        event_type: "message",
        data: "héllo wörld — 日本語 — 🎉 — שלום",
    },
    Case {
        what: "a named event with non-ASCII text",
        query: "?event=news",
        body: "Ünïcödé 🚀\r\nzweite Zeile",
        event_type: "news",
        data: "Ünïcödé 🚀\nzweite Zeile",
    },
];

#[test]
fn the_eventsource_library_reads_every_kind_of_published_frame_as_published() {
    let server = Server::start(&["--interval-ms", "100"]);
    let mut client = Client::start(&format!("http://{}/home/events", server.addr));

    // Ticks first: unnamed, and no id seen yet, so lastEventId is empty.
    client.wait_until("2 ticks", |lines| lines.iter().filter(|l| l.is_tick()).count() >= 2);
    for tick in client.events() {
        assert!(tick.is_tick(), "before any publish only ticks come: {}", tick.raw);
        assert_eq!(tick.str("lastEventId"), "", "a tick before any publish: {}", tick.raw);
    }
    let before = client.events().len();

    let ids: Vec<u64> = CASES.iter().map(|case| publish(&server, case.query, case.body.as_bytes())).collect();
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "ids increase by one: {ids:?}");
    }
    let last = ids.last().expect("cases").to_string();
    client.wait_until("the last published event", |lines| {
        lines.iter().any(|l| l.is_event() && l.str("lastEventId") == last)
    });

    // Everything after the ticks above: each published event once, in order, with ticks in between.
    let received = &client.events()[before..];
    let published: Vec<&&Line> = received.iter().filter(|l| !l.is_tick()).collect();
    assert_eq!(
        published.len(),
        CASES.len(),
        "each published event once, and nothing else: {:#?}",
        published.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
    for ((case, id), got) in CASES.iter().zip(&ids).zip(&published) {
        assert_eq!(got.str("type"), case.event_type, "{}: type, in {}", case.what, got.raw);
        assert_eq!(got.str("data"), case.data, "{}: data, in {}", case.what, got.raw);
        assert_eq!(got.str("lastEventId"), id.to_string(), "{}: lastEventId, in {}", case.what, got.raw);
    }
    // Ticks have no id. The standard stamps every event with the last id the stream saw, so a tick after
    // a published event carries that event's id (browsers do); this library stamps only the event's own
    // id and leaves ticks empty. Either is fine for us: what a tick must never carry is an id of its own.
    let mut last_id = String::new();
    for event in received {
        if event.is_tick() {
            let id = event.str("lastEventId");
            assert!(id.is_empty() || id == last_id, "a tick with an id of its own: {}", event.raw);
        } else {
            last_id = event.str("lastEventId").to_owned();
        }
    }
}

#[test]
fn the_eventsource_library_honours_retry_and_resumes_with_last_event_id_after_a_restart() {
    let args = ["--interval-ms", "0", "--retry-ms", "500"];
    let first = Server::start(&args);
    let addr = first.addr;
    let mut client = Client::start(&format!("http://{addr}/home/events"));
    client.wait_until("the stream to open", |lines| lines.iter().any(|l| l.kind() == "open"));
    let before = publish(&first, "", b"before the restart");
    client.wait_until("the event published before the restart", |lines| {
        lines.iter().any(|l| l.is_event() && l.str("lastEventId") == before.to_string())
    });
    let broke = client.lines.len();

    // A crash: dropping the server kills it (SIGKILL), so it says no goodbye; a graceful shutdown would
    // send a new, jittered `retry:` first. The client keeps the `retry: 500` from its stream's start.
    drop(first);

    // While nothing listens, the client tries again every 500 ms (not its default 3000), each time with the
    // id of the last event it saw.
    client.wait_until("2 reconnection attempts", |lines| {
        lines[broke..].iter().filter(|l| l.kind() == "request").count() >= 2
    });
    let attempts: Vec<&Line> = client.lines[broke..].iter().filter(|l| l.kind() == "request").collect();
    for attempt in &attempts {
        assert_eq!(attempt.str("lastEventId"), before.to_string(), "Last-Event-ID: {}", attempt.raw);
    }
    let gap = attempts[1].num("at") - attempts[0].num("at");
    assert!((450.0..2500.0).contains(&gap), "{gap} ms between attempts; want about the 500 of `retry:`");

    // A new server on the same port; what is published there reaches the client once it is back.
    let listen = addr.to_string();
    let second = Server::start(&[&args[..], &["--listen", &listen]].concat());
    let after = publish(&second, "", b"after the restart");
    assert!(after > before, "ids keep increasing across a restart: {before} then {after}");
    client.wait_until("the event published after the restart", |lines| {
        lines.iter().any(|l| l.is_event() && l.str("lastEventId") == after.to_string())
    });
    second.wait_for_metric("mio_sse_streams_opened_total", |v| v >= 1);

    let events: Vec<(&str, &str, &str)> =
        client.events().iter().map(|l| (l.str("type"), l.str("data"), l.str("lastEventId"))).collect();
    assert_eq!(
        events,
        [
            ("message", "before the restart", before.to_string().as_str()),
            ("message", "after the restart", after.to_string().as_str())
        ],
        "each event once, no `lost` signal"
    );
    let requests: Vec<&str> = client.lines[broke..]
        .iter()
        .filter(|l| l.kind() == "request")
        .map(|l| l.str("lastEventId"))
        .collect();
    assert!(
        requests.iter().all(|id| *id == before.to_string()),
        "every reconnection carried Last-Event-ID {before}: {requests:?}"
    );
}
