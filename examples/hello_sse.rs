//! The whole idea of mio-sse on one page: one thread, one `Poll`, a slab of connections, one timer queue
//! (the real server does each step in its own file, with limits and tests: README, "A tour").
//! `cargo run --example hello_sse [PORT]`, then `curl -N http://127.0.0.1:8081/`: a tick every second.
use mio::{Events, Interest, Poll, Token, net::TcpListener, net::TcpStream};
use slab::Slab;
use std::{collections::BTreeSet, io::ErrorKind, io::Read, io::Write, time::Duration, time::Instant};

const LISTENER: Token = Token(usize::MAX); // its slot part is never a real slab slot
const MAX_HEAD: usize = 8 * 1024; // a head that does not end within this is not a request we serve
const REQUEST_TIME: Duration = Duration::from_secs(10); // a silent client must not hold a slot forever
const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE); // registered once, not per write
const TICK: Duration = Duration::from_secs(1);
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                      Connection: close\r\n\r\n"; // close-delimited body: no length, no chunking

struct Conn {
    sock: TcpStream,
    key: Token,        // slot and generation, to tell this connection from the slot's next one
    head: Vec<u8>,     // the request head so far, until its blank line
    streaming: bool,   // head answered; from now on only ticks go out
    outbox: Vec<u8>,   // bytes the kernel has not taken yet: a partial write's tail
    deadline: Instant, // this connection's one entry in the timer queue
}

struct Server {
    poll: Poll,
    conns: Slab<Conn>,
    timers: BTreeSet<(Instant, Token)>, // ordered by deadline: the first one is the poll timeout
    serial: u32,                        // one more per connection: the generation in its token
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(8081), |a| a.parse()).map_err(std::io::Error::other)?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    println!("listening on http://{}/", listener.local_addr()?);
    let mut server = Server { poll: Poll::new()?, conns: Slab::new(), timers: BTreeSet::new(), serial: 0 };
    server.poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    loop {
        // The only place the thread waits: until an event, or the earliest deadline in the queue.
        let timeout = server.timers.first().map(|&(at, _)| at.saturating_duration_since(Instant::now()));
        match server.poll.poll(&mut events, timeout) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other?,
        }
        for key in events.iter().map(|event| event.token()) {
            if key == LISTENER {
                server.accept(&listener);
                continue;
            }
            let Some(conn) = server.conn(key) else { continue }; // stale: closed earlier, maybe this batch
            let alive = read(conn); // events are hints: read and write anyway, the calls say what is so
            let answer = alive && !conn.streaming && conn.head.windows(4).any(|w| w == b"\r\n\r\n");
            if answer {
                conn.outbox = [HEAD, tick().as_bytes()].concat(); // any request: the stream, a tick at once
                (conn.streaming, conn.head) = (true, Vec::new()); // from now on only ticks go out
            }
            if !alive || !flush(conn) {
                server.close(key); // a hangup is reaped at once: its slot, fd and timer go now
            } else if answer {
                server.schedule(key, Instant::now() + TICK); // from the request deadline to the tick grid
            }
        }
        // Due timers: a request too slow is closed. A tick finding unsent bytes is skipped (a stale time is
        // worth nothing; a non-reader holds one tick), else written at once: no writable edge would come.
        while let Some(&(at, key)) = server.timers.first().filter(|&&(at, _)| at <= Instant::now()) {
            server.timers.pop_first();
            let Some(conn) = server.conn(key) else { continue };
            if conn.streaming && conn.outbox.is_empty() {
                conn.outbox = tick().into_bytes();
            }
            match conn.streaming && flush(conn) {
                true => server.schedule(key, at + TICK), // the previous deadline plus one: no drift
                false => server.close(key),
            }
        }
    }
}

impl Server {
    /// Accepts until WouldBlock (edge-triggered too). On EMFILE the real server pauses accepting 100 ms.
    fn accept(&mut self, listener: &TcpListener) {
        while let Ok((sock, _)) = listener.accept() {
            self.serial = self.serial.wrapping_add(1);
            let (entry, deadline) = (self.conns.vacant_entry(), Instant::now() + REQUEST_TIME);
            let key = Token(entry.key() << 32 | self.serial as usize); // slot, then generation
            let mut conn = Conn { sock, key, head: vec![], streaming: false, outbox: vec![], deadline };
            if self.poll.registry().register(&mut conn.sock, key, BOTH).is_ok() {
                self.timers.insert((deadline, key)); // (a failure drops this one client)
                entry.insert(conn);
            }
        }
    }

    /// The connection a token names, if still the one meant: a reused slot has a new generation.
    fn conn(&mut self, key: Token) -> Option<&mut Conn> {
        self.conns.get_mut(key.0 >> 32).filter(|c| c.key == key)
    }

    /// Moves a connection's one timer entry: the old one out first, so the queue holds nothing stale.
    fn schedule(&mut self, key: Token, at: Instant) {
        let Some(conn) = self.conn(key) else { return };
        let old = std::mem::replace(&mut conn.deadline, at);
        self.timers.remove(&(old, key));
        self.timers.insert((at, key));
    }

    /// Frees the slot and its timer at once, so a client that hung up costs nothing afterwards.
    fn close(&mut self, key: Token) {
        if self.conn(key).is_some() {
            let mut conn = self.conns.remove(key.0 >> 32);
            self.timers.remove(&(conn.deadline, key));
            let _ = self.poll.registry().deregister(&mut conn.sock); // its fd closes as `conn` drops
        }
    }
}

/// Reads until WouldBlock (an edge not drained does not come again). False: EOF, an error, a huge head.
fn read(conn: &mut Conn) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match conn.sock.read(&mut buf) {
            Ok(n) if n > 0 && conn.streaming => {} // bytes after the request are read and thrown away
            Ok(n) if n > 0 && conn.head.len() + n <= MAX_HEAD => conn.head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // EOF or a reset: the client hung up (for a stream, reading is how we learn it). Or a huge head.
            _ => return false,
        }
    }
}

/// Writes until empty or WouldBlock; a short write's tail waits for the next writable edge. False: gone.
fn flush(conn: &mut Conn) -> bool {
    while !conn.outbox.is_empty() {
        match conn.sock.write(&conn.outbox) {
            Ok(n) if n > 0 => _ = conn.outbox.drain(..n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
    true
}

/// One frame: a `data:` line with the time of day (UTC), ended by the blank line that dispatches it.
fn tick() -> String {
    let secs = std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs()) % 86_400;
    format!("data: {:02}:{:02}:{:02}\n\n", secs / 3600, secs / 60 % 60, secs % 60)
}
