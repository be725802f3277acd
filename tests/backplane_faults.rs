//! The backplane against a Redis that misbehaves: a fake Redis (a std `TcpListener` thread speaking
//! enough RESP2: AUTH, PING, EVAL, XREVRANGE, XREAD) answers as scripted and misbehaves on cue, and the
//! real server binary runs against it.
//!
//! Each case checks the same promises (docs/backplane-failures.md): the server lives, its memory stays
//! bounded, `mio_sse_backplane_up` tells the truth, an open stream keeps ticking, a publish gets 503
//! while the backplane is unusable, and once the fake behaves again a publish gets 200 and the stream
//! receives it. Every wait has a deadline; no bare sleeps on the test's side (the fake's "slow" and the
//! polling of /metrics aside, each bounded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest any one wait may take (the machine may be shared and slow).
const PATIENCE: Duration = Duration::from_secs(20);
/// Resident memory the server must stay under through any fault (it idles at a few MiB; a reply
/// buffered without bound grew it past 150 MiB).
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// The fake Redis.

/// How the fake misbehaves (until told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Reading-link replies are `*1\r\n` × 60,000.
    Deep,
    /// Reading-link replies announce a 400 MB bulk string and send 1 MiB of it.
    Huge,
    /// Reading-link replies are not RESP.
    Garbled,
    /// Reading-link replies carry one entry with this id.
    EntryId(&'static str),
    /// Reading-link replies are cut in the middle by a reset.
    ResetMidReply,
    /// Publishes are answered with this integer.
    PublishId(&'static str),
    /// Each publish's reply is followed by an extra `:999999`.
    Extra,
    /// Nothing is answered, on any connection.
    Hang,
    /// Every reply comes 300 ms late.
    Slow,
}

impl Fault {
    /// Whether it spoils the reading link's replies.
    fn is_reading(self) -> bool {
        matches!(self, Fault::Deep | Fault::Huge | Fault::Garbled | Fault::EntryId(_) | Fault::ResetMidReply)
    }
}

struct State {
    fault: Fault,
    /// `(id, data)` of every event published.
    log: Vec<(u64, String)>,
    next_id: u64,
    /// Connections accepted so far.
    accepted: usize,
    /// The `AUTH` arguments required (after `AUTH`), if any.
    auth: Option<Vec<String>>,
}

#[derive(Clone)]
struct Fake {
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Fake {
    fn start(auth: Option<&[&str]>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = State {
            fault: Fault::None,
            log: Vec::new(),
            next_id: 1000,
            accepted: 0,
            auth: auth.map(|a| a.iter().map(|s| s.to_string()).collect()),
        };
        let fake = Fake { port, state: Arc::new((Mutex::new(state), Condvar::new())) };
        let acceptor = fake.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                acceptor.state.0.lock().unwrap().accepted += 1;
                let serving = acceptor.clone();
                std::thread::spawn(move || serving.serve(socket));
            }
        });
        fake
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn set_fault(&self, fault: Fault) {
        self.state.0.lock().unwrap().fault = fault;
        self.state.1.notify_all();
    }

    fn set_auth(&self, auth: &[&str]) {
        self.state.0.lock().unwrap().auth = Some(auth.iter().map(|s| s.to_string()).collect());
    }

    fn accepted(&self) -> usize {
        self.state.0.lock().unwrap().accepted
    }

    /// Serves one connection until it closes.
    fn serve(&self, socket: TcpStream) {
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        let mut socket = socket;
        while let Some(args) = read_command(&mut reader) {
            if self.wait_while_hung() {
                return;
            }
            let reply = match self.answer(&args, &socket) {
                Some(reply) => reply,
                None => return, // the fault ended this connection
            };
            if self.state.0.lock().unwrap().fault == Fault::Slow {
                std::thread::sleep(Duration::from_millis(300)); // the fake is slow on purpose
            }
            if socket.write_all(&reply).is_err() {
                return;
            }
        }
    }

    /// While hung, waits (answers nothing); true if the connection should be left alone for good.
    fn wait_while_hung(&self) -> bool {
        let (lock, cv) = &*self.state;
        let mut state = lock.lock().unwrap();
        if state.fault != Fault::Hang {
            return false;
        }
        while state.fault == Fault::Hang {
            state = cv.wait(state).unwrap();
        }
        true // the server gave up on this connection long ago
    }

    fn answer(&self, args: &[String], socket: &TcpStream) -> Option<Vec<u8>> {
        let (lock, cv) = &*self.state;
        let name = args[0].to_ascii_uppercase();
        let fault = lock.lock().unwrap().fault;
        let reading = name == "XREAD" || name == "XREVRANGE";
        if reading && fault.is_reading() {
            match fault {
                Fault::Deep => return Some(b"*1\r\n".repeat(60_000)),
                Fault::Huge => {
                    let mut reply = b"$400000000\r\n".to_vec();
                    reply.extend(vec![b'x'; 1 << 20]);
                    return Some(reply);
                }
                Fault::Garbled => return Some(b"?this is not RESP\r\n".to_vec()),
                Fault::EntryId(id) => {
                    let entry = entry(id, "bad");
                    return Some(if name == "XREAD" { xread(&[entry]) } else { array(&[entry]) });
                }
                Fault::ResetMidReply => {
                    let whole = xread(&[entry("999999-0", "cut")]);
                    let mut socket = socket;
                    let _ = socket.write_all(&whole[..whole.len() / 2]);
                    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                    return None;
                }
                _ => {}
            }
        }
        let reply = match name.as_str() {
            "PING" => b"+PONG\r\n".to_vec(),
            "AUTH" => match &lock.lock().unwrap().auth {
                Some(want) if want[..] == args[1..] => b"+OK\r\n".to_vec(),
                Some(_) => b"-WRONGPASS invalid username-password pair or user is disabled.\r\n".to_vec(),
                None => b"-ERR AUTH called without any password configured\r\n".to_vec(),
            },
            "EVAL" => {
                let mut state = lock.lock().unwrap();
                if let Fault::PublishId(n) = state.fault {
                    return Some(format!(":{n}\r\n").into_bytes());
                }
                let id = state.next_id;
                state.next_id += 1;
                state.log.push((id, args[7].clone()));
                cv.notify_all();
                match state.fault {
                    Fault::Extra => format!(":{id}\r\n:999999\r\n").into_bytes(),
                    _ => format!(":{id}\r\n").into_bytes(),
                }
            }
            "XREVRANGE" => {
                let state = lock.lock().unwrap();
                let entries: Vec<Vec<u8>> =
                    state.log.iter().rev().map(|(id, data)| entry(&format!("{id}-0"), data)).collect();
                array(&entries)
            }
            "XREAD" => {
                let block = Duration::from_millis(args[2].parse().unwrap_or(0));
                let after: u64 = args.last()?.split('-').next()?.parse().ok()?;
                let deadline = Instant::now() + block;
                let mut state = lock.lock().unwrap();
                loop {
                    if state.fault == Fault::Hang {
                        while state.fault == Fault::Hang {
                            state = cv.wait(state).unwrap();
                        }
                        return None; // the server gave up on this connection long ago
                    }
                    if state.fault.is_reading() {
                        drop(state);
                        return self.answer(args, socket); // the fault answers this one
                    }
                    let new: Vec<Vec<u8>> = state
                        .log
                        .iter()
                        .filter(|(id, _)| *id > after)
                        .map(|(id, data)| entry(&format!("{id}-0"), data))
                        .collect();
                    if !new.is_empty() {
                        break xread(&new);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break b"*-1\r\n".to_vec();
                    }
                    state = cv.wait_timeout(state, left).unwrap().0;
                }
            }
            _ => b"-ERR unknown command\r\n".to_vec(),
        };
        Some(reply)
    }
}

