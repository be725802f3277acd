//! An incremental SSE parser that follows the standard's "interpret an event stream" steps exactly.
//!
//! For clients: the load generator and the tests read servers through it, ours or anyone's.
//!
//! Rules (WHATWG HTML §9.2.6), in the order a stream meets them:
//! - One leading UTF-8 byte order mark is dropped; the rest is decoded as UTF-8, invalid bytes becoming
//!   U+FFFD.
//! - Lines end with CRLF, a lone LF or a lone CR. Bytes arrive in any split: a line, a CRLF pair or a
//!   UTF-8 sequence may straddle two reads, so lines are cut on bytes and decoded only once whole (CR and
//!   LF are ASCII and never occur inside a multi-byte sequence).
//! - A line starting with `:` is a comment. Otherwise the field name runs to the first `:` (the whole line
//!   if none), and one space after the colon is dropped from the value.
//! - `data` appends the value and a LF to the data buffer; `event` sets the type; `id` sets the last
//!   event id unless the value contains NUL; `retry` sets the reconnection time if the value is ASCII
//!   digits only; other fields are ignored.
//! - A blank line dispatches: nothing if the data buffer is empty, else an event with the trailing LF
//!   removed, type `message` unless set, and the last event id as it stands. Type and data reset; the last
//!   event id does not.
//! - At the end of the stream an event without its blank line is discarded.
//!
//! Bounded: a line longer than the parser's limit is an error, so a hostile server cannot grow a client's
//! memory without end.
//!
//! Two ways to take what a stream said: [`Parser::feed_with`] lends each item ([`ItemRef`]) to a closure,
//! borrowed from the parser's own buffers, which are reused from one event to the next: a client reading
//! millions of events allocates nothing per event. [`Parser::feed`] collects owned [`Item`]s on top of it,
//! for tests and callers that keep what they read.

use std::borrow::Cow;
use std::fmt;

/// What a stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A `retry:` with a valid value: the new reconnection time in ms.
    Retry(u64),
    /// A comment line (without its leading colon).
    Comment(String),
}

/// A dispatched event, as `EventSource` would hand it to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message` unless an `event:` field named it (borrowed then: most events are messages, and this
    /// saves an allocation for each).
    pub event_type: Cow<'static, str>,
    pub data: String,
    /// The last event id at dispatch (kept across events until an `id:` changes it).
    pub last_event_id: String,
    /// Whether this event's own lines set the id (the standard keeps the previous id otherwise; a load
    /// tester counting gaps and duplicates needs to tell the two apart).
    pub own_id: bool,
}

/// What a stream said, lent by [`Parser::feed_with`]: valid until the closure returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRef<'a> {
    /// A dispatched event.
    Event(EventRef<'a>),
    /// A `retry:` with a valid value: the new reconnection time in ms.
    Retry(u64),
    /// A comment line (without its leading colon).
    Comment(&'a str),
}

/// A dispatched event, borrowed from the parser's buffers (see [`Event`] for what each field means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub event_type: &'a str,
    pub data: &'a str,
    pub last_event_id: &'a str,
    pub own_id: bool,
}

impl ItemRef<'_> {
    /// The item as an owned [`Item`] (allocates: for callers that keep it).
    pub fn to_owned_item(&self) -> Item {
        match *self {
            ItemRef::Event(event) => Item::Event(Event {
                event_type: if event.event_type == "message" {
                    Cow::Borrowed("message")
                } else {
                    Cow::Owned(event.event_type.to_owned())
                },
                data: event.data.to_owned(),
                last_event_id: event.last_event_id.to_owned(),
                own_id: event.own_id,
            }),
            ItemRef::Retry(ms) => Item::Retry(ms),
            ItemRef::Comment(text) => Item::Comment(text.to_owned()),
        }
    }
}

/// Buffers the parser reuses are kept up to this capacity; a larger one (a rare huge event) is freed after
/// its event, so that one such event does not cost each of 10,000 subscribers its size for good.
const KEEP_CAPACITY: usize = 4096;

/// A line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    pub limit: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an SSE line longer than {} bytes", self.limit)
    }
}

