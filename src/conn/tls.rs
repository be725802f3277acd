//! HTTPS on the same loop: [`TlsSocket`] is a non-blocking transport (the server's `TcpStream`) with a
//! rustls `ServerConnection` in front, and a [`Socket`] like any other. The state machine reads and writes
//! plaintext through it and never learns that TLS is there.
//!
//! rustls is sans-I/O: it never touches a socket, it takes TLS bytes in (`read_tls`, then
//! `process_new_packets`) and hands TLS bytes out (`write_tls`). This file is the glue, and it keeps the
//! loop's rules (see [`crate::server`]):
//!
//! - **Reads drain to `WouldBlock`.** `read` returns plaintext rustls already holds; when it holds none it
//!   pulls records from the transport and processes them, until there is plaintext, the transport says
//!   `WouldBlock` (returned as is, so the connection waits for the next edge), or EOF: a `close_notify`,
//!   or a TCP FIN without one (most clients just close), is a read of 0. At most
//!   [`MAX_RECORD_READS`] reads without plaintext per call: a peer that sends records and never data is
//!   closed, not served forever.
//! - **Records go out when they are made** (rule 4): handshake records made while reading are written at
//!   once, and what the kernel does not take waits in rustls's buffer for the next writable edge. That is
//!   why the connection calls [`std::io::Write::flush`] on every drive even with an empty outbox: it is
//!   this socket's "write what you hold".
//! - **A partial write keeps its tail in the outbox** (rule 5), not here: `write` first writes the records
//!   rustls holds, and while the kernel cannot take them it answers `WouldBlock` and takes no new
//!   plaintext. So rustls holds at most [`TLS_BUFFER_LIMIT`] bytes per connection
//!   (`set_buffer_limit`) and the outbox, as for plain TCP, holds the rest.
//! - **A bad handshake is refused where it happens**: plain HTTP on the TLS port, no common protocol
//!   version, cipher or ALPN, a corrupt record. rustls queues the alert the protocol has for it, which is
//!   sent (best effort) before the read fails with `InvalidData`; the connection closes, nothing else is
//!   disturbed. The failure is kept for the server to count and log with the peer ([`TlsSocket::take_news`]).
//! - **A clean close**: `shutdown_write` queues a `close_notify`; the TCP write side is shut only once every
//!   record before it (and the alert itself) is out, on a later writable edge if need be.
//! - A handshake has no deadline of its own: the connection's first-request deadline
//!   (`--request-timeout-ms`) covers it, and a peer that never finishes is closed at it.

use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use super::socket::Socket;

/// Most bytes of TLS records (or, before the handshake ends, of plaintext) rustls holds for one
/// connection. A plaintext write is cut to it, and no more is taken until the kernel took those records:
/// the outbox keeps the rest, as for plain TCP. One full TLS record's plaintext.
pub const TLS_BUFFER_LIMIT: usize = 16 * 1024;
/// Transport reads per `read` call that may yield no plaintext (handshake messages, alerts, key
/// updates). A handshake needs a handful; a peer past this sends records that carry nothing.
pub const MAX_RECORD_READS: usize = 64;
/// The only application protocol offered (ALPN): a client that offers others but not this one is
/// refused with `no_application_protocol`; one that offers none is served.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Reads the certificate chain and private key (PEM files) and makes the server's TLS configuration:
/// TLS 1.2 and 1.3 with rustls's safe defaults (the `ring` provider), ALPN `http/1.1`, no client
/// certificates. The error names the file and what is wrong with it.
pub fn load_server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificate in {}", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("cannot read the TLS private key {}: {e}", key_path.display()))?;
    server_config(certs, key).map_err(|e| {
        let (cert, key) = (cert_path.display(), key_path.display());
        format!("cannot use the TLS certificate {cert} with the key {key}: {e}")
    })
}

/// The server's TLS configuration for a certificate chain and its key (see [`load_server_config`]).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// What became of a connection's handshake since the server last asked (each is told once).
#[derive(Debug)]
pub enum TlsNews {
    Completed,
    Failed(rustls::Error),
}

/// Where a connection's handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Pending,
    /// Finished; `told`: the server has counted it.
    Completed {
        told: bool,
    },
    /// Refused; the error waits in `failure` until the server takes it.
    Failed,
}

/// A TLS server connection over the transport `T` (a `TcpStream` in the server, a pipe in the tests).
/// The transport stays inline (it is what `Poll` registers); the TLS state is boxed, so the connection
/// table's entries stay small.
pub struct TlsSocket<T = TcpStream> {
    transport: T,
    state: Box<TlsState>,
}

