//! The hub without a socket: ids, the ring's bounds, replay and loss, topics and their fan-out queue.

use super::*;
use crate::token::ConnKey;

const ALL: Subscription = Subscription::DEFAULT;

fn collect(hub: &Hub, subscription: Subscription, cursor: u64) -> Vec<String> {
    hub.backlog(subscription, cursor).unwrap().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect()
}

fn key(slot: u32) -> ConnKey {
    ConnKey { slot, generation: 1 }
}

fn names(list: &[&str]) -> Vec<Box<str>> {
    list.iter().map(|&n| n.into()).collect()
}

#[test]
fn ids_increase_by_one_from_the_seed_and_frames_carry_them() {
    let mut hub = Hub::new(1000, 10, 1 << 20);
    assert_eq!(hub.publish(DEFAULT_TOPIC, None, "a"), 1000);
    assert_eq!(hub.publish(DEFAULT_TOPIC, Some("news"), "b\nc"), 1001);
    assert_eq!(hub.next_id(), 1002);
    assert_eq!(
        collect(&hub, ALL, 1000),
        ["id: 1000\ndata: a\n\n", "event: news\nid: 1001\ndata: b\ndata: c\n\n"]
    );
    assert_eq!(collect(&hub, ALL, 1001).len(), 1);
    assert_eq!(collect(&hub, ALL, 1002).len(), 0, "caught up");
    assert!(hub.owes(ALL, 1001) && !hub.owes(ALL, 1002));
    assert!(hub.topics.has_queued(), "the default topic waits for the fan-out");
}

#[test]
fn lag_is_the_bytes_from_the_cursor_to_the_end() {
    let mut hub = Hub::new(10, 3, 1 << 20);
    assert_eq!(hub.lag_bytes(ALL, 10), Some(0));
    let a = hub.publish(DEFAULT_TOPIC, None, "a"); // "id: 10\ndata: a\n\n" = 16 bytes
    let b = hub.publish(DEFAULT_TOPIC, None, "bb"); // 17 bytes
    assert_eq!(hub.lag_bytes(ALL, a), Some(33));
    assert_eq!(hub.lag_bytes(ALL, b), Some(17));
    assert_eq!(hub.lag_bytes(ALL, b + 1), Some(0));
    hub.publish(DEFAULT_TOPIC, None, "c");
    hub.publish(DEFAULT_TOPIC, None, "d");
    assert_eq!(hub.lag_bytes(ALL, a), None, "fell off the ring");
}

#[test]
fn the_ring_is_bounded_by_count_and_bytes() {
    let mut hub = Hub::new(1, 3, 1 << 20);
    for i in 0..10 {
        hub.publish(DEFAULT_TOPIC, None, &i.to_string());
    }
    assert_eq!(hub.ring_len().0, 3);
    assert_eq!(hub.oldest_id(), 8);
    assert!(hub.backlog(ALL, 7).is_none(), "cursor 7 fell off the ring");
    let mut small = Hub::new(1, 100, 50);
    for _ in 0..10 {
        small.publish(DEFAULT_TOPIC, None, "0123456789");
    }
    let (events, bytes) = small.ring_len();
    assert!(bytes <= 50 && events >= 1, "{events} events, {bytes} bytes");
    let mut huge = Hub::new(1, 100, 10);
    huge.publish(DEFAULT_TOPIC, None, &"x".repeat(100));
    assert_eq!(huge.ring_len().0, 1, "the newest event is always kept");
}

#[test]
fn at_most_half_the_ring_is_published_in_one_lap() {
    let mut hub = Hub::new(1, 10, 1 << 20);
    let mut published = 0;
    while hub.has_publish_budget() {
        hub.publish(DEFAULT_TOPIC, None, "x");
        published += 1;
    }
    assert_eq!(published, 5);
    hub.end_lap();
    assert!(hub.has_publish_budget(), "a new lap, a new budget");
    let mut bytes = Hub::new(1, 1000, 100);
    while bytes.has_publish_budget() {
        bytes.publish(DEFAULT_TOPIC, None, "0123456789");
    }
    assert!(bytes.ring_len().1 >= 50 && bytes.ring_len().0 < 10);
}

