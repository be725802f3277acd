//! Publishing through the backplane: `ReadingBody` → `AwaitingPublish` → the answer with Redis's id, the
//! requests pipelined behind it kept waiting in order, a timeout, a late answer, Redis down.

use super::{Harness, get, is_reading_idle, post};
use crate::conn::Next;

/// A connection on a server with `--redis` whose backplane takes publishes (there is no Redis: the
/// answer is given by the test, as the loop would hand it over).
fn with_backplane() -> Harness {
    let mut h = Harness::new(&["--redis", "redis://127.0.0.1:9", "--request-timeout-ms", "1000"]);
    h.cx.backplane.as_mut().expect("--redis makes a backplane").assume_up();
    h
}

#[test]
fn a_publish_waits_for_redis_and_so_do_the_requests_behind_it() {
    let mut h = with_backplane();
    let mut pipelined = post("/home/events", "hello");
    pipelined.extend(get("/nope"));
    h.arrive(&pipelined);
    assert_eq!(h.readable(), Next::Wait);
    assert_eq!(h.state(), "AwaitingPublish");
    assert_eq!(h.take_written(), "", "nothing answered before Redis gives the id");
    let next = h.conn.publish_answered(&mut h.cx, h.now, Ok(42));
    assert_eq!(next, Next::Wait);
    let out = h.take_written();
    let ok = out.find("HTTP/1.1 200 OK").expect("the publish's answer");
    assert!(out.contains("{\"id\":\"42\","), "Redis's id: {out}");
    let not_found = out.find("HTTP/1.1 404").expect("then the pipelined request's");
    assert!(ok < not_found, "in order: {out}");
    assert!(is_reading_idle(&h.conn));
    assert_eq!(h.cx.counters.publishes, 1);
}

#[test]
fn redis_not_answering_in_time_gets_504_outcome_unknown_and_a_late_answer_changes_nothing() {
    let mut h = with_backplane();
    h.arrive(&post("/home/events", "hello"));
    h.readable();
    assert_eq!(h.state(), "AwaitingPublish");
    h.fire_deadline();
    let out = h.take_written();
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
    assert!(out.contains("may still be delivered"), "the publisher is told the truth: {out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    let closing = h.state();
    assert_eq!(closing, "Lingering");
    // Redis's answer comes after all: the connection, already closing, is not revived.
    assert_eq!(h.conn.publish_answered(&mut h.cx, h.now, Ok(43)), Next::Wait);
    assert_eq!(h.state(), closing);
    assert_eq!(h.take_written(), "");
    h.arrive(&get("/nope"));
    h.readable();
    assert_eq!(h.take_written(), "", "a request after the close is not answered");
}

#[test]
fn redis_refusing_the_event_gets_503() {
    let mut h = with_backplane();
    h.arrive(&post("/home/events", "hello"));
    h.readable();
    h.conn.publish_answered(&mut h.cx, h.now, Err("ERR script failed".into()));
    assert!(h.take_written().starts_with("HTTP/1.1 503"));
    assert_eq!(h.cx.counters.publishes, 0);
}

#[test]
fn with_redis_down_a_publish_is_refused_at_once() {
    let mut h = Harness::new(&["--redis", "redis://127.0.0.1:9"]);
    h.arrive(&post("/home/events", "hello"));
    h.readable();
    let out = h.take_written();
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.contains("the backplane (Redis) is down"), "{out}");
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_publish_answered_during_shutdown_closes_its_connection() {
    let mut h = with_backplane();
    h.arrive(&post("/home/events", "hello"));
    h.readable();
    assert_eq!(h.state(), "AwaitingPublish");
    h.cx.shutdown_spread_ms = Some(2000); // SIGTERM arrives while Redis has the publish
    h.conn.publish_answered(&mut h.cx, h.now, Ok(7));
    let out = h.take_written();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(h.state(), "Lingering", "not kept alive: the shutdown is not held up");
}
