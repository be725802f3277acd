//! What `c1m` reads once a second: the memory of a process and its children, the kernel's slab and TCP
//! memory, the service's `/metrics`, and the load generator's time series (its `--csv`); and, around a
//! rolling restart, the kernel's TCP counters that say who reset what ([`tcp_counters`]).
//!
//! Rules: read-only, from /proc and loopback; a reading that fails is `0` or `None` (a progress line must
//! never stop a run).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Resident memory of `pid` and all its descendants, in bytes: (RSS, PSS). RSS counts the pages the
/// processes share (the binary's code, mapped once) in every one of them; PSS splits each shared page
/// among its sharers, so the PSS sum is what the processes hold together.
pub fn memory_tree(pid: u32) -> (u64, u64) {
    descendants(pid).iter().map(|&p| (rss_of(p), pss_of(p))).fold((0, 0), |(r, s), (a, b)| (r + a, s + b))
}

/// Resident memory (RSS) of `pid` and all its descendants, in bytes.
pub fn rss_tree(pid: u32) -> u64 {
    memory_tree(pid).0
}

/// `pid` and every process below it.
fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
            // The parent pid is the 2nd field after the `(name)`, which may hold spaces.
            let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
            if let Some(parent) = after_name.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        all.push(p);
        todo.extend(children.get(&p).into_iter().flatten());
    }
    all
}

/// Proportional set size of one process, in bytes (`/proc/PID/smaps_rollup`).
fn pss_of(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// Resident memory of one process, in bytes.
fn rss_of(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The `NAME: N kB` line of a /proc file, in bytes (0 if absent).
fn kib_field(path: &str, name: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The kernel's slab memory (sockets, files, epoll entries live there), in bytes.
pub fn slab_bytes() -> u64 {
    kib_field("/proc/meminfo", "Slab:")
}

/// Pages of memory TCP sockets hold (`/proc/net/sockstat`, the `mem` of the `TCP:` line).
pub fn tcp_mem_pages() -> u64 {
    let sockstat = fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let Some(tcp) = sockstat.lines().find(|l| l.starts_with("TCP:")) else { return 0 };
    let words: Vec<&str> = tcp.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "mem").and_then(|w| w[1].parse().ok()).unwrap_or(0)
}

/// The service's `/metrics`, as name → value (labels kept in the name), or `None` if three tries found no
/// answer (during a rolling restart a try may land on a worker that is closing). With `totals`, only an
/// answer with the whole service's figures counts: a replacement worker answers with its own until it
/// has the supervisor's totals (a second), and its zeros are not the service's.
pub fn metrics(addr: SocketAddr, totals: bool) -> Option<HashMap<String, u64>> {
    (0..3).find_map(|_| metrics_once(addr).filter(|m| !totals || m.contains_key("mio_sse_workers")))
}

fn metrics_once(addr: SocketAddr) -> Option<HashMap<String, u64>> {
    // Generous: at a million streams a worker's turn can be long, and a scrape waits for one.
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                l.rsplit_once(' ').and_then(|(name, v)| Some((name.to_string(), v.parse().ok()?)))
            })
            .collect(),
    )
}

/// The load generator's last row of `--csv`: (open streams, reconnections that second), if any.
pub fn last_csv_row(path: &std::path::Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let last = text.lines().rev().find(|l| !l.starts_with("t_s") && !l.is_empty())?;
    let fields: Vec<&str> = last.split(',').collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(6)?.parse().ok()?))
}

/// The kernel's TCP counters that tell where resets come from (`/proc/net/netstat` and `/proc/net/snmp`,
/// system-wide since boot: take the difference over a span): a close with unread input
/// (`TCPAbortOnClose`), data for a closed socket (`TCPAbortOnData`), orphans past their limit
/// (`TCPAbortOnMemory`), requests moved off a closing listener or not (`TCPMigrateReq*`), accept queues
/// full (`ListenOverflows`), TIME_WAIT table full (`TCPTimeWaitOverflow`), resets sent (`OutRsts`).
pub fn tcp_counters() -> Vec<(&'static str, u64)> {
    const NAMES: [&str; 9] = [
        "TCPAbortOnClose",
        "TCPAbortOnData",
        "TCPAbortOnMemory",
        "TCPMigrateReqSuccess",
        "TCPMigrateReqFailure",
        "ListenOverflows",
        "TCPTimeWaitOverflow",
        "EstabResets",
        "OutRsts",
    ];
    let mut values = HashMap::new();
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // Pairs of lines: `Prefix: name name …` then `Prefix: value value …`.
        for pair in lines.chunks(2) {
            let [names, numbers] = pair else { continue };
            for (name, value) in names.split_whitespace().zip(numbers.split_whitespace()).skip(1) {
                if let Ok(value) = value.parse::<u64>() {
                    values.insert(name.to_string(), value);
                }
            }
        }
    }
    NAMES.iter().map(|&name| (name, values.get(name).copied().unwrap_or(0))).collect()
}

/// Sums the failures column of the whole `--csv` so far.
pub fn csv_failures(path: &std::path::Path) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().skip(1).filter_map(|l| l.split(',').nth(4)?.parse::<u64>().ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_this_machine_and_this_process() {
        assert!(rss_tree(std::process::id()) > 0);
        assert!(slab_bytes() > 0);
        let _ = tcp_mem_pages(); // may be 0 on an idle machine
        let counters = tcp_counters();
        assert_eq!(counters.len(), 9);
    }
}
