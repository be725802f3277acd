//! Flags, their defaults and their validation: everything a user can set, in one place.
//!
//! `--help` is generated from the doc comments below, so they are written for the user. Values that
//! depend on the machine (the connection cap follows the process's fd limit) are resolved by
//! [`Config::max_connections`], not baked into defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// File descriptors kept back from the connection cap: stdio, the epoll instance, the listener, and a
/// margin for the log and for connections accepted past the cap only to be told so ([`OVERFLOW_SLOTS`]).
pub const RESERVED_FDS: u64 = 32;

/// Connections accepted past `--max-connections`, only to read their request and answer "come back
/// later" (an event stream gets `200` + a jittered `retry:`, anything else `503`). Past these, a new
/// connection is closed at once, so a flood can never take the fds the open streams need.
pub const OVERFLOW_SLOTS: usize = 64;

/// The longest interval or timeout a flag accepts: one day. Longer ones are almost surely typos, and
/// bounding them keeps every `Instant + Duration` in the server far from overflow.
pub const MAX_MS: u64 = 86_400_000;

/// A Server-Sent Events server on one mio event loop.
///
/// `GET /home/events` streams the time of day (UTC, `HH:MM:SS.mmm`) every --interval-ms; every other
/// path is a file from --static-dir (`/` is the demo page).
#[derive(Debug, Clone, Parser)]
#[command(name = "mio-sse", version)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the log says which.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Milliseconds between ticks on each stream (each stream keeps its own phase). 0 turns ticks off.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub interval_ms: u64,

    /// The `retry:` (reconnection time, ms) sent at the start of every stream.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub retry_ms: u64,

    /// Milliseconds of silence on a stream after which a comment line is sent, so proxies and load
    /// balancers do not cut it as idle. 0 turns heartbeats off.
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub heartbeat_ms: u64,

    /// Smallest tick interval a client may ask for with `?interval_ms=` (smaller asks are raised to it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub min_interval_ms: u64,

    /// Largest tick payload a client may ask for with `?bytes=` (larger asks are lowered to it).
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(12..=16_777_216))]
    pub max_payload_bytes: u32,

    /// Largest body `POST /home/events` accepts; larger ones get 413.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(0..=16_777_216))]
    pub max_body_bytes: u64,

    /// Published events kept for replay to clients that reconnect with `Last-Event-ID`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub replay_events: u64,

    /// Bytes of published events kept for replay (the newest event is always kept).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub replay_bytes: usize,

    /// Topics that may exist at once, the default topic included. A stream or a publish that would make
    /// one more gets 503 (counted in `mio_sse_topics_refused_total`). A topic with no stream and no event
    /// held for replay is reclaimed at once; an idle one costs about 200 bytes.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_topics: u32,

    /// Topics one stream may be on (`?topic=` repeated); a stream asking for more gets 400.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub max_topics_per_stream: u8,

    /// Lets any peer publish with `Authorization: Bearer TOKEN` (then required from every peer). Without
    /// it, only loopback peers may publish.
    #[arg(long, value_parser = non_empty_token)]
    pub publish_token: Option<String>,

    /// A host name the server answers to besides loopback names and addresses (repeat for several).
    /// While the server listens on a loopback address, a request whose `Host` is anything else is refused
    /// with 421: a web page that rebinds its own DNS name to 127.0.0.1 cannot read the streams or the
    /// metrics, nor publish. Listening on another address turns the check off.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,

    /// Bytes per second that all streams shaped with `?interval_ms=` or `?bytes=` may ask for together
    /// (each: its tick size over its interval). A shaped stream that would go past it is refused with 503,
    /// counted in `mio_sse_shaped_refused_total`. 0: no budget.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_shaped_bytes_per_s: u64,

    /// An origin allowed to use the server cross-origin (repeat for several). Its requests get
    /// `Access-Control-Allow-Origin: ORIGIN` and `Access-Control-Allow-Credentials: true` (for
    /// `withCredentials`). `*` allows any origin, without credentials.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Publish through Redis and receive every publish from it (`redis://HOST:PORT[/PREFIX]`, an IP
    /// address), so that several instances deliver the same events with the same ids. See
    /// docs/scaling-out.md.
    #[arg(long)]
    pub redis: Option<String>,

    /// Worker processes: each its own event loop with its own SO_REUSEPORT listener on --listen, under a
    /// supervisor that restarts a worker that dies and forwards SIGTERM. More than 1 needs --redis.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,

    /// Internal: this process is a worker; bind the listener with SO_REUSEPORT.
    #[arg(long, hide = true)]
    pub reuse_port: bool,

    /// Internal: the worker's supervisor, whose death the worker follows.
    #[arg(long, hide = true)]
    pub supervisor_pid: Option<u32>,

    /// Internal: which worker this is (its log lines say so).
    #[arg(long, hide = true)]
    pub worker_index: Option<usize>,

    /// Serve HTTPS: the certificate chain (PEM, leaf first) the listener presents. Needs --tls-key. The
    /// listener then speaks TLS 1.2/1.3 only (ALPN `http/1.1`); a file that cannot be used stops the start.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Directory of static files, loaded into memory at start. When it cannot be read, the demo page
    /// built into the binary is served instead.
    #[arg(long, default_value = "static")]
    pub static_dir: PathBuf,

    /// Most connections served at once [default: the process's open-file limit less a reserve].
    /// Past it, event-stream requests get 200 with a jittered `retry:` and a close (a browser's
    /// EventSource gives up for good on any other status), other requests 503 with Retry-After.
    #[arg(long)]
    pub max_connections: Option<usize>,

    /// Largest request head (request line and headers) in bytes: a longer request line gets 414, a longer
    /// head 431. At most 64 header lines are read (431 past that).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u64).range(256..=1_048_576))]
    pub max_head_bytes: u64,

    /// Milliseconds a client has to send a complete request head (from its first byte, or from
    /// connecting) before it gets 408 and is closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub request_timeout_ms: u64,

    /// Milliseconds an idle keep-alive connection (between requests) is kept open.
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub keepalive_timeout_ms: u64,

    /// A stream that owes bytes but could not write any for this many milliseconds is closed: its peer
    /// vanished without a FIN, or stopped reading. 0 turns it off.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub write_stall_timeout_ms: u64,

    /// Bytes one stream may be behind (its own queue plus published events it has not sent) before it is
    /// dropped as a slow reader. Its client comes back with `Last-Event-ID` and catches up from the
    /// replay buffer.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_pending_bytes: u64,

    /// On SIGINT or SIGTERM: milliseconds to finish sending what is queued before exiting anyway. Every
    /// stream ends with a jittered `retry:` so that clients come back spread out. A second signal exits at
    /// once.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub shutdown_timeout_ms: u64,

    /// SO_SNDBUF for each connection, in bytes [default: the kernel's autotuning]. A small value caps the
    /// kernel memory a stream that stops reading can hold (the kernel doubles it for bookkeeping), and
    /// makes such a stream reach backpressure sooner.
    #[arg(long)]
    pub send_buffer_bytes: Option<usize>,

    /// Log level: error, warn, info, debug or trace. Per-event lines are debug; at info a stream's opening
    /// and end are a line each, and past 20 a second they are summed up in one line a second, so info
    /// stays readable with many thousands of clients.
    #[arg(long, default_value = "info")]
    pub log_level: log::LevelFilter,
}

