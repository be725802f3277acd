//! Where a stream connects and what it asks: the URL (`http://` or `https://`, its host resolved once at
//! start), and the request's bytes (method, headers, body, `Last-Event-ID`).
//!
//! Rules: resolution happens here, once, when the run is set up, never on the loop; every address the
//! host has is kept, and the driver spreads streams over them. The request is built whole, one per
//! attempt (a reconnection adds its `Last-Event-ID`); a body always goes with its `Content-Length`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// Where to connect and what to ask.
#[derive(Debug, Clone)]
pub struct Target {
    /// The first address the host resolved to; [`Target::addrs`] has them all.
    pub addr: SocketAddr,
    /// Every address of the host, resolved once at start: streams are spread over them.
    pub addrs: Vec<SocketAddr>,
    /// `host:port`, for the `Host` header.
    pub authority: String,
    /// The host alone: the TLS server name (SNI, and the name the certificate must carry).
    pub host: String,
    /// Path and query.
    pub path: String,
    /// `https://`: the client configuration (set by the caller from `--ca-file`, `--insecure`).
    pub https: bool,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The request: method, extra header lines (`Name: value`), body (`Content-Length` set if any).
    pub method: String,
    pub headers: Vec<String>,
    pub body: Arc<Vec<u8>>,
}

impl Target {
    /// Parses `http://host:port/path?query` or `https://…`; a host name is resolved here, once (every
    /// address it has is kept). The request is a plain `GET` until the caller says otherwise.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err(format!("{url}: only http:// and https:// URLs")),
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
        let port = if https { 443 } else { 80 };
        // `host:port`, `[v6]:port`, or a host alone (the scheme's port).
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
                (host, p.parse::<u16>().map_err(|_| format!("{url}: bad port {p:?}"))?)
            }
            _ => (authority, port),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (bare, port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve {bare}: {e}"))?
            .collect();
        let addr = *addrs.first().ok_or_else(|| format!("{url}: {bare} has no address"))?;
        Ok(Target {
            addrs,
            authority: authority.to_owned(),
            host: host.to_owned(),
            https,
            ..Target::at(addr, path)
        })
    }

    /// A plain `GET` of `path` at `addr` (nothing to resolve).
    pub fn at(addr: SocketAddr, path: &str) -> Target {
        Target {
            addr,
            addrs: vec![addr],
            authority: addr.to_string(),
            host: addr.ip().to_string(),
            path: path.to_owned(),
            https: false,
            tls: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: Arc::default(),
        }
    }

    /// The request's bytes, with `Last-Event-ID` when a reconnection has one.
    pub fn request(&self, last_event_id: &str) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
            self.method, self.path, self.authority
        );
        for header in &self.headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        if !last_event_id.is_empty() {
            head.push_str(&format!("Last-Event-ID: {last_event_id}\r\n"));
        }
        if !self.body.is_empty() || self.method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&self.body);
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8080/home/events?interval_ms=100").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/home/events?interval_ms=100")
        );
        assert_eq!(Target::parse("http://127.0.0.2").unwrap().path, "/");
        assert!(Target::parse("ftp://127.0.0.1/").is_err());
        let tls = Target::parse("https://localhost/x").unwrap();
        assert!(tls.https && tls.addr.port() == 443 && tls.host == "localhost" && !tls.addrs.is_empty());
        assert_eq!(Target::parse("http://[::1]:9/").unwrap().addr, "[::1]:9".parse().unwrap());
    }

    #[test]
    fn requests_carry_method_headers_and_body() {
        let mut t = Target::parse("http://127.0.0.1:8080/s").unwrap();
        assert_eq!(
            String::from_utf8(t.request("7")).unwrap(),
            "GET /s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\
             Last-Event-ID: 7\r\n\r\n"
        );
        (t.method, t.headers, t.body) =
            ("POST".into(), vec!["Authorization: Bearer x".into()], Arc::new(b"{}".to_vec()));
        let request = String::from_utf8(t.request("")).unwrap();
        assert!(request.starts_with("POST /s HTTP/1.1\r\n"), "{request}");
        assert!(request.ends_with("Authorization: Bearer x\r\nContent-Length: 2\r\n\r\n{}"), "{request}");
    }
}
