//! The table of endpoints: which request gets which answer. Pure: a request in, a [`Route`] out.
//!
//! | path           | method    | answer                                                                |
//! |----------------|-----------|-----------------------------------------------------------------------|
//! | `/home/events` | GET       | an event stream; query: `topic` (repeatable), `interval_ms`, `bytes`, `last_event_id` |
//! | `/home/events` | HEAD      | the event stream's head, no body                                      |
//! | `/home/events` | POST      | publish the body as one event to a topic's streams; query: `topic`, `event` |
//! | `/home/stream` | GET, HEAD | a stream as `/home/events`, and query `count`, `done`: it may end     |
//! | `/home/stream` | POST      | the same, once the body (at most `--max-body-bytes`) is read and dropped |
//! | `/metrics`     | GET, HEAD | Prometheus text exposition                                            |
//! | any            | OPTIONS   | 204, with CORS preflight headers for allowed origins                  |
//! | anything else  | GET, HEAD | a file from `--static-dir` (`/` is `index.html`), else 404            |
//!
//! Other methods get 405 with `Allow`. Over the connection cap, an event-stream request still gets 200,
//! but only a jittered `retry:` and a close: a browser's `EventSource` treats every other status (503
//! included) as final and would never come back. Other requests over the cap get 503 with `Retry-After`.
//!
//! Who may talk to the server and who may publish is [`crate::trust`]'s to say: 421 for a `Host` that is
//! not ours while listening on loopback; 401/403 for a publish without the right token, or from a peer
//! or a web page that may not.

use std::time::Duration;

use crate::config::{Config, MAX_MS};
use crate::http::query;
use crate::http::refusal::Refusal;
use crate::http::request::{Method, Request};
use crate::http::response::Cors;
use crate::hub::{self, topics};
use crate::static_files::{Lookup, StaticFile, StaticFiles};
use crate::trust;

/// The path of the event stream (and of publishing).
pub const EVENTS_PATH: &str = "/home/events";
/// The path of the finite streams that clients are tested against (`?count=N&done=1`).
pub const STREAM_PATH: &str = "/home/stream";
/// The path of the metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Longest event name a publisher may set.
pub const MAX_EVENT_NAME_LEN: usize = 128;
/// The shortest tick payload: the time of day itself.
pub const MIN_PAYLOAD_BYTES: u32 = 12;
/// The largest `?count=` of a finite stream (larger asks are lowered to it).
pub const MAX_COUNT: u16 = u16::MAX;

/// How one stream is shaped: its own tick interval and payload size, and where it resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// The topics it is on (`?topic=`, repeatable, each once); none: the default topic.
    pub topics: Vec<Box<str>>,
    /// Time between ticks; `None` for no ticks.
    pub interval: Option<Duration>,
    /// Length of each tick's data: the time of day, then padding.
    pub payload_bytes: u32,
    /// The last event the client saw (header `Last-Event-ID`, else query `last_event_id`).
    pub last_event_id: Option<u64>,
    /// `/home/stream?count=N`: the stream ends after N ticks (`done`: then a last `data: [DONE]`).
    pub end: Option<Finite>,
}

/// How a finite stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finite {
    /// Ticks sent before the end.
    pub count: u16,
    /// A last event `data: [DONE]` before the close.
    pub done: bool,
}

/// What to answer.
#[derive(Debug)]
pub enum Route<'a> {
    /// Start an event stream (`head_only` for HEAD: send the head and close).
    EventStream { head_only: bool, options: StreamOptions },
    /// `POST /home/stream`: read the body (`content_length` bytes) and drop it, then start the stream.
    EventStreamAfterBody { options: StreamOptions, content_length: usize },
    /// Publish the request's body (`content_length` bytes) as one event on `topic` (none: the default
    /// topic), named `event` if set.
    Publish { topic: Option<String>, event: Option<String>, content_length: usize },
    /// The metrics page.
    Metrics { head_only: bool },
    /// `OPTIONS`: 204, with CORS preflight headers for an allowed origin.
    Preflight,
    /// Send a file.
    File { file: &'a StaticFile, head_only: bool },
    /// The server is at its connection cap; this event-stream request gets `retry:` and a close.
    StreamOverCapacity,
    /// Refuse it (see [`Refusal`] for what each refusal sends and logs).
    Refuse(Refusal),
}

