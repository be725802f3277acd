//! RESP2 for the backplane: commands written as arrays of bulk strings, replies read incrementally,
//! without recursion, and within limits.
//!
//! # Rules
//!
//! - **Nothing from Redis is trusted.** A reply nests at most [`MAX_DEPTH`] arrays (ours nest 5: XREAD's
//!   `[[key, [[id, [fields]]]]]`), holds at most [`MAX_REPLY_ELEMENTS`] values and [`MAX_REPLY_BYTES`]
//!   bytes. A bulk string's or an array's announced length is checked against those caps *before* any
//!   byte of it is buffered, so `$400000000\r\n` costs nothing and `*1\r\n` × 60,000 stops at depth 9.
//!   Anything else malformed (an unknown type byte, a length that is not a number, a missing CRLF) is a
//!   [`ProtocolError`] too; the caller drops the link.
//! - **No recursion.** Open arrays live on an explicit stack (at most [`MAX_DEPTH`] deep), so a hostile
//!   reply cannot overflow ours. (`redis-protocol`'s `decode` recurses once per level: 60,000 levels
//!   overflowed the loop thread's stack.)
//! - **Resumable.** [`Reader::next_reply`] keeps its place (the open arrays and the offset of the next
//!   value) between calls, so a reply arriving 16 KiB at a time is parsed once, not once per read.
//!
//! Why 64 MiB: the largest reply we ask for is one page of entries ([`super::PAGE`] entries of bodies up
//! to `--max-body-bytes`, 64 KiB by default, so 16 MiB plus framing). The cap leaves room for larger
//! bodies while keeping a hostile reply's cost a small multiple of the replay buffer's default 16 MiB.

use std::fmt;

/// Most arrays one reply may nest (ours nest 5).
pub const MAX_DEPTH: usize = 8;
/// Most bytes one reply may take, framing included.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// Most values (arrays, strings, integers) one reply may hold: a page of entries holds about
/// 10 × [`super::PAGE`]. Bounds the memory of the parsed tree (~32 bytes a value), which the byte cap
/// alone would not (`+\r\n` is 3 bytes).
pub const MAX_REPLY_ELEMENTS: usize = 64 * 1024;
/// Longest simple string, error or length line: Redis's are short.
const MAX_LINE: usize = 64 * 1024;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(Vec<u8>),
    /// `-ERR ...`: Redis refused the command.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Reply>),
}

impl Reply {
    /// What kind of reply it is, for logs (never its contents: they may be anything).
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Simple(_) => "a simple string",
            Reply::Error(_) => "an error",
            Reply::Integer(_) => "an integer",
            Reply::Bulk(_) => "a bulk string",
            Reply::Nil => "nil",
            Reply::Array(_) => "an array",
        }
    }
}

/// A reply that breaks RESP2 or our limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    UnknownType(u8),
    BadNumber,
    MissingCrlf,
    TooDeep,
    TooLarge,
    TooManyElements,
    LineTooLong,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnknownType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            ProtocolError::BadNumber => f.write_str("a length or integer that is not a number"),
            ProtocolError::MissingCrlf => f.write_str("a value not ended by CRLF"),
            ProtocolError::TooDeep => write!(f, "a reply nested deeper than {MAX_DEPTH}"),
            ProtocolError::TooLarge => write!(f, "a reply larger than {MAX_REPLY_BYTES} bytes"),
            ProtocolError::TooManyElements => write!(f, "a reply of more than {MAX_REPLY_ELEMENTS} values"),
            ProtocolError::LineTooLong => write!(f, "a line longer than {MAX_LINE} bytes"),
        }
    }
}

/// Appends a command (an array of bulk strings) to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads replies from bytes as they arrive.
#[derive(Debug, Default)]
pub struct Reader {
    /// Bytes received and not yet taken: the reply in progress first.
    buf: Vec<u8>,
    /// Offset in `buf` of the next value to parse (the values before it are on `open`).
    pos: usize,
    /// The arrays open in the reply in progress: the items so far and how many are announced.
    open: Vec<(Vec<Reply>, usize)>,
    /// Values parsed (or announced) in the reply in progress.
    elements: usize,
}

