//! Request heads: an incremental, bounded wrapper around `httparse`.
//!
//! Rules:
//! - Bytes arrive in any split: one at a time, or several pipelined requests in one read. [`parse`] looks at
//!   what has arrived so far and answers [`Parse::Partial`] ("need more bytes"), a complete head with its
//!   length (bytes after it belong to the next request), or an error that maps to one HTTP status.
//! - Bounded work: `httparse` is only called once a blank line may have arrived, found by scanning just the
//!   bytes added since the last attempt. A client that dribbles a head a byte at a time costs O(n), not
//!   O(n²).
//! - Bounded memory: a head larger than [`Limits::max_head_bytes`] is an error (414 if the request line
//!   alone is that long, else 431), and so are more than [`MAX_HEADERS`] header lines (431). The checks sit
//!   next to the parse call, as `httparse`'s documentation asks of its users.
//! - Only what the server acts on is kept, as owned values, so the read buffer can be reused at once.

use std::fmt;

/// Most header lines a request may carry; `httparse` fills a stack array of this size.
pub const MAX_HEADERS: usize = 64;

/// Size limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line, headers and the blank line) in bytes.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    /// 8 KiB, as nginx's `large_client_header_buffers` and most servers default to.
    fn default() -> Self {
        Limits { max_head_bytes: 8 * 1024 }
    }
}

/// The request methods the server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Options,
    /// Any other method; answered 405.
    Other,
}

/// What the server keeps of a request head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: Method,
    /// The request target as sent, e.g. `/home/events?x=1` (`httparse` has checked it is UTF-8 without
    /// spaces or control characters).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The `Content-Length`, if one was sent.
    pub content_length: Option<u64>,
    /// Whether a `Transfer-Encoding` header was sent (bodies framed that way are not supported).
    pub has_transfer_encoding: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
    pub expect_continue: bool,
    /// `Last-Event-ID`, as sent (untrusted: checked where it is used).
    pub last_event_id: Option<String>,
    /// `Authorization`, as sent.
    pub authorization: Option<String>,
    /// `Origin`, as sent (cross-origin requests).
    pub origin: Option<String>,
    /// `Host`, as sent (required of HTTP/1.1).
    pub host: Option<String>,
}

impl Request {
    /// The path part of the target, without the query; for an absolute-form target
    /// (`http://host/path`, which servers must accept: RFC 9112 §3.2.2), without the scheme and host.
    pub fn path(&self) -> &str {
        let mut target = self.target.as_str();
        for scheme in ["http://", "https://"] {
            if target.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)) {
                let after = &target[scheme.len()..];
                target = after.find('/').map_or("/", |at| &after[at..]);
                break;
            }
        }
        target.split(['?', '#']).next().unwrap_or("")
    }

    /// Whether a body follows the head.
    pub fn has_body(&self) -> bool {
        self.has_transfer_encoding || self.content_length.is_some_and(|n| n > 0)
    }
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// The head is not complete yet: read more.
    Partial,
    /// A complete head of `head_len` bytes.
    Complete { request: Request, head_len: usize },
}

/// Why a request head was refused. Each maps to one status in [`RequestError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Not HTTP/1.x syntax; the text says which part.
    Malformed(&'static str),
    /// The request line alone is longer than the head limit.
    UriTooLong,
    /// The head is longer than the limit, or has more than [`MAX_HEADERS`] lines.
    HeadTooLarge,
    /// An HTTP version other than 1.0 or 1.1.
    VersionNotSupported,
}

impl RequestError {
    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::UriTooLong => 414,
            RequestError::HeadTooLarge => 431,
            RequestError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::UriTooLong => f.write_str("request line too long"),
            RequestError::HeadTooLarge => f.write_str("request head too large"),
            RequestError::VersionNotSupported => f.write_str("HTTP version not supported"),
        }
    }
}

/// Parses the head at the start of `buf`.
///
/// `scanned` is how many leading bytes of `buf` an earlier call already saw as `Partial`; the search for
/// the blank line resumes there (less 3 bytes, since a `\r\n\r\n` may straddle the boundary).
pub fn parse(buf: &[u8], scanned: usize, limits: Limits) -> Result<Parse, RequestError> {
    // Empty lines before a request line are ignored (RFC 9112 §2.2, as `httparse` does): they are not the
    // blank line that ends a head, so the search starts after them.
    let request_line = buf.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(buf.len());
    let window = &buf[scanned.saturating_sub(3).max(request_line).min(buf.len())..];
    if !contains_blank_line(window) {
        return check_partial_size(buf, limits);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return check_partial_size(buf, limits),
        Err(e) => return Err(map_httparse_error(e)),
    };
    if head_len > limits.max_head_bytes {
        return Err(too_large(buf, limits));
    }
    let request = interpret(&req)?;
    Ok(Parse::Complete { request, head_len })
}

