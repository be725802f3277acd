//! Topics over real sockets: each stream gets exactly its topics' events, in id order; one
//! `Last-Event-ID` resumes every topic of a stream, within a run and across a restart; the shared replay
//! ring and the `lost` signal per stream; `--max-topics` (503, counted) and topics reclaimed when their
//! streams leave; bad names (400); and topics across two instances on a real Redis.
//!
//! "Exactly" is checked without waiting for silence: after the events under test, one last event (a
//! marker) is published to each topic a stream is on, and the stream is read until its markers came.
//! Frames leave in id order, so anything sent to it that should not have been is before the markers.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use support::{Event, PATIENCE, Redis, Server, exchange, find, parse_events, split_head};

/// A published event (named `kind`) as a stream shows it.
fn published(kind: &str, id: u64, data: &str) -> Event {
    Event { kind: kind.into(), id: Some(id.to_string()), data: data.into() }
}

/// An unnamed published event.
fn m(id: u64, data: &str) -> Event {
    published("message", id, data)
}

/// The ids of `events` (each must have one).
fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id.as_deref().expect("an id").parse().expect("a numeric id")).collect()
}

/// An open event stream and every byte it has read so far.
struct Sub {
    what: String,
    stream: TcpStream,
    got: Vec<u8>,
}

impl Sub {
    /// `GET target` with `headers` on `server`; returns once the server has sent the head, the `: ok`
    /// comment and `retry:`, so the stream is on its topics before anything is published.
    fn open(server: &Server, target: &str, headers: &str) -> Sub {
        let mut stream = server.connect();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").unwrap();
        let mut sub = Sub { what: format!("{target} on {}", server.addr), stream, got: Vec::new() };
        sub.read_until("the head, a comment and retry:", |got| {
            find(got, b"\r\n\r\n").is_some_and(|end| find(&got[end..], b"retry: ").is_some())
        });
        let (head, _) = split_head(&sub.got);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{}: {head}", sub.what);
        sub
    }

    /// The events read so far.
    fn events(&self) -> Vec<Event> {
        find(&self.got, b"\r\n\r\n").map_or_else(Vec::new, |end| parse_events(&self.got[end + 4..]))
    }

    /// Reads until `done(bytes so far)`; fails after [`PATIENCE`] or at a close, saying what it read.
    fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 16 * 1024];
        while !done(&self.got) {
            let left = deadline.saturating_duration_since(Instant::now());
            let so_far = || format!("{}: read so far {:?}", self.what, String::from_utf8_lossy(&self.got));
            assert!(!left.is_zero(), "no {what} within {PATIENCE:?}; {}", so_far());
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("closed before {what}; {}", so_far()),
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {} // the deadline says
                Err(e) => panic!("read failed ({e}) before {what}; {}", so_far()),
            }
        }
    }

    /// Reads until an event with each of `data` came; returns every event read so far.
    fn until_data(&mut self, data: &[&str]) -> Vec<Event> {
        let has_all = |got: &[u8]| {
            let events = find(got, b"\r\n\r\n").map_or_else(Vec::new, |end| parse_events(&got[end + 4..]));
            data.iter().all(|d| events.iter().any(|e| e.data == *d))
        };
        self.read_until(&format!("events {data:?}"), has_all);
        self.events()
    }
}

