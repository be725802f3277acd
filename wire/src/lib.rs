//! The SSE wire format both sides of mio-sse speak (the server names this crate `mio_sse::sse`; the load
//! generator uses it directly). Pure std, no I/O.
//!
//! SSE frames (WHATWG HTML, "Server-sent events"): encoding here, pure functions that append frames to a
//! buffer; decoding in [`parser`], an incremental parser that follows the standard's steps, for clients
//! (the load generator, the tests).
//!
//! Rules every frame keeps, whatever its caller passes:
//! - Lines end with LF only, and a frame ends with a blank line, so a browser dispatches it at once (the
//!   ASP.NET sample this server grew from never wrote the blank line, so `onmessage` never fired).
//! - Each field is written `name: value` with exactly one space: the parser strips one leading space, so a
//!   value that itself starts with a space survives.
//! - A value never carries CR or LF into a field: data is split into one `data:` line per line of the
//!   payload (CR, LF and CRLF all end a line, as the standard's parser reads them), and a comment into one
//!   comment line per line. Nothing a publisher sends can forge a second field or frame.
//! - Encoding appends to a caller-owned `Vec<u8>`, so the hot path reuses one buffer and allocates nothing.

pub mod parser;

/// Length of a plain tick frame: `data: ` + `HH:MM:SS.mmm` + LF + LF.
pub const TICK_FRAME_LEN: usize = 6 + 12 + 2;

/// Appends a tick frame whose data is `data_len` bytes: the time of day, then (for a shaped stream that
/// asked for more) a space and `x` padding. With `data_len` 12 it is exactly `data: HH:MM:SS.mmm` and a
/// blank line. No `id:` (a tick must not move a browser's last event id past events it has not seen) and
/// no `event:` (so `onmessage` receives it).
pub fn write_tick(out: &mut Vec<u8>, time_of_day: &[u8; 12], data_len: usize) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(time_of_day);
    if data_len > time_of_day.len() {
        out.push(b' ');
        out.resize(out.len() + data_len - time_of_day.len() - 1, b'x');
    }
    out.extend_from_slice(b"\n\n");
}

/// Appends a whole event: optional `event:` and `id:` fields, one `data:` line per line of `data` (an
/// empty payload still gets one empty `data:` line, because a frame without data dispatches nothing).
///
/// `event` and `id` must not contain CR or LF; callers validate them, and any that slip through are cut
/// at the first line break rather than written as a second line.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<&str>, data: &str) {
    if let Some(event) = event {
        write_field(out, b"event", first_line(event));
    }
    if let Some(id) = id {
        write_field(out, b"id", first_line(id));
    }
    for line in lines(data) {
        write_field(out, b"data", line);
    }
    out.push(b'\n');
}

/// Appends a `retry:` frame: the reconnection time in whole milliseconds, the only form browsers accept.
pub fn write_retry(out: &mut Vec<u8>, millis: u64) {
    out.extend_from_slice(b"retry: ");
    out.extend_from_slice(millis.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends a comment (ignored by clients; keeps proxies from timing out an idle stream), one `: ` line
/// per line of `text`, ending with a blank line.
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    for line in lines(text) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The text up to the first CR or LF.
fn first_line(value: &str) -> &str {
    value.split(['\r', '\n']).next().unwrap_or("")
}

/// Splits `text` into lines the way an SSE parser does: CRLF, lone CR and lone LF each end a line. A
/// trailing line break does not start an extra line, except that empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") { 2 } else { 1 };
                let tail = &current[at + skip..];
                rest = if tail.is_empty() { None } else { Some(tail) };
                Some(&current[..at])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event type, last event id, data) of each dispatched event, and the last retry, read by the
    /// standard-following parser.
    fn parse(bytes: &[u8]) -> (Vec<(String, String, String)>, Option<u64>) {
        let mut items = Vec::new();
        parser::Parser::new(1 << 20).feed(bytes, &mut items).unwrap();
        let (mut events, mut retry) = (Vec::new(), None);
        for item in items {
            match item {
                parser::Item::Event(e) => events.push((e.event_type.into_owned(), e.last_event_id, e.data)),
                parser::Item::Retry(ms) => retry = Some(ms),
                parser::Item::Comment(_) => {}
            }
        }
        (events, retry)
    }

    #[test]
    fn tick_is_exactly_one_data_line_and_a_blank_line() {
        let mut out = Vec::new();
        write_tick(&mut out, b"07:05:09.042", 12);
        assert_eq!(out, b"data: 07:05:09.042\n\n");
        assert_eq!(out.len(), TICK_FRAME_LEN);
        let (events, _) = parse(&out);
        assert_eq!(events, vec![("message".into(), String::new(), "07:05:09.042".into())]);
    }

    #[test]
    fn a_shaped_tick_is_padded_to_its_length() {
        for len in [13, 14, 100, 4096] {
            let mut out = Vec::new();
            write_tick(&mut out, b"07:05:09.042", len);
            assert_eq!(out.len(), 6 + len + 2, "data of {len} bytes");
            assert!(out.starts_with(b"data: 07:05:09.042 ") && out.ends_with(b"x\n\n") || len == 13);
            let (events, _) = parse(&out);
            assert_eq!(events[0].2.len(), len);
        }
    }

    #[test]
    fn event_with_name_and_id() {
        let mut out = Vec::new();
        write_event(&mut out, Some("news"), Some("42"), "hello");
        assert_eq!(out, b"event: news\nid: 42\ndata: hello\n\n");
    }

    #[test]
    fn every_kind_of_line_break_in_data_becomes_a_data_line() {
        for (payload, expected_lines) in [
            ("a\nb", vec!["a", "b"]),
            ("a\r\nb", vec!["a", "b"]),
            ("a\rb", vec!["a", "b"]),
            ("a\n\nb", vec!["a", "", "b"]),
            ("a\r\n\r\nb", vec!["a", "", "b"]),
            ("a\n", vec!["a"]),
            ("", vec![""]),
            ("\n", vec![""]),
            (" leading space", vec![" leading space"]),
        ] {
            let mut out = Vec::new();
            write_event(&mut out, None, None, payload);
            let mut want = String::new();
            for line in &expected_lines {
                want.push_str(&format!("data: {line}\n"));
            }
            want.push('\n');
            assert_eq!(String::from_utf8(out.clone()).unwrap(), want, "payload {payload:?}");
            let (events, _) = parse(&out);
            assert_eq!(events.len(), 1, "payload {payload:?} is one event");
            assert_eq!(events[0].2, expected_lines.join("\n"), "payload {payload:?} round-trips");
        }
    }

    #[test]
    fn line_breaks_cannot_inject_fields_through_name_or_id() {
        let mut out = Vec::new();
        write_event(&mut out, Some("x\ndata: forged"), Some("1\r\nretry: 1"), "real");
        let (events, retry) = parse(&out);
        assert_eq!(events, vec![("x".into(), "1".into(), "real".into())]);
        assert_eq!(retry, None);
    }

    #[test]
    fn retry_and_comments_round_trip() {
        let mut out = Vec::new();
        write_retry(&mut out, 2500);
        write_comment(&mut out, "hello\nworld");
        write_tick(&mut out, b"23:59:59.999", 0);
        assert_eq!(out, b"retry: 2500\n\n: hello\n: world\n\ndata: 23:59:59.999\n\n");
        let (events, retry) = parse(&out);
        assert_eq!(retry, Some(2500));
        assert_eq!(events.len(), 1, "comments dispatch nothing");
    }
}
