//! The Redis backplane (`--redis`): several instances behind one load balancer deliver the same events,
//! in the same order, with the same ids, and a client may reconnect to any of them.
//!
//! # Data model
//!
//! One Lua script makes each publish atomic: `INCR` a counter (seeded from the clock in microseconds the
//! first time, so ids keep increasing across a Redis restart without persistence, as they do across
//! ours), then `XADD` the event to a capped stream (`MAXLEN ~ --replay-events`) under the entry id
//! `<id>-0`. Every instance reads the stream with `XREAD BLOCK` on a second connection and appends what
//! it reads to its hub, its own publishes included: there is one order, Redis's. At start, the last
//! `--replay-events` entries are read back, so replay works on any instance, including after the instance
//! that published is gone. After a reconnection an instance reads on from the last entry it had, so
//! nothing published meanwhile is missed while Redis keeps it; what Redis trimmed meanwhile is a gap, and
//! streams behind it are closed to come back with `Last-Event-ID` and get the `lost` signal, as with the
//! local replay buffer. Every entry also carries an *epoch* (the counter's seed): when Redis comes back
//! without its data (no persistence), new entries carry a new epoch and ids that start over from the
//! clock; the instance then starts its ring over and its caught-up streams carry on without a break.
//!
//! # Failure semantics
//!
//! While Redis is unreachable the instance keeps serving its streams and ticks, answers publishes with 503
//! (nothing is queued: a publisher must know its event was not taken), shows `mio_sse_backplane_up 0`,
//! logs once, and reconnects with exponential backoff and jitter (100 ms doubling to 5 s).
//!
//! # In the loop
//!
//! Both connections are non-blocking sockets on the server's `Poll`, framed with `redis-protocol` (RESP2);
//! `XREAD BLOCK` blocks Redis's side of the connection, never ours.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};

use crate::hub::Hub;
use crate::jitter::Jitter;
use crate::token::{BACKPLANE_COMMAND as COMMAND_TOKEN, BACKPLANE_READ as READ_TOKEN};

/// How long one `XREAD` may block on Redis's side before it answers empty and is sent again.
const BLOCK_MS: &str = "1000";

/// The publish script: the counter, seeded from the clock once (with an epoch key, the seed, that names
/// this life of Redis's data), then the capped stream entry, which carries the epoch. (Lua numbers are
/// doubles: `%.0f` writes the id in full, where `..` would write `1.79e+15`; ids stay below 2^53.)
const PUBLISH_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then \
      redis.call('SET', KEYS[1], ARGV[4]) redis.call('SET', KEYS[3], ARGV[4]) end \
    local id = redis.call('INCR', KEYS[1]) \
    local epoch = redis.call('GET', KEYS[3]) or '' \
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], string.format('%.0f', id) .. '-0', \
      'e', ARGV[1], 'd', ARGV[2], 'x', epoch) \
    return id";

/// What the reading link's next reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// `XREVRANGE`: the newest entries, for replay (first connection).
    Backlog,
    /// `XREAD`: entries after the last one.
    Live,
}

/// The outcome of a publish sent to Redis, for whoever waits on it (`waiter`: the tag the publish was
/// sent with; the server uses the connection's key, and the backplane never looks inside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<W> {
    pub waiter: W,
    pub result: Result<u64, String>,
}

/// One connection to Redis.
#[derive(Default)]
struct Link {
    socket: Option<TcpStream>,
    connected: bool,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

impl Link {
    fn send(&mut self, args: &[&[u8]]) {
        let frame = OwnedFrame::Array(args.iter().map(|a| OwnedFrame::BulkString(a.to_vec())).collect());
        let mut buf = vec![0u8; frame.encode_len(false)];
        if let Ok(n) = encode(&mut buf, &frame, false) {
            self.out.extend_from_slice(&buf[..n]);
        }
    }