/// What routing needs to know besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub files: &'a StaticFiles,
    pub config: &'a Config,
    /// The peer is on this machine (127.0.0.0/8 or ::1).
    pub peer_is_loopback: bool,
    /// The connection was accepted past `--max-connections`.
    pub over_capacity: bool,
}

fn refuse(refusal: Refusal) -> Route<'static> {
    Route::Refuse(refusal)
}

fn not_allowed(reason: &'static str, allow: &'static str) -> Route<'static> {
    Route::Refuse(Refusal::MethodNotAllowed { reason, allow })
}

/// Picks the answer for `request`.
pub fn route<'a>(request: &Request, ctx: Context<'a>) -> Route<'a> {
    let path = request.path();
    let head_only = request.method == Method::Head;
    if request.has_transfer_encoding {
        return refuse(Refusal::NotImplemented("Transfer-Encoding is not supported"));
    }
    if !trust::host_allowed(ctx.config, request.host.as_deref()) {
        return refuse(Refusal::MisdirectedRequest);
    }
    if request.method == Method::Options {
        return Route::Preflight;
    }
    if path == EVENTS_PATH {
        return match request.method {
            Method::Get | Method::Head if ctx.over_capacity => Route::StreamOverCapacity,
            Method::Get | Method::Head => match stream_options(request, ctx.config) {
                Ok(options) => Route::EventStream { head_only, options },
                Err(reason) => refuse(Refusal::BadRequest(reason)),
            },
            Method::Post if ctx.over_capacity => refuse(Refusal::OverCapacity),
            Method::Post => publish(request, ctx),
            _ => not_allowed("the event stream takes GET, or POST to publish", "GET, HEAD, POST, OPTIONS"),
        };
    }
    if path == STREAM_PATH {
        return match request.method {
            Method::Get | Method::Head | Method::Post if ctx.over_capacity => Route::StreamOverCapacity,
            Method::Get | Method::Head | Method::Post => finite_stream(request, ctx.config, head_only),
            _ => not_allowed(
                "the stream takes GET, or POST with a body it ignores",
                "GET, HEAD, POST, OPTIONS",
            ),
        };
    }
    if ctx.over_capacity {
        return refuse(Refusal::OverCapacity);
    }
    if path == METRICS_PATH {
        return match request.method {
            Method::Get | Method::Head => Route::Metrics { head_only },
            _ => not_allowed("metrics take GET or HEAD", "GET, HEAD, OPTIONS"),
        };
    }
    match ctx.files.lookup(path) {
        Lookup::Invalid(reason) => refuse(Refusal::BadRequest(reason)),
        Lookup::NotFound => refuse(Refusal::NotFound),
        Lookup::Found(file) => match request.method {
            Method::Get | Method::Head => Route::File { file, head_only },
            _ => not_allowed("static files take GET or HEAD", "GET, HEAD, OPTIONS"),
        },
    }
}

/// Checks a publish request: who sends it, its body's size, its event name.
fn publish<'a>(request: &Request, ctx: Context<'a>) -> Route<'a> {
    let (authorization, origin, host) =
        (request.authorization.as_deref(), request.origin.as_deref(), request.host.as_deref());
    if let Err(refusal) = trust::may_publish(ctx.config, authorization, origin, host, ctx.peer_is_loopback) {
        return refuse(refusal);
    }
    let Some(length) = request.content_length else {
        return refuse(Refusal::LengthRequired);
    };
    if length > ctx.config.max_body_bytes {
        return refuse(Refusal::ContentTooLarge);
    }
    let (mut event, mut topic) = (None, None);
    let Ok(params) = query::params(query::query_of(&request.target)) else {
        return refuse(Refusal::BadRequest("invalid query string"));
    };
    for (name, value) in params {
        if name == "event" && !value.is_empty() {
            if value.len() > MAX_EVENT_NAME_LEN || value.chars().any(|c| c.is_control()) {
                return refuse(Refusal::BadRequest(
                    "the event name must be at most 128 bytes without CR, LF or control characters",
                ));
            }
            event = Some(value);
        } else if name == "topic" {
            if let Err(reason) = topics::check_name(&value) {
                return refuse(Refusal::BadRequest(reason));
            }
            if topic.replace(value).is_some() {
                return refuse(Refusal::BadRequest("a publish goes to one topic: give topic once"));
            }
        }
    }
    Route::Publish { topic, event, content_length: length as usize }
}

