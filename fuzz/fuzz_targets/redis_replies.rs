//! Redis replies, arbitrary bytes in arbitrary splits, through the backplane's reader: no panic, no stack
//! overflow, limits kept, and the same replies (or the same error) whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_sse::backplane::entries::entries_of;
use mio_sse::backplane::resp::{MAX_DEPTH, Reader, Reply};

/// Every reply in `bytes`, fed in pieces of `piece` bytes; stops at the first error.
fn read(bytes: &[u8], piece: usize) -> (Vec<Reply>, Option<String>) {
    let mut reader = Reader::default();
    let mut out = Vec::new();
    for chunk in bytes.chunks(piece) {
        reader.extend(chunk);
        loop {
            match reader.next_reply() {
                Ok(Some(reply)) => out.push(reply),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

fn depth(reply: &Reply) -> usize {
    match reply {
        Reply::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|input: &[u8]| {
    let piece = usize::from(input.first().copied().unwrap_or(1)).max(1);
    let bytes = input.get(1..).unwrap_or_default();
    let whole = read(bytes, bytes.len().max(1));
    let split = read(bytes, piece);
    assert_eq!(whole, split);
    for reply in whole.0 {
        assert!(depth(&reply) <= MAX_DEPTH);
        // The meaning of a reply is checked without panicking too.
        let _ = entries_of(reply.clone(), true);
        let _ = entries_of(reply, false);
    }
});
