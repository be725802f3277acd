//! `Streaming`: ticks on their grid with a stalled writer, a partial write's tail, heartbeats, catching up
//! with published events, the stall timeout, a slow reader, a client that talks too much, a peer leaving.

use std::time::Duration;

use super::{Harness, ReadStep, get};
use crate::conn::{Next, STREAM_INPUT_LIMIT};
use crate::metrics::CloseReason;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A harness whose connection is a stream already (its opening bytes taken).
fn streaming(args: &[&str]) -> Harness {
    let mut h = Harness::new(args);
    h.arrive(&get("/home/events"));
    h.readable();
    assert_eq!(h.state(), "Streaming");
    h.take_written();
    h
}

/// The `data:` lines of the ticks in `out`.
fn ticks(out: &str) -> usize {
    out.matches("data: ").count()
}

#[test]
fn ticks_keep_their_grid_and_a_tick_due_while_output_is_pending_is_skipped() {
    let mut h = streaming(&["--interval-ms", "1000", "--heartbeat-ms", "0", "--write-stall-timeout-ms", "0"]);
    let opened = h.now;
    assert_eq!(h.deadline(), Some(opened + MS(1000)));
    h.allow_writes(Some(0)); // the client stops reading
    h.fire_deadline(); // the tick is due, queued in the outbox
    assert_eq!(h.take_written(), "");
    assert_eq!(h.deadline(), Some(opened + MS(2000)));
    h.fire_deadline(); // still pending: this one is skipped, not piled up
    assert_eq!(h.conn.stream().map(|s| s.skipped), Some(1));
    assert_eq!(h.cx.counters.ticks_skipped, 1);
    h.allow_writes(None); // the client reads again: the queued tick goes out on the writable edge
    h.writable();
    assert_eq!(ticks(&h.take_written()), 1);
    h.advance(MS(1300)); // late by 300 ms: the next deadline stays on the grid, no drift
    assert_eq!(h.conn.on_deadline(&mut h.cx, h.now), Next::Wait);
    assert_eq!(ticks(&h.take_written()), 1);
    assert_eq!(h.deadline(), Some(opened + MS(4000)));
    h.advance(MS(2500)); // at 5.8 s, more than an interval late: the point at 5 s is skipped and counted
    h.conn.on_deadline(&mut h.cx, h.now);
    assert_eq!(h.deadline(), Some(opened + MS(6000)));
    assert_eq!(h.conn.stream().map(|s| s.skipped), Some(2));
}

#[test]
fn a_partial_write_keeps_its_tail_and_the_frame_arrives_whole() {
    let mut h = streaming(&["--interval-ms", "1000", "--heartbeat-ms", "0"]);
    h.allow_writes(Some(10)); // the kernel takes 10 bytes of the tick
    h.fire_deadline();
    assert_eq!(h.socket().written.len(), 10);
    h.socket().write_interrupts = 1; // and the next write is interrupted once (EINTR): retried
    h.allow_writes(None);
    h.writable();
    let out = h.take_written();
    assert!(out.starts_with("data: ") && out.ends_with("\n\n"), "one whole frame: {out:?}");
    assert_eq!(out.matches("data: ").count(), 1, "nothing duplicated: {out:?}");
    assert_eq!(h.conn.queued_bytes(), 0);
}

#[test]
fn a_silent_stream_gets_a_heartbeat() {
    let mut h = streaming(&["--interval-ms", "0", "--heartbeat-ms", "500"]);
    let opened = h.now;
    assert_eq!(h.deadline(), Some(opened + MS(500)));
    h.fire_deadline();
    assert_eq!(h.take_written(), ": heartbeat\n\n");
    assert_eq!(h.cx.counters.heartbeats, 1);
    assert_eq!(h.deadline(), Some(opened + MS(1000)));
}

#[test]
fn published_events_catch_up_after_a_partial_write_in_order_without_duplicates() {
    let mut h = streaming(&["--interval-ms", "0", "--heartbeat-ms", "0"]);
    let ids: Vec<u64> =
        (0..5).map(|i| h.cx.hub.publish(crate::hub::DEFAULT_TOPIC, None, &format!("event {i}"))).collect();
    h.allow_writes(Some(30)); // the first event and a bit
    assert_eq!(h.conn.catch_up(&mut h.cx, h.now), Next::Wait);
    assert_eq!(h.socket().written.len(), 30);
    h.allow_writes(Some(7));
    h.writable();
    h.allow_writes(None);
    h.writable();
    let out = h.take_written();
    let got: Vec<u64> =
        out.lines().filter_map(|l| l.strip_prefix("id: ")).map(|id| id.parse().expect("id")).collect();
    assert_eq!(got, ids, "every event once, in order: {out}");
    assert_eq!(out.matches("data: event ").count(), 5);
    assert_eq!(h.conn.stream().map(|s| s.cursor), Some(h.cx.hub.next_id()), "caught up");
}

