//! The socket as a connection sees it: `Read`, `Write` and a half-close. The server gives each
//! connection a non-blocking `mio::net::TcpStream`, or with HTTPS a [`super::tls::TlsSocket`] over one
//! (whose `Write::flush` writes the TLS records it still holds); the unit tests give it a fake that answers
//! `WouldBlock`, short writes, EOF, resets and `EINTR` on cue, so every state can be driven without a
//! network and with time passed in.
//!
//! Rules:
//! - `Interrupted` (EINTR) is retried at once: it says nothing about the socket.
//! - `WouldBlock` is the only "stop for now": an edge-triggered socket read to `WouldBlock` will report
//!   the next byte with a new event; one left before `WouldBlock` may never be reported again.
//! - `read() == 0` is the peer's FIN; a reset, an abort or a broken pipe is the peer leaving, not a fault
//!   of ours ([`close_reason`]).

use std::io::{self, Read, Write};
use std::net::Shutdown;

use crate::metrics::CloseReason;

/// What a connection needs of its socket.
pub trait Socket: Read + Write {
    /// Shuts the write side: the peer reads EOF after what was sent (a FIN, not a reset).
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Socket for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// What one read attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    Data(usize),
    WouldBlock,
    Eof,
    Failed(CloseReason),
}

/// One `read`, retrying `Interrupted`, classifying the outcome.
pub fn read_some(socket: &mut impl Read, buf: &mut [u8]) -> ReadResult {
    loop {
        return match socket.read(buf) {
            Ok(0) => ReadResult::Eof,
            Ok(n) => ReadResult::Data(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadResult::WouldBlock,
            Err(e) => ReadResult::Failed(close_reason(&e)),
        };
    }
}

/// Resets, aborts and broken pipes are a peer leaving, not a server fault.
pub fn close_reason(error: &io::Error) -> CloseReason {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            CloseReason::PeerReset
        }
        kind => CloseReason::IoError(kind),
    }
}
