//! The parser's lending API ([`Parser::feed_with`]) allocates nothing per event once its buffers have
//! grown to the stream's sizes: a load generator reads millions of events on a core it shares with the
//! server it measures, and an allocation per event was a fifth of its time.
//!
//! Counted by a global allocator that counts this thread's allocations only (the test harness's other
//! threads allocate too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mio_sse_wire::parser::{ItemRef, Parser};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    // `try_with`: a thread being torn down has no counter, and must still allocate.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed unchanged to the system allocator, which keeps `GlobalAlloc`'s contract;
// the counter is a const-initialized thread-local `Cell` that itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller keeps `alloc`'s contract, which is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`; the caller keeps `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn reading_events_allocates_nothing_per_event_once_warm() {
    // Events as a fan-out delivers them: an id, a named type, data; split across reads mid-line.
    let mut stream = Vec::new();
    for id in 1..=1000u32 {
        let line =
            format!("id: {id}\nevent: tick\ndata: seq={id} t=1795678000000000000 xxxxxxxx\n\n: ping\n\n");
        stream.extend_from_slice(line.as_bytes());
    }
    let mut parser = Parser::new(1 << 20);
    let (mut events, mut data_bytes) = (0u32, 0usize);
    let mut read = |parser: &mut Parser, bytes: &[u8]| {
        parser
            .feed_with(bytes, |item| {
                if let ItemRef::Event(event) = item {
                    events += 1;
                    data_bytes += event.data.len() + event.last_event_id.len() + event.event_type.len();
                }
            })
            .expect("lines within the limit");
    };
    // Reads of 97 bytes: lines straddle reads, so the line buffer is used too. The first few reads grow
    // the buffers; after them, nothing more is allocated.
    let mut pieces = stream.chunks(97);
    for piece in pieces.by_ref().take(20) {
        read(&mut parser, piece);
    }
    let before = allocations();
    for piece in pieces {
        read(&mut parser, piece);
    }
    let allocated = allocations() - before;
    assert_eq!(events, 1000);
    assert!(data_bytes > 0);
    assert_eq!(allocated, 0, "{allocated} allocations while reading the events after the first twenty reads");
}
