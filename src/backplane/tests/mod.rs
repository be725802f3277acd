//! The backplane's timing and matching, with time passed in: a loopback listener plays Redis (the test
//! writes its replies byte for byte), `on_event`/`on_deadline` are called directly with explicit
//! instants, so a 3 s deadline is checked at once, without sleeping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mio::Poll;

use super::link::{COMMAND_LIMIT, CONNECT_TIMEOUT, READS_PER_TURN};
use super::{Backplane, PING_IDLE, Published};
use crate::hub::Hub;
use crate::token::{BACKPLANE_COMMAND, BACKPLANE_READ};

/// A backplane connected to a scripted Redis: both links up, nothing waiting.
struct Rig {
    backplane: Backplane<u32>,
    poll: Poll,
    hub: Hub,
    /// The server side of the command link and of the reading link.
    command: TcpStream,
    read: TcpStream,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let mut backplane = Backplane::<u32>::new(&url, 100).unwrap();
        let (poll, mut hub) = (Poll::new().unwrap(), Hub::following(100, 1 << 20, 1 << 30, 1000));
        let now = Instant::now() + Duration::from_millis(10);
        backplane.on_deadline(poll.registry(), &mut hub, now); // the first connection is due at once
        let (command, _) = listener.accept().unwrap();
        let (read, _) = listener.accept().unwrap();
        for socket in [&command, &read] {
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let mut rig = Rig { backplane, poll, hub, command, read, now };
        rig.event(BACKPLANE_COMMAND); // connected: PING written
        rig.event(BACKPLANE_READ); // connected: XREVRANGE written
        assert_eq!(rig.expect_command(), vec!["PING"]);
        assert_eq!(rig.expect_read()[0], "XREVRANGE");
        rig.command.write_all(b"+PONG\r\n").unwrap();
        rig.read.write_all(b"*0\r\n").unwrap();
        rig.event(BACKPLANE_COMMAND);
        rig.event(BACKPLANE_READ);
        assert!(rig.backplane.is_up());
        assert_eq!(rig.expect_read()[0], "XREAD");
        rig
    }

    fn event(&mut self, token: mio::Token) -> Vec<Published<u32>> {
        self.backplane.on_event(token, self.poll.registry(), &mut self.hub, self.now)
    }

    fn tick(&mut self, at: Instant) -> Vec<Published<u32>> {
        self.now = at;
        self.backplane.on_deadline(self.poll.registry(), &mut self.hub, at)
    }

    fn expect_command(&mut self) -> Vec<String> {
        read_command(&mut self.command)
    }

    fn expect_read(&mut self) -> Vec<String> {
        read_command(&mut self.read)
    }
}

/// One RESP command from `socket` (the test's side: blocking, with a timeout).
fn read_command(socket: &mut TcpStream) -> Vec<String> {
    let mut line = || {
        let mut out = Vec::new();
        let mut byte = [0u8];
        while !out.ends_with(b"\r\n") {
            socket.read_exact(&mut byte).unwrap();
            out.push(byte[0]);
        }
        String::from_utf8(out[..out.len() - 2].to_vec()).unwrap()
    };
    let n: usize = line()[1..].parse().unwrap();
    (0..n).map(|_| [line(), line()][1].clone()).collect() // `$len`, then the argument
}

#[test]
fn a_publish_gets_the_id_of_its_own_reply() {
    let mut rig = Rig::new();
    assert!(rig.backplane.publish(7, None, None, "a"));
    assert!(rig.backplane.publish(8, None, None, "b"));
    rig.command.write_all(b":41\r\n:42\r\n").unwrap();
    let done = rig.event(BACKPLANE_COMMAND);
    assert_eq!(done, vec![Published { waiter: 7, result: Ok(41) }, Published { waiter: 8, result: Ok(42) }]);
}

#[test]
fn a_command_link_silent_past_its_limit_is_down_and_its_publishes_fail() {
    let mut rig = Rig::new();
    let sent = Instant::now();
    assert!(rig.backplane.publish(7, None, None, "a"));
    let limit = rig.backplane.deadline().unwrap();
    assert!(limit >= sent + COMMAND_LIMIT && limit <= Instant::now() + COMMAND_LIMIT, "the publish's limit");
    assert_eq!(rig.tick(limit - Duration::from_millis(1)), vec![]);
    assert!(rig.backplane.is_up());
    let done = rig.tick(limit);
    assert_eq!(done.len(), 1);
    assert!(done[0].result.is_err());
    assert!(!rig.backplane.is_up());
    assert!(!rig.backplane.publish(9, None, None, "refused while down"));
    assert!(rig.backplane.deadline().unwrap() <= limit + Duration::from_millis(100), "a reconnection");
}