impl Reader {
    /// Adds received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet taken as replies.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete reply, `None` until one has arrived whole, or the error that makes the
    /// stream unusable (the reader must then be dropped).
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let Some(value) = self.next_value()? else {
                // Incomplete: what is buffered belongs to this reply (later replies come after it).
                return if self.buf.len() > MAX_REPLY_BYTES {
                    Err(ProtocolError::TooLarge)
                } else {
                    Ok(None)
                };
            };
            let mut value = value;
            loop {
                let Some((items, want)) = self.open.last_mut() else {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    self.elements = 0;
                    return Ok(Some(value));
                };
                items.push(value);
                if items.len() < *want {
                    break;
                }
                let (items, _) = self.open.pop().unwrap_or_default();
                value = Reply::Array(items);
            }
        }
    }

    /// Parses the value at `pos`: `None` if it has not arrived whole (or is an array just opened).
    fn next_value(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(&kind) = rest.first() else { return Ok(None) };
            if !b"+-:$*".contains(&kind) {
                return Err(ProtocolError::UnknownType(kind)); // also `\r`, whose line would be empty
            }
            let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                return if rest.len() > MAX_LINE { Err(ProtocolError::LineTooLong) } else { Ok(None) };
            };
            if end > MAX_LINE {
                return Err(ProtocolError::LineTooLong);
            }
            let line = &rest[1..end];
            let after_line = self.pos + end + 2;
            self.elements += 1;
            if self.elements > MAX_REPLY_ELEMENTS {
                return Err(ProtocolError::TooManyElements);
            }
            let value = match kind {
                b'+' => Reply::Simple(line.to_vec()),
                b'-' => Reply::Error(String::from_utf8_lossy(line).into_owned()),
                b':' => Reply::Integer(number(line)?),
                b'$' => match number(line)? {
                    -1 => Reply::Nil,
                    len if len < 0 => return Err(ProtocolError::BadNumber),
                    len => {
                        let len = usize::try_from(len).map_err(|_| ProtocolError::TooLarge)?;
                        let end = after_line.checked_add(len).ok_or(ProtocolError::TooLarge)?;
                        if end + 2 > MAX_REPLY_BYTES {
                            return Err(ProtocolError::TooLarge);
                        }
                        if self.buf.len() < end + 2 {
                            self.elements -= 1; // counted again when it is whole
                            return Ok(None);
                        }
                        if &self.buf[end..end + 2] != b"\r\n" {
                            return Err(ProtocolError::MissingCrlf);
                        }
                        let bytes = self.buf[after_line..end].to_vec();
                        self.pos = end + 2;
                        return Ok(Some(Reply::Bulk(bytes)));
                    }
                },
                b'*' => match number(line)? {
                    -1 => Reply::Nil,
                    n if n < 0 => return Err(ProtocolError::BadNumber),
                    _ if self.open.len() >= MAX_DEPTH => return Err(ProtocolError::TooDeep), // `*0` too
                    0 => Reply::Array(Vec::new()),
                    n => {
                        let n = usize::try_from(n).map_err(|_| ProtocolError::TooManyElements)?;
                        if n > MAX_REPLY_ELEMENTS - self.elements {
                            return Err(ProtocolError::TooManyElements);
                        }
                        // Not `with_capacity(n)`: the announced length is not trusted with memory.
                        self.open.push((Vec::with_capacity(n.min(16)), n));
                        self.pos = after_line;
                        continue;
                    }
                },
                other => return Err(ProtocolError::UnknownType(other)),
            };
            self.pos = after_line;
            return Ok(Some(value));
        }
    }
}