/// A head still incomplete must still fit the limit.
fn check_partial_size(buf: &[u8], limits: Limits) -> Result<Parse, RequestError> {
    if buf.len() <= limits.max_head_bytes { Ok(Parse::Partial) } else { Err(too_large(buf, limits)) }
}

/// Which limit a head over `max_head_bytes` broke: the request line alone (414), or the head (431).
fn too_large(buf: &[u8], limits: Limits) -> RequestError {
    if buf[..limits.max_head_bytes.min(buf.len())].contains(&b'\n') {
        RequestError::HeadTooLarge
    } else {
        RequestError::UriTooLong
    }
}

/// Whether `bytes` holds an empty line (`\n\n` or `\n\r\n`), the only way a head can end.
fn contains_blank_line(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .enumerate()
        .any(|(i, w)| w[0] == b'\n' && (w[1] == b'\n' || (w[1] == b'\r' && bytes.get(i + 2) == Some(&b'\n'))))
}

fn map_httparse_error(error: httparse::Error) -> RequestError {
    use httparse::Error as E;
    match error {
        E::TooManyHeaders => RequestError::HeadTooLarge,
        E::Version => RequestError::VersionNotSupported,
        E::Token => RequestError::Malformed("invalid request line"),
        E::HeaderName => RequestError::Malformed("invalid header name"),
        E::HeaderValue => RequestError::Malformed("invalid header value"),
        E::NewLine => RequestError::Malformed("invalid line ending"),
        E::Status => RequestError::Malformed("invalid status"),
    }
}

/// Pulls what the server acts on out of a complete `httparse` request, rejecting the header shapes that
/// make framing ambiguous.
fn interpret(req: &httparse::Request<'_, '_>) -> Result<Request, RequestError> {
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed("incomplete request line"));
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let mut keep_alive = minor_version == 1;
    let mut content_length = None;
    let mut has_transfer_encoding = false;
    let (mut hosts, mut host) = (0, None);
    let (mut expect_continue, mut last_event_id, mut authorization, mut origin) = (false, None, None, None);
    let text = |value: &[u8]| String::from_utf8(value.to_vec()).ok();
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|b| *b == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(RequestError::Malformed("more than one Content-Length"));
            }
            content_length = Some(parse_content_length(header.value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = text(header.value);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = text(header.value);
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = text(header.value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = text(header.value);
        }
    }
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host header.
    if hosts > 1 || (hosts == 0 && minor_version == 1) {
        return Err(RequestError::Malformed("HTTP/1.1 needs exactly one Host header"));
    }
    if has_transfer_encoding && content_length.is_some() {
        return Err(RequestError::Malformed("both Content-Length and Transfer-Encoding"));
    }
    Ok(Request {
        method,
        target: target.to_owned(),
        minor_version,
        keep_alive,
        content_length,
        has_transfer_encoding,
        expect_continue,
        last_event_id,
        authorization,
        origin,
        host,
    })
}

