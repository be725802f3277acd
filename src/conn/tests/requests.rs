//! `ReadingRequest` and `ReadingBody`: a head split anywhere, pipelined requests, the per-turn bound,
//! backpressure, 408 at the deadline, keep-alive idleness.

use std::time::Duration;

use super::{Harness, ReadStep, count, get, is_reading_idle, post};
use crate::conn::inbuf::InBuf;
use crate::conn::{MAX_READS_PER_TURN, Next, OUTBOX_HIGH_WATER};
use crate::metrics::CloseReason;

#[test]
fn a_stream_request_split_at_every_byte_starts_the_stream() {
    let request = get("/home/events");
    for split in 1..request.len() {
        let mut h = Harness::new(&[]);
        h.arrive(&request[..split]);
        assert_eq!(h.readable(), Next::Wait, "split at {split}");
        assert_eq!(h.state(), "ReadingRequest", "split at {split}");
        assert_eq!(h.take_written(), "", "nothing answered before the head is whole (split at {split})");
        h.arrive(&request[split..]);
        assert_eq!(h.readable(), Next::Wait);
        assert_eq!(h.state(), "Streaming", "split at {split}");
        let out = h.take_written();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("\r\n\r\n: ok\n\nretry: 3000\n\ndata: "), "{out}");
        assert!(out.ends_with("\n\n"), "whole frames only: {out:?}");
        assert_eq!(h.cx.gauges.open_streams, 1);
    }
}

#[test]
fn a_partial_head_has_the_request_timeout_then_gets_408_and_a_lingering_close() {
    let mut h = Harness::new(&["--request-timeout-ms", "500"]);
    let accepted = h.now;
    h.advance(Duration::from_millis(100));
    h.arrive(b"GET /home/eve");
    h.readable();
    assert_eq!(h.deadline(), Some(accepted + Duration::from_millis(500)), "not moved by bytes arriving");
    assert_eq!(h.fire_deadline(), Next::Wait);
    let out = h.take_written();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(h.state(), "Lingering", "the answer went out whole: the write side is shut");
    assert!(h.socket().write_shut);
    assert_eq!(h.cx.counters.errors, 1);
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_read() {
    let mut h = Harness::new(&[]);
    let mut pipelined = get("/nope-1");
    pipelined.extend(get("/nope-2"));
    pipelined.extend(get("/home/events"));
    h.arrive(&pipelined);
    assert_eq!(h.readable(), Next::Wait);
    let out = h.take_written();
    let first = out.find("404 Not Found").expect("first 404");
    let second = out[first + 1..].find("404 Not Found").expect("second 404") + first + 1;
    let stream = out.find("200 OK").expect("the stream's head");
    assert!(first < second && second < stream, "in order: {out}");
    assert_eq!(count(&out, "Connection: close"), 1, "only the stream's head closes: {out}");
    assert_eq!(h.state(), "Streaming");
}

#[test]
fn eintr_is_retried_and_reading_stops_at_would_block() {
    let mut h = Harness::new(&[]);
    h.arrive_step(ReadStep::Interrupted);
    h.arrive(&get("/nope"));
    h.arrive_step(ReadStep::Interrupted);
    assert_eq!(h.readable(), Next::Wait);
    assert!(h.take_written().starts_with("HTTP/1.1 404"));
    assert!(h.socket().reads.is_empty(), "read to WouldBlock");
    assert!(is_reading_idle(&h.conn));
}

#[test]
fn one_connection_reads_at_most_its_bound_per_turn_then_asks_again() {
    let mut h = Harness::new(&[]);
    for _ in 0..MAX_READS_PER_TURN + 4 {
        h.arrive(b"\r\n"); // blank lines before a request line are allowed, and cost a read each
    }
    assert_eq!(h.readable(), Next::Again, "bounded: driven again next turn");
    assert_eq!(h.socket().read_calls, MAX_READS_PER_TURN);
    assert_eq!(h.writable(), Next::Wait, "the rest read on the next turn, to WouldBlock");
    assert!(h.socket().reads.is_empty());
}

#[test]
fn a_client_that_does_not_read_its_answers_is_not_read_further() {
    let mut h = Harness::new(&[]);
    h.allow_writes(Some(0)); // the client reads nothing
    let many: Vec<u8> = (0..3000).flat_map(|_| get("/nope")).collect(); // ~200-byte answers each
    h.arrive(&many);
    h.readable();
    let queued = h.conn.queued_bytes();
    assert!(queued > OUTBOX_HIGH_WATER, "answers queued up to the high-water mark: {queued}");
    assert!(queued < OUTBOX_HIGH_WATER + 1024, "but not past it by more than one answer: {queued}");
    assert!(h.conn.inbuf_len() > 0, "the rest of the requests wait unparsed");
    h.allow_writes(None); // the client reads again: the writable edge resumes the requests
    while h.writable() == Next::Again {}
    assert_eq!(h.conn.queued_bytes(), 0);
    assert_eq!(h.conn.inbuf_len(), 0);
    assert_eq!(count(&h.take_written(), "HTTP/1.1 404"), 3000, "every request answered once");
}

#[test]
fn an_idle_keep_alive_connection_closes_after_the_keep_alive_time_from_its_last_answer() {
    let mut h = Harness::new(&["--keepalive-timeout-ms", "1000"]);
    h.arrive(&get("/nope"));
    h.readable();
    assert!(is_reading_idle(&h.conn));
    let answered_at = h.now;
    assert_eq!(h.deadline(), Some(answered_at + Duration::from_secs(1)));
    assert_eq!(h.fire_deadline(), Next::Close(CloseReason::IdleTimeout));
    assert!(!h.conn.state().inbuf().is_some_and(InBuf::is_allocated), "an idle connection holds no buffer");
}

#[test]
fn a_publish_body_split_anywhere_is_published_once() {
    let request = post("/home/events", "hello");
    for split in 1..request.len() {
        let mut h = Harness::new(&[]);
        h.arrive(&request[..split]);
        h.readable();
        h.arrive(&request[split..]);
        h.readable();
        let out = h.take_written();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "split at {split}: {out}");
        assert!(out.contains("\"streams\":0"), "{out}");
        assert_eq!(h.cx.counters.publishes, 1, "split at {split}");
        assert!(is_reading_idle(&h.conn), "kept alive after the publish");
    }
}

#[test]
fn a_body_that_never_completes_gets_408() {
    let mut h = Harness::new(&["--request-timeout-ms", "300"]);
    let request = post("/home/events", "hello");
    h.arrive(&request[..request.len() - 2]);
    h.readable();
    assert_eq!(h.state(), "ReadingBody");
    h.fire_deadline();
    assert!(h.take_written().starts_with("HTTP/1.1 408"));
    assert_eq!(h.cx.counters.publishes, 0);
}

#[test]
fn a_malformed_head_is_refused_with_its_status_and_closed() {
    for (raw, status) in [
        (&b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..], "400 Bad Request"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505 HTTP Version Not Supported"),
    ] {
        let mut h = Harness::new(&[]);
        h.arrive(raw);
        h.readable();
        let out = h.take_written();
        assert!(out.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{out}");
        assert_eq!(h.state(), "Lingering");
    }
}