/// A RESP integer: an optional `-` and 1 to 19 digits, within `i64`.
fn number(line: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::BadNumber);
    }
    let mut n: i64 = 0;
    for d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or(ProtocolError::BadNumber)?;
    }
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut reader = Reader::default();
        reader.extend(bytes);
        let mut out = Vec::new();
        while let Some(reply) = reader.next_reply()? {
            out.push(reply);
        }
        Ok(out)
    }

    /// The same replies whether the bytes come whole or one at a time.
    fn read_split(bytes: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut reader = Reader::default();
        let mut out = Vec::new();
        for b in bytes {
            reader.extend(std::slice::from_ref(b));
            while let Some(reply) = reader.next_reply()? {
                out.push(reply);
            }
        }
        Ok(out)
    }

    const XREAD: &[u8] =
        b"*1\r\n*2\r\n$3\r\nlog\r\n*1\r\n*2\r\n$4\r\n17-0\r\n*6\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nd\r\n\
        $2\r\nhi\r\n$1\r\nx\r\n$2\r\n99\r\n+PONG\r\n:42\r\n-ERR no\r\n$-1\r\n*-1\r\n*0\r\n";

    #[test]
    fn replies_read_whole_and_split_at_every_byte_agree() {
        let whole = read_all(XREAD).expect("valid");
        assert_eq!(whole.len(), 7);
        assert_eq!(whole[1], Reply::Simple(b"PONG".to_vec()));
        assert_eq!(whole[2], Reply::Integer(42));
        assert_eq!(whole[3], Reply::Error("ERR no".into()));
        assert_eq!(&whole[4..], &[Reply::Nil, Reply::Nil, Reply::Array(Vec::new())]);
        let Reply::Array(streams) = &whole[0] else { panic!("array") };
        assert_eq!(streams.len(), 1);
        assert_eq!(read_split(XREAD), Ok(whole));
    }

    #[test]
    fn a_deep_reply_is_refused_without_recursion() {
        let deep = b"*1\r\n".repeat(60_000);
        assert_eq!(read_all(&deep), Err(ProtocolError::TooDeep));
        let ok = [b"*1\r\n".repeat(MAX_DEPTH), b":1\r\n".to_vec()].concat();
        assert_eq!(read_all(&ok).map(|r| r.len()), Ok(1));
        // An empty array is a level too (found by fuzzing).
        let empty = [b"*1\r\n".repeat(MAX_DEPTH), b"*0\r\n".to_vec()].concat();
        assert_eq!(read_all(&empty), Err(ProtocolError::TooDeep));
    }

    #[test]
    fn a_huge_bulk_string_is_refused_before_it_is_buffered() {
        assert_eq!(read_all(b"$400000000\r\nabc"), Err(ProtocolError::TooLarge));
        assert_eq!(read_all(b"$9223372036854775807\r\n"), Err(ProtocolError::TooLarge));
        assert_eq!(read_all(b"*4000000000\r\n"), Err(ProtocolError::TooManyElements));
    }

    #[test]
    fn too_many_small_values_are_refused() {
        let many = [b"*65536\r\n".to_vec(), b"+\r\n".repeat(70_000)].concat();
        assert_eq!(read_all(&many), Err(ProtocolError::TooManyElements));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for (bytes, error) in [
            (&b"?x\r\n"[..], ProtocolError::UnknownType(b'?')),
            (b"\r\n", ProtocolError::UnknownType(b'\r')), // found by fuzzing: an empty line panicked
            (b"?", ProtocolError::UnknownType(b'?')),
            (b":12a\r\n", ProtocolError::BadNumber),
            (b":\r\n", ProtocolError::BadNumber),
            (b":99999999999999999999\r\n", ProtocolError::BadNumber),
            (b"$-2\r\n", ProtocolError::BadNumber),
            (b"*-5\r\n", ProtocolError::BadNumber),
            (b"$2\r\nabcd", ProtocolError::MissingCrlf),
        ] {
            assert_eq!(read_all(bytes), Err(error), "{}", String::from_utf8_lossy(bytes));
        }
        let long = vec![b'+'; MAX_LINE + 2];
        assert_eq!(read_all(&long), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn an_unfinished_reply_waits() {
        assert_eq!(read_all(b"*2\r\n:1\r\n$5\r\nab"), Ok(Vec::new()));
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"PING", b""]);
        assert_eq!(out, b"*2\r\n$4\r\nPING\r\n$0\r\n\r\n");
    }
}