/// `POST /home/events` + `query` with `body`; returns (status, head, answer body).
fn publish(server: &Server, query: &str, body: &str) -> (u16, String, String) {
    let raw = format!(
        "POST /home/events{query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let got = exchange(server, raw.as_bytes());
    let (head, answer) = split_head(&got);
    (head[9..12].parse().unwrap(), head, String::from_utf8_lossy(&answer).into_owned())
}

/// Publishes and returns (the event's id, the `streams` of the answer).
fn publish_ok(server: &Server, query: &str, body: &str) -> (u64, u64) {
    let (status, head, answer) = publish(server, query, body);
    assert_eq!(status, 200, "publishing {body:?} with {query:?}: {head}{answer}");
    let field = |name: &str| {
        let rest = answer.split(&format!("\"{name}\":")).nth(1).unwrap_or_else(|| panic!("{answer}"));
        let value: String = rest.trim_start_matches('"').chars().take_while(char::is_ascii_digit).collect();
        value.parse::<u64>().unwrap_or_else(|_| panic!("{name} in {answer}"))
    };
    (field("id"), field("streams"))
}

/// Publishes and returns the event's id.
fn id_of(server: &Server, query: &str, body: &str) -> u64 {
    publish_ok(server, query, body).0
}

/// The status line and head of `GET target` (a refusal closes the connection after it).
fn get_head(server: &Server, target: &str) -> String {
    let got = exchange(
        server,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = split_head(&got);
    format!("{head}{}", String::from_utf8_lossy(&body))
}

#[test]
fn each_stream_gets_exactly_its_topics_events_in_id_order() {
    let server = Server::start(&["--interval-ms", "0"]);
    let mut on_a = Sub::open(&server, "/home/events?topic=a", "");
    let mut on_b = Sub::open(&server, "/home/events?topic=b", "");
    // Both topics, `a` named twice (once counts), in the other order than they are published.
    let mut on_ab = Sub::open(&server, "/home/events?topic=b&topic=a&topic=a", "");
    let mut on_default = Sub::open(&server, "/home/events", "");
    // A name with a space, percent-encoded one way by the stream and another by the publisher.
    let mut on_room = Sub::open(&server, "/home/stream?topic=room%201", "");

    let (a1, to_a) = publish_ok(&server, "?topic=a", "a1");
    let (b1, to_b) = publish_ok(&server, "?topic=b", "b1");
    let (d1, to_default) = publish_ok(&server, "", "d1");
    let (n1, to_nobody) = publish_ok(&server, "?topic=nobody", "n1");
    let (a2, _) = publish_ok(&server, "?event=news&topic=a", "a2");
    let (r1, to_room) = publish_ok(&server, "?topic=room+1", "r1");
    let (b2, _) = publish_ok(&server, "?topic=b", "b2");
    assert_eq!((to_a, to_b, to_default, to_nobody, to_room), (2, 2, 1, 0, 1), "`streams` per topic");
    let ids = [a1, b1, d1, n1, a2, r1, b2];
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "one sequence across topics: {ids:?}");

    let end_a = id_of(&server, "?topic=a", "end a");
    let end_b = id_of(&server, "?topic=b", "end b");
    let end_default = id_of(&server, "", "end default");
    let end_room = id_of(&server, "?topic=room%201", "end room");
    assert_eq!(on_a.until_data(&["end a"]), [m(a1, "a1"), published("news", a2, "a2"), m(end_a, "end a")]);
    assert_eq!(on_b.until_data(&["end b"]), [m(b1, "b1"), m(b2, "b2"), m(end_b, "end b")]);
    assert_eq!(
        on_ab.until_data(&["end a", "end b"]),
        [
            m(a1, "a1"),
            m(b1, "b1"),
            published("news", a2, "a2"),
            m(b2, "b2"),
            m(end_a, "end a"),
            m(end_b, "end b")
        ]
    );
    assert_eq!(on_default.until_data(&["end default"]), [m(d1, "d1"), m(end_default, "end default")]);
    assert_eq!(on_room.until_data(&["end room"]), [m(r1, "r1"), m(end_room, "end room")]);
}

#[test]
fn a_pipelined_burst_over_three_topics_arrives_whole_and_in_order_on_each_stream() {
    // With a ring of 10, the burst is 30 times the ring: publishing paces itself for every topic.
    for ring in ["1000", "10"] {
        let server = Server::start(&["--interval-ms", "0", "--replay-events", ring]);
        let mut on_a = Sub::open(&server, "/home/events?topic=a", "");
        let mut on_b = Sub::open(&server, "/home/events?topic=b", "");
        let mut on_all = Sub::open(&server, "/home/events?topic=a&topic=b&topic=c", "");
        let mut raw = Vec::new();
        for i in 0..300 {
            let (topic, body) = (["a", "b", "c"][i % 3], format!("event {i}"));
            write!(
                raw,
                "POST /home/events?topic={topic} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        // On one connection, kept open (closing it with answers unread would reset it): many publishes
        // per turn, fanned out together.
        let mut publisher = server.connect();
        publisher.write_all(&raw).unwrap();
        let data = |events: &[Event]| events.iter().map(|e| e.data.clone()).collect::<Vec<_>>();
        let want = |topics: &[usize]| -> Vec<String> {
            (0..300).filter(|i| topics.contains(&(i % 3))).map(|i| format!("event {i}")).collect()
        };
        assert_eq!(data(&on_a.until_data(&["event 297"])), want(&[0]), "ring {ring}");
        assert_eq!(data(&on_b.until_data(&["event 298"])), want(&[1]), "ring {ring}");
        let all = on_all.until_data(&["event 299"]);
        assert_eq!(data(&all), want(&[0, 1, 2]), "ring {ring}");
        assert!(ids(&all).windows(2).all(|w| w[1] == w[0] + 1), "ring {ring}: contiguous ids");
    }
}

#[test]
fn a_stream_on_two_topics_resumes_both_from_one_last_event_id() {
    let server = Server::start(&["--interval-ms", "0"]);
    let mut first = Sub::open(&server, "/home/events?topic=a&topic=b", "");
    let a1 = id_of(&server, "?topic=a", "a1");
    let b1 = id_of(&server, "?topic=b", "b1");
    let seen = first.until_data(&["b1"]);
    assert_eq!(ids(&seen), [a1, b1]);
    drop(first);
    // While it is away: both of its topics, another topic, and the default one.
    let a2 = id_of(&server, "?topic=a", "a2");
    id_of(&server, "?topic=c", "c1");
    let b2 = id_of(&server, "?topic=b", "b2");
    id_of(&server, "", "d1");
    // Back with the last id it saw: in the header (a browser reconnecting), and in the query (a first
    // connection cannot send the header), with the topics in another order.
    let mut by_header =
        Sub::open(&server, "/home/events?topic=a&topic=b", &format!("Last-Event-ID: {b1}\r\n"));
    let mut by_query = Sub::open(&server, &format!("/home/events?topic=b&last_event_id={b1}&topic=a"), "");
    // Then live, with nothing else in between.
    let live = id_of(&server, "?topic=b", "live");
    for again in [&mut by_header, &mut by_query] {
        assert_eq!(
            again.until_data(&["live"]),
            [m(a2, "a2"), m(b2, "b2"), m(live, "live")],
            "{}",
            again.what
        );
        assert!(!String::from_utf8_lossy(&again.got).contains("event: lost"), "{}", again.what);
    }
}

#[test]
fn a_stream_on_two_topics_resumes_both_after_a_restart_on_the_same_port() {
    let first_server = Server::start(&["--interval-ms", "0"]);
    let mut sub = Sub::open(&first_server, "/home/events?topic=a&topic=b", "");
    id_of(&first_server, "?topic=a", "a1");
    let b1 = id_of(&first_server, "?topic=b", "b1");
    sub.until_data(&["a1", "b1"]);
    let listen = first_server.addr.to_string();
    drop(first_server);
    drop(sub);
    let server = Server::start(&["--listen", &listen, "--interval-ms", "0"]);
    // Published on the new process before the client is back: its ids are above every old one.
    let a2 = id_of(&server, "?topic=a", "a2");
    id_of(&server, "?topic=c", "c1");
    let b2 = id_of(&server, "?topic=b", "b2");
    assert!(a2 > b1, "ids after the restart ({a2}) must be above those before ({b1})");
    let mut again = Sub::open(&server, "/home/events?topic=a&topic=b", &format!("Last-Event-ID: {b1}\r\n"));
    let end = id_of(&server, "?topic=a", "end");
    // Everything the new process has on its topics, no loss signal (what the old one had after b1 died
    // with it, which it cannot know), nothing of topic c.
    assert_eq!(again.until_data(&["end"]), [m(a2, "a2"), m(b2, "b2"), m(end, "end")]);
}

#[test]
fn a_busy_topic_pushes_a_quiet_topics_history_out_of_the_shared_ring() {
    // The ring holds 4 events for all topics together.
    let server = Server::start(&["--interval-ms", "0", "--replay-events", "4"]);
    // A stream stays on the quiet topic, so the topic lives on when its event leaves the ring.
    let _keeper = Sub::open(&server, "/home/events?topic=quiet", "");
    let before = id_of(&server, "", "before");
    let quiet = id_of(&server, "?topic=quiet", "q1");
    let busy: Vec<u64> = (0..4).map(|i| id_of(&server, "?topic=busy", &format!("busy {i}"))).collect();
    // A client of the quiet topic that last saw `before` missed q1, which is gone: the `lost` signal,
    // which does not move its cursor, then nothing until the next event of its topic.
    let mut on_quiet =
        Sub::open(&server, "/home/events?topic=quiet", &format!("Last-Event-ID: {before}\r\n"));
    let q2 = id_of(&server, "?topic=quiet", "q2");
    let events = on_quiet.until_data(&["q2"]);
    let lost = format!(r#"{{"last_event_id":"{before}","first_available_id":"{}"}}"#, quiet + 1);
    assert_eq!(events, [Event { kind: "lost".into(), id: None, data: lost }, published("message", q2, "q2")]);
    // A client of the busy topic that last saw the same id missed nothing of its own: all four, no signal.
    let mut on_busy = Sub::open(&server, "/home/events?topic=busy", &format!("Last-Event-ID: {before}\r\n"));
    let events = on_busy.until_data(&["busy 3"]);
    // q2 pushed busy 0 out: only what the ring still holds, and the signal says from where.
    assert_eq!(events[0].kind, "lost", "{events:?}");
    assert_eq!(ids(&events[1..]), busy[1..]);
    // On both topics: the newest loss decides where the replay starts.
    let mut on_both =
        Sub::open(&server, "/home/events?topic=busy&topic=quiet", &format!("Last-Event-ID: {}\r\n", busy[1]));
    let events = on_both.until_data(&["q2"]);
    assert!(
        events.iter().all(|e| e.kind == "message"),
        "busy 1 was its last, nothing after it was dropped: {events:?}"
    );
    assert_eq!(ids(&events), [busy[2], busy[3], q2]);
}

/// A topic with no stream is reclaimed once its last event leaves the ring; a client that comes back to
/// it must still learn that it lost what was published while it was away.
#[test]
fn a_client_whose_topic_was_reclaimed_while_it_was_away_still_gets_the_lost_signal() {
    let server = Server::start(&["--interval-ms", "0", "--replay-events", "2"]);
    let mut sub = Sub::open(&server, "/home/events?topic=room", "");
    let r1 = id_of(&server, "?topic=room", "r1");
    sub.until_data(&["r1"]);
    drop(sub);
    let mut scraper = server.scraper();
    scraper.wait_for_metric("mio_sse_open_streams", |v| v == 0);
    // Published while it is away, then pushed out of the ring by the default topic: `room` has neither
    // stream nor event any more, and goes.
    let r2 = id_of(&server, "?topic=room", "r2");
    id_of(&server, "", "d1");
    id_of(&server, "", "d2");
    scraper.wait_for_metric("mio_sse_topics", |v| v == 1);
    let mut again = Sub::open(&server, "/home/events?topic=room", &format!("Last-Event-ID: {r1}\r\n"));
    let r3 = id_of(&server, "?topic=room", "r3");
    let events = again.until_data(&["r3"]);
    assert_eq!(events.last(), Some(&m(r3, "r3")), "{events:?}");
    assert_eq!(events.len(), 2, "r2 is gone: the lost signal, then r3: {events:?}");
    assert_eq!(events[0].kind, "lost", "r2 was lost without a word: {events:?}");
    assert!(
        events[0].data.starts_with(&format!(r#"{{"last_event_id":"{r1}","first_available_id":""#)),
        "{events:?}"
    );
    let first_available: u64 =
        events[0].data.rsplit(':').next().unwrap().trim_matches(|c| c == '"' || c == '}').parse().unwrap();
    assert!(first_available > r2 && first_available <= r3, "{events:?}");
}

#[test]
fn bad_topic_names_and_too_many_topics_get_400_with_a_reason() {
    let server = Server::start(&["--interval-ms", "0", "--max-topics-per-stream", "2"]);
    let long = "x".repeat(129);
    for target in [
        "/home/events?topic=".to_string(),
        "/home/events?topic=a%0Ab".to_string(),
        "/home/events?topic=tab%09".to_string(),
        "/home/events?topic=del%7F".to_string(),
        "/home/events?topic=c1%C2%85".to_string(), // U+0085, a C1 control
        "/home/events?topic=%FF".to_string(),      // not UTF-8
        format!("/home/events?topic={long}"),
        "/home/events?topic=a&topic=b&topic=c".to_string(),
        "/home/stream?topic=a&topic=b&topic=c".to_string(),
    ] {
        let head = get_head(&server, &target);
        assert!(head.starts_with("HTTP/1.1 400 "), "{target}: {head}");
    }
    for query in
        ["?topic=", "?topic=a%0Db", &format!("?topic={long}"), "?topic=a&topic=b", "?topic=a&topic=a"]
    {
        let (status, head, answer) = publish(&server, query, "x");
        assert_eq!(status, 400, "{query}: {head}{answer}");
    }
    // The edges that are fine: 128 bytes, UTF-8 beyond ASCII, the same topic twice counting once.
    let longest = "y".repeat(128);
    let _open = [
        format!("/home/events?topic={longest}"),
        "/home/events?topic=caf%C3%A9&topic=%E2%9C%93".to_string(),
        "/home/events?topic=a&topic=b&topic=a".to_string(),
    ]
    .map(|target| Sub::open(&server, &target, ""));
    assert_eq!(publish_ok(&server, &format!("?topic={longest}"), "x").1, 1);
    let metrics = server.metrics();
    assert_eq!(metrics.value("mio_sse_topics_refused_total"), 0, "a 400 is not a refusal for room");
}

#[test]
fn max_topics_refuses_new_topics_with_503_counts_them_and_reclaims_what_streams_leave() {
    // Room for the default topic and two more; the ring holds 2 events.
    let server = Server::start(&["--interval-ms", "0", "--max-topics", "3", "--replay-events", "2"]);
    let mut scraper = server.scraper();
    assert_eq!(scraper.scrape().value("mio_sse_topics"), 1, "the default topic is always there");
    let on_x = Sub::open(&server, "/home/events?topic=x", "");
    let on_y = Sub::open(&server, "/home/events?topic=y", "");
    scraper.wait_for_metric("mio_sse_topics", |v| v == 3);

    // A third topic: refused, by a stream (alone or with a topic that exists) and by a publish.
    for target in ["/home/events?topic=z", "/home/events?topic=x&topic=z"] {
        let head = get_head(&server, target);
        assert!(head.starts_with("HTTP/1.1 503 ") && head.contains("\r\nRetry-After: "), "{target}: {head}");
    }
    let (status, head, answer) = publish(&server, "?topic=z", "z1");
    assert_eq!(status, 503, "{head}{answer}");
    assert!(head.contains("\r\nRetry-After: "), "{head}");
    let metrics = scraper.scrape();
    assert_eq!(metrics.value("mio_sse_topics_refused_total"), 3);
    assert_eq!(metrics.value("mio_sse_topics"), 3, "a refusal leaves nothing behind");
    // Topics that exist still work, and so does the default topic.
    assert_eq!(publish_ok(&server, "?topic=x", "x1").1, 1);
    assert_eq!(publish_ok(&server, "", "d1").1, 0);

    // y's stream leaves: y has no stream and no event held, so it goes, and z has room.
    drop(on_y);
    scraper.wait_for_metric("mio_sse_topics", |v| v == 2);
    let on_z = Sub::open(&server, "/home/events?topic=z", "");
    scraper.wait_for_metric("mio_sse_topics", |v| v == 3);
    // x's stream leaves, but x1 is still held for replay: x stays until the ring lets x1 go.
    drop(on_x);
    scraper.wait_for_metric("mio_sse_open_streams", |v| v == 1);
    assert_eq!(scraper.scrape().value("mio_sse_topics"), 3, "x1 is still in the ring");
    id_of(&server, "?topic=z", "z1");
    id_of(&server, "?topic=z", "z2");
    scraper.wait_for_metric("mio_sse_topics", |v| v == 2);
    drop(on_z);
    // z's events are still held; once default-topic events push them out, only the default is left.
    scraper.wait_for_metric("mio_sse_open_streams", |v| v == 0);
    id_of(&server, "", "d2");
    id_of(&server, "", "d3");
    scraper.wait_for_metric("mio_sse_topics", |v| v == 1);
    assert_eq!(scraper.scrape().value("mio_sse_topics_refused_total"), 3);
}

/// An instance on `redis` without ticks, once its backplane is up.
fn instance(redis: &Redis) -> Server {
    let url = redis.url();
    let server = Server::start(&["--redis", &url, "--interval-ms", "0"]);
    server.wait_for_metric("mio_sse_backplane_up", |v| v == 1);
    server
}

#[test]
fn with_redis_a_publish_to_a_topic_reaches_its_streams_on_every_instance_with_one_id() {
    let redis = Redis::start();
    let (a, b) = (instance(&redis), instance(&redis));
    let mut a_t = Sub::open(&a, "/home/events?topic=t", "");
    let mut a_u = Sub::open(&a, "/home/events?topic=u", "");
    let mut b_t = Sub::open(&b, "/home/events?topic=t", "");
    let mut b_tu = Sub::open(&b, "/home/events?topic=u&topic=t", "");
    let mut b_default = Sub::open(&b, "/home/events", "");

    let (t1, here) = publish_ok(&a, "?topic=t", "t1");
    assert_eq!(here, 1, "`streams` counts the topic's streams on the instance that answered");
    let (u1, here) = publish_ok(&b, "?topic=u&event=news", "u1");
    assert_eq!(here, 1);
    let d1 = id_of(&a, "", "d1");
    let t2 = id_of(&b, "?topic=t", "t2");
    assert_eq!([u1, d1, t2], [t1 + 1, t1 + 2, t1 + 3], "one sequence across topics and instances");
    let end_t = id_of(&a, "?topic=t", "end t");
    let end_u = id_of(&b, "?topic=u", "end u");
    let end_default = id_of(&a, "", "end default");

    let u1_event = published("news", u1, "u1");
    let on_t = [m(t1, "t1"), m(t2, "t2"), m(end_t, "end t")];
    assert_eq!(a_t.until_data(&["end t"]), on_t);
    assert_eq!(b_t.until_data(&["end t"]), on_t);
    assert_eq!(a_u.until_data(&["end u"]), [u1_event.clone(), m(end_u, "end u")]);
    assert_eq!(
        b_tu.until_data(&["end t", "end u"]),
        [m(t1, "t1"), u1_event, m(t2, "t2"), m(end_t, "end t"), m(end_u, "end u")]
    );
    assert_eq!(b_default.until_data(&["end default"]), [m(d1, "d1"), m(end_default, "end default")]);
}

#[test]
fn with_redis_a_client_moving_to_another_instance_gets_what_it_missed_of_its_topics() {
    let redis = Redis::start();
    let a = instance(&redis);
    let mut on_a = Sub::open(&a, "/home/events?topic=t&topic=u", "");
    let t1 = id_of(&a, "?topic=t", "t1");
    on_a.until_data(&["t1"]);
    drop(on_a);
    let u1 = id_of(&a, "?topic=u", "u1");
    id_of(&a, "?topic=v", "v1");
    id_of(&a, "", "d1");
    let t2 = id_of(&a, "?topic=t", "t2");
    // B starts after all of it (it reads the backlog, topics included, from Redis) and C was there all
    // along (it had it live): both replay exactly the missed events of the client's topics.
    let c = instance(&redis);
    let b = instance(&redis);
    let mut on_b = Sub::open(&b, "/home/events?topic=u&topic=t", &format!("Last-Event-ID: {t1}\r\n"));
    let mut on_c = Sub::open(&c, "/home/events?topic=u&topic=t", &format!("Last-Event-ID: {t1}\r\n"));
    let end = id_of(&b, "?topic=t", "end");
    assert_eq!(on_b.until_data(&["end"]), [m(u1, "u1"), m(t2, "t2"), m(end, "end")], "on B");
    assert_eq!(on_c.until_data(&["end"]), [m(u1, "u1"), m(t2, "t2"), m(end, "end")], "on C");
}

/// An instance with no room for a topic still passes the topic's events along in its ring (ids stay
/// contiguous) but cannot index them: a client that later comes to that topic on it, with an id from
/// before such an event, must get the event or the `lost` signal, never silence.
#[test]
fn with_redis_an_event_for_a_topic_an_instance_had_no_room_for_is_not_lost_in_silence() {
    let redis = Redis::start();
    let a = instance(&redis);
    let url = redis.url();
    let b = Server::start(&["--redis", &url, "--interval-ms", "0", "--max-topics", "2"]);
    b.wait_for_metric("mio_sse_backplane_up", |v| v == 1);
    let on_x = Sub::open(&b, "/home/events?topic=x", ""); // B is full: the default topic and x
    let mut on_b_default = Sub::open(&b, "/home/events", "");
    let before = id_of(&a, "", "before");
    on_b_default.until_data(&["before"]);
    let y1 = id_of(&a, "?topic=y", "y1"); // B has no room for y
    let after = id_of(&a, "", "after");
    on_b_default.until_data(&["after"]); // so B has read y1 too
    drop(on_x);
    b.wait_for_metric("mio_sse_topics", |v| v == 1); // x had no event: it goes, and B has room again
    let mut on_y = Sub::open(&b, "/home/events?topic=y", &format!("Last-Event-ID: {before}\r\n"));
    let y2 = id_of(&a, "?topic=y", "y2");
    let events = on_y.until_data(&["y2"]);
    assert!(
        events.first() == Some(&m(y1, "y1")) || events.first().is_some_and(|e| e.kind == "lost"),
        "y1 ({y1}, before {after}) neither replayed nor signalled lost: {events:?}"
    );
    assert_eq!(events.last(), Some(&m(y2, "y2")));
}
