//! The SSE parser fed arbitrary bytes in arbitrary splits: no panic, and the same items whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_sse::sse::parser::Parser;

fuzz_target!(|input: &[u8]| {
    let piece = usize::from(input.first().copied().unwrap_or(1)).max(1);
    let bytes = input.get(1..).unwrap_or_default();
    let (mut whole, mut split) = (Vec::new(), Vec::new());
    let whole_ok = Parser::new(4096).feed(bytes, &mut whole).is_ok();
    let mut parser = Parser::new(4096);
    let split_ok = bytes.chunks(piece).all(|chunk| parser.feed(chunk, &mut split).is_ok());
    assert_eq!(whole_ok, split_ok);
    if whole_ok {
        assert_eq!(whole, split);
    }
});
