//! Response heads and canned answers, written into a caller-owned buffer.
//!
//! Rules:
//! - The status line always says `HTTP/1.1` (a server sends its own version, even to HTTP/1.0 clients).
//! - Every response carries `Date` (RFC 9110 §6.6.1) and says how it is framed: `Content-Length` for
//!   ordinary responses, and for event streams no length at all, the body ending when the connection
//!   closes (RFC 9112 §6.3). A close-delimited stream suits HTTP/1.0 and 1.1 clients alike, adds no chunk
//!   framing to each event, and proxies pass it through unbuffered with `X-Accel-Buffering: no`.
//! - `Connection` is spelled out whenever the connection's fate differs from the version's default.

use std::io::Write;

/// Whether the connection stays open after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Kept open (HTTP/1.1's default; said explicitly to an HTTP/1.0 client that asked for it).
    KeepAlive { http10: bool },
    /// Closed once the response is sent.
    Close,
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends the status line and the `Date` header.
pub fn start(out: &mut Vec<u8>, status: u16, date: &str) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\nDate: {date}\r\n", reason(status));
}

/// Appends one header line.
pub fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `Content-Length`, the `Connection` header if needed, and the blank line that ends the head.
pub fn finish(out: &mut Vec<u8>, content_length: usize, persistence: Persistence) {
    let _ = write!(out, "Content-Length: {content_length}\r\n");
    end_head(out, persistence);
}

/// Appends the `Connection` header if needed and the blank line, with no length: for a 204, which must
/// not carry one (RFC 9110 §8.6).
pub fn end_head(out: &mut Vec<u8>, persistence: Persistence) {
    match persistence {
        Persistence::KeepAlive { http10: true } => header(out, "Connection", "keep-alive"),
        Persistence::KeepAlive { http10: false } => {}
        Persistence::Close => header(out, "Connection", "close"),
    }
    out.extend_from_slice(b"\r\n");
}

/// A cross-origin grant: the `Access-Control-Allow-Origin` value, and whether credentials are allowed
/// (never with `*`, which browsers refuse for credentialed requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origin: String,
    pub credentials: bool,
}

/// Appends the CORS headers of a grant, if any, with `Vary: Origin`: the answer depends on the origin
/// (echoed, `*`, or nothing), so caches must not hand one origin's answer to another.
pub fn cors_headers(out: &mut Vec<u8>, cors: Option<&Cors>) {
    let Some(cors) = cors else { return };
    header(out, "Access-Control-Allow-Origin", &cors.origin);
    if cors.credentials {
        header(out, "Access-Control-Allow-Credentials", "true");
    }
    header(out, "Vary", "Origin");
}

/// Appends the head of an event stream: status 200, no length, closed by the server when it ends.
///
/// `no-cache` stops caches from storing a live stream; `no-transform` and `X-Accel-Buffering: no` stop
/// compressing or buffering proxies (nginx, CDNs) from holding events back.
pub fn event_stream_head(out: &mut Vec<u8>, date: &str, cors: Option<&Cors>) {
    start(out, 200, date);
    header(out, "Content-Type", "text/event-stream");
    header(out, "Cache-Control", "no-cache, no-transform");
    header(out, "X-Accel-Buffering", "no");
    cors_headers(out, cors);
    header(out, "Connection", "close");
    out.extend_from_slice(b"\r\n");
}

/// A complete answer with a body held in the response itself (not a shared file).
#[derive(Debug)]
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub extra: &'a [(&'a str, &'a str)],
    pub cors: Option<&'a Cors>,
    /// `HEAD`: the head says the body's length, the body is not sent.
    pub head_only: bool,
    pub persistence: Persistence,
}

/// Appends a complete answer: status line, `Date`, type, `Cache-Control: no-store`, extra and CORS
/// headers, length, and the body.
pub fn answer(out: &mut Vec<u8>, date: &str, a: &Answer<'_>) {
    start(out, a.status, date);
    header(out, "Content-Type", a.content_type);
    header(out, "Cache-Control", "no-store");
    for (name, value) in a.extra {
        header(out, name, value);
    }
    cors_headers(out, a.cors);
    finish(out, a.body.len(), a.persistence);
    if !a.head_only {
        out.extend_from_slice(a.body);
    }
}

/// A short plain-text answer, typically an error: the status and a one-line reason.
#[derive(Debug, Clone, Copy)]
pub struct Plain<'a> {
    pub status: u16,
    pub message: &'a str,
    pub extra: &'a [(&'a str, &'a str)],
    /// A cross-origin caller can read the error only with the CORS headers of its grant.
    pub cors: Option<&'a Cors>,
    pub head_only: bool,
    pub persistence: Persistence,
}

/// Appends a short plain-text answer: a one-line body that says what went wrong.
pub fn plain(out: &mut Vec<u8>, date: &str, p: &Plain<'_>) {
    let body = format!("{} {}: {}\n", p.status, reason(p.status), p.message);
    let a = Answer {
        status: p.status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes(),
        extra: p.extra,
        cors: p.cors,
        head_only: p.head_only,
        persistence: p.persistence,
    };
    answer(out, date, &a);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn event_stream_head_is_exact() {
        let mut out = Vec::new();
        event_stream_head(&mut out, DATE, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/event-stream\r\n\
             Cache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn cors_headers_echo_an_allowed_origin_with_credentials() {
        let mut out = Vec::new();
        let cors = Cors { origin: "https://app.example".into(), credentials: true };
        event_stream_head(&mut out, DATE, Some(&cors));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"), "{text}");
        assert!(text.contains("\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"), "{text}");
        let mut out = Vec::new();
        cors_headers(&mut out, Some(&Cors { origin: "*".into(), credentials: false }));
        assert_eq!(out, b"Access-Control-Allow-Origin: *\r\nVary: Origin\r\n");
    }

    #[test]
    fn plain_answer_with_extra_header_and_close() {
        let mut out = Vec::new();
        let extra = [("Allow", "GET, HEAD")];
        let p = Plain {
            status: 405,
            message: "use GET",
            extra: &extra,
            cors: None,
            head_only: false,
            persistence: Persistence::Close,
        };
        plain(&mut out, DATE, &p);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nDate: "), "{text}");
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n405 Method Not Allowed: use GET\n"), "{text}");
        let body_len = "405 Method Not Allowed: use GET\n".len();
        assert!(text.contains(&format!("Content-Length: {body_len}\r\n")), "{text}");
    }

    #[test]
    fn head_only_keeps_the_length_but_drops_the_body() {
        let mut out = Vec::new();
        let persistence = Persistence::KeepAlive { http10: true };
        plain(
            &mut out,
            DATE,
            &Plain {
                status: 404,
                message: "no such file",
                extra: &[],
                cors: None,
                head_only: true,
                persistence,
            },
        );
        let text = String::from_utf8(out).unwrap();
        let len = "404 Not Found: no such file\n".len();
        assert!(text.contains(&format!("Content-Length: {len}\r\nConnection: keep-alive\r\n\r\n")), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
