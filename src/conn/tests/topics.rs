//! Topics through the state machine: a stream gets its topics' events and no other's, ticks are not held
//! back by other topics' events, one `Last-Event-ID` resumes several topics, and the table's limits.

use super::*;
use crate::hub::DEFAULT_TOPIC;
use crate::metrics::CloseReason;

fn streaming_on(target: &str, args: &[&str]) -> Harness {
    let mut h = Harness::new(args);
    h.arrive(&get(target));
    h.readable();
    assert_eq!(h.state(), "Streaming", "{}", h.take_written());
    h.take_written();
    h
}

fn publish(h: &mut Harness, topic: Option<&str>, data: &str) -> u64 {
    let topic = h.cx.hub.topics.find_or_make(topic).expect("room");
    h.cx.hub.publish(topic, None, data)
}

fn ids(out: &str) -> Vec<u64> {
    out.lines().filter_map(|l| l.strip_prefix("id: ")).map(|id| id.parse().expect("id")).collect()
}

#[test]
fn a_stream_gets_its_topics_events_and_no_others() {
    let mut h = streaming_on("/home/events?topic=a&topic=b", &["--interval-ms", "0", "--heartbeat-ms", "0"]);
    let a1 = publish(&mut h, Some("a"), "a1");
    publish(&mut h, Some("c"), "c1");
    publish(&mut h, None, "default");
    let b1 = publish(&mut h, Some("b"), "b1");
    assert_eq!(h.conn.catch_up(&mut h.cx, h.now), Next::Wait);
    let out = h.take_written();
    assert_eq!(ids(&out), [a1, b1], "{out}");
    assert!(!out.contains("c1") && !out.contains("default"), "{out}");
    assert_eq!(h.conn.stream().map(|s| s.cursor), Some(h.cx.hub.next_id()), "caught up: at the end");
    // Another topic's events later: nothing owed, nothing written.
    publish(&mut h, Some("c"), "c2");
    h.conn.catch_up(&mut h.cx, h.now);
    assert_eq!(h.take_written(), "");
}

#[test]
fn a_stream_on_the_default_topic_gets_no_named_topics_events() {
    let mut h = streaming_on("/home/events", &["--interval-ms", "0", "--heartbeat-ms", "0"]);
    publish(&mut h, Some("room"), "not for you");
    let id = publish(&mut h, None, "for everyone without a topic");
    h.conn.catch_up(&mut h.cx, h.now);
    assert_eq!(ids(&h.take_written()), [id]);
}

#[test]
fn another_topics_events_do_not_hold_a_tick_back() {
    let mut h = streaming_on("/home/events?topic=a", &["--interval-ms", "1000", "--heartbeat-ms", "0"]);
    publish(&mut h, Some("busy"), "x");
    h.fire_deadline();
    let out = h.take_written();
    assert_eq!(out.matches("data: ").count(), 1, "the tick went out: {out}");
    assert_eq!(h.cx.counters.ticks_skipped, 0);
}

#[test]
fn one_last_event_id_replays_every_topic_of_the_stream_in_order() {
    let mut h = Harness::new(&["--interval-ms", "0", "--heartbeat-ms", "0"]);
    let before = publish(&mut h, Some("a"), "seen already");
    let a = publish(&mut h, Some("a"), "a");
    publish(&mut h, Some("other"), "not mine");
    let b = publish(&mut h, Some("b"), "b");
    let request = format!(
        "GET /home/events?topic=b&topic=a HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: {before}\r\n\r\n"
    );
    h.arrive(request.as_bytes());
    h.readable();
    let out = h.take_written();
    assert_eq!(ids(&out), [a, b], "{out}");
    assert!(!out.contains("event: lost"), "{out}");
    assert_eq!(h.cx.counters.replayed, 2);
}

#[test]
fn a_publish_answers_how_many_streams_its_topic_reached_here() {
    let mut h = streaming_on("/home/events?topic=room", &["--interval-ms", "0"]);
    let mut publisher = Harness::new(&[]);
    // The publisher's context is another server: share the stream's by swapping it in.
    std::mem::swap(&mut publisher.cx, &mut h.cx);
    publisher.arrive(&post("/home/events?topic=room", "hello"));
    publisher.readable();
    let answer = publisher.take_written();
    assert!(answer.contains("\"streams\":1"), "{answer}");
    publisher.arrive(&post("/home/events?topic=empty", "nobody"));
    publisher.readable();
    assert!(publisher.take_written().contains("\"streams\":0"));
    std::mem::swap(&mut publisher.cx, &mut h.cx);
    h.conn.catch_up(&mut h.cx, h.now);
    let out = h.take_written();
    assert!(out.contains("data: hello") && !out.contains("nobody"), "{out}");
}

#[test]
fn past_max_topics_a_new_topic_is_refused_with_503_and_counted() {
    let args = ["--max-topics", "2"]; // the default topic and one more
    let mut h = streaming_on("/home/events?topic=first", &args);
    let mut second = Harness::new(&args);
    std::mem::swap(&mut second.cx, &mut h.cx);
    let first_key = second.cx.handling;
    second.cx.handling = crate::token::ConnKey { slot: 1, generation: 1 }; // another slot, as the server's
    second.arrive(&get("/home/events?topic=second"));
    second.readable();
    let out = second.take_written();
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.contains("--max-topics"), "{out}");
    assert_eq!(second.cx.figures().counters.topics_refused, 1);
    std::mem::swap(&mut second.cx, &mut h.cx);
    h.cx.handling = first_key;
    // The stream on `first` ends: its topic goes, and there is room again.
    h.conn.close(&mut h.cx, h.now, CloseReason::PeerClosed);
    assert_eq!(h.cx.hub.topics.len(), 1);
    assert!(h.cx.hub.topics.find_or_make(Some("second")).is_ok());
}

#[test]
fn a_stream_that_ends_leaves_its_topics() {
    let mut h = streaming_on("/home/events?topic=a&topic=b", &["--interval-ms", "0"]);
    let a = h.cx.hub.topics.find(Some("a")).expect("a");
    assert_eq!(h.cx.hub.topics.get(a).map(|t| t.live()), Some(1));
    h.conn.close(&mut h.cx, h.now, CloseReason::PeerClosed);
    assert!(h.cx.hub.topics.find(Some("a")).is_none() && h.cx.hub.topics.find(Some("b")).is_none());
    assert_eq!(h.cx.hub.topics.get(DEFAULT_TOPIC).map(|t| t.live()), Some(0));
}
