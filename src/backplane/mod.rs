//! The Redis backplane (`--redis`): several instances behind one load balancer deliver the same events,
//! in the same order, with the same ids, and a client may reconnect to any of them.
//!
//! # Data model
//!
//! One Lua script makes each publish atomic: `INCR` a counter (seeded from the clock in microseconds the
//! first time, so ids keep increasing across a Redis restart without persistence, as they do across
//! ours), then `XADD` the event to a capped stream (`MAXLEN ~ --replay-events`) under the entry id
//! `<id>-0`. Every instance reads the stream with `XREAD BLOCK` on a second connection and appends what
//! it reads to its hub, its own publishes included: there is one order, Redis's. At start, the last
//! `--replay-events` entries (at most [`MAX_BACKLOG_BYTES`] of them) are read back in pages of [`PAGE`],
//! so replay works on any instance, including after the instance that published is gone. After a
//! reconnection an instance reads on from the last entry it had, so nothing published meanwhile is
//! missed while Redis keeps it; what Redis trimmed meanwhile is a gap, and streams behind it are closed
//! to come back with `Last-Event-ID` and get the `lost` signal, as with the local replay buffer. Every
//! entry also carries an *epoch* (the counter's seed): when Redis comes back without its data (no
//! persistence), new entries carry a new epoch and ids that start over from the clock; the instance then
//! starts its ring over and its caught-up streams carry on without a break.
//!
//! # Failure semantics (docs/backplane-failures.md tells what a client sees)
//!
//! Redis is not trusted, only relied on. A link is dropped when Redis closes or resets it, when a reply
//! breaks RESP2 or our limits ([`resp`]: depth, size), when a reply has no request waiting for it or
//! does not fit its request ([`link`]), when an id is out of range or does not increase ([`entries`]),
//! and when Redis is silent too long: each link has a deadline, for its connect and for the oldest reply
//! it waits for (`XREAD BLOCK 1000` gets its block time plus a margin), and the command link sends a
//! `PING` after a quiet second, so a hung Redis (SIGSTOP, a network gone without a reset) is noticed in
//! about 3 s. When either link drops, both are closed, the publishes waiting are answered 503, the
//! instance keeps serving its streams and ticks, answers publishes with 503 (nothing is queued: a
//! publisher must know its event was not taken), shows `mio_sse_backplane_up 0`, logs each kind of
//! failure once an episode (warn), and reconnects with exponential backoff and jitter (100 ms doubling to
//! 5 s; the doubling starts over once a connection stayed up 5 s).
//!
//! A publish that Redis took but whose reply was lost (the link dropped in between) was answered 503
//! yet is delivered: publishing across the backplane is at-least-once, and a publisher that retries
//! after a 503 may publish an event twice.
//!
//! # In the loop
//!
//! Both links are non-blocking sockets on the server's `Poll` ([`link`]); `XREAD BLOCK` blocks Redis's
//! side of the connection, never ours. Every deadline, and "a link was cut short by its read bound, drive
//! it again", is in [`Backplane::deadline`], which the loop folds into its poll timeout, and is acted on
//! in [`Backplane::on_deadline`], which the loop calls every turn.

pub mod entries;
mod health;
pub mod link;
mod reading;
pub mod resp;
pub mod url;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Registry, Token};

use crate::hub::Hub;
use crate::jitter::Jitter;
use crate::token::{BACKPLANE_COMMAND as COMMAND_TOKEN, BACKPLANE_READ as READ_TOKEN};
use entries::{Entry, EntryId, publish_id};
use link::{Expect, Failure, Link};
use resp::Reply;
use url::Target;

/// How long one `XREAD` may block on Redis's side before it answers nil and is sent again.
const BLOCK: Duration = Duration::from_millis(1000);
/// Entries asked for per `XREAD` and per backlog page: 256 bodies of the default 64 KiB are 16 MiB, a
/// quarter of [`resp::MAX_REPLY_BYTES`].
pub const PAGE: usize = 256;
/// The backlog read at start stops past this many bytes of events (the replay ring keeps less anyway,
/// `--replay-bytes`, 16 MiB by default).
pub const MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// After this long without a reply, the command link sends a `PING` (its reply has [`link::COMMAND_LIMIT`]).
const PING_IDLE: Duration = Duration::from_secs(1);
/// Publishes that may wait for their reply at once; past it a publish gets 503 at once rather than queue
/// more behind a Redis that does not keep up.
const MAX_WAITING: usize = 4096;
/// Bytes of publishes not yet written to Redis (it does not read them): past it, 503 at once.
const MAX_UNSENT: usize = 16 * 1024 * 1024;
/// A connection that stayed up this long ends an episode: the backoff and the "logged once" start over.
const STABLE: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The publish script: the counter, seeded from the clock once (with an epoch key, the seed, that names
/// this life of Redis's data), then the capped stream entry, which carries the epoch. (Lua numbers are
/// doubles: `%.0f` writes the id in full, where `..` would write `1.79e+15`; ids stay below 2^53.)
const PUBLISH_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then \
      redis.call('SET', KEYS[1], ARGV[4]) redis.call('SET', KEYS[3], ARGV[4]) end \
    local id = redis.call('INCR', KEYS[1]) \
    local epoch = redis.call('GET', KEYS[3]) or '' \
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], string.format('%.0f', id) .. '-0', \
      'e', ARGV[1], 'd', ARGV[2], 'x', epoch, 't', ARGV[5]) \
    return id";

