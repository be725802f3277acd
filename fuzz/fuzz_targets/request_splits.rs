//! The request parser fed arbitrary bytes in arbitrary splits, as a connection would: the heads that
//! come out (or the error) must not depend on the split, and routing whatever parses must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_sse::http::request::{Limits, Parse, parse};
use mio_sse::{http::query, static_files};

/// Parses `bytes` delivered in pieces of the given sizes; returns a description of each outcome.
fn outcomes(bytes: &[u8], sizes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let (mut buf, mut scanned, mut at) = (Vec::new(), 0, 0);
    let mut sizes = sizes.iter().map(|s| usize::from(*s).max(1)).cycle();
    while at < bytes.len() {
        let take = sizes.next().unwrap_or(bytes.len()).min(bytes.len() - at);
        buf.extend_from_slice(&bytes[at..at + take]);
        at += take;
        loop {
            match parse(&buf, scanned, Limits::default()) {
                Ok(Parse::Partial) => {
                    scanned = buf.len();
                    break;
                }
                Ok(Parse::Complete { request, head_len }) => {
                    // Whatever parses goes through the same checks a real request meets.
                    let _ = static_files::normalize(request.path());
                    let _ = query::params(query::query_of(&request.target));
                    out.push(format!("{:?} {} {}", request.method, request.target, head_len));
                    buf.drain(..head_len);
                    scanned = 0;
                }
                Err(e) => {
                    out.push(format!("error {e}"));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    // The first bytes choose the split sizes, the rest is the stream.
    let split = usize::from(input.first().copied().unwrap_or(0) % 16);
    let (sizes, bytes) = input.get(1..).unwrap_or_default().split_at(split.min(input.len().saturating_sub(1)));
    assert_eq!(outcomes(bytes, sizes), outcomes(bytes, &[255]), "the split changed the outcome");
});
