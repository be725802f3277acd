//! The peer's address in 18 bytes (a `SocketAddr` takes 32): every connection keeps one for its log lines
//! and for the loopback check, so it is stored compactly and turned back into a `SocketAddr` to be read.
//!
//! Rule: lossless. An IPv4 address is kept IPv4-mapped and comes back as IPv4; the IPv6 flow info and
//! scope id are dropped (a peer's are 0 on TCP sockets that are not link-local, and we never use them).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A peer address: the IP as 16 bytes (IPv4 mapped into IPv6) and the port.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    ip: [u8; 16],
    port: u16,
}

impl PeerAddr {
    /// The IP address (IPv4 for a mapped one).
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> PeerAddr {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        PeerAddr { ip: ip.octets(), port: addr.port() }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket_addr().fmt(f)
    }
}

impl fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket_addr().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_in_18_bytes() {
        for addr in ["127.0.0.1:8080", "10.1.2.3:1", "[::1]:443", "[2001:db8::7]:65535", "[::ffff:1.2.3.4]:9"]
        {
            let addr: SocketAddr = addr.parse().unwrap();
            let peer = PeerAddr::from(addr);
            let back = peer.socket_addr();
            // A mapped IPv6 address comes back as the IPv4 one it maps (the same peer).
            let expected = match addr.ip() {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                    SocketAddr::new(IpAddr::V4(v6.to_ipv4_mapped().unwrap()), addr.port())
                }
                _ => addr,
            };
            assert_eq!(back, expected);
            assert_eq!(peer.to_string(), expected.to_string());
        }
        assert_eq!(std::mem::size_of::<PeerAddr>(), 18);
    }
}
