//! The table of endpoints: which request gets which answer. Pure: a request in, a [`Route`] out.
//!
//! | path           | methods   | answer                                                          |
//! |----------------|-----------|-----------------------------------------------------------------|
//! | `/home/events` | GET       | an event stream (ticks every `--interval-ms`)                   |
//! | `/home/events` | HEAD      | the event stream's head, no body                                |
//! | anything else  | GET, HEAD | a file from `--static-dir` (`/` is `index.html`), else 404      |
//!
//! Other methods get 405 with `Allow`. Over the connection cap, an event-stream request still gets 200,
//! but only a jittered `retry:` and a close: a browser's `EventSource` treats every other status (503
//! included) as final and would never come back. Other requests over the cap get 503 with `Retry-After`.

use crate::http::request::{Method, Request};
use crate::static_files::{Lookup, StaticFile, StaticFiles};

/// The path of the event stream.
pub const EVENTS_PATH: &str = "/home/events";

/// What to answer.
#[derive(Debug)]
pub enum Route<'a> {
    /// Start an event stream (`head_only` for HEAD: send the head and close).
    EventStream { head_only: bool },
    /// Send a file.
    File { file: &'a StaticFile, head_only: bool },
    /// The server is at its connection cap; this event-stream request gets `retry:` and a close.
    StreamOverCapacity,
    /// Answer with an error status and a one-line reason; `allow` fills the `Allow` header of a 405.
    Refuse { status: u16, reason: &'static str, allow: Option<&'static str> },
}

/// Picks the answer for `request`. `over_capacity` is true when the connection was accepted past the cap.
pub fn route<'a>(request: &Request, files: &'a StaticFiles, over_capacity: bool) -> Route<'a> {
    let path = request.path();
    let head_only = request.method == Method::Head;
    if request.has_transfer_encoding {
        return Route::Refuse { status: 501, reason: "Transfer-Encoding is not supported", allow: None };
    }
    if path == EVENTS_PATH {
        return match request.method {
            Method::Get | Method::Head if over_capacity => Route::StreamOverCapacity,
            Method::Get | Method::Head => Route::EventStream { head_only },
            _ => {
                Route::Refuse { status: 405, reason: "the event stream takes GET", allow: Some("GET, HEAD") }
            }
        };
    }
    if over_capacity {
        return Route::Refuse { status: 503, reason: "the server is at its connection limit", allow: None };
    }
    match files.lookup(path) {
        Lookup::Invalid(reason) => Route::Refuse { status: 400, reason, allow: None },
        Lookup::NotFound => Route::Refuse { status: 404, reason: "no such file", allow: None },
        Lookup::Found(file) => match request.method {
            Method::Get | Method::Head => Route::File { file, head_only },
            _ => Route::Refuse {
                status: 405,
                reason: "static files take GET or HEAD",
                allow: Some("GET, HEAD"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, target: &str) -> Request {
        Request {
            method,
            target: target.into(),
            minor_version: 1,
            keep_alive: true,
            content_length: None,
            has_transfer_encoding: false,
        }
    }

    #[test]
    fn the_table() {
        let files = StaticFiles::builtin();
        let route_of =
            |method, target: &str, over| format!("{:?}", route(&request(method, target), &files, over));
        assert!(route_of(Method::Get, "/home/events", false).starts_with("EventStream { head_only: false"));
        assert!(route_of(Method::Get, "/home/events?x=1", false).starts_with("EventStream"));
        assert!(route_of(Method::Head, "/home/events", false).starts_with("EventStream { head_only: true"));
        assert!(route_of(Method::Post, "/home/events", false).contains("status: 405"));
        assert!(route_of(Method::Get, "/", false).starts_with("File"));
        assert!(route_of(Method::Head, "/index.html", false).contains("head_only: true"));
        assert!(route_of(Method::Post, "/", false).contains("status: 405"));
        assert!(route_of(Method::Other, "/", false).contains("GET, HEAD"));
        assert!(route_of(Method::Get, "/nope", false).contains("status: 404"));
        assert!(route_of(Method::Get, "/%2e%2e/x", false).contains("status: 400"));
        assert!(route_of(Method::Get, "/home/events", true).starts_with("StreamOverCapacity"));
        assert!(route_of(Method::Get, "/", true).contains("status: 503"));
        let mut chunked = request(Method::Get, "/");
        chunked.has_transfer_encoding = true;
        assert!(format!("{:?}", route(&chunked, &files, false)).contains("status: 501"));
    }
}