/// A publish token must not be empty: an empty one would match an `Authorization` header with nothing
/// after `Bearer ` (or none at all).
fn non_empty_token(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("the publish token must not be empty".into());
    }
    Ok(value.to_owned())
}

impl Config {
    /// Flags from the command line, exiting with a message on bad ones (clap's behaviour).
    pub fn from_args() -> Config {
        Config::parse()
    }

    /// The tick interval, or `None` when ticks are off.
    pub fn tick_interval(&self) -> Option<Duration> {
        (self.interval_ms > 0).then(|| Duration::from_millis(self.interval_ms))
    }

    /// The heartbeat's silence threshold, or `None` when heartbeats are off.
    pub fn heartbeat(&self) -> Option<Duration> {
        (self.heartbeat_ms > 0).then(|| Duration::from_millis(self.heartbeat_ms))
    }

    /// The write-stall timeout, or `None` when it is off.
    pub fn write_stall_timeout(&self) -> Option<Duration> {
        (self.write_stall_timeout_ms > 0).then(|| Duration::from_millis(self.write_stall_timeout_ms))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms)
    }

    /// The connection cap for a process whose open-file limit is `fd_limit`: the flag's value, or what
    /// fits the limit. A cap above what fits is allowed with a warning (accepting then pauses whenever the
    /// process runs out of fds, and resumes by itself); 0 is an error.
    pub fn max_connections(&self, fd_limit: u64) -> Result<usize, String> {
        let fit = fd_limit.saturating_sub(RESERVED_FDS + OVERFLOW_SLOTS as u64) as usize;
        match self.max_connections {
            None if fit == 0 => {
                Err(format!("the open-file limit ({fd_limit}) leaves no room for connections"))
            }
            None => Ok(fit),
            Some(0) => Err("--max-connections must be at least 1".into()),
            Some(n) => {
                if n > fit {
                    log::warn!(
                        "--max-connections {n} is more than the open-file limit {fd_limit} allows ({fit}: \
                         {RESERVED_FDS} fds are reserved and {OVERFLOW_SLOTS} kept for over-capacity answers); \
                         accepting will pause whenever the fds run out"
                    );
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Config::try_parse_from(["mio-sse"]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.tick_interval(), Some(Duration::from_secs(3)));
        assert_eq!(config.static_dir, PathBuf::from("static"));
        assert_eq!(config.log_level, log::LevelFilter::Info);
        assert_eq!(config.max_connections(20_000), Ok(20_000 - 96));
    }

    #[test]
    fn the_cap_follows_the_fd_limit_unless_set() {
        let config = Config::try_parse_from(["mio-sse", "--max-connections", "19000"]).unwrap();
        assert_eq!(config.max_connections(20_000), Ok(19_000));
        assert_eq!(config.max_connections(1024), Ok(19_000), "allowed, with a warning");
        let zero = Config::try_parse_from(["mio-sse", "--max-connections", "0"]).unwrap();
        assert!(zero.max_connections(20_000).is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Config::try_parse_from(["mio-sse", "--listen", "nowhere"]).is_err());
        assert!(Config::try_parse_from(["mio-sse", "--interval-ms", "-1"]).is_err());
        assert!(Config::try_parse_from(["mio-sse", "--log-level", "loud"]).is_err());
        assert!(
            Config::try_parse_from(["mio-sse", "--publish-token", ""]).is_err(),
            "an empty token admits all"
        );
        assert!(Config::try_parse_from(["mio-sse", "--publish-token", " "]).is_err());
        assert!(Config::try_parse_from(["mio-sse", "--request-timeout-ms", "0"]).is_err());
        assert!(Config::try_parse_from(["mio-sse", "--interval-ms", "86400001"]).is_err());
        let off = Config::try_parse_from(["mio-sse", "--interval-ms", "0"]).unwrap();
        assert_eq!(off.tick_interval(), None);
    }
}
