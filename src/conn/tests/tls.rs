//! `TlsSocket` without a network: a rustls client on one side, the server's TLS socket over a
//! [`FakeSocket`] on the other, and the test carrying bytes between them. The fake's write budget plays a
//! full kernel buffer, its empty read script `WouldBlock`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::{FakeSocket, ReadStep, get};
use crate::conn::outbox::{Flush, Outbox};
use crate::conn::tls::{self, TLS_BUFFER_LIMIT, TlsNews, TlsSocket};
use crate::conn::{Connection, Socket};
use crate::token::ConnKey;

/// A client and the server's socket, with a fresh self-signed certificate for `localhost`.
struct Pair {
    client: ClientConnection,
    server: TlsSocket<FakeSocket>,
}

fn configs(alpn: &[&[u8]]) -> (Arc<rustls::ServerConfig>, Arc<ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let server = tls::server_config(vec![cert.clone()], key).expect("server config");
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (server, Arc::new(client))
}

impl Pair {
    fn new(alpn: &[&[u8]]) -> Pair {
        let (server, client) = configs(alpn);
        let name = ServerName::try_from("localhost").expect("a name");
        let client = ClientConnection::new(client, name).expect("a client");
        Pair { client, server: TlsSocket::new(FakeSocket::default(), server).expect("a server") }
    }

    /// What the client wants to send arrives at the server's socket (not read yet).
    fn client_sends(&mut self) {
        let mut bytes = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut bytes).expect("client write_tls");
        }
        if !bytes.is_empty() {
            self.server.transport_mut().reads.push_back(ReadStep::Data(bytes));
        }
    }

    /// What the server's socket wrote reaches the client, which processes it.
    fn client_receives(&mut self) -> Result<(), rustls::Error> {
        let bytes = std::mem::take(&mut self.server.transport_mut().written);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            self.client.read_tls(&mut rest).expect("client read_tls");
            self.client.process_new_packets()?;
        }
        Ok(())
    }

    /// The server reads: plaintext, or `WouldBlock` once the fake's script is drained.
    fn server_reads(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 4096];
        let n = self.server.read(&mut buf)?;
        Ok(buf[..n].to_vec())
    }

    fn handshake(&mut self) {
        for _ in 0..8 {
            self.client_sends();
            match self.server_reads() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("no plaintext during the handshake: {other:?}"),
            }
            self.client_receives().expect("the client accepts the server's records");
            if !self.client.is_handshaking() && !self.server.is_handshaking() {
                return;
            }
        }
        panic!("the handshake did not finish");
    }

    /// Plaintext the client has received so far.
    fn client_plaintext(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.client.reader().read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("client read: {e}"),
            }
        }
    }
}

