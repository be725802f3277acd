//! The whole connection state machine over a real loopback socket: one server runs in a thread for the
//! fuzzing session; each input is sent on a new connection in pieces of arbitrary sizes, then the
//! connection is closed. The server must survive every input and keep serving (checked with a plain
//! request every 256 inputs). A panic in the server thread aborts the fuzzer: a finding.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser as _;
use libfuzzer_sys::fuzz_target;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let config = mio_sse::Config::try_parse_from([
            "mio-sse", "--listen", "127.0.0.1:0", "--interval-ms", "5", "--request-timeout-ms", "200",
            "--max-connections", "512", "--static-dir", "/nonexistent",
        ])
        .unwrap();
        // The server is single-threaded (not Send): build it in its own thread, hand back the address.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut server = mio_sse::Server::bind(config, 512).unwrap();
            tx.send(server.local_addr()).unwrap();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.run()));
            if result.is_err() {
                std::process::abort(); // a panic in the loop is a finding
            }
        });
        let addr = rx.recv().unwrap();
        addr
    })
}

fn still_serves(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"), "the server stopped serving");
}

fuzz_target!(|input: &[u8]| {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let addr = server();
    let piece = usize::from(input.first().copied().unwrap_or(1)).max(1);
    if let Ok(mut stream) = TcpStream::connect(addr) {
        let _ = stream.set_nodelay(true);
        for chunk in input.get(1..).unwrap_or_default().chunks(piece) {
            if stream.write_all(chunk).is_err() {
                break;
            }
        }
        // Read a little of the answer, then hang up, mid-stream or not.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(2)));
        let _ = stream.read(&mut [0u8; 4096]);
    }
    if RUNS.fetch_add(1, Ordering::Relaxed) % 256 == 0 {
        still_serves(addr);
    }
});
