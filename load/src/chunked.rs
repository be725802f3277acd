//! A decoder for `Transfer-Encoding: chunked` bodies, fed in any split: most SSE servers (axum, Go,
//! nginx) stream that way, and the load generator must read them as well as close-delimited ones.
//!
//! Bounded: a chunk-size line or extension longer than [`MAX_SIZE_LINE`] is an error.

/// Longest chunk-size line (size, extensions) accepted.
pub const MAX_SIZE_LINE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size line (up to its LF).
    Size,
    /// Reading `remaining` data bytes.
    Data { remaining: u64 },
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// The last chunk (size 0) was read: trailers and the end follow; nothing more is body.
    Done,
}

/// A chunked-body decoder.
#[derive(Debug, Clone)]
pub struct Dechunker {
    state: State,
    line: Vec<u8>,
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk(pub &'static str);

impl Default for Dechunker {
    fn default() -> Self {
        Dechunker { state: State::Size, line: Vec::new() }
    }
}

impl Dechunker {
    /// Whether the final chunk has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending body bytes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), BadChunk> {
        while !input.is_empty() {
            match self.state {
                State::Size => {
                    let (byte, rest) = (input[0], &input[1..]);
                    input = rest;
                    if byte != b'\n' {
                        if self.line.len() == MAX_SIZE_LINE {
                            return Err(BadChunk("chunk size line too long"));
                        }
                        self.line.push(byte);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let text = std::str::from_utf8(&line).map_err(|_| BadChunk("chunk size is not text"))?;
                    let hex = text.trim_end_matches('\r').split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| BadChunk("chunk size is not hex"))?;
                    self.state = if size == 0 { State::Done } else { State::Data { remaining: size } };
                }
                State::Data { remaining } => {
                    let take = remaining.min(input.len() as u64) as usize;
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = remaining - take as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data { remaining: left } };
                }
                State::DataEnd => {
                    let byte = input[0];
                    input = &input[1..];
                    match byte {
                        b'\r' => {}
                        b'\n' => self.state = State::Size,
                        _ => return Err(BadChunk("no line end after chunk data")),
                    }
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_in_any_split() {
        let body = b"7\r\ndata: a\r\n3;ext=1\r\n\n\n\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        let want = b"data: a\n\n\n0123456789abcdef";
        for piece in 1..body.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            for chunk in body.chunks(piece) {
                d.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(out, want, "in pieces of {piece}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn refuses_garbage() {
        let mut out = Vec::new();
        assert_eq!(Dechunker::default().feed(b"zz\r\n", &mut out), Err(BadChunk("chunk size is not hex")));
        assert_eq!(
            Dechunker::default().feed(b"1\r\nab", &mut out),
            Err(BadChunk("no line end after chunk data"))
        );
        let long = vec![b'1'; MAX_SIZE_LINE + 1];
        assert!(Dechunker::default().feed(&long, &mut out).is_err());
    }
}