#[test]
fn a_handshake_then_a_request_and_an_answer_through_in_memory_pipes() {
    let mut pair = Pair::new(&[b"h2", b"http/1.1"]);
    pair.handshake();
    assert_eq!(pair.server.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN picks http/1.1 over h2");
    assert!(matches!(pair.server.take_news(), Some(TlsNews::Completed)));
    assert!(pair.server.take_news().is_none(), "told once");

    pair.client.writer().write_all(&get("/home/events")).expect("client write");
    pair.client_sends();
    assert_eq!(pair.server_reads().expect("plaintext"), get("/home/events"));
    let blocked = pair.server_reads().expect_err("nothing more");
    assert_eq!(blocked.kind(), io::ErrorKind::WouldBlock, "drained: WouldBlock, as a TCP socket says");

    let answer = b"HTTP/1.1 200 OK\r\n\r\ndata: hi\n\n";
    assert_eq!(pair.server.write(answer).expect("write"), answer.len());
    pair.client_receives().expect("records");
    assert_eq!(pair.client_plaintext(), answer);

    // A clean close: close_notify, then the FIN.
    pair.server.shutdown_write().expect("shutdown");
    assert!(pair.server.transport_mut().write_shut);
    pair.client_receives().expect("close_notify");
    assert!(pair.client_plaintext().is_empty());
    assert!(matches!(pair.client.reader().read(&mut [0u8; 8]), Ok(0)), "the client read a clean EOF");
}

#[test]
fn the_peers_close_notify_or_fin_is_a_read_of_zero() {
    let mut pair = Pair::new(&[]);
    pair.handshake();
    pair.client.send_close_notify();
    pair.client_sends();
    assert_eq!(pair.server_reads().expect("EOF"), b"");

    let mut pair = Pair::new(&[]);
    pair.handshake();
    pair.server.transport_mut().reads.push_back(ReadStep::Eof); // a FIN without close_notify
    assert_eq!(pair.server_reads().expect("EOF"), b"", "most clients just close: an ordinary end");
}

#[test]
fn a_full_kernel_keeps_records_in_rustls_and_the_tail_in_the_outbox() {
    let mut pair = Pair::new(&[]);
    pair.handshake();
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut outbox = Outbox::default();
    pair.server.transport_mut().write_budget = Some(1000);
    assert!(matches!(outbox.write_through(&mut pair.server, &body), Flush::WouldBlock));
    // rustls took at most its limit; the outbox keeps the rest, as it would for TCP.
    assert!(outbox.pending_bytes() >= body.len() - TLS_BUFFER_LIMIT, "{}", outbox.pending_bytes());
    let mut received = Vec::new();
    for _ in 0..1000 {
        pair.client_receives().expect("records");
        received.extend(pair.client_plaintext());
        pair.server.transport_mut().write_budget = Some(1500); // the peer read some
        match outbox.flush(&mut pair.server) {
            Flush::Done => {}
            Flush::WouldBlock => continue,
            Flush::Failed(e) => panic!("flush: {e}"),
        }
        // The outbox is empty, but rustls may still hold the last records: flush is "write what you hold".
        match pair.server.flush() {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("flush: {e}"),
        }
    }
    pair.client_receives().expect("records");
    received.extend(pair.client_plaintext());
    assert_eq!(received.len(), body.len());
    assert!(received == body, "every byte once, in order");
}

#[test]
fn plain_http_on_the_tls_port_is_refused_with_an_alert() {
    let mut pair = Pair::new(&[]);
    pair.server.transport_mut().reads.push_back(ReadStep::Data(get("/")));
    let error = pair.server_reads().expect_err("refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(matches!(pair.server.take_news(), Some(TlsNews::Failed(_))));
    assert!(!pair.server.is_handshaking(), "counted as refused, not as unfinished");
    let written = &pair.server.transport_mut().written;
    assert_eq!(written.first(), Some(&0x15), "an alert record was sent: {written:?}");
}

#[test]
fn a_client_without_http11_in_its_alpn_is_refused() {
    let mut pair = Pair::new(&[b"h2"]);
    pair.client_sends();
    let error = pair.server_reads().expect_err("refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let alert = pair.client_receives().expect_err("the client hears why");
    assert!(format!("{alert}").contains("NoApplicationProtocol"), "{alert}");
}

#[test]
fn a_garbage_record_after_the_handshake_fails_the_read() {
    let mut pair = Pair::new(&[]);
    pair.handshake();
    let garbage = b"\x17\x03\x03\x00\x10not a real record".to_vec();
    pair.server.transport_mut().reads.push_back(ReadStep::Data(garbage));
    assert_eq!(pair.server_reads().expect_err("refused").kind(), io::ErrorKind::InvalidData);
    let alert = pair.client_receives().expect_err("an alert");
    assert!(format!("{alert}").contains("BadRecordMac"), "{alert}");
}

/// The connection's drive writes what the socket holds even when its own outbox is empty: a handshake's
/// records that the kernel could not take at once go out on the next writable edge.
#[test]
fn handshake_records_wait_for_the_writable_edge_with_an_empty_outbox() {
    let harness = super::Harness::new(&[]);
    let Pair { mut client, mut server } = Pair::new(&[]);
    server.transport_mut().write_budget = Some(0); // the kernel's send buffer is full
    let key = ConnKey { slot: 0, generation: 1 };
    let peer = "127.0.0.1:40000".parse().expect("address");
    let mut cx = harness.cx;
    let mut conn = Connection::new(server, peer, key, false, &cx, harness.now);
    client.write_tls(&mut ClientHello(conn.socket_mut())).expect("hello");
    conn.on_readiness(true);
    assert_eq!(conn.drive(&mut cx, harness.now), super::Next::Wait);
    assert!(conn.socket_mut().transport_mut().written.is_empty(), "nothing went out yet");
    conn.socket_mut().transport_mut().write_budget = None; // a writable edge
    assert_eq!(conn.drive(&mut cx, harness.now), super::Next::Wait);
    let written = &conn.socket_mut().transport_mut().written;
    assert_eq!(written.first(), Some(&0x16), "the ServerHello went out on the writable edge");
}

/// Hands what the client writes to the server socket's read script.
struct ClientHello<'a>(&'a mut TlsSocket<FakeSocket>);

impl Write for ClientHello<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.transport_mut().reads.push_back(ReadStep::Data(buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
