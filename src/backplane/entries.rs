//! What the replies mean: stream entries out of `XREVRANGE`/`XREAD` replies, and ids checked before
//! the hub sees them.
//!
//! # Rules
//!
//! An id is the number `n` of a stream entry `<n>-<seq>` or of a publish's `INCR` reply. It must be in
//! `1..2^53` ([`MAX_ID`]): the publish script computes it in Lua, whose numbers are doubles, so no real id
//! is larger, and `u64::MAX` would wrap the hub's next id to 0. Whether ids increase is the caller's
//! check (it knows the epoch); this module only turns bytes into checked values. A reply of the wrong
//! shape is an error, never a panic and never a silently skipped entry.

use super::resp::Reply;
use crate::hub::topics;

/// Ids are below 2^53 (the publish script's Lua numbers are doubles).
pub const MAX_ID: u64 = 1 << 53;

/// A stream entry id, `<n>-<seq>` (ours are `<id>-0`); ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    pub n: u64,
    pub seq: u64,
}

impl EntryId {
    /// As Redis writes it.
    pub fn text(self) -> String {
        format!("{}-{}", self.n, self.seq)
    }

    /// The largest id below this one, for `XREVRANGE`'s next page (`(id` needs Redis 6.2).
    pub fn before(self) -> Option<EntryId> {
        match self.seq {
            0 => self.n.checked_sub(1).map(|n| EntryId { n, seq: u64::MAX }),
            seq => Some(EntryId { n: self.n, seq: seq - 1 }),
        }
    }
}

/// One stream entry: its id, topic (none: the default topic), event name, data, and the epoch it was
/// written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub topic: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub epoch: Option<String>,
}

/// A publish's id from its `INCR` reply.
pub fn publish_id(n: i64) -> Result<u64, String> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0 && n < MAX_ID)
        .ok_or_else(|| format!("publish id {n} is out of range"))
}

/// A stream entry id, `<n>-<seq>` with `n` in `1..2^53`.
pub fn entry_id(text: &[u8]) -> Result<EntryId, String> {
    let bad = || format!("entry id {:?} is not <n>-<seq> below 2^53", String::from_utf8_lossy(text));
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    let (n, seq) = text.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(n) || !digits(seq) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    if n == 0 || n >= MAX_ID {
        return Err(bad());
    }
    Ok(EntryId { n, seq })
}

/// Every entry in a reply, in the reply's order: `XREVRANGE`'s is a list of entries; `XREAD`'s (`nested`)
/// is `[[key, [entries]]]`, or nil when its block ran out empty. An error reply is returned as `Err`
/// too (Redis refused the read).
pub fn entries_of(reply: Reply, nested: bool) -> Result<Vec<Entry>, String> {
    let bad = |what: &str| format!("unexpected stream reply: {what}");
    let list = match reply {
        Reply::Nil => return Ok(Vec::new()),
        Reply::Error(e) => return Err(format!("Redis refused the read: {e}")),
        Reply::Array(items) if !nested => items,
        Reply::Array(mut streams) => match (streams.len(), streams.pop()) {
            (0, _) => return Ok(Vec::new()),
            (1, Some(Reply::Array(mut stream))) => match (stream.len(), stream.pop()) {
                (2, Some(Reply::Array(entries))) => entries,
                _ => return Err(bad("a stream that is not [key, entries]")),
            },
            _ => return Err(bad("not one stream")),
        },
        other => return Err(bad(other.kind())),
    };
    let text = |f: Reply| match f {
        Reply::Bulk(b) | Reply::Simple(b) => Ok(b),
        other => Err(bad(other.kind())),
    };
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let Reply::Array(parts) = entry else { return Err(bad("an entry that is not an array")) };
        let mut parts = parts.into_iter();
        let (Some(id), Some(Reply::Array(fields)), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("an entry that is not [id, fields]"));
        };
        let id = entry_id(&text(id)?)?;
        let (mut topic, mut event, mut data, mut epoch) = (None, None, String::new(), None);
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let value = String::from_utf8(text(value)?).map_err(|_| bad("a field that is not UTF-8"))?;
            match text(name)?.as_slice() {
                b"t" if !value.is_empty() => {
                    topics::check_name(&value).map_err(|_| bad("a topic name that is not one"))?;
                    topic = Some(value);
                }
                b"e" if !value.is_empty() => event = Some(value),
                b"d" => data = value,
                b"x" if !value.is_empty() => epoch = Some(value),
                _ => {}
            }
        }
        out.push(Entry { id, topic, event, data, epoch });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    fn entry(id: &str) -> Reply {
        let fields = ["e", "", "d", "hi", "x", "7"].map(bulk).to_vec();
        Reply::Array(vec![bulk(id), Reply::Array(fields)])
    }

    #[test]
    fn ids_out_of_range_are_refused() {
        assert_eq!(entry_id(b"17-0"), Ok(EntryId { n: 17, seq: 0 }));
        for bad in
            ["18446744073709551615-0", "0-0", "-1-0", "9007199254740992-0", "1", "1-", "1-x", "+1-0", ""]
        {
            assert!(entry_id(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(publish_id(42), Ok(42));
        for bad in [-1, 0, 1 << 53, i64::MAX] {
            assert!(publish_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xread_and_xrevrange_replies_give_their_entries() {
        let xread = Reply::Array(vec![Reply::Array(vec![bulk("log"), Reply::Array(vec![entry("5-0")])])]);
        let entries = entries_of(xread, true).expect("valid");
        assert_eq!(
            entries,
            vec![Entry {
                id: EntryId { n: 5, seq: 0 },
                topic: None,
                event: None,
                data: "hi".into(),
                epoch: Some("7".into())
            }]
        );
        assert_eq!(entries_of(Reply::Array(vec![entry("6-0"), entry("5-0")]), false).map(|e| e.len()), Ok(2));
        assert_eq!(entries_of(Reply::Nil, true), Ok(Vec::new()));
    }

    #[test]
    fn replies_of_the_wrong_shape_are_errors() {
        for (reply, nested) in [
            (Reply::Integer(1), false),
            (Reply::Array(vec![Reply::Integer(1)]), false),
            (Reply::Array(vec![entry("0-0")]), false),
            (Reply::Array(vec![Reply::Array(vec![bulk("log")])]), true),
            (Reply::Error("ERR".into()), true),
        ] {
            assert!(entries_of(reply.clone(), nested).is_err(), "{reply:?}");
        }
    }

    #[test]
    fn the_id_before_steps_back_one() {
        assert_eq!(EntryId { n: 5, seq: 0 }.before(), Some(EntryId { n: 4, seq: u64::MAX }));
        assert_eq!(EntryId { n: 5, seq: 3 }.before(), Some(EntryId { n: 5, seq: 2 }));
        assert_eq!(EntryId { n: 0, seq: 0 }.before(), None);
    }
}
