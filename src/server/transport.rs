//! What the loop needs of a connection's socket besides reading and writing: how an accepted TCP
//! connection becomes one, how `Poll` sees it, and what it has to report (a TLS handshake's outcome).
//!
//! The server is generic over it and is built for one kind, because one listener speaks one protocol:
//! plain HTTP ([`TcpStream`], the connection exactly as small and fast as without TLS support) or HTTPS
//! with `--tls-cert`/`--tls-key` ([`TlsSocket`], the TLS state boxed beside the TCP stream). No enum
//! is matched per read or write, and a plain server's connections do not carry a TLS variant's size.

use std::io;
use std::sync::Arc;

use mio::event::Source;
use mio::net::TcpStream;
use rustls::ServerConfig;

use std::time::Instant;

use crate::config::Config;
use crate::conn::tls::{self, TlsNews, TlsSocket};
use crate::conn::{Connection, Socket};
use crate::context::LoopContext;
use crate::metrics::CloseReason;

/// A connection's socket as the server makes, registers and watches it.
pub trait Transport: Socket + Source + Sized {
    /// What turns an accepted TCP connection into one of these (made once, at start).
    type Acceptor;

    /// The acceptor for `config`; the error says what is wrong with the flags or files.
    fn acceptor(config: &Config) -> Result<Self::Acceptor, String>;

    /// Wraps a connection just accepted.
    fn wrap(tcp: TcpStream, acceptor: &Self::Acceptor) -> io::Result<Self>;

    /// The scheme, for the "listening on" line.
    fn scheme() -> &'static str;

    /// What became of a TLS handshake since the last call.
    fn take_news(&mut self) -> Option<TlsNews> {
        None
    }

    /// Whether a TLS handshake is still under way (a connection closed then counts as a failed handshake).
    fn is_handshaking(&self) -> bool {
        false
    }
}

impl Transport for TcpStream {
    type Acceptor = ();

    fn acceptor(_: &Config) -> Result<(), String> {
        Ok(())
    }

    fn wrap(tcp: TcpStream, _: &()) -> io::Result<Self> {
        Ok(tcp)
    }

    fn scheme() -> &'static str {
        "http"
    }
}

impl Transport for TlsSocket {
    type Acceptor = Arc<ServerConfig>;

    fn acceptor(config: &Config) -> Result<Arc<ServerConfig>, String> {
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => tls::load_server_config(cert, key),
            _ => Err("HTTPS needs both --tls-cert and --tls-key".into()),
        }
    }

    fn wrap(tcp: TcpStream, acceptor: &Arc<ServerConfig>) -> io::Result<Self> {
        TlsSocket::new(tcp, Arc::clone(acceptor))
    }

    fn scheme() -> &'static str {
        "https"
    }

    fn take_news(&mut self) -> Option<TlsNews> {
        TlsSocket::take_news(self)
    }

    fn is_handshaking(&self) -> bool {
        TlsSocket::is_handshaking(self)
    }
}

/// After a handler: counts a TLS handshake that finished or was refused; a refusal is logged at `warn`
/// with the peer (a few a second at most: a port scanner must not fill the log).
pub(super) fn note_news<S: Transport>(cx: &mut LoopContext, conn: &mut Connection<S>, now: Instant) {
    match conn.socket_mut().take_news() {
        None => {}
        Some(TlsNews::Completed) => cx.counters.tls_handshakes += 1,
        Some(TlsNews::Failed(error)) => {
            cx.counters.tls_handshakes_failed += 1;
            if cx.tls_failure_lines.allow(now) {
                log::warn!("{}: TLS handshake refused: {error}", conn.peer);
            }
        }
    }
}

/// A connection closing during its handshake (the peer left, or the first-request deadline passed)
/// counts as a failed handshake.
pub(super) fn note_close<S: Transport>(cx: &mut LoopContext, conn: &mut Connection<S>, reason: CloseReason) {
    if conn.socket_mut().is_handshaking() {
        cx.counters.tls_handshakes_failed += 1;
        log::debug!("{}: closed during the TLS handshake ({reason})", conn.peer);
    }
}
