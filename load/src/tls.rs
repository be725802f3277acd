//! TLS for `https://` URLs: the client configuration (roots, `--ca-file`, `--insecure`), the rustls
//! `ClientConnection` driven over a non-blocking socket, and a failure's cause as it is counted.
//!
//! Rules:
//! - rustls is sans-I/O: [`TlsIo`] moves records between the socket and the connection the way the plain
//!   client moves bytes: reads to `WouldBlock`, writes until `WouldBlock` or nothing is left (the rest stays
//!   queued in rustls for the next writable edge), and after every batch of records it flushes what rustls
//!   wants to send (handshake replies, the request once the handshake is done).
//! - The request is queued as plaintext before the handshake ends (rustls sends it once it may): the
//!   handshake is part of the attempt, so it counts toward the connect timeout like the TCP handshake.
//! - The end of the body: a `close_notify` is a clean end (a read of 0); a FIN without it is not.
//! - Roots come from the system's store (`rustls-native-certs`: `/etc/ssl/certs` on Linux, the same store
//!   curl trusts), plus `--ca-file`. `--insecure` accepts any certificate (still checking the handshake's
//!   signatures) and is said loudly at start by the caller.
//! - A TLS error is counted as `tls: <cause>`, in words a person can act on (`tls: certificate not
//!   trusted`), not rustls's enum names.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

/// Builds the client configuration: the system's roots and `ca_file`'s certificates, or (`insecure`) no
/// verification at all. Offers `http/1.1` by ALPN.
pub fn client_config(ca_file: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // A store that cannot be read in part is not fatal: `--ca-file` may be all that is needed.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--ca-file {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("--ca-file {}: no certificate in it", path.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
            }
        }
        if roots.is_empty() {
            return Err("no trusted roots: the system has none, give --ca-file (or --insecure)".into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name sent by SNI and checked against the certificate: the URL's host (a name or an address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| format!("{host}: not a valid TLS server name"))
}

/// One connection's TLS state. Boxed by its owner: a `ClientConnection` is large, plain streams pay a
/// pointer.
pub struct TlsIo {
    conn: ClientConnection,
}

impl TlsIo {
    /// A client for `name`, with `request` queued to go once the handshake is done.
    pub fn new(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        request: &[u8],
    ) -> Result<TlsIo, String> {
        let mut conn = ClientConnection::new(config, name).map_err(|e| cause(&e))?;
        conn.set_buffer_limit(None); // a --body-file larger than rustls's 64 KiB default is queued whole
        conn.writer().write_all(request).map_err(|e| format!("tls: {e}"))?;
        Ok(TlsIo { conn })
    }

    /// Queues more plaintext (a publisher's next request); it goes with the next [`TlsIo::flush`].
    pub fn queue(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(plaintext)
    }

    /// Writes queued records until `WouldBlock` or none is left.
    pub fn flush(&mut self, socket: &mut TcpStream) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads plaintext into `buf`: `Ok(0)` is a clean end (`close_notify`), `WouldBlock` means no record
    /// is waiting. A TLS error comes back as `InvalidData` wrapping the [`rustls::Error`] (see
    /// [`io_cause`]).
    pub fn read(&mut self, socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        // Bounded: each turn either returns or reads records from the socket, which ends in WouldBlock.
        for _ in 0..64 {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e), // UnexpectedEof: a FIN without close_notify
            }
            let eof = match self.conn.read_tls(socket) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush(socket); // the alert that says why, best effort
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.flush(socket)?;
            if eof && self.conn.is_handshaking() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the TLS handshake"));
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// An I/O error's cause as counted: a TLS error is `tls: …`; others are `None` (the caller's own words).
pub fn io_cause(error: &io::Error) -> Option<String> {
    if let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return Some(cause(tls));
    }
    (error.kind() == io::ErrorKind::UnexpectedEof).then(|| format!("tls: {error}"))
}

/// A rustls error in words: `tls: certificate not trusted`, `tls: alert from the server: …`.
pub fn cause(error: &rustls::Error) -> String {
    let why = match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => "certificate not trusted".into(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the host name".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".into()
            }
            // A trusted CA of the issuer's name did not sign it (another self-signed certificate of the same
            // name, a CA's key changed): not trusted, said apart from an unknown issuer.
            CertificateError::BadSignature => {
                "certificate not trusted (not signed by the trusted CA of its issuer's name)".into()
            }
            other => format!("bad certificate ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => format!("alert from the server: {alert:?}"),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "not TLS, or a broken record (is the server on https?)".into()
        }
        other => other.to_string(),
    };
    format!("tls: {why}")
}

/// `--insecure`: any certificate is accepted; the handshake's signatures are still checked, so the peer
/// holds the key of the certificate it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_counted_in_words() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(cause(&unknown), "tls: certificate not trusted");
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(cause(&name), "tls: certificate not valid for the host name");
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, unknown);
        assert_eq!(io_cause(&wrapped).as_deref(), Some("tls: certificate not trusted"));
        assert_eq!(io_cause(&io::ErrorKind::ConnectionReset.into()), None);
    }

    #[test]
    fn server_names_come_from_the_host() {
        assert!(server_name("localhost").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
    }
}