#[test]
fn resume_replays_after_the_last_id_and_signals_what_was_dropped() {
    let mut hub = Hub::new(100, 5, 1 << 20);
    assert_eq!(hub.resume(ALL, None), Resume { cursor: 100, lost: None });
    for _ in 0..3 {
        hub.publish(DEFAULT_TOPIC, None, "x"); // 100, 101, 102
    }
    assert_eq!(hub.resume(ALL, None), Resume { cursor: 103, lost: None }, "live only");
    assert_eq!(hub.resume(ALL, Some(100)), Resume { cursor: 101, lost: None });
    assert_eq!(hub.resume(ALL, Some(102)), Resume { cursor: 103, lost: None }, "up to date");
    assert_eq!(hub.resume(ALL, Some(5000)), Resume { cursor: 103, lost: None }, "ahead: live");
    // An id from before a restart: everything this process has, no loss signal.
    let before_restart = hub.resume(ALL, Some(7));
    assert_eq!(before_restart.lost, None);
    assert_eq!(hub.owed(ALL, before_restart.cursor).collect::<Vec<_>>(), [100, 101, 102]);
    for _ in 0..5 {
        hub.publish(DEFAULT_TOPIC, None, "y"); // 103..=107; the ring now holds 103..=107
    }
    assert_eq!(hub.oldest_id(), 103);
    assert_eq!(hub.resume(ALL, Some(101)), Resume { cursor: 103, lost: Some((101, 103)) });
    assert_eq!(
        hub.resume(ALL, Some(102)),
        Resume { cursor: 103, lost: None },
        "nothing it needed was dropped"
    );
    assert_eq!(hub.resume(ALL, Some(7)), Resume { cursor: 103, lost: Some((7, 103)) });
}

#[test]
fn a_following_hub_takes_given_ids_skips_repeats_and_restarts_after_a_gap() {
    let mut hub = Hub::following(10, 1 << 20, usize::MAX, 100);
    hub.append(500, None, None, "a");
    hub.append(501, None, Some("n"), "b");
    hub.append(501, None, None, "b again");
    assert_eq!((hub.oldest_id(), hub.next_id()), (500, 502));
    assert_eq!(
        hub.resume(ALL, Some(100)),
        Resume { cursor: 500, lost: Some((100, 500)) },
        "global ids: a gap is a loss"
    );
    hub.append(510, None, None, "after a gap");
    assert_eq!((hub.oldest_id(), hub.next_id(), hub.ring_len().0), (510, 511, 1));
    assert!(hub.backlog(ALL, 501).is_none(), "a stream at 501 fell behind the gap");
    // Redis came back empty: ids start over lower; a caught-up stream (cursor 511) carries on.
    hub.rebase();
    hub.append(300, None, None, "new epoch");
    assert_eq!(hub.normalize(511), 300);
    assert_eq!(hub.backlog(ALL, 511).unwrap().count(), 1);
}

#[test]
fn a_following_hub_behind_redis_makes_a_client_ahead_of_it_wait_rather_than_resend() {
    let mut hub = Hub::following(100, 1 << 20, usize::MAX, 10);
    // A worker just started: it has read nothing yet, and a client comes back having seen 502.
    let early = hub.resume(ALL, Some(502));
    assert_eq!(early, Resume { cursor: 503, lost: None });
    for id in 500..=505 {
        hub.append(id, None, None, "backlog");
    }
    assert_eq!(hub.owed(ALL, early.cursor).collect::<Vec<_>>(), [503, 504, 505], "none it had");
    // Some read, not all: a client at 510 waits for 511; nothing owed does not pull its cursor back.
    let waiting = hub.resume(ALL, Some(510));
    assert_eq!(waiting.cursor, 511);
    assert_eq!(hub.advance(ALL, waiting.cursor, 0), 511);
    assert!(!hub.owes(ALL, waiting.cursor));
    // An id implausibly far ahead was never issued: live.
    assert_eq!(hub.resume(ALL, Some(506 + MAX_AHEAD)).cursor, 506);
    // A hub of its own never waits: ahead means never issued.
    let own = Hub::new(100, 10, 1 << 20);
    assert_eq!(own.resume(ALL, Some(150)).cursor, 100);
}

