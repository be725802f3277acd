//! One subscriber connection of the load generator: a non-blocking SSE client on mio.
//!
//! Phases: connecting (non-blocking `connect`, from a chosen source address) → writing the request →
//! reading the response head (`httparse`) → reading the body: close-delimited or chunked, then SSE through
//! the standard-following [`Parser`]. What it finds is returned as [`Seen`] items for the driver to count;
//! the client keeps only what a browser keeps between reconnections (the last event id, the retry time).
//!
//! Reading costs no allocation per event in the steady state (a fan-out run reads millions of events on the
//! core the server also needs): the parser lends each event from its own reused buffers, the client copies
//! its data and id into one text buffer shared by every client ([`Scratch::text`]) and reports them as
//! [`Span`]s of it, and a chunked body is decoded into one shared buffer too.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::chunked::Dechunker;
use super::tls::{self, TlsIo};
use crate::scratch::append;
pub use crate::scratch::{Scratch, Span};
pub use crate::target::Target;
use mio_sse_wire::parser::{ItemRef, Parser};

/// Longest SSE line the client accepts from a server (1 MiB).
pub const MAX_LINE: usize = 1 << 20;
/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// `connect` on a non-blocking socket: the handshake is under way.
const EINPROGRESS: i32 = 115;

/// What a client read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The response head: its status and whether it is an event stream.
    Head { status: u16, event_stream: bool },
    /// A comment line (`: ...`), such as a server's greeting or keep-alive.
    Comment,
    /// A dispatched event: its data, and its id if its own lines set one, as spans of [`Scratch::text`]
    /// (valid until the next [`Client::drive`]).
    Event { data: Span, id: Option<Span> },
    /// The connection ended: the peer closed, reset, or the stream was malformed.
    Ended(String),
    /// The body ended cleanly after the head: the server closed (with `close_notify` over TLS) or sent
    /// the last chunk. Whether that completes the stream or is a drop is the driver's call.
    Completed,
}

/// How far a drive reads, by what woke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// A readiness event without a hangup: a plain read that does not fill the buffer emptied the socket,
    /// and whatever comes after it (bytes, a FIN) raises a new edge, so the drain may end there.
    UntilShort,
    /// A hangup was reported (its FIN may sit behind the data read, and no edge will come for it: only a
    /// read that returns 0 finds it), or no event at all: read to `WouldBlock`.
    UntilWouldBlock,
}

impl Reads {
    /// What a readiness event allows.
    pub fn after(event: &mio::event::Event) -> Reads {
        if event.is_read_closed() || event.is_error() { Reads::UntilWouldBlock } else { Reads::UntilShort }
    }
}

/// Where the connection is. The response head's bytes live in the phase that reads them: a held stream
/// (in `Body`) carries no room for a head.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// The bytes of the head so far.
    Head(Vec<u8>),
    Body,
    Done,
}

/// A connection's transport. One field for both, so a plain stream pays nothing for TLS (the
/// subscriber table's entry size is tested).
enum Io {
    /// The request's unsent tail (empty once sent whole).
    Plain { unsent: Box<[u8]> },
    /// `https://`: the TLS state, the request queued in it. Boxed: a `ClientConnection` is large.
    Tls(Box<TlsIo>),
}

/// One SSE client connection.
pub struct Client {
    pub socket: TcpStream,
    /// How the request goes out, and the bytes come in: plain, or through TLS.
    io: Io,
    phase: Phase,
    /// Boxed: chunked SSE is rare, and every connection would otherwise carry its room.
    dechunk: Option<Box<Dechunker>>,
    /// The parser outlives a connection: it holds the last event id, as a browser does. Boxed, so that
    /// it moves between the connection and its subscriber as a pointer, and each holds room for one.
    pub parser: Box<Parser>,
    /// Reconnection time from `retry:` (ms; 32 bits, as the subscriber keeps it: 49 days is plenty).
    pub retry_ms: u32,
    /// When this attempt started.
    pub attempt_started: Instant,
    /// When bytes last arrived, in ms after the attempt started (4 bytes, not a 16-byte `Instant`:
    /// every held stream carries it; saturating after 49 days).
    last_bytes_ms: u32,
    /// Stop reading after the head (a slow reader: the server's buffers fill).
    pub stall: bool,
    /// The head was `200 text/event-stream`: this attempt streamed (an end is then a drop, not a failure
    /// to connect).
    pub streamed: bool,
}

