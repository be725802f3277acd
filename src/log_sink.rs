//! Logging that never blocks the event loop.
//!
//! `simple_logger` writes each line to stderr with one `write`. Were stderr a pipe whose reader stalls (a
//! stuck log shipper, a terminal paused with Ctrl-S, a parent that never reads), that `write` would block
//! the loop, and every stream with it. So at start fd 2 is pointed at a pipe of our own, which one thread
//! drains at once into a bounded buffer; a second thread copies the buffer to the real stderr at whatever
//! pace it allows. The loop's writes go into a pipe that is always being emptied: they do not wait. When
//! the buffer is full, output is dropped and counted, and the count is written once output moves again.
//!
//! Lines are never cut in the middle: the writer writes whole lines only, at most [`ATOMIC_WRITE`] bytes
//! at a time, which a pipe takes in one piece. The workers of `--workers` write to the supervisor's *real*
//! stderr ([`real_stderr_for_child`]), not into its pipe (where the logger's line and its newline are two
//! writes another process could land between), so no two processes' lines ever run together; each
//! worker's line starts with its prefix.
//!
//! [`restore`] puts the real stderr back and waits (briefly) for what is buffered, so a process's last
//! lines (the shutdown summary) are not lost.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of log output held while the real stderr is slow (1 MiB).
pub const BUFFER_BYTES: usize = 1 << 20;
/// A write to a pipe of at most this many bytes (PIPE_BUF) is never interleaved with another's.
pub const ATOMIC_WRITE: usize = 4096;

#[derive(Default)]
struct Buffer {
    bytes: VecDeque<u8>,
    dropped: u64,
    /// The pipe's write end is gone: write what is left and stop.
    closed: bool,
}

struct Sink {
    real_stderr: OwnedFd,
    writer: Mutex<Option<JoinHandle<()>>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Points fd 2 at a pipe drained by threads, as the module says; every line gets `prefix` in front. Call
/// once, before logging starts.
pub fn install(prefix: Option<String>) -> io::Result<()> {
    let real_stderr = io::stderr().as_fd().try_clone_to_owned()?;
    let (mut reader, writer) = io::pipe()?;
    rustix::stdio::dup2_stderr(&writer)?; // fd 2 is now the pipe; `writer` itself can go
    drop(writer);
    let state = Arc::new((Mutex::new(Buffer::default()), Condvar::new()));

    let drain_state = Arc::clone(&state);
    std::thread::Builder::new().name("log-drain".into()).spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut at_line_start = true;
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let (lock, ready) = &*drain_state;
            let Ok(mut buffer) = lock.lock() else { return };
            if n == 0 {
                buffer.closed = true;
                ready.notify_one();
                return;
            }
            if buffer.bytes.len() + n > BUFFER_BYTES {
                buffer.dropped += n as u64;
            } else {
                let prefix = prefix.as_deref().unwrap_or("").as_bytes();
                prefix_lines(&chunk[..n], prefix, &mut at_line_start, &mut buffer.bytes);
            }
            ready.notify_one();
        }
    })?;

    let mut out = File::from(real_stderr.try_clone()?);
    let write_state = Arc::clone(&state);
    let writer = std::thread::Builder::new().name("log-write".into()).spawn(move || {
        loop {
            let (lock, ready) = &*write_state;
            let Ok(mut buffer) = lock.lock() else { return };
            while buffer.bytes.is_empty() && !buffer.closed {
                buffer = match ready.wait(buffer) {
                    Ok(buffer) => buffer,
                    Err(_) => return,
                };
            }
            let (mut bytes, dropped, closed) =
                (std::mem::take(&mut buffer.bytes), std::mem::take(&mut buffer.dropped), buffer.closed);
            // An unfinished last line waits for its end (unless nothing more will come).
            let complete = if closed {
                bytes.len()
            } else {
                bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
            };
            buffer.bytes = bytes.split_off(complete);
            drop(buffer);
            if dropped > 0 {
                let _ = writeln!(out, "[{dropped} bytes of log output dropped: stderr was not keeping up]");
            }
            for piece in whole_line_pieces(bytes.make_contiguous()) {
                let _ = out.write_all(piece);
            }
            if closed {
                return;
            }
            if complete == 0 {
                // Only part of a line is here: wait for more rather than spin.
                let Ok(buffer) = lock.lock() else { return };
                let _ = ready.wait_timeout(buffer, Duration::from_millis(50));
            }
        }
    })?;
    let _ = SINK.set(Sink { real_stderr, writer: Mutex::new(Some(writer)) });
    Ok(())
}

/// The real stderr, for a child process (a worker) to write to directly: its log lines then reach the
/// terminal or the log shipper as whole lines (each worker writes whole lines in single writes), never
/// cut by this process's own, which go through the pipe. `None` before [`install`].
pub fn real_stderr_for_child() -> Option<std::process::Stdio> {
    let sink = SINK.get()?;
    sink.real_stderr.try_clone().ok().map(std::process::Stdio::from)
}

/// Points fd 2 back at the real stderr and waits up to `patience` for buffered output to be written.
pub fn restore(patience: Duration) {
    let Some(sink) = SINK.get() else { return };
    if rustix::stdio::dup2_stderr(&sink.real_stderr).is_err() {
        return;
    }
    // The pipe's last write end is gone: the drain thread reads EOF and the writer finishes.
    let Some(writer) = sink.writer.lock().ok().and_then(|mut w| w.take()) else { return };
    let deadline = Instant::now() + patience;
    while !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5)); // at exit, off the loop
    }
}

/// Copies `chunk` into `out` with `prefix` at the start of every line.
fn prefix_lines(chunk: &[u8], prefix: &[u8], at_line_start: &mut bool, out: &mut VecDeque<u8>) {
    if prefix.is_empty() {
        out.extend(chunk);
        return;
    }
    for &byte in chunk {
        if *at_line_start {
            out.extend(prefix);
        }
        out.push_back(byte);
        *at_line_start = byte == b'\n';
    }
}

/// `bytes` cut into pieces of at most [`ATOMIC_WRITE`] bytes, each ending at a line's end where one fits
/// (a longer line is cut where it must be).
fn whole_line_pieces(bytes: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(ATOMIC_WRITE)];
        let cut = match window.iter().rposition(|&b| b == b'\n') {
            Some(i) if window.len() < rest.len() => i + 1,
            _ => window.len(),
        };
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_the_prefix_across_chunks() {
        let mut out = VecDeque::new();
        let mut at_start = true;
        prefix_lines(b"one\ntw", b"[worker 2] ", &mut at_start, &mut out);
        prefix_lines(b"o\nthree\n", b"[worker 2] ", &mut at_start, &mut out);
        let text = String::from_utf8(out.into_iter().collect()).unwrap();
        assert_eq!(text, "[worker 2] one\n[worker 2] two\n[worker 2] three\n");
    }

    #[test]
    fn pieces_end_at_line_ends_and_fit_one_atomic_write() {
        let line = format!("{}\n", "x".repeat(999)); // 1,000 bytes a line
        let bytes = line.repeat(10);
        let pieces = whole_line_pieces(bytes.as_bytes());
        assert!(pieces.iter().all(|p| p.len() <= ATOMIC_WRITE && p.ends_with(b"\n")), "{:?}", pieces.len());
        assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), bytes.len());
        assert_eq!(pieces.len(), 3, "4 + 4 + 2 lines");
        let long = "y".repeat(10_000);
        assert_eq!(whole_line_pieces(long.as_bytes()).len(), 3, "a longer line is cut where it must be");
    }
}
