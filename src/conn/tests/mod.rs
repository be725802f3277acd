//! The connection state machine, driven without a network: a [`FakeSocket`] answers reads and writes as
//! the test scripts them (`WouldBlock`, short writes, EOF, resets, `EINTR`), and time is passed in, so
//! every state and every transition can be shown in a few lines, exactly and at once.
//!
//! | file          | states                                                                    |
//! |---------------|---------------------------------------------------------------------------|
//! | `requests`    | `ReadingRequest`, `ReadingBody`: splits, pipelining, bounds, 408, idle     |
//! | `publishing`  | `ReadingBody` → `AwaitingPublish` → answer; a late answer; a backplane down |
//! | `finite`      | `/home/stream?count=N&done=1`: N ticks, `[DONE]`, the FIN; a POST's body  |
//! | `streaming`   | `Streaming`: ticks on their grid, stalls, heartbeats, catch-up, input      |
//! | `closing`     | `Draining`, `Lingering`, `Closed`: lingering close, shutdown, resets       |
//! | `tls`         | the TLS socket: handshake, close_notify, alerts, a full kernel, over a fake |
//! | `topics`      | `Streaming` on topics: isolation, ticks, one Last-Event-ID, limits, leaving |

mod closing;
mod finite;
mod publishing;
mod requests;
mod streaming;
mod tls;
mod topics;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use clap::Parser;

use super::{Connection, Next, Socket, State};
use crate::config::Config;
use crate::context::LoopContext;
use crate::static_files::StaticFiles;
use crate::token::ConnKey;

/// One scripted outcome of a `read`.
#[derive(Debug)]
pub enum ReadStep {
    /// Bytes that arrived (a read takes as many as fit; the rest stays for the next read).
    Data(Vec<u8>),
    /// `EINTR`: a signal interrupted the call.
    Interrupted,
    /// The peer's FIN.
    Eof,
    /// An error, e.g. `ConnectionReset`.
    Error(io::ErrorKind),
}

/// A socket whose kernel is the test: reads follow a script (then `WouldBlock`), writes are taken up to
/// a budget (then `WouldBlock`), and everything taken is kept in `written`.
#[derive(Debug, Default)]
pub struct FakeSocket {
    pub reads: VecDeque<ReadStep>,
    /// Every byte the "kernel" took, in order.
    pub written: Vec<u8>,
    /// Bytes the send buffer takes before `WouldBlock`; `None`: all of them.
    pub write_budget: Option<usize>,
    /// `EINTR` for this many writes before the next one goes through.
    pub write_interrupts: usize,
    /// Every write fails with this (the peer is gone).
    pub write_error: Option<io::ErrorKind>,
    /// The write side was shut (a FIN was sent).
    pub write_shut: bool,
    /// `read` calls made.
    pub read_calls: usize,
}

impl Read for FakeSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_calls += 1;
        match self.reads.pop_front() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(ReadStep::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
            Some(ReadStep::Eof) => Ok(0),
            Some(ReadStep::Error(kind)) => Err(kind.into()),
            Some(ReadStep::Data(mut bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.reads.push_front(ReadStep::Data(bytes.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

impl Write for FakeSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.write_error {
            return Err(kind.into());
        }
        if self.write_interrupts > 0 {
            self.write_interrupts -= 1;
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.write_budget.map_or(buf.len(), |budget| budget.min(buf.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(budget) = &mut self.write_budget {
            *budget -= n;
        }
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for FakeSocket {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.write_shut = true;
        Ok(())
    }
}

/// One connection over a fake socket, its loop context, and the test's clock.
pub struct Harness {
    pub cx: LoopContext,
    pub conn: Connection<FakeSocket>,
    pub now: Instant,
}

impl Harness {
    /// A fresh connection, accepted at `now`, on a server started with `args`.
    pub fn new(args: &[&str]) -> Harness {
        let config = Config::try_parse_from(std::iter::once("mio-sse").chain(args.iter().copied()))
            .expect("test flags parse");
        let now = Instant::now();
        let mut cx = LoopContext::new(config, StaticFiles::builtin(), now).expect("loop context");
        let key = ConnKey { slot: 0, generation: 1 };
        cx.handling = key; // as the server sets it before each handler
        let peer = "127.0.0.1:40000".parse().expect("address");
        let conn = Connection::new(FakeSocket::default(), peer, key, false, &cx, now);
        Harness { cx, conn, now }
    }

    pub fn socket(&mut self) -> &mut FakeSocket {
        self.conn.socket_mut()
    }

    /// Bytes arrive (not yet read: call [`Harness::readable`]).
    pub fn arrive(&mut self, bytes: &[u8]) {
        self.socket().reads.push_back(ReadStep::Data(bytes.to_vec()));
    }

    /// Scripts a read outcome other than data.
    pub fn arrive_step(&mut self, step: ReadStep) {
        self.socket().reads.push_back(step);
    }

    /// A readable event: the connection reads and acts.
    pub fn readable(&mut self) -> Next {
        self.conn.on_readiness(true);
        self.conn.drive(&mut self.cx, self.now)
    }

    /// A writable event: the connection writes what is pending (and reads nothing new).
    pub fn writable(&mut self) -> Next {
        self.conn.drive(&mut self.cx, self.now)
    }

    /// The kernel takes `bytes` more (the peer read some).
    pub fn allow_writes(&mut self, bytes: Option<usize>) {
        self.socket().write_budget = bytes;
    }

    /// The connection's deadline, as the moment it stands for.
    pub fn deadline(&self) -> Option<Instant> {
        self.conn.deadline().map(|stamp| self.cx.clock.instant(stamp, self.now))
    }

    /// Moves the clock to the connection's deadline and fires it.
    pub fn fire_deadline(&mut self) -> Next {
        let deadline = self.deadline().expect("a deadline is armed");
        self.now = self.now.max(deadline);
        self.conn.on_deadline(&mut self.cx, self.now)
    }

    /// Moves the clock.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// What the kernel took since the last call, as text.
    pub fn take_written(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.socket().written)).expect("UTF-8 output")
    }

    pub fn state(&self) -> &'static str {
        self.conn.state().name()
    }

    /// The server's close: the last change of state.
    pub fn close(&mut self, next: Next) {
        let Next::Close(reason) = next else { panic!("expected a close, got {next:?}") };
        self.conn.close(&mut self.cx, self.now, reason);
    }
}

/// `GET path` with `Host`, keep-alive (HTTP/1.1's default).
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// A publish of `body`.
pub fn post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// How many times `needle` occurs in `haystack`.
pub fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The state a harness is in is one of the states of [`State`] (checked by name).
pub fn is_reading_idle(conn: &Connection<FakeSocket>) -> bool {
    matches!(conn.state(), State::ReadingRequest { head_started: false, .. })
}
/// What keeps a stream small (README's memory figure depends on it): a stream's state is 40 bytes, and
/// the other states fit in it without a tag of their own.
#[test]
fn the_state_of_a_stream_takes_40_bytes() {
    use std::mem::size_of;
    assert_eq!(size_of::<super::Stream>(), 40);
    assert_eq!(size_of::<State>(), 40);
    assert_eq!(size_of::<Option<crate::clock::Stamp>>(), 4);
    // Over a 4-byte socket (a release build's `mio::net::TcpStream`; a debug build's carries 8 more),
    // the whole connection: what a stream costs in the slab.
    assert_eq!(size_of::<Connection<std::net::TcpStream>>(), 80);
}