    /// Writes what is queued and reads what arrived, to `WouldBlock`. Errors end the link.
    fn pump(&mut self) -> io::Result<()> {
        let Some(socket) = self.socket.as_mut() else { return Err(io::ErrorKind::NotConnected.into()) };
        if !self.connected {
            if let Some(e) = socket.take_error()? {
                return Err(e);
            }
            if socket.peer_addr().is_err() {
                return Ok(()); // still connecting
            }
            self.connected = true;
        }
        while !self.out.is_empty() {
            match socket.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match socket.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete reply, if one has arrived.
    fn next_reply(&mut self) -> io::Result<Option<OwnedFrame>> {
        match decode(&self.inbuf) {
            Ok(Some((frame, used))) => {
                self.inbuf.drain(..used);
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))),
        }
    }
}

/// The backplane: two links, the publishes waiting for their ids, the reading position, the health.
/// `W` tags a publish with whoever waits for its answer.
pub struct Backplane<W> {
    addr: SocketAddr,
    counter_key: String,
    log_key: String,
    epoch_key: String,
    /// The epoch of the last entry read: when entries come with another, Redis lost its data and the
    /// ids started over.
    epoch: Option<String>,
    max_len: String,
    command: Link,
    read: Link,
    /// Who waits for each publish's id, in the order the publishes were sent.
    waiting: VecDeque<W>,
    /// The stream entry id read last (`0-0` before anything).
    last_entry: String,
    /// What the reading link's next reply answers.
    reading: Reading,
    up: bool,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    jitter: Jitter,
}

impl<W: Copy> Backplane<W> {
    /// A backplane for `redis://host:port[/prefix]` (an IP address; `prefix` names the keys, default
    /// `mio-sse`), keeping `max_len` entries in Redis.
    pub fn new(url: &str, max_len: usize) -> Result<Backplane<W>, String> {
        let rest = url.strip_prefix("redis://").ok_or("--redis must be redis://HOST:PORT[/PREFIX]")?;
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, "mio-sse"));
        let addr: SocketAddr =
            authority.parse().map_err(|_| format!("--redis: {authority} is not IP:PORT"))?;
        let prefix = if prefix.is_empty() { "mio-sse" } else { prefix };
        Ok(Backplane {
            addr,
            counter_key: format!("{prefix}:seq"),
            log_key: format!("{prefix}:log"),
            epoch_key: format!("{prefix}:epoch"),
            epoch: None,
            max_len: max_len.max(1).to_string(),
            command: Link::default(),
            read: Link::default(),
            waiting: VecDeque::new(),
            last_entry: "0-0".into(),
            reading: Reading::Backlog,
            up: false,
            reconnect_at: Some(Instant::now()),
            backoff: Duration::from_millis(100),
            jitter: Jitter::from_entropy(),
        })
    }

    /// Whether both links are connected.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// For the connection tests: publishes are taken (they go nowhere) without a Redis.
    #[cfg(test)]
    pub fn assume_up(&mut self) {
        self.up = true;
    }

    /// When the backplane wants to be called again (a reconnection), for the poll timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.reconnect_at
    }

    /// Sends a publish; returns false (nothing sent) while Redis is down.
    pub fn publish(&mut self, waiter: W, event: Option<&str>, data: &str) -> bool {
        if !self.up {
            return false;
        }
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros()).to_string();
        let (counter, log, epoch) = (self.counter_key.clone(), self.log_key.clone(), self.epoch_key.clone());
        let max_len = self.max_len.clone();
        self.command.send(&[
            b"EVAL",
            PUBLISH_SCRIPT.as_bytes(),
            b"3",
            counter.as_bytes(),
            log.as_bytes(),
            epoch.as_bytes(),
            event.unwrap_or("").as_bytes(),
            data.as_bytes(),
            max_len.as_bytes(),
            seed.as_bytes(),
        ]);
        self.waiting.push_back(waiter);
        // Written at once: the link's writable edge came long ago and will not come again for this. A
        // failure here shows on the link's next event.
        let _ = self.command.pump();
        true
    }

    /// Reconnects if it is time.
    pub fn on_deadline(&mut self, registry: &Registry, now: Instant) {
        if self.reconnect_at.is_none_or(|at| at > now) {
            return;
        }
        self.reconnect_at = None;
        let open = |link: &mut Link, token| -> io::Result<()> {
            let mut socket = TcpStream::connect(self.addr)?;
            socket.set_nodelay(true)?;
            registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
            *link = Link { socket: Some(socket), ..Link::default() };
            Ok(())
        };
        if let Err(e) = open(&mut self.command, COMMAND_TOKEN).and_then(|()| open(&mut self.read, READ_TOKEN))
        {
            log::debug!("backplane: connect to {}: {e}", self.addr);
            self.schedule_reconnect(now);
            return;
        }
        // The reading link reads the backlog once (for replay), then reads on from its newest entry;
        // after a reconnection it reads on at once from the last entry it had.
        let (log_key, count) = (self.log_key.clone(), self.max_len.clone());
        if self.last_entry == "0-0" {
            self.reading = Reading::Backlog;
            self.read.send(&[b"XREVRANGE", log_key.as_bytes(), b"+", b"-", b"COUNT", count.as_bytes()]);
        } else {
            self.reading = Reading::Live;
            let last = self.last_entry.clone();
            self.read.send(&[b"XREAD", b"COUNT", b"1000", b"STREAMS", log_key.as_bytes(), last.as_bytes()]);
        }
        self.command.send(&[b"PING"]);
        self.waiting.clear();
    }

    /// A readiness event on one of the links: write, read, and act on every complete reply. Publishes that
    /// got their id (or failed) are returned; events read are appended to `hub`.
    pub fn on_event(
        &mut self,
        token: Token,
        registry: &Registry,
        hub: &mut Hub,
        now: Instant,
    ) -> Vec<Published<W>> {
        let mut done = Vec::new();
        if let Err(e) = self.drive(token, hub, &mut done) {
            self.down(registry, now, &e.to_string(), &mut done);
        }
        done
    }

    fn drive(&mut self, token: Token, hub: &mut Hub, done: &mut Vec<Published<W>>) -> io::Result<()> {
        if token == COMMAND_TOKEN {
            self.command.pump()?;
            while let Some(reply) = self.command.next_reply()? {
                let (waiter, result) = match reply {
                    OwnedFrame::SimpleString(s) if s == b"PONG" => {
                        self.mark_up(); // the command link answers: ready for publishes
                        continue;
                    }
                    OwnedFrame::Integer(id) => (self.waiting.pop_front(), Ok(id as u64)),
                    OwnedFrame::Error(e) => (self.waiting.pop_front(), Err(e)),
                    other => (self.waiting.pop_front(), Err(format!("unexpected reply {other:?}"))),
                };
                if let Some(waiter) = waiter {
                    done.push(Published { waiter, result });
                }
            }
            self.command.pump()?; // send anything queued while reading
        } else {
            self.read.pump()?;
            while let Some(reply) = self.read.next_reply()? {
                let mut entries = entries_of(&reply, self.reading == Reading::Live)?;
                if self.reading == Reading::Backlog {
                    entries.reverse(); // XREVRANGE gives newest first
                    self.reading = Reading::Live;
                }
                for Entry { id: entry_id, event, data, epoch } in entries {
                    if self.epoch.is_some() && epoch.is_some() && epoch != self.epoch {
                        log::warn!("backplane: Redis's data started over (a new epoch): ids start over");
                        hub.rebase();
                    }
                    if epoch.is_some() {
                        self.epoch = epoch;
                    }
                    if let Some(id) = entry_id.split('-').next().and_then(|n| n.parse::<u64>().ok()) {
                        hub.append(id, event.as_deref(), &data);
                    }
                    self.last_entry = entry_id;
                }
                let (log_key, last) = (self.log_key.clone(), self.last_entry.clone());
                self.read.send(&[
                    b"XREAD",
                    b"BLOCK",
                    BLOCK_MS.as_bytes(),
                    b"COUNT",
                    b"1000",
                    b"STREAMS",
                    log_key.as_bytes(),
                    last.as_bytes(),
                ]);
            }
            self.read.pump()?;
        }
        Ok(())
    }

    fn mark_up(&mut self) {
        if !self.up {
            log::info!("backplane: connected to Redis at {}", self.addr);
        }
        self.up = true;
        self.backoff = Duration::from_millis(100);
    }

    /// A link failed: close both, fail the publishes waiting on them, and try again later.
    fn down(&mut self, registry: &Registry, now: Instant, why: &str, done: &mut Vec<Published<W>>) {
        if self.up {
            log::warn!("backplane: lost Redis at {} ({why}); publishes get 503 until it is back", self.addr);
        }
        self.up = false;
        for link in [&mut self.command, &mut self.read] {
            if let Some(mut socket) = link.socket.take() {
                let _ = registry.deregister(&mut socket);
            }
        }
        for waiter in self.waiting.drain(..) {
            done.push(Published { waiter, result: Err("the backplane went down".into()) });
        }
        self.schedule_reconnect(now);
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let ms = self.backoff.as_millis() as u64;
        let wait = Duration::from_millis(self.jitter.between(ms / 2, ms));
        self.reconnect_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }
}

