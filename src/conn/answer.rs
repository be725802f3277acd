//! Answering one request: the [`crate::routes`] table decides what, this writes it into the outbox or
//! moves the connection to its next state (streaming, reading a body, closing).
//!
//! Rules:
//! - Keep-alive only where the request stream is in a known state afterwards: a 404 or 405 to a request
//!   without a body keeps it; any other error closes (after the answer, with a lingering close).
//! - Malformed input is logged at `warn` with the client's address; `404`/`405` at `info`; a refusal for
//!   being over capacity at `debug` (a flood of them must not flood the log).

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use super::{Connection, Next, PendingPublish, Shared, State};
use crate::http::request::{Method, Request, RequestError};
use crate::http::response::{self, Answer, Cors, Persistence, Plain};
use crate::metrics;
use crate::routes::{self, Route};
use crate::sse;

/// Range of the `retry:` (ms) sent to event-stream requests over the connection cap: spread over
/// seconds, so that thousands of refused clients do not all come back in the same instant.
pub const OVER_CAPACITY_RETRY_MS: (u64, u64) = (1_000, 10_000);
/// `Retry-After` (s) for other requests over the cap.
pub const OVER_CAPACITY_RETRY_AFTER_S: &str = "5";
/// The `Content-Type` of the metrics page (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// What a CORS preflight allows.
const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Last-Event-ID, Content-Type, Authorization, Cache-Control"),
    ("Access-Control-Max-Age", "600"),
];