/// `/home/stream`: the options of `/home/events` and `count`, `done`; a POST's body is read and dropped
/// first (its length checked as a publish's is).
fn finite_stream(request: &Request, config: &Config, head_only: bool) -> Route<'static> {
    let options = match stream_options(request, config) {
        Ok(options) => options,
        Err(reason) => return refuse(Refusal::BadRequest(reason)),
    };
    if request.method != Method::Post {
        return Route::EventStream { head_only, options };
    }
    // (A chunked body was refused above: without Content-Length there is no body.)
    match request.content_length {
        Some(length) if length > config.max_body_bytes => refuse(Refusal::ContentTooLarge),
        length => Route::EventStreamAfterBody { options, content_length: length.unwrap_or(0) as usize },
    }
}

/// A stream's options from its query, within the server's bounds. Out-of-range numbers are clamped; what
/// is not a number is refused. The `Last-Event-ID` header wins over the query parameter: a browser
/// reconnecting keeps the URL it started with and sends its newer id in the header.
fn stream_options(request: &Request, config: &Config) -> Result<StreamOptions, &'static str> {
    let mut options = StreamOptions {
        topics: Vec::new(),
        interval: config.tick_interval(),
        payload_bytes: MIN_PAYLOAD_BYTES,
        last_event_id: None,
        end: None,
    };
    let mut done = false;
    let params = query::params(query::query_of(&request.target)).map_err(|_| "invalid query string")?;
    for (name, value) in params {
        match name.as_str() {
            "topic" => {
                topics::check_name(&value)?;
                if !options.topics.iter().any(|t| **t == *value) {
                    if options.topics.len() >= usize::from(config.max_topics_per_stream) {
                        return Err("too many topics for one stream (--max-topics-per-stream)");
                    }
                    options.topics.push(value.into());
                }
            }
            "interval_ms" => {
                let ms: u64 =
                    value.parse().map_err(|_| "interval_ms must be a whole number of milliseconds")?;
                options.interval =
                    (ms > 0).then(|| Duration::from_millis(ms.clamp(config.min_interval_ms, MAX_MS)));
            }
            "bytes" => {
                let bytes: u64 = value.parse().map_err(|_| "bytes must be a whole number")?;
                options.payload_bytes =
                    bytes.clamp(MIN_PAYLOAD_BYTES.into(), config.max_payload_bytes.into()) as u32;
            }
            "last_event_id" => {
                options.last_event_id =
                    Some(hub::parse_event_id(&value).ok_or("last_event_id must be a decimal event id")?);
            }
            "count" if request.path() == STREAM_PATH => {
                let count: u64 = value.parse().map_err(|_| "count must be a whole number of events")?;
                options.end = Some(Finite { count: count.min(MAX_COUNT.into()) as u16, done: false });
            }
            "done" if request.path() == STREAM_PATH => done = value == "1" || value == "true",
            _ => {} // other parameters (cache busters, client ids) are the client's business
        }
    }
    match &mut options.end {
        Some(end) if options.interval.is_none() && end.count > 0 => {
            return Err("count needs ticks: interval_ms must not be 0");
        }
        Some(end) => end.done = done,
        None if done => return Err("done=1 needs count=N"),
        None => {}
    }
    if let Some(header) = &request.last_event_id {
        match hub::parse_event_id(header) {
            Some(id) => options.last_event_id = Some(id),
            // Sent by a browser on its own: refusing would stop it for good. Replay from the query, or live.
            None => log::debug!("ignoring a Last-Event-ID that is not an id of ours: {header:?}"),
        }
    }
    Ok(options)
}

