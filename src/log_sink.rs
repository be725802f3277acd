//! Logging that never blocks the event loop.
//!
//! `simple_logger` writes each line to stderr with one `write`. Were stderr a pipe whose reader stalls (a
//! stuck log shipper, a terminal paused with Ctrl-S, a parent that never reads), that `write` would block
//! the loop, and every stream with it. So at start fd 2 is pointed at a pipe of our own, which one thread
//! drains at once into a bounded buffer; a second thread copies the buffer to the real stderr at whatever
//! pace it allows. The loop's writes go into a pipe that is always being emptied: they do not wait. When
//! the buffer is full, output is dropped and counted, and the count is written once output moves again.
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

/// Points fd 2 at a pipe drained by threads, as the module says. Call once, before logging starts.
pub fn install() -> io::Result<()> {
    let real_stderr = io::stderr().as_fd().try_clone_to_owned()?;
    let (mut reader, writer) = io::pipe()?;
    rustix::stdio::dup2_stderr(&writer)?; // fd 2 is now the pipe; `writer` itself can go
    drop(writer);
    let state = Arc::new((Mutex::new(Buffer::default()), Condvar::new()));

    let drain_state = Arc::clone(&state);
    std::thread::Builder::new().name("log-drain".into()).spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
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
                buffer.bytes.extend(&chunk[..n]);
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
            let (bytes, dropped, closed) =
                (std::mem::take(&mut buffer.bytes), std::mem::take(&mut buffer.dropped), buffer.closed);
            drop(buffer);
            if dropped > 0 {
                let _ = writeln!(out, "[{dropped} bytes of log output dropped: stderr was not keeping up]");
            }
            let (front, back) = bytes.as_slices();
            let _ = out.write_all(front).and_then(|()| out.write_all(back));
            if closed {
                return;
            }
        }
    })?;
    let _ = SINK.set(Sink { real_stderr, writer: Mutex::new(Some(writer)) });
    Ok(())
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