#[test]
fn event_ids_from_clients_are_checked() {
    assert_eq!(parse_event_id("42"), Some(42));
    assert_eq!(parse_event_id(" 42 "), Some(42));
    assert_eq!(parse_event_id("18446744073709551615"), Some(u64::MAX));
    for bad in ["", "-1", "4 2", "0x10", "abc", "18446744073709551616", "123456789012345678901", "１"] {
        assert_eq!(parse_event_id(bad), None, "{bad:?}");
    }
}

#[test]
fn the_lost_signal_has_no_id() {
    let mut out = Vec::new();
    write_lost(&mut out, 17, 20);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: lost\ndata: {\"last_event_id\":\"17\",\"first_available_id\":\"20\"}\n\n"
    );
}

// Topics.

#[test]
fn a_stream_gets_only_its_topics_frames_in_id_order() {
    let mut hub = Hub::new(1, 100, 1 << 20);
    let rooms = hub.topics.subscribe(key(1), &names(&["room-a", "room-b"])).unwrap();
    let only_a = hub.topics.subscribe(key(2), &names(&["room-a"])).unwrap();
    let a = hub.topics.find(Some("room-a")).unwrap();
    let b = hub.topics.find(Some("room-b")).unwrap();
    let c = hub.topics.find_or_make(Some("room-c")).unwrap();
    hub.publish(a, None, "a1"); // 1
    hub.publish(c, None, "c1"); // 2
    hub.publish(b, None, "b1"); // 3
    hub.publish(DEFAULT_TOPIC, None, "d1"); // 4
    hub.publish(a, None, "a2"); // 5
    assert_eq!(hub.owed(rooms, 1).collect::<Vec<_>>(), [1, 3, 5]);
    assert_eq!(hub.owed(only_a, 1).collect::<Vec<_>>(), [1, 5]);
    assert_eq!(hub.owed(only_a, 2).collect::<Vec<_>>(), [5]);
    assert_eq!(hub.owed(ALL, 1).collect::<Vec<_>>(), [4]);
    assert_eq!(collect(&hub, only_a, 1), ["id: 1\ndata: a1\n\n", "id: 5\ndata: a2\n\n"]);
    // Written one frame of three: the cursor goes past it; written all: to the hub's end.
    assert_eq!(hub.advance(rooms, 1, 1), 2);
    assert_eq!(hub.advance(rooms, 2, 2), 6);
    assert_eq!(hub.advance(rooms, 4, 0), 4);
    assert!(!hub.owes(only_a, 6) && hub.owes(only_a, 5));
    assert!(!hub.owes(ALL, 5), "a stream on the default topic owes nothing past 4");
    // Lag counts its topics' bytes only.
    assert_eq!(hub.lag_bytes(only_a, 2), Some("id: 5\ndata: a2\n\n".len() as u64));
}