#[test]
fn an_idle_command_link_pings_and_a_missing_pong_is_noticed() {
    let mut rig = Rig::new();
    let quiet = rig.backplane.deadline().unwrap();
    assert!(quiet <= rig.now + PING_IDLE, "the idle PING is the command link's next deadline");
    let _ = rig.tick(quiet);
    assert_eq!(rig.expect_command(), vec!["PING"]);
    // The reading link is kept answering (XREAD's block ran out empty), so that only the PING is late.
    rig.now = quiet + Duration::from_millis(2_500);
    rig.read.write_all(b"*-1\r\n").unwrap();
    let _ = rig.event(BACKPLANE_READ);
    assert_eq!(rig.expect_read()[0], "XREAD");
    let _ = rig.tick(quiet + COMMAND_LIMIT - Duration::from_millis(1));
    assert!(rig.backplane.is_up());
    let _ = rig.tick(quiet + COMMAND_LIMIT);
    assert!(!rig.backplane.is_up(), "no PONG in time: down");
}

#[test]
fn the_reading_link_gets_its_block_time_plus_a_margin() {
    let mut rig = Rig::new();
    // Keep the command link busy answering so that its deadline is not the first.
    let xread_sent = rig.now;
    let _ = rig.tick(xread_sent + Duration::from_millis(2_999));
    assert_eq!(rig.expect_command(), vec!["PING"]);
    rig.command.write_all(b"+PONG\r\n").unwrap();
    let _ = rig.event(BACKPLANE_COMMAND);
    assert!(rig.backplane.is_up());
    let _ = rig.tick(xread_sent + Duration::from_millis(3_001));
    assert!(!rig.backplane.is_up(), "XREAD BLOCK 1000 unanswered after 3 s: down");
}

#[test]
fn an_unsolicited_reply_drops_the_link_before_it_can_shift_ids() {
    let mut rig = Rig::new();
    rig.command.write_all(b":999\r\n").unwrap();
    let _ = rig.event(BACKPLANE_COMMAND);
    assert!(!rig.backplane.is_up());
}

#[test]
fn reads_are_bounded_per_turn_and_the_rest_waits_for_the_next() {
    let mut rig = Rig::new();
    let data = "x".repeat(READS_PER_TURN * 16 * 1024 + 100_000);
    let entry =
        format!("*2\r\n$6\r\n5000-0\r\n*4\r\n$1\r\nd\r\n${}\r\n{data}\r\n$1\r\nx\r\n$1\r\n1\r\n", data.len());
    let reply = format!("*1\r\n*2\r\n$11\r\nmio-sse:log\r\n*1\r\n{entry}");
    // All of it in the kernel's buffers before the first event: a turn could read it all if unbounded.
    socket2::SockRef::from(&rig.read).set_send_buffer_size(4 << 20).unwrap();
    rig.read.write_all(reply.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let _ = rig.event(BACKPLANE_READ);
    let mut turns = 1;
    while rig.hub.next_id() != 5001 {
        assert!(Instant::now() < deadline, "the entry never arrived");
        match rig.backplane.deadline() {
            Some(at) if at <= rig.now => {
                turns += 1;
                let now = rig.now;
                let _ = rig.tick(now); // cut short: driven again at once
            }
            _ => {
                let _ = rig.event(BACKPLANE_READ); // a readable edge
            }
        }
    }
    assert!(turns >= 2, "one turn read it all");
    assert!(rig.backplane.is_up());
}

#[test]
fn a_connect_that_does_not_complete_in_time_is_given_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut backplane =
        Backplane::<u32>::new(&format!("redis://{}", listener.local_addr().unwrap()), 10).unwrap();
    let (poll, mut hub) = (Poll::new().unwrap(), Hub::following(10, 1 << 20, 1 << 20, 1000));
    let now = Instant::now() + Duration::from_millis(10);
    let _ = backplane.on_deadline(poll.registry(), &mut hub, now);
    // No writable event is handled: as far as the backplane knows, the connect is still under way.
    assert_eq!(backplane.deadline(), Some(now + CONNECT_TIMEOUT));
    let _ =
        backplane.on_deadline(poll.registry(), &mut hub, now + CONNECT_TIMEOUT - Duration::from_millis(1));
    assert_eq!(backplane.deadline(), Some(now + CONNECT_TIMEOUT), "still waiting");
    let _ = backplane.on_deadline(poll.registry(), &mut hub, now + CONNECT_TIMEOUT);
    let retry = backplane.deadline().unwrap();
    assert!(retry > now + CONNECT_TIMEOUT && retry <= now + CONNECT_TIMEOUT + Duration::from_millis(100));
    assert!(!backplane.is_up());
}
