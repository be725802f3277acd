//! Checking event ids per stream, by the rule the user chose ([`IdCheck`]), into counts of what went
//! wrong ([`IdTally`]). Pure: the driver feeds it each event's own id and whether it is the first event
//! of a new connection attempt.
//!
//! Rules:
//! - `sequential`: each id is the one before + 1; a larger step means events are missing, and the count
//!   is of *events* (`id - last - 1`), never a sum that a clock-seeded id turns into billions.
//! - `increasing`: ids only grow (timestamps, sparse sequences): a repeat is a duplicate, a step back a
//!   decrease; a step forward of any size is fine.
//! - `opaque`: ids are strings; only a repeat of one of the stream's recent ids is a duplicate.
//! - Across a reconnection the server may have restarted (ours seeds its ids from the clock): a step other
//!   than the expected one is counted once as a *jump* (with its size), not as missing events. A repeat
//!   of the last id is still a duplicate.
//! - An id that is not a number under `sequential` or `increasing` is counted as unchecked, then checked
//!   by value like an opaque one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How many of a stream's recent ids are kept to find repeats of opaque ids (a replay after a
/// reconnection repeats recent ones; keeping all would grow without bound on a long hold).
const RECENT_IDS: usize = 32;

/// What an id sequence is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdCheck {
    /// Each id is the previous + 1 (counters, ours): missing events are counted.
    Sequential,
    /// Ids only grow (timestamps): decreases and duplicates are counted, steps of any size are fine.
    #[default]
    Increasing,
    /// Ids are strings: only repeats (by exact value) are counted.
    Opaque,
}

impl IdCheck {
    pub fn name(self) -> &'static str {
        match self {
            IdCheck::Sequential => "sequential",
            IdCheck::Increasing => "increasing",
            IdCheck::Opaque => "opaque",
        }
    }
}

/// What the id check found, summed over streams (and over `--procs` workers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTally {
    /// Events missing inside one connection (sequential: the ids skipped).
    pub missing: u64,
    /// Events whose id repeats one already seen on the stream (not counted as deliveries).
    pub duplicates: u64,
    /// Events whose id is below the one before, inside one connection (increasing, sequential).
    pub decreases: u64,
    /// Reconnections after which the ids did not continue where they stopped (a server restart).
    pub jumps: u64,
    /// The largest such jump, in ids (either direction).
    pub largest_jump: u64,
    /// Events whose id is not a number, under a numeric check: checked by value only.
    pub unchecked: u64,
}

impl IdTally {
    pub fn merge(&mut self, other: &IdTally) {
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.decreases += other.decreases;
        self.jumps += other.jumps;
        self.largest_jump = self.largest_jump.max(other.largest_jump);
        self.unchecked += other.unchecked;
    }

    /// Whether nothing was lost, repeated or reordered (jumps across reconnections are not failures).
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.decreases == 0
    }
}

/// One stream's id state, kept across its reconnections.
#[derive(Debug, Clone, Default)]
pub struct StreamIds {
    last: Option<u64>,
    /// Boxed: only ids checked by value (opaque ones, or numbers that are not) use it, and every held
    /// stream would otherwise carry an empty queue's 32 bytes.
    #[expect(clippy::box_collection, reason = "8 bytes inline, not an empty queue's 32, on every stream")]
    recent: Option<Box<VecDeque<Box<str>>>>,
}

impl StreamIds {
    /// Checks an event's own id; returns whether the event is new (false: a duplicate). `reconnected`:
    /// the first event of an attempt after the first.
    pub fn check(&mut self, rule: IdCheck, id: &str, reconnected: bool, tally: &mut IdTally) -> bool {
        let number = match rule {
            IdCheck::Opaque => None,
            IdCheck::Sequential | IdCheck::Increasing => {
                let parsed = id.parse::<u64>().ok();
                if parsed.is_none() {
                    tally.unchecked += 1;
                }
                parsed
            }
        };
        let Some(id_number) = number else { return self.check_by_value(id, tally) };
        let Some(last) = self.last else {
            self.last = Some(id_number);
            return true;
        };
        if id_number == last {
            tally.duplicates += 1;
            return false;
        }
        let expected_step = match rule {
            IdCheck::Sequential => last.checked_add(1) == Some(id_number),
            _ => id_number > last,
        };
        if !expected_step && reconnected {
            tally.jumps += 1;
            tally.largest_jump = tally.largest_jump.max(id_number.abs_diff(last));
        } else if id_number < last {
            tally.decreases += 1;
            return false;
        } else if rule == IdCheck::Sequential {
            tally.missing += id_number - last - 1;
        }
        self.last = Some(id_number);
        true
    }

