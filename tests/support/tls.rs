//! HTTPS helpers for the integration tests: a certificate made for the test (rcgen), and a blocking
//! rustls client over a real socket that trusts it.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A self-signed certificate for `localhost` and `127.0.0.1`, its key, as PEM files in a fresh folder.
pub struct TestCert {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
    /// base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
}

impl TestCert {
    /// Makes one in a folder named after `name` under the target's temp dir.
    pub fn new(name: &str) -> TestCert {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).expect("a test certificate");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder for the certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
        let spki = made.signing_key.subject_public_key_info();
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        TestCert { dir, cert, key, der: made.cert.der().clone(), spki_sha256: base64(digest.as_ref()) }
    }

    /// The server's flags for this certificate.
    pub fn flags(&self) -> [String; 4] {
        let path = |p: &PathBuf| p.display().to_string();
        ["--tls-cert".into(), path(&self.cert), "--tls-key".into(), path(&self.key)]
    }

    /// A client configuration that trusts this certificate (and nothing else), offering `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection to `addr` (blocking, with read and write timeouts), handshake done.
    pub fn connect(&self, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(super::PATIENCE)).expect("read timeout");
        tcp.set_write_timeout(Some(Duration::from_secs(5))).expect("write timeout");
        let name = ServerName::try_from("localhost").expect("a name");
        let conn = ClientConnection::new(self.client_config(), name).expect("a client");
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("the TLS handshake");
        }
        tls
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `raw` over TLS and reads until the server closes (a clean `close_notify`, or a plain FIN).
pub fn exchange(cert: &TestCert, addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut tls = cert.connect(addr);
    tls.write_all(raw).expect("send the request");
    read_to_close(&mut tls)
}

/// Reads until EOF; a FIN without `close_notify` ends it too (what the server never does, but a test
/// should show the bytes rather than an error).
pub fn read_to_close(tls: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return got,
            Err(e) => panic!("read over TLS after {} bytes: {e}", got.len()),
        }
    }
}

/// The value of metric `name` in the server's `/metrics`, fetched over TLS.
pub fn metric(cert: &TestCert, addr: SocketAddr, name: &str) -> u64 {
    let raw = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = String::from_utf8(exchange(cert, addr, raw)).expect("UTF-8 metrics");
    let line = answer.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| {
        panic!("no {name} in:\n{answer}");
    });
    line[name.len() + 1..].parse().expect("a whole number")
}

/// Standard base64 with padding (enough for a digest; no crate needed).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
