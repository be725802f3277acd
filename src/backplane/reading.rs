//! The reading link's side of the [`Backplane`]: the backlog read in pages at start, then `XREAD BLOCK`
//! again and again, and every entry checked before the hub sees it.
//!
//! # Rules
//!
//! - Entry ids increase within an epoch: a backlog page is newest first and each entry older than the
//!   one before; a live entry is newer than the last one read. Anything else is a bad reply (the link is
//!   dropped and, once back, reads on from the last entry it had: nothing is appended twice).
//! - Entries of a live reply are appended as they are checked, so a bad one in the middle leaves the
//!   good ones before it delivered and the position after them.
//! - The backlog stops at `--replay-events` entries or [`MAX_BACKLOG_BYTES`], whichever comes first.

use std::time::Instant;

use super::entries::{Entry, EntryId, entries_of};
use super::link::{Expect, Failure};
use super::resp::Reply;
use super::{BLOCK, Backplane, MAX_BACKLOG_BYTES, PAGE};
use crate::hub::Hub;

impl<W: Copy> Backplane<W> {
    pub(super) fn on_read_reply(
        &mut self,
        reply: Reply,
        expect: Expect<W>,
        hub: &mut Hub,
        now: Instant,
    ) -> Result<(), Failure> {
        match (expect, reply) {
            (Expect::Auth, Reply::Simple(ok)) if ok == b"OK" => self.read_ready = true,
            (Expect::Auth, Reply::Error(e)) => return Err(Failure::Refused(format!("AUTH: {e}"))),
            (Expect::Backlog, reply) => {
                let page = entries_of(reply, false).map_err(Failure::BadReply)?;
                self.read_ready = true;
                self.on_page(page, hub, now)?;
            }
            (Expect::Live { .. }, reply) => {
                let entries = entries_of(reply, true).map_err(Failure::BadReply)?;
                self.read_ready = true;
                self.apply(entries, hub)?;
                self.read_live(now);
            }
            (expect, other) => {
                return Err(Failure::BadReply(format!("{} answered by {}", expect.name(), other.kind())));
            }
        }
        Ok(())
    }

    /// A page of the backlog (newest first): ask for the next, or append them all, oldest first.
    fn on_page(&mut self, page: Vec<Entry>, hub: &mut Hub, now: Instant) -> Result<(), Failure> {
        let asked = PAGE.min(self.max_len.saturating_sub(self.backlog.len()));
        let full = page.len() >= asked;
        for entry in page {
            if self.backlog.last().is_some_and(|newer| entry.id >= newer.id) {
                return Err(Failure::BadReply("backlog entries not in descending order".into()));
            }
            self.backlog_bytes += entry.data.len() + entry.event.as_ref().map_or(0, String::len);
            self.backlog.push(entry);
        }
        let more = full && self.backlog.len() < self.max_len && self.backlog_bytes < MAX_BACKLOG_BYTES;
        if let Some(before) = self.backlog.last().and_then(|e| e.id.before()).filter(|_| more) {
            self.read_page(Some(before), now);
            return Ok(());
        }
        let backlog: Vec<Entry> = std::mem::take(&mut self.backlog).into_iter().rev().collect();
        self.backlog_bytes = 0;
        self.apply(backlog, hub)?;
        self.read_live(now);
        Ok(())
    }

    /// Appends entries to the hub, oldest first; ids must increase within an epoch.
    fn apply(&mut self, entries: Vec<Entry>, hub: &mut Hub) -> Result<(), Failure> {
        for Entry { id, topic, event, data, epoch } in entries {
            let new_epoch = self.epoch.is_some() && epoch.is_some() && epoch != self.epoch;
            if let Some(last) = self.last_entry.filter(|last| !new_epoch && id <= *last) {
                return Err(Failure::BadReply(format!("entry {} after {}", id.text(), last.text())));
            }
            if new_epoch {
                log::warn!("backplane: Redis's data started over (a new epoch): ids start over");
                hub.rebase();
            }
            if epoch.is_some() {
                self.epoch = epoch;
            }
            hub.append(id.n, topic.as_deref(), event.as_deref(), &data);
            self.last_entry = Some(id);
        }
        Ok(())
    }

    pub(super) fn read_page(&mut self, before: Option<EntryId>, now: Instant) {
        let count = PAGE.min(self.max_len.saturating_sub(self.backlog.len())).max(1).to_string();
        let end = before.map_or("+".to_string(), EntryId::text);
        let Some(link) = self.read.as_mut() else { return };
        let args: [&[u8]; 6] =
            [b"XREVRANGE", self.log_key.as_bytes(), end.as_bytes(), b"-", b"COUNT", count.as_bytes()];
        link.send(&args, Expect::Backlog, now);
    }

    pub(super) fn read_live(&mut self, now: Instant) {
        let last = self.last_entry.map_or("0-0".to_string(), EntryId::text);
        let (block, count) = (BLOCK.as_millis().to_string(), PAGE.to_string());
        let Some(link) = self.read.as_mut() else { return };
        let args: [&[u8]; 8] = [
            b"XREAD",
            b"BLOCK",
            block.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"STREAMS",
            self.log_key.as_bytes(),
            last.as_bytes(),
        ];
        link.send(&args, Expect::Live { block: BLOCK }, now);
    }
}
