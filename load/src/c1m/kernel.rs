//! The kernel settings a run of N streams needs: read them, raise those too low, print each
//! before → after, and put every changed one back at the end (also after Ctrl-C).
//!
//! Rules:
//! - Only raise, never lower: a machine tuned further than we need is left alone.
//! - Where a setting cannot be written (not root, a read-only /proc/sys, a container), say which setting
//!   and what value it needs, and stop before anything starts. One exception: a small run (which needs no
//!   root otherwise) goes on without `tcp_migrate_req`, saying so: without it, connections queued at a
//!   draining worker when its listener closes are reset, and the load generator tries them again.
//! - Settings are files under /proc/sys (no `sysctl` binary needed).

use std::fs;
use std::path::PathBuf;

/// One setting: its name (`net.core.somaxconn`), its value before, and the value we set (if we did).
#[derive(Debug, Clone)]
pub struct Setting {
    pub name: &'static str,
    pub before: String,
    pub after: Option<String>,
}

/// What we ask of a setting.
#[derive(Debug, Clone)]
enum Need {
    /// A single number, at least this.
    AtLeast(u64),
    /// Several numbers (tcp_mem), each at least its own.
    EachAtLeast(Vec<u64>),
    /// A port range `low high` spanning at least this many ports (we ask for 1024-65535).
    PortSpan(u64),
    /// A comma list that must contain these ports (reserved: never an outgoing connection's source port).
    Ports(Vec<u16>),
}