/// One stream entry: its id (`<id>-0`), event name, data, and the epoch it was written in.
struct Entry {
    id: String,
    event: Option<String>,
    data: String,
    epoch: Option<String>,
}

/// Every entry in a reply: XREVRANGE's is a list of entries; XREAD's (`nested`) is `[[key, [entries]]]`,
/// or nil when its block ran out empty.
fn entries_of(reply: &OwnedFrame, nested: bool) -> io::Result<Vec<Entry>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected stream reply");
    let list = match reply {
        OwnedFrame::Null => return Ok(Vec::new()),
        OwnedFrame::Error(e) => return Err(io::Error::other(e.clone())),
        OwnedFrame::Array(items) if !nested => items,
        OwnedFrame::Array(items) => match items.first() {
            Some(OwnedFrame::Array(stream)) => match stream.get(1) {
                Some(OwnedFrame::Array(entries)) => entries,
                _ => return Err(bad()),
            },
            _ => return Ok(Vec::new()),
        },
        _ => return Err(bad()),
    };
    let text = |f: &OwnedFrame| match f {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    };
    let mut out = Vec::new();
    for entry in list {
        let OwnedFrame::Array(parts) = entry else { return Err(bad()) };
        let (Some(id), Some(OwnedFrame::Array(fields))) = (parts.first().and_then(text), parts.get(1)) else {
            return Err(bad());
        };
        let (mut event, mut data, mut epoch) = (None, String::new(), None);
        for pair in fields.chunks(2) {
            match (pair.first().and_then(text).as_deref(), pair.get(1).and_then(text)) {
                (Some("e"), Some(e)) if !e.is_empty() => event = Some(e),
                (Some("d"), Some(d)) => data = d,
                (Some("x"), Some(x)) if !x.is_empty() => epoch = Some(x),
                _ => {}
            }
        }
        out.push(Entry { id, event, data, epoch });
    }
    Ok(out)
}
