//! One service, many workers: how the workers of `--workers` show one set of figures.
//!
//! Each worker connects to its supervisor over a Unix socket in the abstract namespace
//! (`@mio-sse-supervisor-<pid>`: no file to clean up, gone with the supervisor) and once a second sends
//! a report, one line: `r <worker> <figures…>`. The supervisor keeps each worker's latest report and
//! once a second sends every worker the sums: `t <workers> <figures…>`. A worker answering `/metrics`
//! shows those totals, so one scrape on the service's address tells the whole service, whichever worker
//! the kernel handed the scrape to. Each part of a total is at most about two seconds old.
//!
//! Rules:
//! - Neither loop ever waits on the link: it is non-blocking, and a report that finds the socket full is
//!   dropped (the next one, a second later, carries the same counters, grown). Nothing queues without
//!   bound: at most one line is pending.
//! - Lines are at most [`MAX_LINE`] bytes. A peer that sends a longer one, or one that does not parse,
//!   is dropped and logged; a worker without a link shows its own figures.
//! - Why not shared memory, as nginx's stub_status does: viewing mapped bytes as atomics takes `unsafe`.
//!   A socket to the supervisor, which is there anyway to watch the workers, takes none.

use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixAddr;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use crate::metrics::{Counters, Gauges};

/// How often a worker reports, and the supervisor sends totals.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The longest line either side accepts.
pub const MAX_LINE: usize = 4096;
/// Reads of 4 KiB one readiness event may take before the peer counts as flooding.
pub const READS_PER_EVENT: usize = 16;

/// The supervisor's address for its workers: an abstract Unix socket named after its pid.
pub fn supervisor_addr(supervisor_pid: u32) -> io::Result<UnixAddr> {
    UnixAddr::from_abstract_name(format!("mio-sse-supervisor-{supervisor_pid}"))
}

/// A worker's or a service's figures, as they travel.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub counters: Counters,
    pub gauges: Gauges,
}

impl Figures {
    /// One line: `tag id value…` (the backplane as two values: present, up).
    pub fn encode(&self, tag: char, id: u64) -> String {
        let mut copy = self.clone();
        let mut line = format!("{tag} {id}");
        for value in copy.counters.values_mut().into_iter().chain(copy.gauges.values_mut()) {
            line.push(' ');
            line.push_str(&value.to_string());
        }
        let (present, up) = match self.gauges.backplane_up {
            Some(up) => (1, up),
            None => (0, 0),
        };
        line.push_str(&format!(" {present} {up}\n"));
        line
    }

    /// The tag, id and figures of a line; `None` if it is not exactly one.
    pub fn decode(line: &str) -> Option<(char, u64, Figures)> {
        let mut words = line.split_ascii_whitespace();
        let tag = words.next().filter(|w| w.len() == 1)?.chars().next()?;
        let id = words.next()?.parse().ok()?;
        let mut figures = Figures::default();
        for value in figures.counters.values_mut().into_iter().chain(figures.gauges.values_mut()) {
            *value = words.next()?.parse().ok()?;
        }
        let (present, up): (u64, u64) = (words.next()?.parse().ok()?, words.next()?.parse().ok()?);
        figures.gauges.backplane_up = (present > 0).then_some(up);
        if words.next().is_some() {
            return None;
        }
        Some((tag, id, figures))
    }

    /// Adds the counters of a process that is gone (its gauges went with it), so that a service's
    /// counters never go back when a worker is replaced.
    pub fn add_counters(&mut self, gone: &Figures) {
        let mut theirs = gone.counters.clone();
        for (mine, theirs) in self.counters.values_mut().into_iter().zip(theirs.values_mut()) {
            *mine += *theirs;
        }
    }