/// One command (an array of bulk strings), or `None` at EOF or on anything else.
fn read_command(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        reader.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(String::from_utf8(arg).ok()?);
    }
    Some(args)
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", items.len()).into_bytes();
    items.iter().for_each(|i| out.extend_from_slice(i));
    out
}

fn entry(id: &str, data: &str) -> Vec<u8> {
    let fields = ["e", "", "d", data, "x", "1"].map(bulk);
    array(&[bulk(id), array(&fields)])
}

fn xread(entries: &[Vec<u8>]) -> Vec<u8> {
    array(&[array(&[bulk("mio-sse:log"), array(entries)])])
}

// ---------------------------------------------------------------------------------------------------
// The server, and talking to it.

struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server and waits until its backplane is up.
    fn start(redis_url: &str) -> Server {
        let server = Server::spawn(redis_url);
        server.wait_up(true);
        server
    }

    /// Starts the server (its backplane may not come up).
    fn spawn(redis_url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mio-sse"))
            .args(["--listen", "127.0.0.1:0", "--redis", redis_url, "--request-timeout-ms", "10000"])
            .args(["--static-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/static")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the mio-sse binary");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sink, (tx, rx)) = (Arc::clone(&log), std::sync::mpsc::channel());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(PATIENCE).expect("the server's \"listening on\" line");
        Server { child, addr: addr.parse().unwrap(), log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The server is alive and under the memory limit.
    fn assert_well(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the server died; log:\n{}", self.log());
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert!(kb * 1024 < RSS_LIMIT, "RSS {kb} kB");
    }

    /// Sends `raw` on a new connection and reads the answer to its end (it asks for `close`).
    fn exchange(&self, raw: &[u8]) -> String {
        let mut socket = TcpStream::connect(self.addr).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket.write_all(raw).unwrap();
        let mut got = Vec::new();
        socket.read_to_end(&mut got).expect("an answer before the read timeout");
        String::from_utf8_lossy(&got).into_owned()
    }

    fn backplane_up(&self) -> Option<u64> {
        let metrics = self.exchange(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        metrics.lines().find_map(|l| l.strip_prefix("mio_sse_backplane_up ")?.trim().parse().ok())
    }

    /// Waits until `mio_sse_backplane_up` says `up`.
    fn wait_up(&self, up: bool) {
        let deadline = Instant::now() + PATIENCE;
        while self.backplane_up() != Some(u64::from(up)) {
            assert!(Instant::now() < deadline, "backplane_up never became {up}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20)); // polling /metrics, with a deadline
        }
    }

    /// Publishes `data`: the status and the id (with 200).
    fn publish(&self, data: &str) -> (u16, Option<u64>) {
        let raw = format!(
            "POST /home/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{data}",
            data.len()
        );
        let answer = self.exchange(raw.as_bytes());
        let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let id = answer.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()?.parse().ok());
        (status, id)
    }

    /// Publishes until one gets 200 (the backplane may take a backoff to come back); returns its id.
    fn publish_ok(&self, data: &str) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.publish(data) {
                (200, Some(id)) => return id,
                (status, _) => {
                    assert!(Instant::now() < deadline, "publish stuck at {status}; log:\n{}", self.log())
                }
            }
            std::thread::sleep(Duration::from_millis(50)); // waiting for the reconnection
        }
    }

    fn open_stream(&self) -> Stream {
        let mut socket = TcpStream::connect(self.addr).unwrap();
        socket.write_all(b"GET /home/events?interval_ms=100 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut stream = Stream { socket, seen: Vec::new(), read: 0 };
        stream.ticks(2);
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by its handle
        let _ = self.child.wait();
    }
}

/// An open event stream.
struct Stream {
    socket: TcpStream,
    seen: Vec<u8>,
    /// Bytes of `seen` already looked at by `ticks`.
    read: usize,
}

impl Stream {
    fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 16 * 1024];
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "stream: no {what}; got {:?}", String::from_utf8_lossy(&self.seen));
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.read(&mut buf) {
                Ok(0) => panic!("stream closed waiting for {what}"),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("stream: {e} waiting for {what}"),
            }
        }
    }

    /// Waits for `n` more frames (ticks) than were seen at the last call.
    fn ticks(&mut self, n: usize) {
        let from = self.read;
        self.read_until("ticks", |b| b[from.min(b.len())..].windows(2).filter(|w| w == b"\n\n").count() >= n);
        self.read = self.seen.len();
    }

    /// Waits for the event `id` with `data`.
    fn event(&mut self, id: u64, data: &str) {
        let frame = format!("id: {id}\ndata: {data}\n\n");
        self.read_until(&frame, |b| b.windows(frame.len()).any(|w| w == frame.as_bytes()));
    }

    fn contains(&self, text: &str) -> bool {
        self.seen.windows(text.len()).any(|w| w == text.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------------------
// The cases.

/// The common story: up, a publish delivered, the fault (the backplane unusable: up 0, publishes 503,
/// ticks go on, memory bounded), the fault over, a publish delivered again.
fn survives(fault: Fault) -> (Server, Stream, Fake) {
    let fake = Fake::start(None);
    let mut server = Server::start(&fake.url());
    let mut stream = server.open_stream();
    let id = server.publish_ok("before");
    stream.event(id, "before");
    fake.set_fault(fault);
    server.wait_up(false);
    assert_eq!(server.publish("while broken").0, 503);
    stream.ticks(3);
    server.assert_well();
    fake.set_fault(Fault::None);
    server.wait_up(true);
    let id = server.publish_ok("after");
    stream.event(id, "after");
    server.assert_well();
    (server, stream, fake)
}

#[test]
fn a_deeply_nested_reply_drops_the_link_and_the_server_lives() {
    survives(Fault::Deep);
}

#[test]
fn a_huge_reply_is_refused_before_it_is_buffered() {
    survives(Fault::Huge);
}

#[test]
fn a_garbled_reply_drops_the_link() {
    survives(Fault::Garbled);
}

#[test]
fn a_reset_in_the_middle_of_a_reply_is_a_reconnection() {
    let (_, stream, _) = survives(Fault::ResetMidReply);
    assert!(!stream.contains("data: cut"));
}

#[test]
fn entry_ids_out_of_range_or_decreasing_are_refused() {
    // 999-0 is below the ids already read (they start at 1000): decreasing.
    for id in ["18446744073709551615-0", "0-0", "9007199254740992-0", "-1-0", "999-0"] {
        let (_, stream, _) = survives(Fault::EntryId(id));
        assert!(!stream.contains("data: bad"), "{id} was delivered");
        assert!(!stream.contains("id: 0\n"), "{id}: an id wrapped to 0");
    }
}

#[test]
fn a_hung_redis_is_noticed_and_publishes_get_503() {
    let fake = Fake::start(None);
    let mut server = Server::start(&fake.url());
    let mut stream = server.open_stream();
    fake.set_fault(Fault::Hang);
    // A publish sent into the silence is answered 503 when the link's deadline passes (3 s), well
    // before the request timeout (10 s here).
    let started = Instant::now();
    assert_eq!(server.publish("into the void").0, 503);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    server.wait_up(false);
    stream.ticks(3);
    assert_eq!(server.publish("still hung").0, 503);
    server.assert_well();
    fake.set_fault(Fault::None);
    server.wait_up(true);
    let id = server.publish_ok("after");
    stream.event(id, "after");
}

#[test]
fn a_slow_redis_within_the_limits_still_works() {
    let fake = Fake::start(None);
    let mut server = Server::start(&fake.url());
    let mut stream = server.open_stream();
    fake.set_fault(Fault::Slow);
    for n in 0..3 {
        let data = format!("slow {n}");
        let (status, id) = server.publish(&data);
        assert_eq!(status, 200);
        stream.event(id.unwrap(), &data);
        assert_eq!(server.backplane_up(), Some(1));
    }
    server.assert_well();
}

#[test]
fn an_extra_reply_drops_the_link_and_never_shifts_ids() {
    let fake = Fake::start(None);
    let mut server = Server::start(&fake.url());
    let mut stream = server.open_stream();
    let before = fake.accepted();
    fake.set_fault(Fault::Extra);
    // The publish gets its own id; the extra reply behind it has no request: the links are dropped.
    let (status, id) = server.publish("first");
    assert_eq!(status, 200);
    stream.event(id.unwrap(), "first");
    fake.set_fault(Fault::None);
    let deadline = Instant::now() + PATIENCE;
    while fake.accepted() < before + 2 {
        assert!(Instant::now() < deadline, "the links were not reconnected; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20)); // polling the fake, with a deadline
    }
    let next = server.publish_ok("second");
    assert_ne!(next, 999_999, "a publisher was given the extra reply's id");
    assert_eq!(next, id.unwrap() + 1);
    stream.event(next, "second");
    server.assert_well();
}

#[test]
fn publish_ids_out_of_range_get_503() {
    let fake = Fake::start(None);
    let mut server = Server::start(&fake.url());
    let mut stream = server.open_stream();
    for bad in ["-1", "0", "9007199254740992", "18446744073709551615"] {
        fake.set_fault(Fault::PublishId(bad));
        let (status, id) = server.publish("bad id");
        assert_eq!((status, id), (503, None), "publish answered with :{bad}");
        fake.set_fault(Fault::None);
        let id = server.publish_ok("good");
        stream.event(id, "good");
    }
    assert!(!stream.contains("id: 18446744073709551615"));
    server.assert_well();
}

#[test]
fn auth_from_the_url_with_a_password_or_a_user() {
    let fake = Fake::start(Some(&["s3cret"]));
    let server = Server::start(&format!("redis://:s3cret@127.0.0.1:{}/mio-sse", fake.port));
    let mut stream = server.open_stream();
    let id = server.publish_ok("with a password");
    stream.event(id, "with a password");
    drop(server);

    let fake = Fake::start(Some(&["bob", "s3cret"]));
    let server = Server::start(&format!("redis://bob:s3cret@127.0.0.1:{}", fake.port));
    server.publish_ok("with a user");
}

#[test]
fn a_refused_password_is_retried_and_never_logged() {
    let fake = Fake::start(Some(&["right"]));
    let mut server = Server::spawn(&format!("redis://:hunter2@127.0.0.1:{}", fake.port));
    let mut stream = server.open_stream();
    assert_eq!(server.backplane_up(), Some(0));
    assert_eq!(server.publish("refused").0, 503);
    let before = fake.accepted();
    fake.set_auth(&["hunter2"]);
    server.wait_up(true);
    assert!(fake.accepted() > before, "retried");
    let id = server.publish_ok("accepted");
    stream.event(id, "accepted");
    server.assert_well();
    assert!(!server.log().contains("hunter2"), "the password was logged:\n{}", server.log());
}