/// The outcome of a publish sent to Redis, for whoever waits on it (`waiter`: the tag the publish was
/// sent with; the server uses the connection's key, and the backplane never looks inside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<W> {
    pub waiter: W,
    pub result: Result<u64, String>,
}

/// The backplane: two links, the reading position, the health. `W` tags a publish with whoever waits
/// for its answer.
pub struct Backplane<W> {
    target: Target,
    counter_key: String,
    log_key: String,
    epoch_key: String,
    /// The epoch of the last entry read: when entries come with another, Redis lost its data and the
    /// ids started over.
    epoch: Option<String>,
    max_len: usize,
    /// Publishes (`EVAL`) and `PING`.
    command: Option<Link<W>>,
    /// `XREVRANGE` once, then `XREAD BLOCK` again and again.
    read: Option<Link<W>>,
    /// The command link answered its `PING` (after `AUTH`): publishes can go.
    command_ready: bool,
    /// The reading link answered its first request.
    read_ready: bool,
    /// The last id a publish got on this command link: the next must be larger.
    last_publish: u64,
    /// The stream entry read last.
    last_entry: Option<EntryId>,
    /// The backlog's pages so far, newest first, and their bytes.
    backlog: Vec<Entry>,
    backlog_bytes: usize,
    up: bool,
    /// When the links last came up (both ready).
    up_since: Option<Instant>,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    jitter: Jitter,
    /// The kinds of failure logged (warn) in this episode: each is logged once.
    complained: Vec<&'static str>,
    /// "connected" was logged since the last warning.
    announced: bool,
}

impl<W: Copy> Backplane<W> {
    /// A backplane for `redis://[[user]:password@]host:port[/prefix]` (an IP address; `prefix` names the
    /// keys, default `mio-sse`), keeping `max_len` entries in Redis.
    pub fn new(url: &str, max_len: usize) -> Result<Backplane<W>, String> {
        let target = url::parse(url)?;
        let prefix = target.prefix.clone();
        Ok(Backplane {
            target,
            counter_key: format!("{prefix}:seq"),
            log_key: format!("{prefix}:log"),
            epoch_key: format!("{prefix}:epoch"),
            epoch: None,
            max_len: max_len.max(1),
            command: None,
            read: None,
            command_ready: false,
            read_ready: false,
            last_publish: 0,
            last_entry: None,
            backlog: Vec::new(),
            backlog_bytes: 0,
            up: false,
            up_since: None,
            reconnect_at: Some(Instant::now()),
            backoff: BACKOFF_FIRST,
            jitter: Jitter::from_entropy(),
            complained: Vec::new(),
            announced: false,
        })
    }

    /// Whether both links are connected and answering.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// For the connection tests: publishes are taken (they go nowhere) without a Redis.
    #[cfg(test)]
    pub fn assume_up(&mut self) {
        self.up = true;
    }

    /// When the backplane wants [`Backplane::on_deadline`] called: a reconnection, a link's deadline, the
    /// next idle `PING`, or now (an instant already past) when a link was cut short by its read bound.
    pub fn deadline(&self) -> Option<Instant> {
        let links = [&self.command, &self.read].into_iter().flatten();
        let per_link = links.flat_map(|l| [l.deadline().map(|(at, _)| at), l.again]);
        let idle = self.command.as_ref().filter(|c| self.command_ready && c.waiting() == 0);
        let ping = idle.map(|c| c.last_reply + PING_IDLE);
        [self.reconnect_at, ping].into_iter().chain(per_link).flatten().min()
    }

