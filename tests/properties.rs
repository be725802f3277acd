//! Property tests of the pure parts (proptest): request parsing does not depend on how bytes are split
//! across reads, never panics on any bytes, and every frame the server encodes reads back exactly through
//! a parser that follows the standard, however its bytes are split.

use mio_sse::http::request::{Limits, Parse, RequestError, parse};
use mio_sse::sse::parser::{Event, Item, Parser};
use mio_sse::sse::{write_comment, write_event, write_retry};
use proptest::prelude::*;

/// Feeds `bytes` to the request parser in pieces cut at `cuts`, as the connection does: resume the
/// blank-line search where the last attempt stopped, and take heads off the front as they complete.
/// Returns each head's outcome: the request's method and target, or the error.
fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Result<(String, String), RequestError>> {
    let mut outcomes = Vec::new();
    let mut buf = Vec::new();
    let mut scanned = 0;
    let mut edges: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    edges.push(bytes.len());
    edges.sort_unstable();
    let mut from = 0;
    for to in edges {
        buf.extend_from_slice(&bytes[from..to.max(from)]);
        from = to.max(from);
        loop {
            match parse(&buf, scanned, Limits::default()) {
                Ok(Parse::Partial) => {
                    scanned = buf.len();
                    break;
                }
                Ok(Parse::Complete { request, head_len }) => {
                    outcomes.push(Ok((format!("{:?}", request.method), request.target)));
                    buf.drain(..head_len);
                    scanned = 0;
                }
                Err(e) => {
                    outcomes.push(Err(e));
                    return outcomes; // the connection answers and closes
                }
            }
        }
    }
    outcomes
}

fn request_strategy() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS", "DELETE"]);
    let path = "/[a-z0-9._~%-]{0,20}(\\?[a-z0-9=&]{0,20})?";
    let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,30}");
    let line_end = prop::sample::select(vec!["\r\n", "\n"]);
    (method, path, prop::collection::vec(header, 0..6), line_end).prop_map(|(method, path, headers, eol)| {
        let mut raw = format!("{method} {path} HTTP/1.1{eol}Host: localhost{eol}");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {}{eol}", value.trim()));
        }
        raw.push_str(eol);
        raw.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Several pipelined requests, cut anywhere: the same heads come out, in order, as when read whole.
    #[test]
    fn parsing_does_not_depend_on_how_reads_split_the_bytes(
        requests in prop::collection::vec(request_strategy(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes: Vec<u8> = requests.concat();
        let whole = parse_in_pieces(&bytes, &[]);
        let pieces = parse_in_pieces(&bytes, &cuts);
        prop_assert_eq!(&pieces, &whole);
        let one_by_one: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(&parse_in_pieces(&bytes, &one_by_one), &whole);
    }

    /// Any bytes at all: no panic, and the outcome does not depend on the split either.
    #[test]
    fn any_bytes_parse_without_panic_and_the_same_in_pieces(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(parse_in_pieces(&bytes, &cuts), parse_in_pieces(&bytes, &[]));
    }

    /// Every event the server encodes reads back exactly (data lines joined by LF, whatever line breaks
    /// the payload had), in any split, through the standard's parser.
    #[test]
    fn encoded_events_read_back_exactly(
        events in prop::collection::vec(("\\PC{0,40}|[a-z\r\n ]{0,20}", proptest::option::of("[a-z]{1,8}"), any::<u32>()), 1..5),
        comment in "[ -~\r\n]{0,30}",
        retry in any::<u32>(),
        piece in 1usize..40,
    ) {
        let mut stream = Vec::new();
        write_comment(&mut stream, &comment);
        write_retry(&mut stream, u64::from(retry));
        for (data, name, id) in &events {
            write_event(&mut stream, name.as_deref(), Some(&id.to_string()), data);
        }
        let mut parser = Parser::new(1 << 20);
        let mut items = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut items).unwrap();
        }
        let got: Vec<Event> = items.iter().filter_map(|i| match i { Item::Event(e) => Some(e.clone()), _ => None }).collect();
        prop_assert!(items.contains(&Item::Retry(u64::from(retry))));
        prop_assert_eq!(got.len(), events.len());
        for (event, (data, name, id)) in got.iter().zip(&events) {
            // The standard's line breaks: CRLF, CR and LF all end a line; data lines are joined by LF.
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            let expected = expected.strip_suffix('\n').unwrap_or(&expected);
            prop_assert_eq!(&event.data, expected);
            prop_assert_eq!(&event.event_type, name.as_deref().unwrap_or("message"));
            prop_assert_eq!(&event.last_event_id, &id.to_string());
        }
    }
}