impl Connection {
    /// Answers one complete request head; may turn the connection into a stream, start reading a body,
    /// or start closing it.
    pub(super) fn answer(&mut self, request: &Request, shared: &mut Shared, now: Instant) {
        shared.counters.requests += 1;
        self.answered = true;
        let keep_alive = if request.keep_alive && !self.over_capacity && shared.shutdown_spread_ms.is_none() {
            Persistence::KeepAlive { http10: request.minor_version == 0 }
        } else {
            Persistence::Close
        };
        // Only a publish reads its body; after any other request with a body, close rather than parse the
        // body as the next request.
        let persistence = if request.has_body() { Persistence::Close } else { keep_alive };
        let cors = routes::cors_grant(&shared.config, request.origin.as_deref());
        let head_only = request.method == Method::Head;
        let ctx = routes::Context {
            files: &shared.files,
            config: &shared.config,
            peer_is_loopback: is_loopback(self.peer.ip()),
            over_capacity: self.over_capacity,
        };
        match routes::route(request, ctx) {
            Route::EventStream { head_only: false, options } => {
                self.start_stream(shared, now, options, cors.as_ref())
            }
            Route::EventStream { head_only: true, .. } => {
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, shared.dates.get(SystemTime::now()), cors.as_ref());
                self.outbox.push_owned(out);
                self.start_draining(shared, now);
            }
            Route::Publish { event, content_length } => {
                if request.expect_continue && request.minor_version == 1 {
                    // The client waits for this before sending its body (curl does for bodies > 1 KiB);
                    // an HTTP/1.0 client cannot have asked for it (RFC 9110 §10.1.1).
                    self.outbox.push_owned(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                }
                let publish = PendingPublish { event, length: content_length, persistence: keep_alive, cors };
                let deadline = now + shared.config.request_timeout();
                self.state = State::ReadingBody { deadline, publish: Box::new(publish) };
            }
            Route::Metrics { head_only } => {
                let mut gauges = shared.gauges.clone();
                let (events, bytes) = shared.hub.ring_len();
                (gauges.replay_events, gauges.replay_bytes) = (events as u64, bytes as u64);
                let body = metrics::render(&shared.counters, &gauges);
                let content_type = METRICS_CONTENT_TYPE;
                let (body, cors) = (body.as_bytes(), cors.as_ref());
                let a = Answer { status: 200, content_type, body, extra: &[], cors, head_only, persistence };
                self.send_answer(shared, now, &a);
            }
            Route::Preflight => {
                let mut out = Vec::with_capacity(512);
                response::start(&mut out, 204, shared.dates.get(SystemTime::now()));
                response::header(&mut out, "Allow", "GET, HEAD, POST, OPTIONS");
                if cors.is_some() {
                    response::cors_headers(&mut out, cors.as_ref());
                    for (name, value) in PREFLIGHT_HEADERS {
                        response::header(&mut out, name, value);
                    }
                }
                response::end_head(&mut out, persistence);
                self.outbox.push_owned(out);
                if persistence == Persistence::Close {
                    self.start_draining(shared, now);
                }
            }
            Route::File { file, head_only } => {
                let mut out = Vec::with_capacity(256);
                response::start(&mut out, 200, shared.dates.get(SystemTime::now()));
                response::header(&mut out, "Content-Type", file.content_type);
                response::header(&mut out, "Cache-Control", "no-cache");
                response::header(&mut out, "X-Content-Type-Options", "nosniff");
                response::cors_headers(&mut out, cors.as_ref());
                response::finish(&mut out, file.body.len(), persistence);
                self.outbox.push_owned(out);
                if !head_only {
                    self.outbox.push_shared(file.body.clone());
                }
                log::debug!("{}: {} -> 200 ({} bytes)", self.peer, request.target, file.body.len());
                if persistence == Persistence::Close {
                    self.start_draining(shared, now);
                }
            }
            Route::StreamOverCapacity => {
                let retry = shared.jitter.between(OVER_CAPACITY_RETRY_MS.0, OVER_CAPACITY_RETRY_MS.1);
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, shared.dates.get(SystemTime::now()), cors.as_ref());
                if !head_only {
                    sse::write_comment(&mut out, "the server is at its connection limit; come back later");
                    sse::write_retry(&mut out, retry);
                }
                self.outbox.push_owned(out);
                self.start_draining(shared, now);
                shared.counters.over_capacity += 1;
                log::debug!("{}: over capacity, told to retry in {retry} ms", self.peer);
            }
            Route::Refuse { status, reason, allow } => {
                match status {
                    404 | 405 => log::info!("{}: {status} for {}: {}", self.peer, request.target, reason),
                    503 => {
                        shared.counters.over_capacity += 1;
                        log::debug!("{}: 503 {}", self.peer, reason);
                    }
                    _ => log::warn!("{}: {status} for {}: {}", self.peer, request.target, reason),
                }
                self.refuse(shared, now, status, reason, allow, head_only, persistence, cors.as_ref());
            }
        }
    }

    /// A publish's body arrived whole: publish it and answer with its id.
    pub(super) fn finish_publish(
        &mut self,
        shared: &mut Shared,
        now: Instant,
        publish: PendingPublish,
        body: Vec<u8>,
    ) {
        let Ok(data) = String::from_utf8(body) else {
            log::warn!("{}: 400 for a publish: the body is not UTF-8", self.peer);
            let reason = "the body must be UTF-8 (an event stream is UTF-8)";
            self.refuse_and_close(shared, now, 400, reason);
            return;
        };
        if let Some(backplane) = shared.backplane.as_mut() {
            // Through Redis: the id and the answer come with Redis's reply (see `publish_answered`).
            if !backplane.publish(self.key, publish.event.as_deref(), &data) {
                log::warn!("{}: 503 for a publish: the backplane (Redis) is down", self.peer);
                self.refuse_and_close(shared, now, 503, "the backplane (Redis) is down");
                return;
            }
            let deadline = now + shared.config.request_timeout();
            self.state = State::AwaitingPublish { deadline, publish: Box::new(publish) };
            return;
        }
        let id = shared.hub.publish(publish.event.as_deref(), &data);
        self.answer_published(shared, now, id, &publish);
    }

    /// Redis answered a publish this connection sent: answer the client, then go on with its requests.
    pub fn publish_answered(
        &mut self,
        shared: &mut Shared,
        now: Instant,
        result: Result<u64, String>,
    ) -> Next {
        let idle = self.idle_state(shared, now);
        let State::AwaitingPublish { publish, .. } = std::mem::replace(&mut self.state, idle) else {
            return Next::Wait; // it timed out meanwhile and was answered 503
        };
        match result {
            Ok(id) => self.answer_published(shared, now, id, &publish),
            Err(why) => {
                log::warn!("{}: 503 for a publish: {why}", self.peer);
                self.refuse_and_close(shared, now, 503, "the backplane (Redis) did not take the event");
            }
        }
        self.drive(shared, now)
    }

    /// The answer to a publish: 200 with the event's id.
    fn answer_published(&mut self, shared: &mut Shared, now: Instant, id: u64, publish: &PendingPublish) {
        shared.counters.publishes += 1;
        log::debug!("{}: published event {id} ({} open streams here)", self.peer, shared.gauges.open_streams);
        let body = format!("{{\"id\":\"{id}\",\"streams\":{}}}\n", shared.gauges.open_streams);
        let a = Answer {
            status: 200,
            content_type: "application/json",
            body: body.as_bytes(),
            extra: &[],
            cors: publish.cors.as_ref(),
            head_only: false,
            persistence: publish.persistence,
        };
        self.send_answer(shared, now, &a);
    }

    /// A head that cannot be parsed: answer its status and close.
    pub(super) fn refuse_malformed(&mut self, shared: &mut Shared, now: Instant, error: RequestError) {
        log::warn!("{}: {} {}", self.peer, error.status(), error);
        let reason = match error {
            RequestError::Malformed(what) => what,
            RequestError::UriTooLong => "request line too long",
            RequestError::HeadTooLarge => "request head too large",
            RequestError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are served",
        };
        self.refuse_and_close(shared, now, error.status(), reason);
    }

    /// Queues a short plain-text error answer and closes after it.
    pub(super) fn refuse_and_close(&mut self, shared: &mut Shared, now: Instant, status: u16, reason: &str) {
        self.refuse(shared, now, status, reason, None, false, Persistence::Close, None);
    }

    /// Queues a short plain-text error answer, with the request's CORS grant (so a cross-origin caller can
    /// read why it was refused); closes after it unless `persistence` keeps the connection.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        shared: &mut Shared,
        now: Instant,
        status: u16,
        reason: &str,
        allow: Option<&str>,
        head_only: bool,
        persistence: Persistence,
        cors: Option<&Cors>,
    ) {
        shared.counters.errors += 1;
        let mut extra = Vec::new();
        if let Some(allow) = allow {
            extra.push(("Allow", allow));
        }
        match status {
            503 => extra.push(("Retry-After", OVER_CAPACITY_RETRY_AFTER_S)),
            401 => extra.push(("WWW-Authenticate", "Bearer")),
            _ => {}
        }
        // Only a 404 or 405 leaves the request stream in a known state; after anything else, close.
        let persistence = if matches!(status, 404 | 405) { persistence } else { Persistence::Close };
        let mut out = Vec::with_capacity(256);
        let plain = Plain { status, message: reason, extra: &extra, cors, head_only, persistence };
        response::plain(&mut out, shared.dates.get(SystemTime::now()), &plain);
        self.outbox.push_owned(out);
        if persistence == Persistence::Close {
            self.start_draining(shared, now);
        }
    }

    /// Queues a complete answer; starts closing if it says so.
    fn send_answer(&mut self, shared: &mut Shared, now: Instant, answer: &Answer<'_>) {
        let mut out = Vec::with_capacity(256 + answer.body.len());
        response::answer(&mut out, shared.dates.get(SystemTime::now()), answer);
        self.outbox.push_owned(out);
        if answer.persistence == Persistence::Close {
            self.start_draining(shared, now);
        }
    }

    pub(super) fn start_draining(&mut self, shared: &Shared, now: Instant) {
        self.state = State::Draining { deadline: now + shared.config.request_timeout() };
    }
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers() {
        for (ip, loopback) in [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
            ("::2", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), loopback, "{ip}");
        }
    }
}
