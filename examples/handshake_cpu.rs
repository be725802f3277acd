//! Measures what a TLS handshake costs the server in CPU time: the server's CPU (its one thread, from
//! `/proc/PID/schedstat`) before and after N connections, each of which connects, asks for
//! `GET /home/stream?count=0` (head, `: ok`, `retry:`, then the server closes) and reads to the end.
//!
//! ```text
//! cargo run --release --example handshake_cpu -- [CONNECTIONS]
//! ```
//!
//! Four rows, each on a fresh release `mio-sse` on a free loopback port: plain HTTP; HTTPS with a full
//! TLS 1.3 handshake each time (client session resumption off); HTTPS resuming a TLS 1.3 session (the
//! client keeps its tickets, the server its session cache); HTTPS with a full TLS 1.2 handshake. The
//! certificate is made here (rcgen: ECDSA P-256), the clients are rustls with the `ring` provider, one
//! connection at a time so that the server's CPU is all theirs. Figures go to stdout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const REQUEST: &[u8] = b"GET /home/stream?count=0 HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn main() {
    let connections: u32 =
        std::env::args().nth(1).map_or(2_000, |a| a.parse().expect("CONNECTIONS is a number"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo).args(["build", "--release", "--quiet", "--bin", "mio-sse"]).status();
    assert!(built.is_ok_and(|s| s.success()), "cargo build --release --bin mio-sse failed");

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let dir = std::env::temp_dir().join(format!("mio-sse-handshake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key.pem");
    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).expect("a root");
    let client = |versions: &[&'static rustls::SupportedProtocolVersion], resume: bool| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        if !resume {
            config.resumption = Resumption::disabled();
        }
        Arc::new(config)
    };
    let tls_flags =
        ["--tls-cert".to_string(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()];

    println!("{connections} connections, one at a time; server CPU from /proc/PID/schedstat");
    println!("{:<34} {:>14} {:>14}", "", "CPU µs / conn", "wall µs / conn");
    let plain = measure("plain HTTP", &[], connections, exchange);
    let rows: [(&str, Arc<ClientConfig>); 3] = [
        ("HTTPS, TLS 1.3, full handshake", client(&[&rustls::version::TLS13], false)),
        ("HTTPS, TLS 1.3, resumed session", client(&[&rustls::version::TLS13], true)),
        ("HTTPS, TLS 1.2, full handshake", client(&[&rustls::version::TLS12], false)),
    ];
    for (name, config) in rows {
        let cpu = measure(name, &tls_flags, connections, |tcp| {
            let name = ServerName::try_from("localhost").expect("a name");
            let conn = ClientConnection::new(Arc::clone(&config), name).expect("a client");
            exchange(StreamOwned::new(conn, tcp))
        });
        println!("{:<34} {:>14.1}", "  over plain HTTP", cpu - plain);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a server with `flags`, runs `connections` exchanges through `connect`, prints and returns the
/// server's CPU µs per connection.
fn measure(name: &str, flags: &[String], connections: u32, connect: impl Fn(TcpStream) -> usize) -> f64 {
    let (mut server, addr) = start(flags);
    for _ in 0..10 {
        connect(TcpStream::connect(addr).expect("connect")); // warm up: first allocations, page faults
    }
    let before = cpu_ns(server.id());
    let started = Instant::now();
    for i in 0..connections {
        let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let got = connect(tcp);
        assert!(got > 0, "connection #{i} got nothing");
    }
    let wall = started.elapsed();
    let cpu = (cpu_ns(server.id()) - before) as f64 / 1000.0 / f64::from(connections);
    println!("{name:<34} {cpu:>14.1} {:>14.1}", wall.as_secs_f64() * 1e6 / f64::from(connections));
    let _ = server.kill();
    let _ = server.wait();
    cpu
}

/// Sends the request and reads to the end; returns the bytes read.
fn exchange(mut stream: impl Read + Write) -> usize {
    stream.write_all(REQUEST).expect("send the request");
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("read: {e}"),
    }
    got.len()
}

/// A release `mio-sse` with `flags` on a free loopback port, serving.
fn start(flags: &[String]) -> (Child, SocketAddr) {
    let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mio-sse");
    let child = Command::new(exe)
        .args(["--listen", &addr.to_string(), "--log-level", "warn", "--interval-ms", "1000"])
        .args(flags)
        .stdin(Stdio::null())
        .spawn()
        .expect("start mio-sse");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// CPU time of the process's (one) thread so far, in ns: the first field of /proc/PID/schedstat.
fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("read /proc/PID/schedstat");
    stat.split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
}