impl Client {
    /// Starts a non-blocking connection from `source` (port chosen by the kernel) to `addr`, one of
    /// `target`'s, sending `Last-Event-ID` if the parser has one. The error is the failure's cause, as
    /// counted.
    pub fn connect(
        target: &Target,
        addr: SocketAddr,
        source: Option<IpAddr>,
        parser: Box<Parser>,
        retry_ms: u32,
        small_rcvbuf: bool,
    ) -> Result<Client, String> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket_error = |e: io::Error| format!("socket: {}", short(&e));
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(socket_error)?;
        socket.set_nonblocking(true).map_err(socket_error)?;
        socket.set_tcp_nodelay(true).map_err(socket_error)?;
        if small_rcvbuf {
            socket.set_recv_buffer_size(2048).map_err(socket_error)?;
        }
        if let Some(ip) = source {
            // The port is chosen at connect, from the whole 4-tuple, not reserved here: many more
            // streams from one source address (best effort: without it, bind picks as before).
            let _ =
                nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true);
            // EADDRNOTAVAIL here means the address is not this machine's (at `connect` it means the
            // address has no free port left): say which.
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| format!("bind {ip}: {}", bind_error(&e)))?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("connect: {}", short(&e))),
        }
        let request = target.request(parser.last_event_id());
        if target.https {
            let config = target.tls.clone().ok_or("tls: no client configuration")?;
            let tls = TlsIo::new(config, tls::server_name(&target.host)?, &request)?;
            let now = Instant::now();
            let socket = TcpStream::from_std(socket.into());
            return Ok(Client::new(socket, Io::Tls(Box::new(tls)), parser, retry_ms, small_rcvbuf, now));
        }
        let now = Instant::now();
        let std_socket: std::net::TcpStream = socket.into();
        // On loopback the handshake is usually done already: send the request now rather than a loop
        // turn later (an overloaded client would otherwise keep a server's first-request timer running).
        // `WouldBlock` means still connecting (the writable event will say when). Any other error is the
        // connection's end, and the kernel reports it once: dropping it here would leave a dead socket
        // waited on until the connect timeout (a refused port looked like a 10 s hang).
        let written = match (&std_socket).write(&request) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::NotConnected => 0,
            Err(e) => return Err(format!("connect: {}", short(&e))),
        };
        // Sent whole already (the usual case): keep nothing of it.
        let unsent = request[written..].into();
        let socket = TcpStream::from_std(std_socket);
        Ok(Client::new(socket, Io::Plain { unsent }, parser, retry_ms, small_rcvbuf, now))
    }

    fn new(
        socket: TcpStream,
        io: Io,
        parser: Box<Parser>,
        retry_ms: u32,
        stall: bool,
        now: Instant,
    ) -> Client {
        Client {
            socket,
            io,
            phase: Phase::Connecting,
            dechunk: None,
            parser,
            retry_ms,
            attempt_started: now,
            last_bytes_ms: 0,
            stall,
            streamed: false,
        }
    }

    /// Whether the response head has arrived.
    pub fn is_streaming(&self) -> bool {
        self.phase == Phase::Body
    }

    /// Does what the socket allows: finish connecting, write the request, read (bounded, as far as
    /// `reads` says) and parse. Appends what it saw to `seen`. Returns true when the read bound stopped it
    /// before `WouldBlock`: the caller must drive it again, as no new edge will come for bytes already
    /// there.
    pub fn drive(&mut self, scratch: &mut Scratch, seen: &mut Vec<Seen>, reads: Reads) -> bool {
        scratch.text.clear(); // the last drive's events were counted
        if self.phase == Phase::Connecting {
            match self.socket.take_error() {
                Ok(Some(e)) | Err(e) => return self.ended(format!("connect: {}", short(&e)), seen),
                Ok(None) => {}
            }
            if self.socket.peer_addr().is_err() {
                return false; // still connecting: a writable event will come
            }
            self.phase = Phase::Head(Vec::new());
        }
        match &mut self.io {
            Io::Tls(tls) => {
                if let Err(e) = tls.flush(&mut self.socket) {
                    return self.ended(io_cause("write", &e), seen);
                }
            }
            Io::Plain { unsent } => {
                // Its bytes are not needed once sent (a reconnection builds a new request): only the
                // unsent tail is kept, and nothing once it is all out.
                while !unsent.is_empty() {
                    match self.socket.write(unsent) {
                        Ok(0) => return self.ended("write: wrote zero bytes".into(), seen),
                        Ok(n) => *unsent = unsent[n..].into(),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return self.ended(format!("write: {}", short(&e)), seen),
                    }
                }
            }
        }
        if self.stall && self.phase == Phase::Body {
            return false; // a slow reader reads nothing after the head
        }
        for _ in 0..16 {
            let read = match &mut self.io {
                Io::Tls(tls) => tls.read(&mut self.socket, &mut scratch.bytes),
                Io::Plain { .. } => self.socket.read(&mut scratch.bytes),
            };
            match read {
                Ok(0) if self.phase == Phase::Body => return self.completed(seen),
                Ok(0) => return self.ended("closed by server".into(), seen),
                Ok(n) => {
                    let since = self.attempt_started.elapsed().as_millis();
                    self.last_bytes_ms = u32::try_from(since).unwrap_or(u32::MAX);
                    let Scratch { bytes, text, body } = &mut *scratch;
                    if let Err(why) = self.take(&bytes[..n], body, text, seen) {
                        return self.ended(why, seen);
                    }
                    if self.dechunk.as_ref().is_some_and(|d| d.is_done()) {
                        return self.completed(seen); // the last chunk: the body is over
                    }
                    if self.phase == Phase::Done || (self.stall && self.phase == Phase::Body) {
                        return false;
                    }
                    // A plain TCP read that did not fill the buffer emptied the socket's receive queue, and
                    // any byte (or FIN) that comes after it raises a new edge: the read that would only say
                    // `WouldBlock` is skipped (epoll(7): "if you call read(2) by asking to read a certain
                    // amount of data and read(2) returns a lower number of bytes, you can be sure of having
                    // exhausted the read I/O space"; Netty's epoll transport stops the same way). It was
                    // one syscall in two of a fan-out run. Not after a hangup ([`Reads`]): a FIN that came
                    // before the event is behind these bytes with no edge to come. Not over TLS: rustls may
                    // hold bytes back.
                    if reads == Reads::UntilShort && n < bytes.len() && matches!(self.io, Io::Plain { .. }) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.ended(io_cause("read", &e), seen),
            }
        }
        true
    }

    /// The body ended cleanly: reported once, as [`Seen::Completed`].
    fn completed(&mut self, seen: &mut Vec<Seen>) -> bool {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            seen.push(Seen::Completed);
        }
        false
    }

    /// Records the end; there is nothing more to drive.
    fn ended(&mut self, why: String, seen: &mut Vec<Seen>) -> bool {
        self.end(why, seen);
        false
    }

    fn end(&mut self, why: String, seen: &mut Vec<Seen>) {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            seen.push(Seen::Ended(why));
        }
    }

    /// Whether the connection has ended (a `Seen::Ended` was reported).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn take(
        &mut self,
        bytes: &[u8],
        body: &mut Vec<u8>,
        text: &mut String,
        seen: &mut Vec<Seen>,
    ) -> Result<(), String> {
        if let Phase::Head(head) = &mut self.phase {
            head.extend_from_slice(bytes);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            let len = match response.parse(head) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if head.len() > MAX_HEAD => {
                    return Err("head too large".into());
                }
                Ok(httparse::Status::Partial) => return Ok(()),
                Err(e) => return Err(format!("bad response head: {e}")),
            };
            let status = response.code.unwrap_or(0);
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value.to_ascii_lowercase())
            };
            let event_stream = header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
            let chunked = header("transfer-encoding").is_some_and(|v| v.windows(7).any(|w| w == b"chunked"));
            seen.push(Seen::Head { status, event_stream });
            if status != 200 || !event_stream {
                self.phase = Phase::Done;
                return Ok(());
            }
            self.dechunk = chunked.then(Box::default);
            let head = std::mem::take(head); // the body's first bytes may be in it
            self.phase = Phase::Body;
            self.streamed = true;
            return self.body(&head[len..], body, text, seen);
        }
        if self.phase == Phase::Body {
            return self.body(bytes, body, text, seen);
        }
        Ok(())
    }

    /// Body bytes: dechunked into `decoded` if chunked, parsed, each event's data and own id copied into
    /// `text` and reported as spans of it.
    fn body(
        &mut self,
        bytes: &[u8],
        decoded: &mut Vec<u8>,
        text: &mut String,
        seen: &mut Vec<Seen>,
    ) -> Result<(), String> {
        let bytes = match &mut self.dechunk {
            Some(dechunk) => {
                decoded.clear();
                dechunk.feed(bytes, decoded).map_err(|e| format!("bad chunked body: {}", e.0))?;
                &decoded[..]
            }
            None => bytes,
        };
        let retry_ms = &mut self.retry_ms;
        self.parser
            .feed_with(bytes, |item| match item {
                ItemRef::Event(event) => {
                    let data = append(text, event.data);
                    let id = event.own_id.then(|| append(text, event.last_event_id));
                    seen.push(Seen::Event { data, id });
                }
                ItemRef::Retry(ms) => *retry_ms = u32::try_from(ms).unwrap_or(u32::MAX),
                ItemRef::Comment(_) => seen.push(Seen::Comment),
            })
            .map_err(|e| e.to_string())
    }

    /// How long this connection has gone without a byte.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_bytes())
    }

    /// When bytes last arrived (the attempt's start before any).
    pub fn last_bytes(&self) -> Instant {
        self.attempt_started + Duration::from_millis(self.last_bytes_ms.into())
    }
}

