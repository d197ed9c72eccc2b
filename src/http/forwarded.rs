//! Which address a request comes from, behind reverse proxies (`[http] trusted_proxies`).
//!
//! Behind a proxy every request arrives from the proxy's address, so a per-address limit
//! (the login page's) would count every user together. A proxy says whom it forwards for in
//! `X-Forwarded-For`, but any client can send that header too: it is believed only when the
//! connection comes from a configured trusted proxy, and then only as far as the chain of
//! trusted proxies goes. Pure functions, no actix.

use std::{fmt, net::IpAddr, str::FromStr};

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`; a bare address
/// is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network. An IPv4 address written as IPv6 (`::ffff:10.0.0.1`,
    /// how a dual-stack listener sees IPv4 peers) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(ip).into(), 32, self.prefix) == u32::from(net).into()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

/// `bits` (an address `width` bits wide, right-aligned) with everything after `prefix` cleared.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let host_bits = u32::from(width - prefix);
        bits & !((1u128 << host_bits) - 1)
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`. Bits set after the prefix
    /// (`10.0.0.1/8`) are refused rather than silently cleared: they are usually a typo.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!(
                "`{text}` is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)"
            )
        })?;
        let addr = addr.to_canonical();
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "`{text}`: the prefix length after `/` must be a number from 0 to {width}"
                    ))
                }
            },
        };
        let bits = match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if masked(bits, width, prefix) != bits {
            let network = match addr {
                IpAddr::V4(_) => IpAddr::from(
                    u32::try_from(masked(bits, width, prefix))
                        .unwrap_or_default()
                        .to_be_bytes(),
                ),
                IpAddr::V6(_) => IpAddr::from(masked(bits, width, prefix).to_be_bytes()),
            };
            return Err(format!(
                "`{text}` has address bits set after the /{prefix} prefix; the network is {network}/{prefix}"
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`[http] trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts `networks`.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether a connection from `ip` is from a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// Whether no proxy is trusted (then `X-Forwarded-For` is never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The address a request comes from: the peer's, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// `forwarded_for` are the values of every `X-Forwarded-For` header line, in the order
/// received (several lines are one comma-separated list). Each proxy appends the address it
/// was connected from, so the list is read from the right: entries a trusted proxy added are
/// believed, and the first one that is not a trusted proxy is the client. Everything to its
/// left was written by that client and proves nothing, so a spoofed left-most entry never
/// counts. A malformed entry reached on the walk (`unknown`, garbage) gives the peer's
/// address: the chain cannot be followed. When every entry is a trusted proxy, the left-most
/// one is the client (as nginx's `real_ip_recursive` does).
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let lines: Vec<&str> = forwarded_for.into_iter().collect();
    let mut client = peer;
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        let Some(ip) = forwarded_entry(entry) else {
            return peer;
        };
        if !trusted.contains(ip) {
            return ip;
        }
        client = ip;
    }
    client
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, also with a port as some proxies
/// write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or an IPv6 address in brackets.
fn forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return match (inside.parse::<std::net::Ipv6Addr>(), port_ok) {
            (Ok(ip), true) => Some(IpAddr::V6(ip).to_canonical()),
            _ => None,
        };
    }
    let (host, port) = entry.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn networks_parse_and_match_v4_v6_and_v4_mapped_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "a v4-mapped peer");
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let odd: IpNet = "2001:db8::/33".parse().unwrap();
        assert!(odd.contains(ip("2001:db8:7fff::1")));
        assert!(!odd.contains(ip("2001:db8:8000::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert_eq!(
            "::ffff:10.0.0.1".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.1/32"
        );
    }

    #[test]
    fn malformed_networks_are_refused_with_the_reason() {
        for bad in [
            "",
            "proxy",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} was accepted");
        }
        let e = "10.0.0.1/8".parse::<IpNet>().unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        let e = "fd00::1/8".parse::<IpNet>().unwrap_err();
        assert!(e.contains("fd00::/8"), "{e}");
    }

    #[test]
    fn without_a_trusted_peer_the_header_is_never_believed() {
        let proxies = trusted(&["10.0.0.1"]);
        assert_eq!(
            client_address(ip("198.51.100.4"), ["203.0.113.9"], &proxies),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), ["203.0.113.9"], &TrustedProxies::default()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "fd00::/8"]);
        // One proxy.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        // A spoofed left-most entry: the proxy appended the real address after it.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["198.51.100.1, 203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        // Two proxies: the inner one's entry is skipped.
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                ["198.51.100.1, 203.0.113.9, 10.2.3.4"],
                &proxies
            ),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                ["198.51.100.1", "203.0.113.9,10.2.3.4"],
                &proxies
            ),
            ip("203.0.113.9")
        );
        // A v4-mapped peer, v6 clients, ports, brackets.
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), ["2001:db8::5"], &proxies),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(ip("fd00::1"), ["[2001:db8::5]:4711"], &proxies),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), ["203.0.113.9:51000"], &proxies),
            ip("203.0.113.9")
        );
        // Only trusted entries: the left-most of them.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["10.9.9.9, 10.2.3.4"], &proxies),
            ip("10.9.9.9")
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.1"), [], &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn a_malformed_entry_on_the_walk_gives_the_peer() {
        let proxies = trusted(&["10.0.0.0/8"]);
        for header in [
            "unknown",
            "",
            "203.0.113.9, garbage",
            "203.0.113.9,,10.1.1.1",
            "1.2.3.4:",
            "[::1",
        ] {
            assert_eq!(
                client_address(ip("10.0.0.1"), [header], &proxies),
                ip("10.0.0.1"),
                "{header:?}"
            );
        }
        // Garbage to the left of the client is never reached.
        assert_eq!(
            client_address(ip("10.0.0.1"), ["garbage, 203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
    }
}