fn path_of(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// The settings `streams` streams need, with the ports of the server and Redis to keep out of the
/// ephemeral range, from `source_ips` source addresses.
fn needs(streams: u64, source_ips: u64, reserved: &[u16], rolling: bool) -> Vec<(&'static str, Need)> {
    let per_ip = streams.div_ceil(source_ips.max(1));
    // Past a few tens of thousands, connect storms need deep accept and SYN queues, and the whole port
    // range is handed out: then the service's own ports are reserved, never a source port.
    let large = streams > 50_000;
    // (A small run makes do with a stock kernel's queues, so it needs no root: CI runs one.)
    let queue = if large { 65_535 } else { 1_024 };
    let mut needs = vec![
        ("fs.file-max", Need::AtLeast(2 * streams + 65_536)),
        ("fs.nr_open", Need::AtLeast(1_048_576)),
        ("net.core.somaxconn", Need::AtLeast(queue)),
        ("net.ipv4.tcp_max_syn_backlog", Need::AtLeast(queue)),
        ("net.core.netdev_max_backlog", Need::AtLeast(if large { 16_384 } else { 1_000 })),
        // At most a third of the range per source address in use: the kernel's search for a free port at
        // connect() stays short (past half full, each connect walks many taken ports).
        ("net.ipv4.ip_local_port_range", Need::PortSpan(per_ip * 3 + 1_000)),
        // Pages: idle loopback sockets hold little, but a connect storm has buffers in flight; past the
        // second number the kernel starts to squeeze every socket's buffers.
        ("net.ipv4.tcp_mem", Need::EachAtLeast(vec![streams, streams * 3 / 2, streams * 2])),
        ("net.netfilter.nf_conntrack_max", Need::AtLeast(2 * streams + 65_536)),
    ];
    if large {
        needs.push(("net.ipv4.ip_local_reserved_ports", Need::Ports(reserved.to_vec())));
    }
    if rolling {
        // A worker that drains closes its listener; what waits in its accept queue (or is half-way
        // through its handshake) moves to another listener of the `SO_REUSEPORT` group instead of being
        // reset (Linux 5.14 and later).
        needs.push(("net.ipv4.tcp_migrate_req", Need::AtLeast(1)));
    }
    needs
}

/// The value `current` must become to meet `need`, or `None` if it already does.
fn wanted(current: &str, need: &Need) -> Option<String> {
    let numbers: Vec<u64> = current.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    match need {
        Need::AtLeast(min) => (numbers.first().copied().unwrap_or(0) < *min).then(|| min.to_string()),
        Need::EachAtLeast(mins) => {
            let low = mins.iter().enumerate().any(|(i, min)| numbers.get(i).copied().unwrap_or(0) < *min);
            let raised: Vec<String> = mins
                .iter()
                .enumerate()
                .map(|(i, min)| numbers.get(i).copied().unwrap_or(0).max(*min).to_string())
                .collect();
            low.then(|| raised.join(" "))
        }
        Need::PortSpan(span) => {
            let (low, high) = (numbers.first().copied().unwrap_or(0), numbers.get(1).copied().unwrap_or(0));
            (high.saturating_sub(low) < *span).then(|| "1024 65535".to_string())
        }
        Need::Ports(ports) => {
            let have: Vec<&str> = current.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
            let missing: Vec<String> =
                ports.iter().map(u16::to_string).filter(|p| !have.contains(&p.as_str())).collect();
            if missing.is_empty() {
                return None;
            }
            let mut all: Vec<String> = have.iter().map(|p| p.to_string()).collect();
            all.extend(missing);
            Some(all.join(","))
        }
    }
}

/// Reads every setting, raises those too low (printing each line), and returns what to put back; an
/// error names the setting that could not be written and the value it needs.
pub fn apply(streams: u64, source_ips: u64, reserved: &[u16], rolling: bool) -> Result<Vec<Setting>, String> {
    let mut changed = Vec::new();
    for (name, need) in needs(streams, source_ips, reserved, rolling) {
        let path = path_of(name);
        // Wanted, not needed: a small run goes on without it (see the rules above).
        let optional = name == "net.ipv4.tcp_migrate_req" && streams <= 50_000;
        let Ok(before) =
            fs::read_to_string(&path).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        else {
            if name.starts_with("net.netfilter") {
                eprintln!("c1m: {name}: not loaded (no connection tracking): nothing to do");
                continue;
            }
            if optional {
                eprintln!(
                    "c1m: {name}: not in this kernel (before 5.14): queued connections of a draining worker are reset"
                );
                continue;
            }
            restore(&changed);
            return Err(format!("cannot read {name} ({})", path.display()));
        };
        // The reserved ports list is comma separated as read; keep it so.
        let before = if name.ends_with("reserved_ports") { before.replace(' ', "") } else { before };
        match wanted(&before, &need) {
            None => eprintln!("c1m: {name} = {before} (enough)"),
            Some(after) => {
                if let Err(e) = fs::write(&path, &after) {
                    if optional {
                        eprintln!(
                            "c1m: cannot set {name} to {after} ({e}); going on without it: connections queued at \
                             a draining worker are reset, and the load generator tries them again"
                        );
                        continue;
                    }
                    restore(&changed);
                    return Err(format!(
                        "cannot set {name} to {after:?} ({e}): run as root, or set it yourself \
                         (sysctl -w {name}=\"{after}\") and run again"
                    ));
                }
                eprintln!("c1m: {name}: {before} → {after}");
                changed.push(Setting { name, before, after: Some(after) });
            }
        }
    }
    Ok(changed)
}

/// Puts every changed setting back, printing each.
pub fn restore(changed: &[Setting]) {
    for setting in changed.iter().rev() {
        // An empty list is written as a newline: an empty write changes nothing.
        let value = if setting.before.is_empty() { "\n".to_string() } else { setting.before.clone() };
        match fs::write(path_of(setting.name), value) {
            Ok(()) => eprintln!("c1m: {} restored to {}", setting.name, setting.before),
            Err(e) => eprintln!("c1m: could not restore {} to {} ({e})", setting.name, setting.before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_raises_what_is_too_low() {
        assert_eq!(wanted("4096", &Need::AtLeast(65_535)), Some("65535".into()));
        assert_eq!(wanted("100000", &Need::AtLeast(65_535)), None, "never lowered");
        assert_eq!(wanted("32768 60999", &Need::PortSpan(20_000)), None, "28,231 ports are enough");
        assert!(
            needs(1_000_000, 53, &[1], false).iter().any(
                |(n, need)| *n == "net.ipv4.ip_local_port_range" && wanted("32768 60999", need).is_some()
            ),
            "a million from 53 addresses: the whole range"
        );
        assert_eq!(wanted("32768 60999", &Need::PortSpan(40_000)), Some("1024 65535".into()));
        assert_eq!(
            wanted("188000 250000 376000", &Need::EachAtLeast(vec![1_000_000, 1_500_000, 2_000_000])),
            Some("1000000 1500000 2000000".into())
        );
        assert_eq!(wanted("2000000 3000000 4000000", &Need::EachAtLeast(vec![1, 2, 3])), None);
        assert_eq!(wanted("", &Need::Ports(vec![8080, 6379])), Some("8080,6379".into()));
        assert_eq!(wanted("22,8080", &Need::Ports(vec![8080, 6379])), Some("22,8080,6379".into()));
        assert_eq!(wanted("6379,8080", &Need::Ports(vec![8080, 6379])), None);
    }

    #[test]
    fn a_million_streams_need_every_setting_raised_on_a_stock_kernel() {
        let needs = needs(1_000_000, 53, &[18080], true);
        assert!(needs.iter().any(|(n, _)| *n == "net.ipv4.tcp_migrate_req"));
        let file_max =
            needs.iter().find(|(n, _)| *n == "fs.file-max").map(|(_, need)| wanted("1048576", need));
        assert_eq!(file_max, Some(Some("2065536".into())));
    }
}
