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
    max_line: usize,
    /// Bytes of the line in progress.
    line: Vec<u8>,
    /// The last byte seen was a CR that ended a line: a LF right after it belongs to that line end.
    after_cr: bool,
    /// Still at the very start, where a BOM may be (the bytes of a BOM seen so far).
    bom_seen: usize,
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
            max_line,
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

    /// Feeds the next bytes of the stream, appending what they complete to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Item>) -> Result<(), LineTooLong> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        while self.start && !bytes.is_empty() {
            if bytes[0] == BOM[self.bom_seen] {
                self.bom_seen += 1;
                bytes = &bytes[1..];
                if self.bom_seen == BOM.len() {
                    self.start = false;
                }
            } else {
                // Not a BOM after all: what looked like its start is ordinary text.
                self.line.extend_from_slice(&BOM[..self.bom_seen]);
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
            let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') else {
                // No line end in this read: keep the piece for the next one.
                if self.line.len() + bytes.len() > self.max_line {
                    return Err(LineTooLong { limit: self.max_line });
                }
                self.line.extend_from_slice(bytes);
                return Ok(());
            };
            if self.line.len() + end > self.max_line {
                return Err(LineTooLong { limit: self.max_line });
            }
            self.after_cr = bytes[end] == b'\r';
            if self.line.is_empty() {
                // The whole line is in this read: no copy.
                process_bytes(self, &bytes[..end], out);
            } else {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                process_bytes(self, &line, out);
                self.line = line;
                self.line.clear();
            }
            bytes = &bytes[end + 1..];
        }
        Ok(())
    }

    pub(crate) fn process_line(&mut self, line: &str, out: &mut Vec<Item>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.to_owned()));
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
            "event" => self.event_type = value.to_owned(),
            "id" if !value.contains('\0') => {
                self.last_event_id = value.to_owned();
                self.id_seen = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let event_type = std::mem::take(&mut self.event_type);
        let own_id = std::mem::take(&mut self.id_seen);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the last LF
        let event_type =
            if event_type.is_empty() { Cow::Borrowed("message") } else { Cow::Owned(event_type) };
        out.push(Item::Event(Event { event_type, data, last_event_id: self.last_event_id.clone(), own_id }));
    }
}

/// Decodes one line's bytes (UTF-8, invalid bytes as U+FFFD; the common valid case without a copy) and
/// acts on it.
fn process_bytes(parser: &mut Parser, line: &[u8], out: &mut Vec<Item>) {
    match std::str::from_utf8(line) {
        Ok(text) => parser.process_line(text, out),
        Err(_) => parser.process_line(&String::from_utf8_lossy(line), out),
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

    #[test]
    fn an_unterminated_event_is_not_dispatched_and_long_lines_are_refused() {
        assert!(parse_in_pieces(b"data: never finished\n", 3).is_empty());
        let mut parser = Parser::new(8);
        let mut out = Vec::new();
        assert!(parser.feed(b"data: 1\n", &mut out).is_ok());
        assert_eq!(parser.feed(b"data: 123456", &mut out), Err(LineTooLong { limit: 8 }));
    }
}
