//! Answering one request: the [`crate::routes`] table decides what, this writes it into the outbox or
//! moves the connection to its next state (streaming, reading a body, closing).
//!
//! Rules:
//! - Keep-alive only where the request stream is in a known state afterwards (see
//!   [`crate::http::refusal`]); a request with a body that is not a publish closes the connection rather
//!   than have its body parsed as the next request.
//! - Every refusal goes through [`Connection::refuse`]: one log line at the level the refusal says, the
//!   error counted, the answer with the request's CORS grant (so a cross-origin caller can read why).
//! - While the server shuts down, every answer closes its connection.

use std::time::{Instant, SystemTime};

use super::inbuf::InBuf;
use super::{Connection, Flags, Next, PendingPublish, Socket, State, state};
use crate::context::LoopContext;
use crate::http::refusal::Refusal;
use crate::http::request::{Method, Request};
use crate::http::response::{self, Answer, Cors, Persistence, Plain};
use crate::metrics;
use crate::routes::{self, Route, StreamOptions};
use crate::sse;
use crate::trust;

/// Range of the `retry:` (ms) sent to event-stream requests over the connection cap: spread over
/// seconds, so that thousands of refused clients do not all come back in the same instant.
pub const OVER_CAPACITY_RETRY_MS: (u64, u64) = (1_000, 10_000);
/// The `Content-Type` of the metrics page (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// What a CORS preflight allows.
const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Last-Event-ID, Content-Type, Authorization, Cache-Control"),
    ("Access-Control-Max-Age", "600"),
];

/// What a refusal needs to know of the request it answers.
struct Refused<'a> {
    target: &'a str,
    head_only: bool,
    persistence: Persistence,
    cors: Option<&'a Cors>,
}