impl std::error::Error for LineTooLong {}

/// The parser's state between reads.
#[derive(Debug, Clone)]
pub struct Parser {
    /// (32 bits, as `bom_seen` is 8: a client holding a million streams keeps one parser for each.)
    max_line: u32,
    /// Bytes of the line in progress.
    line: Vec<u8>,
    /// The last byte seen was a CR that ended a line: a LF right after it belongs to that line end.
    after_cr: bool,
    /// Still at the very start, where a BOM may be (the bytes of a BOM seen so far).
    bom_seen: u8,
    start: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    /// An `id:` field was seen since the last dispatch.
    id_seen: bool,
}

impl Parser {
    /// A parser that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Parser {
        Parser {
            max_line: u32::try_from(max_line).unwrap_or(u32::MAX),
            line: Vec::new(),
            after_cr: false,
            bom_seen: 0,
            start: true,
            data: String::new(),
            event_type: String::new(),
            last_event_id: String::new(),
            id_seen: false,
        }
    }

    /// The last event id so far (what a reconnecting client sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Feeds the next bytes of the stream, appending what they complete to `out` (owned: one allocation
    /// or more per item; [`Parser::feed_with`] makes none).
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Item>) -> Result<(), LineTooLong> {
        self.feed_with(bytes, |item| out.push(item.to_owned_item()))
    }

    /// Feeds the next bytes of the stream, lending each item they complete to `on_item`, in order. The
    /// items borrow the parser's buffers, reused for the next event: nothing is allocated per event once
    /// the buffers have grown to the stream's sizes.
    pub fn feed_with(
        &mut self,
        mut bytes: &[u8],
        mut on_item: impl FnMut(ItemRef<'_>),
    ) -> Result<(), LineTooLong> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        while self.start && !bytes.is_empty() {
            if bytes[0] == BOM[usize::from(self.bom_seen)] {
                self.bom_seen += 1;
                bytes = &bytes[1..];
                if usize::from(self.bom_seen) == BOM.len() {
                    self.start = false;
                }
            } else {
                // Not a BOM after all: what looked like its start is ordinary text.
                self.line.extend_from_slice(&BOM[..usize::from(self.bom_seen)]);
                self.start = false;
            }
        }
        // Line by line: find the next CR or LF, take the bytes before it as (the rest of) a line.
        while !bytes.is_empty() {
            if self.after_cr && bytes[0] == b'\n' {
                self.after_cr = false; // the LF of a CRLF
                bytes = &bytes[1..];
                continue;
            }
            self.after_cr = false;
            let Some(end) = line_end(bytes) else {
                // No line end in this read: keep the piece for the next one.
                if self.line.len() + bytes.len() > self.max_line as usize {
                    return Err(LineTooLong { limit: self.max_line as usize });
                }
                self.line.extend_from_slice(bytes);
                return Ok(());
            };
            if self.line.len() + end > self.max_line as usize {
                return Err(LineTooLong { limit: self.max_line as usize });
            }
            self.after_cr = bytes[end] == b'\r';
            if self.line.is_empty() {
                // The whole line is in this read: no copy.
                process_bytes(self, &bytes[..end], &mut on_item);
            } else {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                process_bytes(self, &line, &mut on_item);
                if line.capacity() <= KEEP_CAPACITY {
                    self.line = line;
                    self.line.clear();
                }
            }
            bytes = &bytes[end + 1..];
        }
        Ok(())
    }

    fn process_line(&mut self, line: &str, on_item: &mut impl FnMut(ItemRef<'_>)) {
        if line.is_empty() {
            self.dispatch(on_item);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            on_item(ItemRef::Comment(comment));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // Set in place: the buffers keep their room from one event to the next.
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "id" if !value.contains('\0') => {
                self.last_event_id.clear();
                self.last_event_id.push_str(value);
                self.id_seen = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    on_item(ItemRef::Retry(ms));
                }
            }
            _ => {}
        }
    }

    /// The blank line: lends the event (if there is data) and resets type and data for the next one.
    fn dispatch(&mut self, on_item: &mut impl FnMut(ItemRef<'_>)) {
        let own_id = std::mem::take(&mut self.id_seen);
        if !self.data.is_empty() {
            let event_type = if self.event_type.is_empty() { "message" } else { &self.event_type };
            on_item(ItemRef::Event(EventRef {
                event_type,
                data: &self.data[..self.data.len() - 1], // without the last LF
                last_event_id: &self.last_event_id,
                own_id,
            }));
        }
        for buffer in [&mut self.event_type, &mut self.data] {
            buffer.clear();
            if buffer.capacity() > KEEP_CAPACITY {
                *buffer = String::new();
            }
        }
    }
}