/// `Content-Length` is one or more ASCII digits, nothing else (no sign, no spaces, no list).
fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    let bad = RequestError::Malformed("invalid Content-Length");
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    value.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_head_bytes: 8 * 1024 };

    fn complete(raw: &[u8]) -> (Request, usize) {
        match parse(raw, 0, LIMITS) {
            Ok(Parse::Complete { request, head_len }) => (request, head_len),
            other => panic!("expected a complete head for {:?}, got {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn error(raw: &[u8]) -> RequestError {
        match parse(raw, 0, LIMITS) {
            Err(e) => e,
            other => panic!("expected an error for {:?}, got {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    const BROWSER: &[u8] = b"GET /home/events?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
        Accept: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n";

    #[test]
    fn a_browser_request_parses() {
        let (request, len) = complete(BROWSER);
        assert_eq!(len, BROWSER.len());
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.target, "/home/events?x=1");
        assert_eq!(request.path(), "/home/events");
        let absolute =
            Request { target: "HTTP://127.0.0.1:8080/home/events?x=1".into(), ..Request::default() };
        assert_eq!(absolute.path(), "/home/events");
        assert_eq!(request.minor_version, 1);
        assert!(request.keep_alive);
        assert!(!request.has_body());
    }

    /// Every split point: the first part alone is `Partial` (or, for the whole, complete), and resuming the
    /// scan where the first part ended gives the same result as parsing at once.
    #[test]
    fn every_split_point_of_a_request_gives_the_same_result() {
        let whole = complete(BROWSER);
        for split in 0..BROWSER.len() {
            assert_eq!(parse(&BROWSER[..split], 0, LIMITS), Ok(Parse::Partial), "first {split} bytes");
            let resumed = parse(BROWSER, split, LIMITS);
            assert_eq!(
                resumed,
                Ok(Parse::Complete { request: whole.0.clone(), head_len: whole.1 }),
                "split {split}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_with_bare_lf_line_ends() {
        let raw = b"GET / HTTP/1.1\nHost: x\n\n";
        let mut scanned = 0;
        for end in 1..raw.len() {
            assert_eq!(parse(&raw[..end], scanned, LIMITS), Ok(Parse::Partial), "first {end} bytes");
            scanned = end;
        }
        let (request, len) = match parse(raw, scanned, LIMITS) {
            Ok(Parse::Complete { request, head_len }) => (request, head_len),
            other => panic!("{other:?}"),
        };
        assert_eq!((request.path(), len), ("/", raw.len()));
    }

    #[test]
    fn empty_lines_before_a_request_are_not_its_end() {
        assert_eq!(parse(b"\r\n\r\nGET / HT", 0, LIMITS), Ok(Parse::Partial));
        assert_eq!(parse(b"\n\nS.n.SS\nJ", 0, LIMITS), Ok(Parse::Partial), "found by the fuzzer");
        let (request, len) = complete(b"\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((request.path(), len), ("/x", 30));
    }

    #[test]
    fn pipelined_requests_are_taken_one_head_at_a_time() {
        let raw = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c";
        let (first, len) = complete(raw);
        assert_eq!(first.path(), "/a");
        let (second, len2) = complete(&raw[len..]);
        assert_eq!(second.path(), "/b");
        assert_eq!(parse(&raw[len + len2..], 0, LIMITS), Ok(Parse::Partial));
    }

    #[test]
    fn the_headers_the_server_acts_on_are_kept() {
        let (request, _) = complete(
            b"POST /home/events HTTP/1.1\r\nHost: x\r\nlast-event-id: 42\r\nAuthorization: Bearer s3cret\r\n\
              Origin: https://app.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(request.last_event_id.as_deref(), Some("42"));
        assert_eq!(request.authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(request.origin.as_deref(), Some("https://app.example"));
        assert!(request.expect_continue);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let cases: [(&[u8], bool); 5] = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ];
        for (raw, keep_alive) in cases {
            assert_eq!(complete(raw).0.keep_alive, keep_alive, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn bodies_are_described_by_their_headers() {
        let (request, _) = complete(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(
            (request.method, request.content_length, request.has_body()),
            (Method::Post, Some(12), true)
        );
        let (request, _) = complete(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(request.has_transfer_encoding && request.has_body());
    }

    #[test]
    fn malformed_heads_are_refused_with_the_right_status() {
        let cases: [(&[u8], u16); 10] = [
            (b"GET / HTTP/1.1\r\n\r\n", 400),                       // no Host
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
            (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),            // bad method token
            (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400),           // bad header name
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"\x00\x01\x02\n\n", 400),
        ];
        for (raw, status) in cases {
            assert_eq!(error(raw).status(), status, "{}", String::from_utf8_lossy(raw));
        }
    }

    /// Shapes used to smuggle a second request past a proxy that reads the head differently.
    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"[..], // obs-fold
            b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",                // bare CR in a header
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",           // bare CR in a value
            b"GET / HTTP/1.1\rHost: x\r\n\r\n",                        // bare CR ending the request line
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", // a list for a length
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", // space before the colon
            b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", // NUL
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", // two spaces
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        ] {
            let result = parse(raw, 0, LIMITS);
            assert!(
                matches!(result, Err(RequestError::Malformed(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn size_limits_give_414_and_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(error(long_line.as_bytes()), RequestError::UriTooLong);
        let whole = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(error(whole.as_bytes()), RequestError::UriTooLong, "complete, but its line is too long");
        let long_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(error(long_head.as_bytes()), RequestError::HeadTooLarge);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(error(many.as_bytes()), RequestError::HeadTooLarge);
        // Just under the limit is fine.
        let fits = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "a".repeat(8000));
        assert!(matches!(parse(fits.as_bytes(), 0, LIMITS), Ok(Parse::Complete { .. })));
    }
}
