//! Running a handler on a connection and applying what it asks ([`Next`]): the timer queue's
//! bookkeeping, the per-turn queue, closing.
//!
//! Rules:
//! - Every change to a connection goes through [`Server::with_conn`] (or the timer's
//!   [`Server::fire_timers`]) and then [`Server::settle`]: so the timer queue always holds exactly the
//!   deadline each connection had when it was last settled, and a connection need not remember what
//!   was armed: it is read back from its state before the handler runs.
//! - A connection keeps its slot's generation, not its whole key: the slot is where the slab keeps it.
//!   Before a handler runs, [`LoopContext::handling`] is set to the whole key.

use std::time::Instant;

use slab::Slab;

use super::{Server, Transport, transport};
use crate::clock::Stamp;
use crate::conn::{Connection, Next};
use crate::context::LoopContext;
use crate::metrics::CloseReason;
use crate::token::ConnKey;

impl<S: Transport> Server<S> {
    /// Runs a handler on the connection `key` names, if it is still the slot's owner, keeps the
    /// write-queue gauge current, and settles the outcome.
    pub(super) fn with_conn(
        &mut self,
        key: ConnKey,
        now: Instant,
        handler: impl FnOnce(&mut Connection<S>, &mut LoopContext) -> Next,
    ) {
        self.run_handler(key, now, Queued::Deadline, handler);
    }

    /// [`Server::with_conn`], told what the timer queue holds for the connection.
    fn run_handler(
        &mut self,
        key: ConnKey,
        now: Instant,
        queued: Queued,
        handler: impl FnOnce(&mut Connection<S>, &mut LoopContext) -> Next,
    ) {
        let Some(conn) = live(&mut self.conns, key) else { return };
        let before = conn.queued_bytes() as u64;
        let armed = match queued {
            Queued::Deadline => conn.deadline(),
            Queued::Nothing => None,
        };
        self.cx.handling = key;
        let next = handler(conn, &mut self.cx);
        transport::note_news(&mut self.cx, conn, now);
        let after = conn.queued_bytes() as u64;
        let gauge = &mut self.cx.gauges.write_queue_bytes;
        *gauge = (*gauge + after).saturating_sub(before);
        self.settle(key, next, armed, now);
    }

    /// Applies a handler's outcome: close, or move the timer from `armed` (the connection's deadline
    /// before the handler, which is what the queue holds for it) to its deadline now (and queue it for
    /// the next turn if asked).
    ///
    /// Every change to a connection goes through a handler and then here, so the queue always holds
    /// exactly the deadline each connection had when it was last settled: the connection need not
    /// remember what was armed (4 bytes of every stream), it is read back from its state.
    pub(super) fn settle(&mut self, key: ConnKey, next: Next, armed: Option<Stamp>, now: Instant) {
        if let Next::Close(reason) = next {
            self.close(key, reason, armed, now);
            return;
        }
        let Some(conn) = live(&mut self.conns, key) else {
            return;
        };
        let wanted = conn.deadline();
        // The queue keeps full milliseconds (a total order); a connection keeps 32-bit stamps.
        let clock = self.cx.clock;
        let widen = |stamp| clock.widen(stamp, now);
        self.timers.reschedule(key.slot, armed.map(widen), wanted.map(widen));
        if next == Next::Again && !conn.queue_again() {
            self.again.push(key); // once: a connection gets one more drive per turn, not one per event
        }
    }

    /// Fires every timer due at `now`: at most one pass over the queue, so a handler that re-arms for a
    /// deadline already past cannot keep this loop going.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        for _ in 0..self.timers.len() {
            let Some((deadline, slot)) = self.timers.pop_expired(self.cx.clock.ms_elapsed(now)) else {
                break;
            };
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                log::error!("a timer fired for slot {slot}, which is free; ignored");
                continue;
            };
            // The entry names a slot: it is this connection's only if that is exactly its deadline.
            if conn.deadline() != Some(Stamp::from_ms(deadline)) {
                continue;
            }
            let key = ConnKey { slot, generation: conn.generation };
            // Popped: whatever deadline the handler leaves is armed anew, even this same one.
            self.run_handler(key, now, Queued::Nothing, |conn, cx| conn.on_deadline(cx, now));
        }
    }

    /// Closes a connection: its last change of state (which accounts for a stream's end), then disarm
    /// its timer (`armed`, its deadline when last settled), deregister, free its slot.
    fn close(&mut self, key: ConnKey, reason: CloseReason, armed: Option<Stamp>, now: Instant) {
        let Some(conn) = live(&mut self.conns, key) else { return };
        transport::note_close(&mut self.cx, conn, reason);
        self.cx.handling = key;
        conn.close(&mut self.cx, now, reason);
        let mut conn = self.conns.remove(key.slot as usize);
        if let Some(deadline) = armed {
            self.timers.cancel(self.cx.clock.widen(deadline, now), key.slot);
        }
        if let Err(e) = self.poll.registry().deregister(conn.socket_mut()) {
            log::debug!("{}: deregister: {e}", conn.peer);
        }
        if !conn.is_over_capacity() {
            self.admitted -= 1;
        }
        let (counters, gauges) = (&mut self.cx.counters, &mut self.cx.gauges);
        counters.closed[reason.index()] += 1;
        gauges.open_connections = self.conns.len() as u64;
        gauges.write_queue_bytes = gauges.write_queue_bytes.saturating_sub(conn.queued_bytes() as u64);
        log::debug!("{}: closed ({reason})", conn.peer);
        // Dropping `conn` closes the socket.
    }
}

/// What the timer queue holds for a connection about to be handled.
#[derive(Clone, Copy)]
enum Queued {
    /// Its deadline when it was last settled, which is its deadline now (nothing else changes it).
    Deadline,
    /// Nothing: its entry was just popped.
    Nothing,
}

/// The key of the connection the slab keeps in `slot`.
pub(super) fn key_of<S>(slot: usize, conn: &Connection<S>) -> ConnKey {
    ConnKey { slot: slot as u32, generation: conn.generation }
}

/// The connection `key` names, if it is still the slot's owner (rule 6).
pub(super) fn live<S>(conns: &mut Slab<Connection<S>>, key: ConnKey) -> Option<&mut Connection<S>> {
    conns.get_mut(key.slot as usize).filter(|conn| conn.generation == key.generation)
}