struct TlsState {
    tls: ServerConnection,
    handshake: Handshake,
    failure: Option<rustls::Error>,
    /// A `close_notify` is queued: shut the transport's write side once every record is out.
    shutdown_pending: bool,
    /// The peer sent at least one byte: a connection closed before that never tried a handshake.
    heard: bool,
}

impl<T: Socket> TlsSocket<T> {
    /// A server connection over `transport`, which the client has just connected.
    pub fn new(transport: T, config: Arc<ServerConfig>) -> io::Result<Self> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        let state = TlsState {
            tls,
            handshake: Handshake::Pending,
            failure: None,
            shutdown_pending: false,
            heard: false,
        };
        Ok(TlsSocket { transport, state: Box::new(state) })
    }

    /// The transport, to register with `Poll`.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Whether a handshake is under way: the peer sent something, and it neither finished nor failed.
    pub fn is_handshaking(&self) -> bool {
        self.state.heard && self.state.handshake == Handshake::Pending
    }

    /// What happened to the handshake since the last call: it finished, or it was refused (and why).
    pub fn take_news(&mut self) -> Option<TlsNews> {
        match self.state.handshake {
            Handshake::Completed { told: false } => {
                self.state.handshake = Handshake::Completed { told: true };
                Some(TlsNews::Completed)
            }
            Handshake::Failed => self.state.failure.take().map(TlsNews::Failed),
            _ => None,
        }
    }

    /// The negotiated application protocol (ALPN), if the client offered one.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.state.tls.alpn_protocol()
    }

    /// Writes the records rustls holds until none is left (`Ok`) or the transport would block; then, if a
    /// `close_notify` was the last of them, shuts the transport's write side.
    fn write_records(&mut self) -> io::Result<()> {
        let state = &mut *self.state;
        while state.tls.wants_write() {
            match state.tls.write_tls(&mut self.transport) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if std::mem::take(&mut state.shutdown_pending) {
            self.transport.shutdown_write()?;
        }
        Ok(())
    }

    /// Writes what the kernel takes now; the rest waits for a writable edge. Only a hard error is one.
    fn write_records_now(&mut self) -> io::Result<()> {
        match self.write_records() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Processes the records just read: the handshake may move on, plaintext may appear. A refused
    /// record or handshake sends rustls's alert (best effort) and fails the read.
    fn process(&mut self) -> io::Result<()> {
        if let Err(error) = self.state.tls.process_new_packets() {
            if let Err(e) = self.write_records_now() {
                log::debug!("sending a TLS alert: {e}");
            }
            if self.state.handshake == Handshake::Pending {
                self.state.handshake = Handshake::Failed;
                self.state.failure = Some(error.clone());
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        if self.state.handshake == Handshake::Pending && !self.state.tls.is_handshaking() {
            self.state.handshake = Handshake::Completed { told: false };
        }
        self.write_records_now()
    }
}

impl<T: Socket> Read for TlsSocket<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for _ in 0..MAX_RECORD_READS {
            match self.state.tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: the peer's close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A FIN without close_notify: how most clients leave. The end, not a fault.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.state.tls.read_tls(&mut self.transport) {
                Ok(n) => {
                    self.state.heard |= n > 0;
                    self.process()?; // at EOF too: rustls then reports the end through the reader
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e), // WouldBlock: drained
            }
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, "TLS records without data past the limit"))
    }
}

impl<T: Socket> Write for TlsSocket<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_records()?; // WouldBlock: the records before these are not out yet; take nothing
        let taken = self.state.tls.writer().write_vectored(bufs)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into()); // rustls's buffer is full (mid-handshake)
        }
        self.write_records_now()?;
        Ok(taken)
    }

    /// Writes the records rustls holds: `Ok` once none is left, `WouldBlock` while the kernel is full.
    fn flush(&mut self) -> io::Result<()> {
        self.write_records()
    }
}

impl<T: Socket> Socket for TlsSocket<T> {
    /// Sends `close_notify`, then (at once, or once the records before it are out) shuts the transport's
    /// write side.
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.state.tls.send_close_notify();
        self.state.shutdown_pending = true;
        self.write_records_now()
    }
}

impl<T: Source> Source for TlsSocket<T> {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.transport.register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.transport.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.transport.deregister(registry)
    }
}