#[test]
fn one_last_event_id_resumes_every_topic_and_loss_is_per_topic() {
    let mut hub = Hub::new(1, 4, 1 << 20);
    let a = hub.topics.find_or_make(Some("a")).unwrap();
    let b = hub.topics.find_or_make(Some("b")).unwrap();
    let quiet = hub.topics.subscribe(key(1), &names(&["a"])).unwrap();
    let both = hub.topics.subscribe(key(2), &names(&["a", "b"])).unwrap();
    hub.publish(a, None, "a1"); // 1
    for _ in 0..4 {
        hub.publish(b, None, "b"); // 2..=5: the ring (4 events) drops a1
    }
    assert_eq!(hub.oldest_id(), 2);
    // On `a` alone, from 1: a1 was dropped: lost.
    assert_eq!(hub.resume(quiet, Some(0)), Resume { cursor: 2, lost: Some((0, 2)) });
    // After a1: nothing of `a` was dropped since, however much of `b` was: no loss, no fall.
    assert_eq!(hub.resume(quiet, Some(1)), Resume { cursor: 2, lost: None });
    assert!(!hub.fell_behind(quiet, 2));
    // On both, after 3: b4 and b5 are still there.
    assert_eq!(hub.resume(both, Some(3)), Resume { cursor: 4, lost: None });
    assert_eq!(hub.owed(both, 4).collect::<Vec<_>>(), [4, 5]);
}

#[test]
fn topics_are_made_on_demand_bounded_and_reclaimed() {
    let mut hub = Hub::with_limits(1, 2, 1 << 20, usize::MAX, 3); // the default topic and two more
    let x = hub.topics.subscribe(key(1), &names(&["x"])).unwrap();
    hub.topics.subscribe(key(2), &names(&["y"])).unwrap();
    assert_eq!(hub.topics.len(), 3);
    assert_eq!(hub.topics.subscribe(key(3), &names(&["z"])), Err(TopicsFull));
    assert_eq!(hub.topics.subscribe(key(3), &names(&["x", "z"])), Err(TopicsFull), "all or nothing");
    assert_eq!(hub.topics.refused, 2);
    assert_eq!(hub.topics.get(hub.topics.topics_of(x)[0]).unwrap().live(), 1, "the refused one left nothing");
    assert_eq!(hub.topics.len(), 3, "nor a topic");
    // y's only stream ends: y goes at once. x keeps a frame: x stays until the ring drops it.
    hub.topics.unsubscribe(2);
    assert_eq!(hub.topics.len(), 2);
    let x_id = hub.topics.find(Some("x")).unwrap();
    hub.publish(x_id, None, "kept for replay");
    hub.topics.unsubscribe(1);
    while let Some(id) = hub.topics.start_walk() {
        hub.topics.end_walk(id);
    }
    assert!(hub.topics.find(Some("x")).is_some(), "its frame is still in the ring");
    hub.publish(DEFAULT_TOPIC, None, "1");
    hub.publish(DEFAULT_TOPIC, None, "2"); // the ring (2 events) drops x's frame
    assert!(hub.topics.find(Some("x")).is_none(), "no stream, no frame: reclaimed");
    assert!(hub.topics.find(None).is_some(), "the default topic stays");
}

#[test]
fn a_topic_made_again_still_tells_a_returning_client_that_frames_were_dropped() {
    let mut hub = Hub::new(1, 2, 1 << 20);
    let room = hub.topics.subscribe(key(1), &names(&["room"])).unwrap();
    let room_id = hub.topics.topics_of(room)[0];
    let r1 = hub.publish(room_id, None, "r1");
    hub.topics.unsubscribe(1); // the client goes away, having seen r1
    let r2 = hub.publish(room_id, None, "r2");
    hub.publish(DEFAULT_TOPIC, None, "d1");
    hub.publish(DEFAULT_TOPIC, None, "d2"); // r1 and r2 leave the ring
    while let Some(id) = hub.topics.start_walk() {
        hub.topics.end_walk(id);
    }
    assert!(hub.topics.find(Some("room")).is_none(), "no stream, no frame: reclaimed");
    // It comes back: the topic is made anew, and r2 was lost.
    let room = hub.topics.subscribe(key(2), &names(&["room"])).unwrap();
    assert_eq!(hub.resume(room, Some(r1)), Resume { cursor: r2 + 1, lost: Some((r1, r2 + 1)) });
    // A new client, or one that saw everything, loses nothing; nor does a stream live on it.
    assert_eq!(hub.resume(room, None).lost, None);
    assert_eq!(hub.resume(room, Some(hub.next_id() - 1)).lost, None);
    assert!(!hub.fell_behind(room, hub.next_id()));
    // A new epoch of the backplane's ids forgets it.
    hub.topics.forget_drops();
    hub.topics.unsubscribe(2);
    let room = hub.topics.subscribe(key(3), &names(&["room"])).unwrap();
    assert_eq!(hub.resume(room, Some(r1)).lost, None);
}

