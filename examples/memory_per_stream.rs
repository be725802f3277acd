//! Measures what an open event stream costs the server: resident memory (user space) and kernel socket
//! memory per stream, with N streams held open, and checks that every one of them keeps ticking.
//!
//! ```text
//! cargo run --release --example memory_per_stream -- [--tls] [--topics K] [STREAMS] [INTERVAL_MS]
//! ```
//!
//! With `--topics K` stream i is on topic `t{i mod K}` (`?topic=`): the difference with a run on the
//! default topic is what K topics cost, each with its subscribers' list.
//!
//! With `--tls` the server speaks HTTPS (a certificate made here with rcgen, ECDSA P-256) and each stream
//! is a rustls client (TLS 1.3); STREAMS defaults to 5,000 then, as every client's TLS state lives in this
//! process too.
//!
//! It builds and starts the release `mio-sse` binary on a free loopback port, reads its RSS with no
//! stream open, opens STREAMS streams (default 19,000: one process may hold 20,000 fds here, and this
//! client holds one per stream too), reads each one's first tick, reads RSS and the kernel's TCP memory
//! again, then waits for the next tick on every stream. Figures go to stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A client's end of one stream: a TCP socket, or TLS over one.
trait Client: Read + Write {}
impl<T: Read + Write> Client for T {}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let tls = args.next_if(|a| a == "--tls").is_some();
    let topics: usize = match args.next_if(|a| a == "--topics") {
        Some(_) => args.next().and_then(|k| k.parse().ok()).filter(|k| *k > 0).expect("--topics K: a count"),
        None => 0,
    };
    let default_streams = if tls { 5_000 } else { 19_000 };
    let streams: usize = args.next().map_or(default_streams, |a| a.parse().expect("STREAMS is a number"));
    let interval_ms: u64 = args.next().map_or(1_000, |a| a.parse().expect("INTERVAL_MS is a number"));
    raise_fd_limit();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo).args(["build", "--release", "--quiet", "--bin", "mio-sse"]).status();
    assert!(built.is_ok_and(|s| s.success()), "cargo build --release --bin mio-sse failed");
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mio-sse");
    let cert = tls.then(TestCert::new);
    let mut server = Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--interval-ms", &interval_ms.to_string(), "--log-level", "warn"])
        .args(["--max-topics", &(topics + 1).max(100_000).to_string()])
        .args(cert.as_ref().map_or(Vec::new(), TestCert::flags))
        .args(["--static-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/static")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mio-sse");
    // With --log-level warn the listening line is not printed: find the port from /proc instead.
    let pid = server.id();
    let addr = wait_for_listen_port(pid);
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server| {line}");
        }
    });

    let idle_rss = rss_bytes(pid);
    let idle_kernel = kernel_tcp_bytes();
    let idle_slab = slab_bytes();
    let started = Instant::now();
    let mut conns: Vec<Box<dyn Client>> = Vec::with_capacity(streams);
    for i in 0..streams {
        let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut stream: Box<dyn Client> = match &cert {
            Some(cert) => Box::new(cert.connect(tcp)),
            None => Box::new(tcp),
        };
        let query = if topics > 0 { format!("?topic=t{}", i % topics) } else { String::new() };
        let request = format!("GET /home/events{query} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        conns.push(stream);
    }
    let mut failures = 0;
    for stream in &mut conns {
        if !read_frames(stream.as_mut(), 1, true) {
            failures += 1;
        }
    }
    let open_time = started.elapsed();
    // Let the allocator and kernel settle, then sample.
    std::thread::sleep(Duration::from_millis(500));
    let full_rss = rss_bytes(pid);
    let full_kernel = kernel_tcp_bytes();
    let full_slab = slab_bytes();

    // Every stream must keep ticking: the next tick within two intervals.
    let tick_started = Instant::now();
    let mut silent = 0;
    for stream in &mut conns {
        if !read_frames(stream.as_mut(), 1, false) {
            silent += 1;
        }
    }
    let per_stream = (full_rss.saturating_sub(idle_rss)) as f64 / streams as f64;
    let kernel_per_stream = (full_kernel.saturating_sub(idle_kernel)) as f64 / streams as f64;
    println!(
        "streams opened:               {streams} in {:.2} s ({failures} failed)",
        open_time.as_secs_f64()
    );
    println!("server RSS, idle:             {} KiB", idle_rss / 1024);
    println!("server RSS, {streams} streams:   {} KiB", full_rss / 1024);
    if topics > 0 {
        println!("topics:                       {topics} (stream i on t{{i mod {topics}}})");
    }
    println!("server user memory / stream:  {per_stream:.0} bytes");
    let slab_entry = if tls {
        std::mem::size_of::<mio_sse::conn::Connection<mio_sse::conn::tls::TlsSocket>>()
    } else {
        std::mem::size_of::<mio_sse::conn::Connection>()
    };
    println!(
        "  of which the slab entry:    {slab_entry} bytes (size_of Connection; the rest is {}the timer entry and allocator slack)",
        if tls { "rustls's boxed connection state, " } else { "" }
    );
    println!(
        "kernel TCP memory / stream:   {kernel_per_stream:.0} bytes (both ends of loopback; /proc/net/sockstat)"
    );
    println!(
        "kernel slab / connection end: {:.0} bytes (socket, inode, file, epoll entry; /proc/meminfo Slab over 2 × streams)",
        full_slab.saturating_sub(idle_slab) as f64 / (2 * streams) as f64
    );
    println!(
        "next tick on every stream:    {} of {streams} within {:.2} s",
        streams - silent,
        tick_started.elapsed().as_secs_f64()
    );
    drop(conns);
    let _ = server.kill();
    let _ = server.wait();
    if failures > 0 || silent > 0 {
        std::process::exit(1);
    }
}