#[test]
fn a_stream_that_cannot_write_for_the_stall_timeout_is_closed() {
    let mut h = streaming(&["--interval-ms", "0", "--heartbeat-ms", "0", "--write-stall-timeout-ms", "2000"]);
    h.allow_writes(Some(0));
    h.cx.hub.publish(crate::hub::DEFAULT_TOPIC, None, "stuck");
    h.conn.catch_up(&mut h.cx, h.now);
    assert_eq!(h.fire_deadline(), Next::Close(CloseReason::WriteTimeout));
}

#[test]
fn a_stream_too_far_behind_is_dropped_as_a_slow_reader() {
    let mut h = streaming(&["--interval-ms", "0", "--max-pending-bytes", "4096"]);
    h.allow_writes(Some(0));
    let body = "x".repeat(1000);
    for _ in 0..5 {
        h.cx.hub.publish(crate::hub::DEFAULT_TOPIC, None, &body);
    }
    assert_eq!(h.conn.catch_up(&mut h.cx, h.now), Next::Close(CloseReason::SlowReader));
}

#[test]
fn a_client_that_keeps_talking_on_its_stream_is_closed() {
    let mut h = streaming(&["--interval-ms", "0"]);
    let chunk = vec![b'x'; 4096];
    let mut next = Next::Wait;
    for _ in 0..=(STREAM_INPUT_LIMIT as usize / chunk.len()) {
        h.arrive(&chunk);
        next = h.readable();
        if next != Next::Wait {
            break;
        }
    }
    assert_eq!(next, Next::Close(CloseReason::TooMuchInput));
}

#[test]
fn a_peer_leaving_ends_the_stream_and_it_is_accounted_once() {
    for (step, reason) in [
        (ReadStep::Eof, CloseReason::PeerClosed),
        (ReadStep::Error(std::io::ErrorKind::ConnectionReset), CloseReason::PeerReset),
    ] {
        let mut h = streaming(&[]);
        assert_eq!((h.cx.gauges.open_streams, h.cx.counters.streams_opened), (1, 1));
        h.arrive_step(step);
        let next = h.readable();
        assert_eq!(next, Next::Close(reason));
        h.close(next);
        assert_eq!(h.state(), "Closed");
        assert_eq!((h.cx.gauges.open_streams, h.cx.counters.streams_closed), (0, 1));
    }
}

#[test]
fn a_write_to_a_vanished_peer_closes_the_stream() {
    let mut h = streaming(&["--interval-ms", "1000"]);
    h.socket().write_error = Some(std::io::ErrorKind::BrokenPipe);
    assert_eq!(h.fire_deadline(), Next::Close(CloseReason::PeerReset));
}

#[test]
fn shaped_streams_share_a_server_wide_budget_given_back_when_they_end() {
    // Each asks (1000 + 8) bytes every 10 ms: 100,800 B/s. The budget holds two.
    let args = ["--max-shaped-bytes-per-s", "250000", "--min-interval-ms", "10"];
    let shaped = get("/home/events?interval_ms=10&bytes=1000");
    let mut first = Harness::new(&args);
    first.arrive(&shaped);
    first.readable();
    assert_eq!(first.state(), "Streaming");
    assert_eq!(first.cx.gauges.shaped_bytes_per_s, 100_800);
    // The same loop context serves the next connections: move it over.
    let mut second = Harness::new(&args);
    std::mem::swap(&mut second.cx, &mut first.cx);
    second.arrive(&shaped);
    second.readable();
    assert_eq!(second.state(), "Streaming");
    let mut third = Harness::new(&args);
    std::mem::swap(&mut third.cx, &mut second.cx);
    third.arrive(&shaped);
    third.readable();
    let out = third.take_written();
    assert!(out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{out}");
    assert!(out.contains("--max-shaped-bytes-per-s"), "{out}");
    assert_eq!(third.cx.counters.shaped_refused, 1);
    // An unshaped stream is not counted and never refused by the budget.
    let mut plain = Harness::new(&args);
    std::mem::swap(&mut plain.cx, &mut third.cx);
    plain.arrive(&get("/home/events"));
    plain.readable();
    assert_eq!(plain.state(), "Streaming");
    assert_eq!(plain.cx.gauges.shaped_bytes_per_s, 201_600);
    // A shaped stream ending gives its share back.
    std::mem::swap(&mut first.cx, &mut plain.cx);
    first.close(Next::Close(CloseReason::PeerClosed));
    assert_eq!(first.cx.gauges.shaped_bytes_per_s, 100_800);
}