    /// Sends a publish; returns false (nothing sent) while Redis is down or too far behind.
    pub fn publish(&mut self, waiter: W, topic: Option<&str>, event: Option<&str>, data: &str) -> bool {
        if !self.up {
            return false;
        }
        let Some(link) = self.command.as_mut() else { return true }; // only with `assume_up`
        if link.waiting() >= MAX_WAITING || link.unsent() >= MAX_UNSENT {
            return false;
        }
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros()).to_string();
        let max_len = self.max_len.to_string();
        let args: [&[u8]; 11] = [
            b"EVAL",
            PUBLISH_SCRIPT.as_bytes(),
            b"3",
            self.counter_key.as_bytes(),
            self.log_key.as_bytes(),
            self.epoch_key.as_bytes(),
            event.unwrap_or("").as_bytes(),
            data.as_bytes(),
            max_len.as_bytes(),
            seed.as_bytes(),
            topic.unwrap_or("").as_bytes(),
        ];
        link.send(&args, Expect::Publish(waiter), Instant::now());
        // Written at once: the link's writable edge came long ago and will not come again for this. A
        // failure here shows on the link's next event (a broken socket reports one).
        if let Err(e) = link.flush() {
            log::debug!("backplane: writing a publish: {e}");
        }
        true
    }

    /// Called every turn: reconnects when it is time, drives a link cut short by its read bound, drops
    /// a link past its deadline, pings an idle command link. Publishes answered (or failed) are returned.
    pub fn on_deadline(&mut self, registry: &Registry, hub: &mut Hub, now: Instant) -> Vec<Published<W>> {
        let mut done = Vec::new();
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.connect(registry, now);
            return done;
        }
        if let Err(failure) = self.tend(hub, now, &mut done) {
            self.down(registry, now, failure, &mut done);
        }
        done
    }

    fn tend(&mut self, hub: &mut Hub, now: Instant, done: &mut Vec<Published<W>>) -> Result<(), Failure> {
        for token in [COMMAND_TOKEN, READ_TOKEN] {
            let link = if token == COMMAND_TOKEN { &self.command } else { &self.read };
            if link.as_ref().is_some_and(|l| l.again.is_some()) {
                self.drive(token, hub, now, done)?;
            }
        }
        for link in [&self.command, &self.read].into_iter().flatten() {
            if let Some((at, what)) = link.deadline()
                && at <= now
            {
                return Err(Failure::Timeout(what));
            }
        }
        if let Some(link) = self.command.as_mut()
            && self.command_ready
            && link.waiting() == 0
            && link.last_reply + PING_IDLE <= now
        {
            link.send(&[b"PING"], Expect::Ping, now);
            link.flush()?;
        }
        Ok(())
    }

    /// A readiness event on one of the links: write, read, and act on every complete reply. Publishes that
    /// got their id (or failed) are returned; events read are appended to `hub`.
    pub fn on_event(
        &mut self,
        token: Token,
        registry: &Registry,
        hub: &mut Hub,
        now: Instant,
    ) -> Vec<Published<W>> {
        let mut done = Vec::new();
        if let Err(failure) = self.drive(token, hub, now, &mut done) {
            self.down(registry, now, failure, &mut done);
        }
        done
    }

    fn link(&mut self, token: Token) -> Option<&mut Link<W>> {
        if token == COMMAND_TOKEN { self.command.as_mut() } else { self.read.as_mut() }
    }

    fn drive(
        &mut self,
        token: Token,
        hub: &mut Hub,
        now: Instant,
        done: &mut Vec<Published<W>>,
    ) -> Result<(), Failure> {
        let Some(link) = self.link(token) else { return Ok(()) }; // an event from a link closed this turn
        link.flush()?;
        link.fill(now)?;
        while let Some((reply, expect)) = self.link(token).map_or(Ok(None), |l| l.next_reply(now))? {
            if token == COMMAND_TOKEN {
                self.on_command_reply(reply, expect, done)?;
            } else {
                self.on_read_reply(reply, expect, hub, now)?;
            }
        }
        if let Some(link) = self.link(token) {
            link.flush()?; // what was queued while reading
        }
        if self.command_ready && self.read_ready && !self.up {
            self.mark_up(now);
        }
        Ok(())
    }

    fn on_command_reply(
        &mut self,
        reply: Reply,
        expect: Expect<W>,
        done: &mut Vec<Published<W>>,
    ) -> Result<(), Failure> {
        match (expect, reply) {
            (Expect::Auth, Reply::Simple(ok)) if ok == b"OK" => {}
            (Expect::Ping, Reply::Simple(pong)) if pong == b"PONG" => self.command_ready = true,
            (Expect::Publish(waiter), Reply::Integer(n)) => {
                let id = publish_id(n).and_then(|id| match id > self.last_publish {
                    true => Ok(id),
                    false => Err(format!("publish id {id} after {}", self.last_publish)),
                });
                done.push(Published { waiter, result: id.clone() });
                self.last_publish = id.map_err(Failure::BadReply)?;
            }
            // The script failed (out of memory, a read-only replica): this publish fails, the link is fine.
            (Expect::Publish(waiter), Reply::Error(e)) => done.push(Published { waiter, result: Err(e) }),
            (Expect::Auth | Expect::Ping, Reply::Error(e)) => {
                return Err(Failure::Refused(format!("{}: {e}", expect.name())));
            }
            (expect, other) => {
                let why = format!("{} answered by {}", expect.name(), other.kind());
                if let Expect::Publish(waiter) = expect {
                    done.push(Published { waiter, result: Err(why.clone()) });
                }
                return Err(Failure::BadReply(why));
            }
        }
        Ok(())
    }
}
