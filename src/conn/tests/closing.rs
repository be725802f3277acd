//! `Draining`, `Lingering`, `Closed`: the lingering close, a client that half-closes after its requests, a
//! last answer that cannot be written, and the server's shutdown in every state.

use super::{Harness, ReadStep, get};
use crate::conn::{LINGER, Next};
use crate::metrics::CloseReason;

#[test]
fn after_a_closing_answer_input_is_read_and_dropped_until_the_peers_eof() {
    let mut h = Harness::new(&[]);
    h.arrive(&get("/home/events?interval_ms=soon"));
    h.readable();
    assert!(h.take_written().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(h.state(), "Lingering");
    assert!(h.socket().write_shut, "the FIN says the answer is complete");
    h.arrive(b"more bytes the client had already sent");
    assert_eq!(h.readable(), Next::Wait, "read and dropped: closing now would send a reset");
    assert_eq!(h.take_written(), "", "never answered");
    h.arrive_step(ReadStep::Eof);
    assert_eq!(h.readable(), Next::Close(CloseReason::Finished));
}

#[test]
fn a_peer_that_never_closes_is_given_the_linger_time() {
    let mut h = Harness::new(&[]);
    h.arrive(&get("/home/events?bytes=many"));
    h.readable();
    assert_eq!(h.state(), "Lingering");
    assert_eq!(h.deadline(), Some(h.now + LINGER));
    assert_eq!(h.fire_deadline(), Next::Close(CloseReason::Finished));
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_its_answer() {
    let mut h = Harness::new(&[]);
    h.allow_writes(Some(0));
    h.arrive(&get("/nope"));
    h.arrive_step(ReadStep::Eof);
    assert_eq!(h.readable(), Next::Wait);
    assert_eq!(h.state(), "Draining", "the answer is still queued");
    h.allow_writes(None);
    h.writable();
    assert!(h.take_written().starts_with("HTTP/1.1 404"));
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_last_answer_the_client_never_reads_times_out() {
    let mut h = Harness::new(&["--write-stall-timeout-ms", "3000"]);
    h.allow_writes(Some(0));
    h.arrive(&get("/home/events?interval_ms=x"));
    h.readable();
    assert_eq!(h.state(), "Draining");
    // Its deadline (the request timeout) finds no byte written for longer than the stall timeout.
    assert_eq!(h.fire_deadline(), Next::Close(CloseReason::WriteTimeout));
}

#[test]
fn shutdown_closes_an_idle_connection_at_once() {
    let mut h = Harness::new(&[]);
    h.cx.shutdown_spread_ms = Some(2000);
    assert_eq!(h.conn.on_shutdown(&mut h.cx, h.now), Next::Close(CloseReason::Finished));
}

#[test]
fn shutdown_ends_a_caught_up_stream_with_a_retry_and_accounts_for_it_once() {
    let mut h = Harness::new(&["--retry-ms", "3000"]);
    h.arrive(&get("/home/events"));
    h.readable();
    h.take_written();
    h.cx.shutdown_spread_ms = Some(2000);
    assert_eq!(h.conn.on_shutdown(&mut h.cx, h.now), Next::Wait);
    let out = h.take_written();
    let retry: u64 = out
        .strip_prefix("retry: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("a retry frame: {out:?}"));
    assert!((3000..=5000).contains(&retry), "--retry-ms plus a jitter within the spread: {retry}");
    assert_eq!(h.state(), "Lingering");
    assert_eq!((h.cx.gauges.open_streams, h.cx.counters.streams_closed), (0, 1));
    h.arrive_step(ReadStep::Eof);
    let next = h.readable();
    h.close(next);
    assert_eq!((h.cx.gauges.open_streams, h.cx.counters.streams_closed), (0, 1), "not counted again");
}

#[test]
fn shutdown_lets_a_stream_send_what_it_owes_first() {
    let mut h = Harness::new(&["--interval-ms", "0"]);
    h.arrive(&get("/home/events"));
    h.readable();
    h.take_written();
    h.allow_writes(Some(0));
    h.cx.hub.publish(crate::hub::DEFAULT_TOPIC, None, "owed");
    h.conn.catch_up(&mut h.cx, h.now);
    h.cx.shutdown_spread_ms = Some(2000);
    h.conn.on_shutdown(&mut h.cx, h.now);
    assert_eq!(h.state(), "Streaming", "it owes an event");
    h.allow_writes(None);
    h.writable();
    let out = h.take_written();
    let event = out.find("data: owed").expect("the event first");
    let retry = out.find("retry: ").expect("then the retry");
    assert!(event < retry, "{out}");
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn during_shutdown_a_request_in_progress_is_answered_and_closed() {
    let mut h = Harness::new(&[]);
    let request = get("/nope");
    h.arrive(&request[..5]);
    h.readable();
    h.cx.shutdown_spread_ms = Some(2000);
    assert_eq!(h.conn.on_shutdown(&mut h.cx, h.now), Next::Wait, "a head in progress is not cut off");
    h.arrive(&request[5..]);
    h.readable();
    let out = h.take_written();
    assert!(out.starts_with("HTTP/1.1 404") && out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(h.state(), "Lingering");
}