    /// Adds `other` in: counters and gauges sum; the backplane counts as up only where it is up everywhere.
    pub fn add(&mut self, other: &Figures) {
        let mut theirs = other.clone();
        let mine = self.counters.values_mut().into_iter().chain(self.gauges.values_mut());
        for (mine, theirs) in
            mine.zip(theirs.counters.values_mut().into_iter().chain(theirs.gauges.values_mut()))
        {
            *mine += *theirs;
        }
        self.gauges.backplane_up = match (self.gauges.backplane_up, other.gauges.backplane_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// One end of a link: a non-blocking Unix stream, its unfinished input line, and at most one pending
/// output line.
#[derive(Debug)]
pub struct Link {
    pub socket: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
}

impl Link {
    pub fn new(socket: UnixStream) -> Link {
        Link { socket, inbuf: Vec::new(), out: Vec::new() }
    }

    /// Queues `line` (dropping a line still pending: the newer one says more) and writes what it can.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(line.as_bytes());
        self.flush()
    }

    /// Writes the pending line until done or `WouldBlock`.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.socket.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads to `WouldBlock` and returns the complete lines; an error (EOF included), a line over
    /// [`MAX_LINE`], or more than [`READS_PER_EVENT`] reads without `WouldBlock` ends the link. (The
    /// protocol is a line a second: a peer that fills 16 reads at once is not speaking it, and stopping
    /// short of `WouldBlock` would leave an edge that never comes again.)
    pub fn read_lines(&mut self) -> io::Result<Vec<String>> {
        let mut chunk = [0u8; 4096];
        let mut drained = false;
        for _ in 0..READS_PER_EVENT {
            match self.socket.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !drained {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "far more than a line a second"));
        }
        let mut lines = Vec::new();
        while let Some(end) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=end).collect();
            lines.push(String::from_utf8(line).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?);
        }
        if self.inbuf.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a line over the limit"));
        }
        Ok(lines)
    }
}

/// A worker's end: its reports out, the service's totals in.
#[derive(Debug)]
pub struct WorkerLink {
    link: Link,
    index: u64,
    next_report: Instant,
    /// The service's totals, as last received.
    pub totals: Option<Figures>,
}

impl WorkerLink {
    /// Connects to the supervisor (non-blocking) and registers with `token`.
    pub fn connect(
        supervisor_pid: u32,
        index: u64,
        registry: &Registry,
        token: Token,
        now: Instant,
    ) -> io::Result<WorkerLink> {
        let mut socket = UnixStream::connect_addr(&supervisor_addr(supervisor_pid)?)?;
        registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(WorkerLink { link: Link::new(socket), index, next_report: now, totals: None })
    }

    /// When the next report is due.
    pub fn deadline(&self) -> Instant {
        self.next_report
    }

    /// Sends this worker's figures if a report is due.
    pub fn report_if_due(&mut self, figures: &Figures, now: Instant) -> io::Result<()> {
        if now < self.next_report {
            return Ok(());
        }
        self.next_report = now + REPORT_EVERY;
        self.link.send(&figures.encode('r', self.index))
    }

    /// A readiness event: write what is pending, read the totals.
    pub fn on_event(&mut self) -> io::Result<()> {
        self.link.flush()?;
        for line in self.link.read_lines()? {
            match Figures::decode(&line) {
                Some(('t', workers, mut figures)) => {
                    figures.gauges.workers = Some(workers);
                    self.totals = Some(figures);
                }
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a totals line")),
            }
        }
        Ok(())
    }

    /// Deregisters the link (it failed).
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.link.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(streams: u64, up: Option<u64>) -> Figures {
        let mut f = Figures::default();
        f.counters.accepted = streams * 2;
        f.counters.closed[3] = 1;
        f.gauges.open_streams = streams;
        f.gauges.backplane_up = up;
        f
    }

    #[test]
    fn figures_travel_as_one_line_and_back() {
        let f = figures(95, Some(1));
        let line = f.encode('r', 3);
        assert!(line.starts_with("r 3 190 ") && line.ends_with(" 1 1\n"), "{line}");
        let (tag, id, back) = Figures::decode(&line).unwrap();
        assert_eq!((tag, id), ('r', 3));
        assert_eq!(back.encode('r', 3), line);
        assert!(Figures::decode("r 3 1 2").is_none(), "too few values");
        assert!(Figures::decode(&line.replace('\n', " 9\n")).is_none(), "too many");
        assert!(Figures::decode("r x").is_none());
    }

    #[test]
    fn totals_sum_and_the_backplane_is_up_only_if_up_everywhere() {
        let mut total = Figures::default();
        for f in [figures(95, Some(1)), figures(116, Some(0)), figures(89, Some(1))] {
            total.add(&f);
        }
        assert_eq!(total.gauges.open_streams, 300);
        assert_eq!(total.counters.accepted, 600);
        assert_eq!(total.counters.closed[3], 3);
        assert_eq!(total.gauges.backplane_up, Some(0));
    }
}
