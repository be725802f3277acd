//! One connection to Redis: a non-blocking socket on the server's `Poll`, what is queued to write, the
//! replies being read, and the requests still waiting for their reply, each with when it was sent.
//!
//! # Rules
//!
//! - **Replies are matched to requests.** RESP has no request ids: the n-th reply answers the n-th
//!   request. Each request sent pushes what it expects ([`Expect`]); each reply pops one. A reply with
//!   nothing waiting is [`Failure::OutOfStep`]: from there on every reply would go to the wrong request
//!   (a publisher would be told another's id), so the link is dropped rather than trusted.
//! - **Bounded reads per turn**, as for every socket of the loop: at most [`READS_PER_TURN`] reads of
//!   16 KiB per call; a link cut short by that bound is marked ([`Link::again`]) and its owner asks the
//!   loop not to wait ([`super::Backplane::deadline`]), since its readable edge will not come again.
//! - **Writes outside a writable event are written at once** ([`Link::flush`], which never reads: a read
//!   there would consume the readable edge with nobody to act on what it read).
//! - **Every wait has a deadline** ([`Link::deadline`]): the connect ([`CONNECT_TIMEOUT`]) and the
//!   oldest request waiting (its [`Expect::limit`]). Past it the link is [`Failure::Timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::resp::{self, ProtocolError, Reader, Reply};

/// Reads per call before the link yields to the rest of the loop (16 × 16 KiB = 256 KiB a turn).
pub const READS_PER_TURN: usize = 16;
const READ_CHUNK: usize = 16 * 1024;
/// How long a TCP connect may take (Redis is near: a second is already a bad sign).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command (AUTH, PING, a publish's EVAL) may wait for its reply.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(3);
/// How long `XREAD BLOCK` may take past its own block time before Redis counts as hung.
pub const BLOCK_MARGIN: Duration = Duration::from_secs(2);
/// How long one page of the backlog (`XREVRANGE`) may take: up to 16 MiB over a slow link.
pub const PAGE_LIMIT: Duration = Duration::from_secs(5);

/// What a request sent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<W> {
    /// `AUTH`: `+OK`.
    Auth,
    /// `PING`: `+PONG`.
    Ping,
    /// A publish's `EVAL`: its id, for `W`.
    Publish(W),
    /// `XREVRANGE`: a page of the newest entries (for replay).
    Backlog,
    /// `XREAD BLOCK ms`: entries after the last one, or nil after `ms`.
    Live { block: Duration },
}

impl<W> Expect<W> {
    /// How long the reply may take.
    pub fn limit(&self) -> Duration {
        match self {
            Expect::Auth | Expect::Ping | Expect::Publish(_) => COMMAND_LIMIT,
            Expect::Backlog => PAGE_LIMIT,
            Expect::Live { block } => *block + BLOCK_MARGIN,
        }
    }

    /// Its name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Expect::Auth => "AUTH",
            Expect::Ping => "PING",
            Expect::Publish(_) => "a publish",
            Expect::Backlog => "XREVRANGE",
            Expect::Live { .. } => "XREAD",
        }
    }
}

/// Why a link was dropped. Its text is logged: it never holds a password or a reply's contents.
#[derive(Debug)]
pub enum Failure {
    /// Connecting, reading or writing failed, or Redis closed the connection.
    Io(io::Error),
    /// A reply broke RESP2 or our limits.
    Protocol(ProtocolError),
    /// A reply arrived with no request waiting for it.
    OutOfStep(&'static str),
    /// A reply that makes no sense for its request (a bad id, the wrong type).
    BadReply(String),
    /// Redis refused a command the link needs (`AUTH`, `XREAD`).
    Refused(String),
    /// No connection or no reply in time.
    Timeout(&'static str),
}

impl Failure {
    /// A short name of the kind, to log each kind once an episode.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Io(_) => "io",
            Failure::Protocol(_) | Failure::OutOfStep(_) | Failure::BadReply(_) => "protocol",
            Failure::Refused(_) => "refused",
            Failure::Timeout(_) => "timeout",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "{e}"),
            Failure::Protocol(e) => write!(f, "protocol error: {e}"),
            Failure::OutOfStep(kind) => write!(f, "out of step: {kind} with no request waiting"),
            Failure::BadReply(why) => write!(f, "bad reply: {why}"),
            Failure::Refused(why) => write!(f, "refused: {why}"),
            Failure::Timeout(what) => write!(f, "timed out: {what}"),
        }
    }
}