impl<S: Socket> Connection<S> {
    /// Answers one complete request head; may turn the connection into a stream, start reading a body,
    /// or start closing it.
    pub(super) fn answer(&mut self, request: &Request, cx: &mut LoopContext, now: Instant) {
        cx.counters.requests += 1;
        self.flags.replace(Flags::ANSWERED, true);
        let over_capacity = self.is_over_capacity();
        let keep_alive = if request.keep_alive && !over_capacity && !cx.shutting_down() {
            Persistence::KeepAlive { http10: request.minor_version == 0 }
        } else {
            Persistence::Close
        };
        // Only a publish reads its body; after any other request with a body, close rather than parse the
        // body as the next request.
        let persistence = if request.has_body() { Persistence::Close } else { keep_alive };
        let cors = routes::cors_grant(&cx.config, request.origin.as_deref());
        let head_only = request.method == Method::Head;
        let ctx = routes::Context {
            files: &cx.files,
            config: &cx.config,
            peer_is_loopback: trust::is_loopback(self.peer.ip()),
            over_capacity,
        };
        match routes::route(request, ctx) {
            Route::EventStream { head_only: false, options } => {
                if shaped_budget_allows(cx, &options) {
                    self.start_stream(cx, now, options, cors.as_ref())
                } else {
                    let refused =
                        Refused { target: &request.target, head_only, persistence, cors: cors.as_ref() };
                    self.refuse(cx, now, Refusal::ShapedBudgetExhausted, Some(&refused));
                }
            }
            Route::EventStreamAfterBody { options, content_length } => {
                if !shaped_budget_allows(cx, &options) {
                    let refused =
                        Refused { target: &request.target, head_only, persistence, cors: cors.as_ref() };
                    self.refuse(cx, now, Refusal::ShapedBudgetExhausted, Some(&refused));
                    return;
                }
                if request.expect_continue && request.minor_version == 1 {
                    self.outbox.push_owned(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                }
                let (topic, event, length, then_stream) = (None, None, content_length, Some(options));
                let body = PendingPublish { topic, event, length, persistence, cors, then_stream };
                let deadline = cx.clock.stamp(now + cx.config.request_timeout());
                self.set_state(
                    State::ReadingBody { deadline, publish: Box::new(body), inbuf: InBuf::default() },
                    cx,
                    now,
                );
            }
            Route::EventStream { head_only: true, .. } => {
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, cx.dates.get(SystemTime::now()), cors.as_ref());
                self.outbox.push_owned(out);
                self.start_draining(cx, now);
            }
            Route::Publish { topic, event, content_length } => {
                if request.expect_continue && request.minor_version == 1 {
                    // The client waits for this before sending its body (curl does for bodies > 1 KiB);
                    // an HTTP/1.0 client cannot have asked for it (RFC 9110 §10.1.1).
                    self.outbox.push_owned(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                }
                let (length, persistence) = (content_length, keep_alive);
                let publish = PendingPublish { topic, event, length, persistence, cors, then_stream: None };
                let deadline = cx.clock.stamp(now + cx.config.request_timeout());
                self.set_state(
                    State::ReadingBody { deadline, publish: Box::new(publish), inbuf: InBuf::default() },
                    cx,
                    now,
                );
            }
            Route::Metrics { head_only } => {
                // With workers, the whole service's figures (see `crate::cluster`); else this process's.
                let figures = cx.cluster_totals.clone().unwrap_or_else(|| cx.figures());
                let body = metrics::render(&figures.counters, &figures.gauges);
                let content_type = METRICS_CONTENT_TYPE;
                let (body, cors) = (body.as_bytes(), cors.as_ref());
                let a = Answer { status: 200, content_type, body, extra: &[], cors, head_only, persistence };
                self.send_answer(cx, now, &a);
            }
            Route::Preflight => {
                let mut out = Vec::with_capacity(512);
                response::start(&mut out, 204, cx.dates.get(SystemTime::now()));
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
                    self.start_draining(cx, now);
                }
            }
            Route::File { file, head_only } => {
                let mut out = Vec::with_capacity(256);
                response::start(&mut out, 200, cx.dates.get(SystemTime::now()));
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
                    self.start_draining(cx, now);
                }
            }
            Route::StreamOverCapacity => {
                let retry = cx.jitter.between(OVER_CAPACITY_RETRY_MS.0, OVER_CAPACITY_RETRY_MS.1);
                let mut out = Vec::with_capacity(256);
                response::event_stream_head(&mut out, cx.dates.get(SystemTime::now()), cors.as_ref());
                if !head_only {
                    sse::write_comment(&mut out, "the server is at its connection limit; come back later");
                    sse::write_retry(&mut out, retry);
                }
                self.outbox.push_owned(out);
                self.start_draining(cx, now);
                cx.counters.over_capacity += 1;
                log::debug!("{}: over capacity, told to retry in {retry} ms", self.peer);
            }
            Route::Refuse(refusal) => {
                let refused =
                    Refused { target: &request.target, head_only, persistence, cors: cors.as_ref() };
                self.refuse(cx, now, refusal, Some(&refused));
            }
        }
    }

    /// A body arrived whole: a publish's is published and answered with its id; a `POST /home/stream`'s
    /// is dropped and the stream starts (if the shaped budget still has room: it may have filled while
    /// the body arrived).
    pub(super) fn finish_body(
        &mut self,
        cx: &mut LoopContext,
        now: Instant,
        mut publish: PendingPublish,
        body: Vec<u8>,
    ) {
        if let Some(options) = publish.then_stream.take() {
            if shaped_budget_allows(cx, &options) {
                self.start_stream(cx, now, options, publish.cors.as_ref());
            } else {
                self.refuse_and_close(cx, now, Refusal::ShapedBudgetExhausted);
            }
            return;
        }
        let Ok(data) = String::from_utf8(body) else {
            let refusal = Refusal::BadRequest("a publish's body must be UTF-8 (an event stream is UTF-8)");
            self.refuse_and_close(cx, now, refusal);
            return;
        };
        let topic = publish.topic.as_deref();
        if let Some(backplane) = cx.backplane.as_mut() {
            // A topic new here must have room here too: every instance holds the topics it hears of.
            if cx.hub.topics.room_for(topic).is_err() {
                self.refuse_and_close(cx, now, Refusal::TooManyTopics);
                return;
            }
            // Through Redis: the id and the answer come with Redis's reply (see `publish_answered`).
            if !backplane.publish(cx.handling, topic, publish.event.as_deref(), &data) {
                self.refuse_and_close(
                    cx,
                    now,
                    Refusal::BackplaneUnavailable("the backplane (Redis) is down"),
                );
                return;
            }
            let deadline = cx.clock.stamp(now + cx.config.request_timeout());
            self.set_state(
                State::AwaitingPublish { deadline, publish: Box::new(publish), inbuf: InBuf::default() },
                cx,
                now,
            );
            return;
        }
        // A topic nobody is on yet is made all the same: its event is kept for replay.
        let Ok(topic) = cx.hub.topics.find_or_make(topic) else {
            self.refuse_and_close(cx, now, Refusal::TooManyTopics);
            return;
        };
        let id = cx.hub.publish(topic, publish.event.as_deref(), &data);
        self.answer_published(cx, now, id, &publish);
    }

    /// Redis answered a publish this connection sent: answer the client, then go on with its requests.
    /// A connection that is not awaiting an answer (it timed out meanwhile and was answered) is left as
    /// it is.
    pub fn publish_answered(
        &mut self,
        cx: &mut LoopContext,
        now: Instant,
        result: Result<u64, String>,
    ) -> Next {
        if !matches!(self.state, State::AwaitingPublish { .. }) {
            return Next::Wait;
        }
        let idle = self.idle_state(cx, now);
        let State::AwaitingPublish { publish, .. } = self.set_state(idle, cx, now) else {
            return Next::Wait;
        };
        match result {
            Ok(id) => self.answer_published(cx, now, id, &publish),
            Err(why) => {
                log::warn!("{}: Redis did not take a publish: {why}", self.peer);
                self.refuse_and_close(
                    cx,
                    now,
                    Refusal::BackplaneUnavailable("the backplane (Redis) did not take the event"),
                );
            }
        }
        self.drive(cx, now)
    }

    /// The answer to a publish: 200 with the event's id.
    fn answer_published(&mut self, cx: &mut LoopContext, now: Instant, id: u64, publish: &PendingPublish) {
        cx.counters.publishes += 1;
        // The streams on its topic here (with the backplane, other instances' streams get it too).
        let topics = &cx.hub.topics;
        let streams =
            topics.find(publish.topic.as_deref()).and_then(|t| topics.get(t)).map_or(0, |t| t.live());
        log::debug!("{}: published event {id} ({streams} streams on its topic here)", self.peer);
        let body = format!("{{\"id\":\"{id}\",\"streams\":{streams}}}\n");
        let a = Answer {
            status: 200,
            content_type: "application/json",
            body: body.as_bytes(),
            extra: &[],
            cors: publish.cors.as_ref(),
            head_only: false,
            // A publish that straddles a shutdown is answered, then its connection closes.
            persistence: if cx.shutting_down() { Persistence::Close } else { publish.persistence },
        };
        self.send_answer(cx, now, &a);
    }

    /// Refuses without a request to answer in kind (a malformed head, a timeout, a failed publish): a
    /// plain answer, then close.
    pub(super) fn refuse_and_close(&mut self, cx: &mut LoopContext, now: Instant, refusal: Refusal) {
        self.refuse(cx, now, refusal, None);
    }

    /// Every refusal: logged at its level, counted, answered with a one-line reason and the request's
    /// CORS grant; the connection is kept only if the refusal and the request both allow it.
    fn refuse(
        &mut self,
        cx: &mut LoopContext,
        now: Instant,
        refusal: Refusal,
        request: Option<&Refused<'_>>,
    ) {
        let meaning = refusal.meaning();
        match request {
            Some(r) => log::log!(meaning.level, "{}: {refusal} (for {})", self.peer, r.target),
            None => log::log!(meaning.level, "{}: {refusal}", self.peer),
        }
        cx.counters.errors += 1;
        if refusal == Refusal::OverCapacity {
            cx.counters.over_capacity += 1;
        }
        let persistence = match request {
            Some(r) if meaning.keeps_alive => r.persistence,
            _ => Persistence::Close,
        };
        let extra: &[(&str, &str)] = match &meaning.header {
            Some(header) => std::slice::from_ref(header),
            None => &[],
        };
        let plain = Plain {
            status: meaning.status,
            message: meaning.reason,
            extra,
            cors: request.and_then(|r| r.cors),
            head_only: request.is_some_and(|r| r.head_only),
            persistence,
        };
        let mut out = Vec::with_capacity(256);
        response::plain(&mut out, cx.dates.get(SystemTime::now()), &plain);
        self.outbox.push_owned(out);
        if persistence == Persistence::Close {
            self.start_draining(cx, now);
        }
    }

    /// Queues a complete answer; starts closing if it says so.
    fn send_answer(&mut self, cx: &mut LoopContext, now: Instant, answer: &Answer<'_>) {
        let mut out = Vec::with_capacity(256 + answer.body.len());
        response::answer(&mut out, cx.dates.get(SystemTime::now()), answer);
        self.outbox.push_owned(out);
        if answer.persistence == Persistence::Close {
            self.start_draining(cx, now);
        }
    }

    pub(super) fn start_draining(&mut self, cx: &mut LoopContext, now: Instant) {
        let deadline = cx.clock.stamp(now + cx.config.request_timeout());
        self.set_state(State::Draining { deadline }, cx, now);
    }
}

/// Whether a stream with `options` fits in `--max-shaped-bytes-per-s` (an unshaped one always does); a
/// refusal is counted here.
fn shaped_budget_allows(cx: &mut LoopContext, options: &StreamOptions) -> bool {
    let interval_ms = options.interval.map_or(0, |i| i.as_millis() as u32);
    let rate = state::shaped_bytes_per_s(&cx.config, interval_ms, options.payload_bytes);
    let budget = cx.config.max_shaped_bytes_per_s;
    if rate > 0 && budget > 0 && cx.gauges.shaped_bytes_per_s + rate > budget {
        cx.counters.shaped_refused += 1;
        return false;
    }
    true
}