    fn check_by_value(&mut self, id: &str, tally: &mut IdTally) -> bool {
        let recent = self.recent.get_or_insert_with(Box::default);
        if recent.iter().any(|seen| &**seen == id) {
            tally.duplicates += 1;
            return false;
        }
        if recent.len() == RECENT_IDS {
            recent.pop_front();
        }
        recent.push_back(id.into());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(id, reconnected)` pairs to one stream; returns the tally and which events were new.
    fn feed(rule: IdCheck, ids: &[(&str, bool)]) -> (IdTally, Vec<bool>) {
        let (mut stream, mut tally) = (StreamIds::default(), IdTally::default());
        let new = ids.iter().map(|(id, re)| stream.check(rule, id, *re, &mut tally)).collect();
        (tally, new)
    }

    #[test]
    fn sequential_counts_missing_events_not_id_differences() {
        let (t, new) = feed(IdCheck::Sequential, &[("1", false), ("2", false), ("5", false), ("6", false)]);
        assert_eq!(t, IdTally { missing: 2, ..IdTally::default() });
        assert_eq!(new, [true; 4]);
    }

    #[test]
    fn a_restart_across_a_reconnection_is_one_jump() {
        let ids = [("7", false), ("8", false), ("1795678000000", true), ("1795678000001", false)];
        let (t, _) = feed(IdCheck::Sequential, &ids);
        assert_eq!((t.missing, t.jumps, t.largest_jump), (0, 1, 1_795_677_999_992));
        let (t, _) = feed(IdCheck::Sequential, &[("9", false), ("3", true), ("4", false)]);
        assert_eq!((t.decreases, t.jumps), (0, 1), "a restart to lower ids is a jump too");
        let (t, _) = feed(IdCheck::Sequential, &[("9", false), ("10", true)]);
        assert_eq!(t, IdTally::default(), "resumed where it stopped");
    }

    #[test]
    fn increasing_accepts_timestamps_and_counts_repeats_and_decreases() {
        let ids = [("1795678000000", false), ("1795678041226", false), ("1795678041226", false)];
        let (t, new) = feed(IdCheck::Increasing, &ids);
        assert_eq!(t, IdTally { duplicates: 1, ..IdTally::default() });
        assert_eq!(new, [true, true, false]);
        let (t, new) = feed(IdCheck::Increasing, &[("5", false), ("3", false), ("6", false)]);
        assert_eq!((t.decreases, new), (1, vec![true, false, true]));
    }

    #[test]
    fn the_largest_id_is_checked_without_overflowing() {
        let max = u64::MAX.to_string();
        let (t, new) = feed(IdCheck::Sequential, &[(&max, false), ("0", false), (&max, false)]);
        assert_eq!((t.decreases, t.duplicates), (1, 1));
        assert_eq!(new, [true, false, false]);
    }

    #[test]
    fn opaque_ids_repeat_by_value_only() {
        let (t, new) = feed(IdCheck::Opaque, &[("a", false), ("b", false), ("a", true), ("10", false)]);
        assert_eq!(t, IdTally { duplicates: 1, ..IdTally::default() });
        assert_eq!(new, [true, true, false, true]);
    }

    #[test]
    fn non_numeric_ids_under_a_numeric_check_are_unchecked_then_compared_by_value() {
        let (t, _) = feed(IdCheck::Sequential, &[("x1", false), ("x2", false), ("x1", false)]);
        assert_eq!((t.unchecked, t.duplicates, t.missing), (3, 1, 0));
    }
}