/// One connection to Redis.
pub struct Link<W> {
    socket: TcpStream,
    /// Set until the TCP connect completes: when it started.
    connecting_since: Option<Instant>,
    out: Vec<u8>,
    reader: Reader,
    /// The requests sent and not yet answered, oldest first, with when each was sent.
    waiting: VecDeque<(Expect<W>, Instant)>,
    /// When a reply last arrived (or the link opened): the command link pings after a quiet second.
    pub last_reply: Instant,
    /// Set when a read bound cut the link short (at that instant): drive it again without waiting.
    pub again: Option<Instant>,
}

impl<W: Copy> Link<W> {
    /// Starts a non-blocking connect and registers the socket for `token`.
    pub fn open(addr: SocketAddr, registry: &Registry, token: Token, now: Instant) -> io::Result<Link<W>> {
        let mut socket = TcpStream::connect(addr)?;
        socket.set_nodelay(true)?;
        registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Link {
            socket,
            connecting_since: Some(now),
            out: Vec::new(),
            reader: Reader::default(),
            waiting: VecDeque::new(),
            last_reply: now,
            again: None,
        })
    }

    /// Deregisters the socket (dropping the link closes it) and gives back what waited for a reply.
    pub fn close(mut self, registry: &Registry) -> impl Iterator<Item = Expect<W>> {
        if let Err(e) = registry.deregister(&mut self.socket) {
            log::debug!("backplane: deregister: {e}");
        }
        self.waiting.into_iter().map(|(expect, _)| expect)
    }

    /// Queues a request and what its reply will be.
    pub fn send(&mut self, args: &[&[u8]], expect: Expect<W>, now: Instant) {
        resp::command(&mut self.out, args);
        self.waiting.push_back((expect, now));
    }

    /// Requests waiting for a reply.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Bytes queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.out.len()
    }

    /// When the link has waited too long: for its connect, or for the oldest reply.
    pub fn deadline(&self) -> Option<(Instant, &'static str)> {
        if let Some(since) = self.connecting_since {
            return Some((since + CONNECT_TIMEOUT, "connecting"));
        }
        self.waiting.front().map(|(expect, sent)| (*sent + expect.limit(), expect.name()))
    }

    /// Completes the connect if it is done, then writes what is queued, to `WouldBlock`. Never reads.
    pub fn flush(&mut self) -> Result<(), Failure> {
        if self.connecting_since.is_some() {
            if let Some(e) = self.socket.take_error().map_err(Failure::Io)? {
                return Err(Failure::Io(e));
            }
            if self.socket.peer_addr().is_err() {
                return Ok(()); // still connecting: the writable edge comes when it is done
            }
            self.connecting_since = None;
        }
        while !self.out.is_empty() {
            match self.socket.write(&self.out) {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        Ok(())
    }

    /// Reads what arrived, to `WouldBlock` or [`READS_PER_TURN`] reads (then [`Link::again`] is set).
    pub fn fill(&mut self, now: Instant) -> Result<(), Failure> {
        self.again = None;
        if self.connecting_since.is_some() {
            return Ok(());
        }
        let mut chunk = [0u8; READ_CHUNK];
        for _ in 0..READS_PER_TURN {
            match self.socket.read(&mut chunk) {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => self.reader.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
            if self.reader.buffered() > resp::MAX_REPLY_BYTES + READ_CHUNK {
                break; // the reader refuses it at its next reply: read no more meanwhile
            }
        }
        self.again = Some(now);
        Ok(())
    }

    /// The next complete reply and the request it answers.
    pub fn next_reply(&mut self, now: Instant) -> Result<Option<(Reply, Expect<W>)>, Failure> {
        let Some(reply) = self.reader.next_reply().map_err(Failure::Protocol)? else { return Ok(None) };
        let Some((expect, _)) = self.waiting.pop_front() else {
            return Err(Failure::OutOfStep(reply.kind()));
        };
        self.last_reply = now;
        Ok(Some((reply, expect)))
    }
}