/// An I/O error's cause as counted: `tls: …` for a TLS error, else `what: short cause`.
fn io_cause(what: &str, error: &io::Error) -> String {
    tls::io_cause(error).unwrap_or_else(|| format!("{what}: {}", short(error)))
}

/// Whether a connect failure's cause is the client's own shortage of the moment (no free source port, no
/// buffer): worth a retry after a pause, unlike a refusal.
pub fn is_transient(cause: &str) -> bool {
    ["no free source port", "address in use", "No buffer space", "Resource temporarily unavailable"]
        .iter()
        .any(|transient| cause.contains(transient))
}

/// A short cause for an I/O error, for counting failures by kind.
pub fn short(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::AddrNotAvailable => "no free source port".into(),
        io::ErrorKind::AddrInUse => "address in use".into(),
        _ => error.to_string(),
    }
}

/// A bind error's cause: EADDRNOTAVAIL at `bind` is an address this machine does not have.
pub fn bind_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::AddrNotAvailable => {
            "cannot assign requested address (not an address of this machine)".into()
        }
        _ => short(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_of_source_ports_is_transient_a_refusal_is_not() {
        let cause = |kind: io::ErrorKind| format!("connect: {}", short(&kind.into()));
        assert!(is_transient(&cause(io::ErrorKind::AddrNotAvailable)));
        assert!(is_transient(&cause(io::ErrorKind::AddrInUse)));
        assert!(!is_transient(&cause(io::ErrorKind::ConnectionRefused)));
        assert!(!is_transient(
            "bind 10.1.1.1: cannot assign requested address (not an address of this machine)"
        ));
    }

    /// The head arrives in pieces, its last piece with the first event behind it: the client keeps the
    /// head's bytes in its `Head` phase until the head is whole, then parses what came after it as body.
    #[test]
    fn a_head_in_pieces_with_the_body_behind_it_is_read_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/home/events", listener.local_addr().expect("addr"));
        let target = Target::parse(&url).expect("url");
        let parser = Box::new(Parser::new(MAX_LINE));
        let mut client = Client::connect(&target, target.addr, None, parser, 3000, false).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = server.read(&mut request).expect("the request");
        let pieces: [&[u8]; 3] =
            [b"HTTP/1.1 200 OK\r\nContent-Ty", b"pe: text/event-stream\r\n", b"\r\ndata: first\n\ndata: sec"];
        let (mut scratch, mut seen, mut events) = (Scratch::new(16 * 1024), Vec::new(), Vec::new());
        let mut drive = |client: &mut Client, seen: &mut Vec<Seen>, events: &mut Vec<String>, tries: u32| {
            for _ in 0..tries {
                client.drive(&mut scratch, seen, Reads::UntilWouldBlock);
                for item in seen.iter() {
                    if let Seen::Event { data, .. } = item {
                        events.push(data.of(&scratch.text).to_string());
                    }
                }
                if !seen.is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        for piece in &pieces[..2] {
            server.write_all(piece).expect("write");
            std::thread::sleep(Duration::from_millis(20));
            drive(&mut client, &mut seen, &mut events, 4); // the bytes are there: nothing comes of them
            assert!(seen.is_empty() && !client.is_streaming(), "no head yet: {seen:?}");
        }
        server.write_all(pieces[2]).expect("write");
        drive(&mut client, &mut seen, &mut events, 200);
        assert!(matches!(seen[0], Seen::Head { status: 200, event_stream: true }), "{seen:?}");
        assert!(client.is_streaming());
        assert_eq!(events, ["first"], "the event behind the head, and not the half one");
        seen.clear();
        events.clear();
        server.write_all(b"ond\n\n").expect("write");
        drive(&mut client, &mut seen, &mut events, 200);
        assert_eq!(events, ["second"]);
    }
}