#[test]
fn an_event_for_a_topic_with_no_room_is_signalled_lost_to_whoever_comes_for_that_topic_later() {
    let mut hub = Hub::following(100, 1 << 20, usize::MAX, 2); // the default topic and one more
    hub.topics.subscribe(key(1), &names(&["x"])).unwrap();
    hub.append(10, None, None, "before");
    hub.append(11, Some("y"), None, "y1"); // no room for y: in the ring, for no topic
    hub.append(12, None, None, "after");
    assert_eq!(hub.topics.find(Some("y")), None);
    hub.topics.unsubscribe(1); // x goes: there is room for y now
    let y = hub.topics.subscribe(key(2), &names(&["y"])).unwrap();
    assert_eq!(hub.resume(y, Some(10)), Resume { cursor: 12, lost: Some((10, 12)) });
    assert_eq!(hub.resume(y, Some(11)).lost, None, "a client that had y1 lost nothing");
}

#[test]
fn the_fan_out_queue_walks_a_topic_once_per_publish_and_again_if_published_during_the_walk() {
    let mut hub = Hub::new(1, 100, 1 << 20);
    for slot in 0..3 {
        hub.topics.subscribe(key(slot), &names(&["t"])).unwrap();
    }
    let t = hub.topics.find(Some("t")).unwrap();
    hub.publish(t, None, "1");
    hub.publish(t, None, "2");
    assert_eq!(hub.topics.start_walk(), Some(t));
    assert_eq!(hub.topics.start_walk(), None, "queued once for both publishes");
    let walked: Vec<_> = (0..).map_while(|i| hub.topics.subscriber(t, i)).collect();
    assert_eq!(walked, [key(0), key(1), key(2)]);
    hub.publish(t, None, "3"); // during the walk
    hub.topics.end_walk(t);
    assert_eq!(hub.topics.start_walk(), Some(t), "walked again for what came during the walk");
}

#[test]
fn dead_subscribers_are_swept_so_a_list_stays_near_its_live_size() {
    let mut hub = Hub::new(1, 100, 1 << 20);
    hub.topics.subscribe(key(0), &names(&["t"])).unwrap(); // stays
    let t = hub.topics.find(Some("t")).unwrap();
    for slot in 1..=200 {
        hub.topics.subscribe(ConnKey { slot, generation: 7 }, &names(&["t"])).unwrap();
        hub.topics.unsubscribe(slot);
    }
    // Without a publish, the churn alone queued the list for a sweep.
    assert_eq!(hub.topics.start_walk(), Some(t));
    let mut i = 0;
    while let Some(k) = hub.topics.subscriber(t, i) {
        if k == key(0) { i += 1 } else { hub.topics.drop_subscriber(t, i) }
    }
    hub.topics.end_walk(t);
    assert_eq!(i, 1);
    assert_eq!(hub.topics.get(t).unwrap().live(), 1);
}

#[test]
fn topic_names_are_checked() {
    assert!(topics::check_name("room-42").is_ok());
    assert!(topics::check_name("café ☕").is_ok());
    assert!(topics::check_name(&"x".repeat(128)).is_ok());
    for bad in ["", "a\nb", "a\rb", "tab\there", "\u{7f}"] {
        assert!(topics::check_name(bad).is_err(), "{bad:?}");
    }
    assert!(topics::check_name(&"x".repeat(129)).is_err());
}
