//! `--topics`: streams and publishes spread over topics, delivery checked topic by topic, against the real
//! server (which keeps topics apart) and a fake one (which does not: the run must fail).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{events_url, run_json, start_server};

#[test]
fn fanout_over_topics_delivers_each_event_to_its_topics_streams_only() {
    let server = start_server(&["--interval-ms", "0"]);
    // Uniform over 12 topics in 2 processes: 10 streams and 10 events per topic.
    let args = ["--streams", "120", "--topics", "12", "--events", "120", "--rate", "0", "--procs", "2"];
    let r = run_json("fanout", &events_url(&server), &args);
    assert_eq!(r.n("expected"), 12 * 10 * 10, "{}", r.report);
    assert_eq!(r.n("delivered"), 1200, "{}", r.report);
    assert_eq!(r.n("topics.wrong_topic"), 0, "{}", r.report);
    assert_eq!(r.n("topics.streams_per_topic.min"), 10, "{}", r.report);
    assert_eq!(r.n("topics.deliveries_per_topic.min"), 100, "{}", r.report);
    assert_eq!(r.n("topics.deliveries_per_topic.max"), 100, "{}", r.report);
    assert_eq!(r.code, 0, "{}", r.report);
}

#[test]
fn a_zipf_spread_has_hot_topics_and_every_delivery_still_arrives() {
    let server = start_server(&["--interval-ms", "0"]);
    let args =
        ["--streams", "200", "--topics", "50", "--topic-dist", "zipf:1.2", "--events", "200", "--rate", "0"];
    let r = run_json("fanout", &events_url(&server), &args);
    assert_eq!(r.n("delivered"), r.n("expected"), "{}", r.report);
    assert!(r.n("topics.streams_per_topic.max") >= 40, "t0 is hot: {}", r.report);
    assert!(r.n("topics.with_streams") < 50, "the tail has topics nobody is on: {}", r.report);
    assert_eq!(r.report["topics"]["dist"], "zipf:1.2");
    assert_eq!(r.code, 0, "{}", r.report);
}

/// A server that ignores `?topic=`: every stream gets one event published to topic 1.
fn topic_blind_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let ns = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 1\ndata: seq=0 t={ns} k=1\n\n"
                );
                let _ = socket.write_all(reply.as_bytes());
                std::thread::sleep(Duration::from_secs(5));
            });
        }
    });
    format!("http://{addr}/home/events")
}

#[test]
fn an_event_on_another_topics_stream_is_an_error_not_a_delivery() {
    let url = topic_blind_server();
    // Two streams: t0 and t1. The t1 stream's event is right; the t0 stream's is not.
    let r = run_json("hold", &url, &["--streams", "2", "--topics", "2", "--duration-s", "1"]);
    assert_eq!(r.n("topics.wrong_topic"), 1, "{}", r.report);
    assert_eq!(r.n("delivered"), 1, "{}", r.report);
    assert_eq!(r.code, 1, "a server that mixes topics fails the run: {}", r.report);
}