/// Reads until `n` more SSE frames arrived (after the response head when `with_head`).
fn read_frames(stream: &mut dyn Client, n: usize, with_head: bool) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let done = |b: &[u8]| {
        let body = if with_head {
            match b.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) => &b[end + 4..],
                None => return false,
            }
        } else {
            b
        };
        body.windows(2).filter(|w| w == b"\n\n").count() >= n
    };
    while !done(&got) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    true
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Kernel memory used by TCP sockets, system-wide (`TCP: ... mem N` in pages).
fn kernel_tcp_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The kernel's slab memory, system-wide (`Slab:` in /proc/meminfo).
fn slab_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// Finds the server's listening port from /proc/net/tcp via its socket inodes.
fn wait_for_listen_port(pid: u32) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the server did not start listening");
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter_map(|l| {
                        l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode in column 9
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = u16::from_str_radix(cols[1].rsplit(':').next().unwrap(), 16).unwrap();
                return SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A self-signed certificate for `localhost` (rcgen), as PEM files, and a client config that trusts it.
struct TestCert {
    dir: std::path::PathBuf,
    client: Arc<ClientConfig>,
}

impl TestCert {
    fn new() -> TestCert {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
        let dir = std::env::temp_dir().join(format!("mio-sse-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("cert.pem");
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).expect("key.pem");
        let mut roots = RootCertStore::empty();
        roots.add(made.cert.der().clone()).expect("a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TestCert { dir, client: Arc::new(client) }
    }

    fn flags(&self) -> Vec<String> {
        let path = |name: &str| self.dir.join(name).display().to_string();
        vec!["--tls-cert".into(), path("cert.pem"), "--tls-key".into(), path("key.pem")]
    }

    /// A TLS client over `tcp`, its handshake done.
    fn connect(&self, tcp: TcpStream) -> StreamOwned<ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").expect("a name");
        let mut tls =
            StreamOwned::new(ClientConnection::new(Arc::clone(&self.client), name).expect("client"), tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
        }
        tls
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}