/// The CORS grant for a request from `origin` (none without an `Origin` header: same-origin or not a
/// browser): an origin listed in `--cors-origin` is echoed with credentials allowed (what `withCredentials`
/// needs); with `*` listed, any other origin gets `*`, without credentials, as browsers require.
pub fn cors_grant(config: &Config, origin: Option<&str>) -> Option<Cors> {
    let origin = origin?;
    if config.cors_origins.iter().any(|allowed| allowed == origin) {
        Some(Cors { origin: origin.to_owned(), credentials: true })
    } else if config.cors_origins.iter().any(|allowed| allowed == "*") {
        Some(Cors { origin: "*".to_owned(), credentials: false })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn request(method: Method, target: &str) -> Request {
        Request { method, target: target.into(), minor_version: 1, keep_alive: true, ..Request::default() }
    }

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("mio-sse").chain(args.iter().copied())).unwrap()
    }

    fn describe(request: &Request, config: &Config, loopback: bool, over: bool) -> String {
        let files = StaticFiles::builtin();
        let ctx = Context { files: &files, config, peer_is_loopback: loopback, over_capacity: over };
        match route(request, ctx) {
            Route::Refuse(refusal) => format!("Refuse {{ status: {}, {refusal:?} }}", refusal.status()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn the_table() {
        let config = config(&[]);
        let route_of = |method, target: &str, over| describe(&request(method, target), &config, true, over);
        assert!(route_of(Method::Get, "/home/events", false).starts_with("EventStream { head_only: false"));
        assert!(route_of(Method::Head, "/home/events", false).starts_with("EventStream { head_only: true"));
        assert!(route_of(Method::Other, "/home/events", false).contains("status: 405"));
        assert!(route_of(Method::Get, "/home/stream", false).starts_with("EventStream { head_only: false"));
        assert!(route_of(Method::Post, "/home/stream", false).starts_with("EventStreamAfterBody"));
        assert!(route_of(Method::Get, "/home/stream?count=5&done=1", false).contains("count: 5, done: true"));
        assert!(
            route_of(Method::Get, "/home/events?count=5", false).contains("end: None"),
            "only /home/stream"
        );
        assert!(route_of(Method::Other, "/home/stream", false).contains("status: 405"));
        assert!(route_of(Method::Post, "/home/stream", true).starts_with("StreamOverCapacity"));
        assert!(route_of(Method::Get, "/metrics", false).starts_with("Metrics"));
        assert!(route_of(Method::Options, "/anything", false).starts_with("Preflight"));
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
        assert!(describe(&chunked, &config, true, false).contains("status: 501"));
    }

    #[test]
    fn stream_options_are_clamped_and_checked() {
        let config = config(&["--min-interval-ms", "50", "--max-payload-bytes", "1000"]);
        let options = |target: &str| stream_options(&request(Method::Get, target), &config);
        let ms = Duration::from_millis;
        assert_eq!(options("/home/events").unwrap().interval, Some(ms(3000)));
        assert_eq!(options("/home/events?interval_ms=100").unwrap().interval, Some(ms(100)));
        assert_eq!(
            options("/home/events?interval_ms=1").unwrap().interval,
            Some(ms(50)),
            "raised to the minimum"
        );
        assert_eq!(options("/home/events?interval_ms=0").unwrap().interval, None, "0: no ticks");
        assert_eq!(options("/home/events?bytes=512").unwrap().payload_bytes, 512);
        assert_eq!(
            options("/home/events?bytes=99999999999").unwrap().payload_bytes,
            1000,
            "lowered to the max"
        );
        assert_eq!(options("/home/events?bytes=1").unwrap().payload_bytes, MIN_PAYLOAD_BYTES);
        assert_eq!(options("/home/events?last_event_id=42").unwrap().last_event_id, Some(42));
        assert!(options("/home/events?interval_ms=fast").unwrap_err().contains("interval_ms"));
        assert!(options("/home/events?bytes=-5").unwrap_err().contains("bytes"));
        assert!(options("/home/events?last_event_id=abc").unwrap_err().contains("last_event_id"));
        assert!(options("/home/events?interval_ms=%zz").is_err());
        // The header wins over the query (a browser reconnecting keeps its first URL); a bad header is ignored.
        let mut req = request(Method::Get, "/home/events?last_event_id=5");
        req.last_event_id = Some("9".into());
        assert_eq!(stream_options(&req, &config).unwrap().last_event_id, Some(9));
        req.last_event_id = Some("not-ours".into());
        assert_eq!(stream_options(&req, &config).unwrap().last_event_id, Some(5));
    }

    #[test]
    fn who_may_publish() {
        let open = config(&[]);
        let post = |target: &str, auth: Option<&str>, length: Option<u64>| {
            let mut req = request(Method::Post, target);
            req.authorization = auth.map(str::to_owned);
            req.content_length = length;
            req
        };
        let ok = post("/home/events", None, Some(5));
        assert!(
            describe(&ok, &open, true, false)
                .starts_with("Publish { topic: None, event: None, content_length: 5")
        );
        assert!(describe(&ok, &open, false, false).contains("status: 403"), "not loopback");
        assert!(describe(&post("/home/events", None, None), &open, true, false).contains("status: 411"));
        assert!(
            describe(&post("/home/events", None, Some(1 << 20)), &open, true, false).contains("status: 413")
        );
        let named = post("/home/events?event=news", None, Some(1));
        assert!(describe(&named, &open, true, false).contains("event: Some(\"news\")"));
        let injected = post("/home/events?event=a%0Adata:%20x", None, Some(1));
        assert!(describe(&injected, &open, true, false).contains("status: 400"));

        let to_room = post("/home/events?topic=room%201&event=news", None, Some(1));
        assert!(describe(&to_room, &open, true, false).contains("topic: Some(\"room 1\")"));
        for bad in ["topic=", "topic=a%0Ab", "topic=a&topic=b"] {
            let refused = describe(&post(&format!("/home/events?{bad}"), None, Some(1)), &open, true, false);
            assert!(refused.contains("status: 400"), "{bad}: {refused}");
        }

        let guarded = config(&["--publish-token", "s3cret"]);
        let with = |auth| post("/home/events", auth, Some(1));
        assert!(describe(&with(Some("Bearer s3cret")), &guarded, false, false).starts_with("Publish"));
        assert!(describe(&with(Some("Bearer wrong!")), &guarded, false, false).contains("status: 403"));
        assert!(describe(&with(Some("s3cret")), &guarded, true, false).contains("status: 403"));
        assert!(
            describe(&with(None), &guarded, true, false).contains("status: 401"),
            "required from loopback too"
        );
    }

    #[test]
    fn a_stream_is_on_the_topics_it_names_each_once_up_to_the_limit() {
        let config = config(&["--max-topics-per-stream", "3"]);
        let topics = |target: &str| stream_options(&request(Method::Get, target), &config).map(|o| o.topics);
        assert_eq!(topics("/home/events"), Ok(vec![]), "none: the default topic");
        let named = topics("/home/events?topic=a&topic=b%2Fc&topic=a").unwrap();
        assert_eq!(named, ["a".into(), "b/c".into()] as [Box<str>; 2], "each once, in order");
        assert!(topics("/home/events?topic=a&topic=b&topic=c&topic=d").is_err(), "over the limit");
        assert!(topics("/home/events?topic=a&topic=b&topic=c&topic=a").is_ok(), "a repeat is not one more");
        assert!(topics("/home/events?topic=").is_err());
        assert!(topics("/home/events?topic=%07bell").is_err());
        assert!(topics(&format!("/home/events?topic={}", "x".repeat(129))).is_err());
        assert_eq!(topics("/home/stream?topic=t&count=2").unwrap().len(), 1, "finite streams too");
    }

    #[test]
    fn cors_grants() {
        let none = config(&[]);
        assert_eq!(cors_grant(&none, Some("https://a.example")), None);
        let listed = config(&["--cors-origin", "https://a.example", "--cors-origin", "*"]);
        assert_eq!(
            cors_grant(&listed, Some("https://a.example")),
            Some(Cors { origin: "https://a.example".into(), credentials: true })
        );
        assert_eq!(
            cors_grant(&listed, Some("https://b.example")),
            Some(Cors { origin: "*".into(), credentials: false })
        );
        assert_eq!(cors_grant(&listed, None), None, "no Origin: nothing to grant");
    }
}