/// Where the first CR or LF in `bytes` is. Eight bytes at a time: a client spends much of its time
/// looking for line ends, and a byte at a time was the parser's largest cost. (`memchr2` would do the same
/// with SIMD; this crate stays plain `std`.)
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `word` equals `byte` (the classic "has a zero byte" test on
    // `word ^ byte-in-every-lane`).
    let has = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(lanes);
        if has(word, b'\n') | has(word, b'\r') != 0 {
            break;
        }
        skipped += 8;
    }
    bytes[skipped..].iter().position(|&b| b == b'\n' || b == b'\r').map(|at| skipped + at)
}

/// Decodes one line's bytes (UTF-8, invalid bytes as U+FFFD; the common valid case without a copy) and
/// acts on it.
fn process_bytes(parser: &mut Parser, line: &[u8], on_item: &mut impl FnMut(ItemRef<'_>)) {
    match std::str::from_utf8(line) {
        Ok(text) => parser.process_line(text, on_item),
        Err(_) => parser.process_line(&String::from_utf8_lossy(line), on_item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<Item> {
        let mut parser = Parser::new(1 << 20);
        let mut out = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            parser.feed(chunk, &mut out).unwrap();
        }
        out
    }

    /// An event whose own lines set `id` when it is not empty.
    fn event(event_type: &str, data: &str, id: &str) -> Item {
        with_id(event_type, data, id, !id.is_empty())
    }

    fn with_id(event_type: &str, data: &str, id: &str, own_id: bool) -> Item {
        Item::Event(Event {
            event_type: event_type.to_owned().into(),
            data: data.into(),
            last_event_id: id.into(),
            own_id,
        })
    }

    #[test]
    fn the_standards_examples() {
        // §9.2.4 examples: multi-line data, ids that persist, named events, a field without a colon.
        let stream = b"data: YHOO\ndata: +2\ndata: 10\n\n: test stream\n\ndata: first event\nid: 1\n\n\
                       data:second event\nid\n\ndata:  third event\n\nevent: add\ndata: 73857293\n\ndata\n\ndata\ndata\n\ndata:";
        let want = vec![
            event("message", "YHOO\n+2\n10", ""),
            Item::Comment(" test stream".into()),
            event("message", "first event", "1"),
            with_id("message", "second event", "", true), // `id` alone resets the id
            event("message", " third event", ""),
            event("add", "73857293", ""),
            event("message", "", ""),
            event("message", "\n", ""),
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(parse_in_pieces(stream, piece), want, "in pieces of {piece}");
        }
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines_even_split_across_reads() {
        let stream = b"data: a\r\ndata: b\rdata: c\n\r\nretry: 1500\r\rdata: d\r\n\r\n";
        let want = vec![event("message", "a\nb\nc", ""), Item::Retry(1500), event("message", "d", "")];
        for piece in 1..stream.len() {
            assert_eq!(parse_in_pieces(stream, piece), want, "in pieces of {piece}");
        }
    }

    #[test]
    fn a_bom_is_dropped_once_and_utf8_may_straddle_reads() {
        let stream = "\u{feff}data: café ☕\n\n\u{feff}data: x\n\n".as_bytes();
        let want = [event("message", "café ☕", ""), event("message", "x", "")];
        for piece in 1..stream.len() {
            let got = parse_in_pieces(stream, piece);
            assert_eq!(got[0], want[0], "in pieces of {piece}");
            // A second BOM is not at the start: it stays part of the line, an unknown field.
            assert_eq!(got.len(), 1, "in pieces of {piece}: {got:?}");
        }
        let not_bom = parse_in_pieces(b"\xEF\xBBdata: y\n\n", 1);
        assert!(not_bom.is_empty(), "a broken BOM makes the first line's field name unknown");
    }

    #[test]
    fn ids_with_nul_and_bad_retries_are_ignored() {
        let got =
            parse_in_pieces(b"id: 5\n\nid: a\0b\ndata: x\n\nretry: 10a\nretry:\nretry: 20\ndata: y\n\n", 4);
        assert_eq!(
            got,
            vec![with_id("message", "x", "5", false), Item::Retry(20), with_id("message", "y", "5", false)]
        );
    }

    /// Everything `feed_with` lends, made owned, for comparing with `feed`.
    fn lent_in_pieces(stream: &[u8], piece: usize) -> Vec<Item> {
        let mut parser = Parser::new(1 << 20);
        let mut out = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            parser.feed_with(chunk, |item| out.push(item.to_owned_item())).unwrap();
        }
        out
    }

    #[test]
    fn lent_items_are_the_owned_ones_at_every_split() {
        let stream = b"\xEF\xBB\xBF: hi\r\nretry: 20\nevent: add\nid: 7\ndata: a\r\ndata: b\r\rdata: c\n\n\
                       id\ndata:x\n\nevent: message\ndata: \xFF\n\n";
        let want = parse_in_pieces(stream, 1000);
        assert_eq!(want.len(), 6, "{want:?}");
        for piece in 1..=stream.len() {
            assert_eq!(lent_in_pieces(stream, piece), want, "in pieces of {piece}");
        }
    }

    #[test]
    fn lent_events_borrow_buffers_that_are_reused() {
        let mut parser = Parser::new(1 << 20);
        let mut seen = Vec::new();
        parser
            .feed_with(b"id: 1\nevent: add\ndata: first\n\ndata: second\n\n", |item| {
                if let ItemRef::Event(e) = item {
                    seen.push((
                        e.event_type.to_owned(),
                        e.data.to_owned(),
                        e.last_event_id.to_owned(),
                        e.own_id,
                    ));
                }
            })
            .unwrap();
        let want = [("add", "first", "1", true), ("message", "second", "1", false)];
        let want: Vec<_> =
            want.iter().map(|&(t, d, i, o)| (t.to_owned(), d.to_owned(), i.to_owned(), o)).collect();
        assert_eq!(seen, want, "type and data reset after each event, the id does not");
        // Once grown, the data buffer keeps its room: the next event of the same size reuses it.
        let room = parser.data.capacity();
        parser.feed_with(b"data: second\n\n", |_| {}).unwrap();
        assert_eq!(parser.data.capacity(), room);
        // A huge event's room is given back after it.
        let huge = format!("data: {}\n\n", "x".repeat(KEEP_CAPACITY * 2));
        parser.feed_with(huge.as_bytes(), |_| {}).unwrap();
        assert_eq!(parser.data.capacity(), 0);
    }

    #[test]
    fn line_ends_are_found_in_any_lane() {
        for len in 0..40 {
            for at in 0..len {
                for end in [b'\n', b'\r'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = end;
                    if at + 1 < len {
                        bytes[at + 1] = b'\n'; // a later end must not win
                    }
                    assert_eq!(line_end(&bytes), Some(at), "len {len}, at {at}");
                }
            }
            assert_eq!(line_end(&vec![0x8a; len]), None, "bytes with the high bit set are no line end");
        }
    }

    #[test]
    fn an_unterminated_event_is_not_dispatched_and_long_lines_are_refused() {
        assert!(parse_in_pieces(b"data: never finished\n", 3).is_empty());
        let mut parser = Parser::new(8);
        let mut out = Vec::new();
        assert!(parser.feed(b"data: 1\n", &mut out).is_ok());
        assert_eq!(parser.feed(b"data: 123456", &mut out), Err(LineTooLong { limit: 8 }));
    }
}
