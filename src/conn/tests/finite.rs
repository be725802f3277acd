//! Finite streams (`/home/stream?count=N&done=1`): N ticks, the last `data: [DONE]`, then the FIN, with
//! GET or with a POST whose body is read and dropped.

use std::time::Duration;

use super::{Harness, count, get, post};
use crate::conn::Next;
use crate::metrics::CloseReason;

/// Fires the connection's deadlines until it stops streaming (at most `limit` of them).
fn tick_until_the_end(h: &mut Harness, limit: usize) {
    for _ in 0..limit {
        if h.state() != "Streaming" {
            return;
        }
        assert_eq!(h.fire_deadline(), Next::Wait);
    }
    panic!("still streaming after {limit} deadlines");
}

#[test]
fn a_finite_stream_sends_its_count_then_done_then_its_fin() {
    let mut h = Harness::new(&["--interval-ms", "100", "--heartbeat-ms", "0"]);
    h.arrive(&get("/home/stream?count=3&done=1"));
    h.readable();
    assert_eq!(h.state(), "Streaming");
    let opened = h.take_written();
    assert!(opened.starts_with("HTTP/1.1 200 OK\r\n") && opened.contains("text/event-stream"), "{opened}");
    assert_eq!(count(&opened, "data: "), 1, "the first tick goes with the head");
    tick_until_the_end(&mut h, 5);
    let rest = h.take_written();
    assert_eq!(count(&rest, "data: "), 3, "two more ticks and [DONE]: {rest}");
    assert!(rest.ends_with("\n\ndata: [DONE]\n\n"), "{rest:?}");
    assert_eq!(h.state(), "Lingering", "everything written, then the FIN");
    assert!(h.socket().write_shut);
    assert_eq!(h.cx.gauges.open_streams, 0, "the stream's end is accounted");
    h.arrive_step(super::ReadStep::Eof);
    assert_eq!(h.readable(), Next::Close(CloseReason::Finished));
}

#[test]
fn a_post_body_is_read_and_dropped_before_the_stream() {
    let mut h = Harness::new(&["--interval-ms", "100", "--heartbeat-ms", "0"]);
    h.arrive(&post("/home/stream?count=2", "{\"prompt\":\"ignored\"}"));
    h.readable();
    assert_eq!(h.state(), "Streaming");
    tick_until_the_end(&mut h, 5);
    let out = h.take_written();
    assert_eq!(count(&out, "data: "), 2, "{out}");
    assert!(!out.contains("[DONE]") && !out.contains("ignored"), "{out}");
    assert_eq!(h.cx.counters.publishes, 0, "nothing was published");
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_body_over_the_limit_is_refused_and_count_0_ends_at_once() {
    let mut h = Harness::new(&["--max-body-bytes", "4"]);
    h.arrive(&post("/home/stream?count=2", "too long"));
    h.readable();
    assert!(h.take_written().starts_with("HTTP/1.1 413 "));

    let mut h = Harness::new(&[]);
    h.arrive(&get("/home/stream?count=0&done=1"));
    h.readable();
    let out = h.take_written();
    assert_eq!(count(&out, "data: "), 1, "only [DONE]: {out}");
    assert!(out.ends_with("retry: 3000\n\ndata: [DONE]\n\n"), "{out:?}");
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_stream_without_count_never_ends_and_bad_parameters_are_400() {
    let mut h = Harness::new(&["--interval-ms", "10", "--heartbeat-ms", "0"]);
    h.arrive(&get("/home/stream"));
    h.readable();
    for _ in 0..50 {
        h.fire_deadline();
    }
    assert_eq!(h.state(), "Streaming");
    h.advance(Duration::from_millis(1));
    for target in ["/home/stream?done=1", "/home/stream?count=x", "/home/stream?count=3&interval_ms=0"] {
        let mut h = Harness::new(&[]);
        h.arrive(&get(target));
        h.readable();
        assert!(h.take_written().starts_with("HTTP/1.1 400 "), "{target}");
    }
}
