//! What every subscriber connection borrows for one read, so that reading allocates nothing per read or
//! per event: the read buffer, a chunked body's decoded bytes, and the text of the events one drive saw,
//! which the client reports as [`Span`]s (see [`crate::client`]).
//!
//! Rule: the text is the drive's own: [`crate::client::Client::drive`] clears it when it starts, so a
//! span is read before the next drive (the driver counts a drive's events right after it).

/// A piece of [`Scratch::text`]: an event's data or id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The text this span names in `text` (the scratch's text of the same drive; empty if it is not).
    pub fn of(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize).unwrap_or("")
    }
}

/// Buffers every client borrows for a read, so that reading allocates nothing per read or per event: the
/// bytes read, a chunked body's decoded bytes, and the text of the events one drive saw.
#[derive(Debug)]
pub struct Scratch {
    pub bytes: Vec<u8>,
    /// The data and ids of the events of one drive, which [`crate::client::Seen::Event`]'s spans name.
    /// Cleared when the next drive starts.
    pub text: String,
    pub(crate) body: Vec<u8>,
}

impl Scratch {
    pub fn new(read_size: usize) -> Scratch {
        Scratch { bytes: vec![0; read_size], text: String::with_capacity(read_size), body: Vec::new() }
    }
}

/// Appends `piece` to the drive's `text`; returns where it is.
pub(crate) fn append(text: &mut String, piece: &str) -> Span {
    let start = text.len();
    text.push_str(piece);
    // A drive reads at most 16 × 64 KiB: far below 4 GiB.
    let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Span { start: at(start), end: at(text.len()) }
}
