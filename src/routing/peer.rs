//! Peer addresses: the entries that say which source addresses belong to a trunk, and the
//! compiled index that finds the most specific entry for a datagram's source.
//!
//! Specificity: an exact `ip:port` beats an exact `ip`, which beats any network; among networks
//! the longest prefix wins. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the
//! IPv4 address they carry, both in entries and in sources.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::TrunkId;

/// One parsed peer entry, in canonical form (a /32 or /128 network is an exact `Ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// Exactly this source address and port.
    IpPort(IpAddr, u16),
    /// This address, any port.
    Ip(IpAddr),
    /// Every address in `addr/len` (host bits zero; `0 < len < width`).
    Net(IpAddr, u8),
}

/// IPv4-mapped IPv6 addresses become the IPv4 address they carry; others are unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn width(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_v4(bits: u32, len: u8) -> u32 {
    match len {
        0 => 0,
        l => bits & (u32::MAX << (32 - u32::from(l.min(32)))),
    }
}

fn mask_v6(bits: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l => bits & (u128::MAX << (128 - u32::from(l.min(128)))),
    }
}

fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), len))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), len))),
    }
}

fn check_source_ip(ip: IpAddr, text: &str) -> Result<(), String> {
    if ip.is_unspecified() {
        return Err(format!(
            "{text} is the \"any address\"; no call ever comes from it. Write the trunk's own address"
        ));
    }
    if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!(
            "{text} is a multicast/broadcast address; calls come from unicast addresses"
        ));
    }
    Ok(())
}

const FORMS: &str =
    "write an IP address (10.0.0.1, 2001:db8::1), ip:port (10.0.0.1:5060, [2001:db8::1]:5060) \
     or a network (10.1.0.0/24, 2001:db8::/32)";

impl PeerAddr {
    /// Parse `ip`, `ip:port`, `[v6]`, `[v6]:port` or `network/len`.
    pub fn parse(text: &str) -> Result<PeerAddr, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("empty peer address; {FORMS}"));
        }
        if let Some((addr, len)) = t.split_once('/') {
            return Self::parse_net(t, addr, len);
        }
        if let Ok(sa) = t.parse::<SocketAddr>() {
            let ip = canonical_ip(sa.ip());
            check_source_ip(ip, t)?;
            if sa.port() == 0 {
                return Err(format!(
                    "{t}: port 0 is not a port a call can come from; omit the port to accept any"
                ));
            }
            return Ok(PeerAddr::IpPort(ip, sa.port()));
        }
        let bare = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let ip = canonical_ip(ip);
            check_source_ip(ip, t)?;
            return Ok(PeerAddr::Ip(ip));
        }
        if t.contains("::") || t.matches(':').count() > 1 {
            return Err(format!(
                "{t:?} is not a valid IPv6 address; with a port, put the address in brackets: [2001:db8::1]:5060"
            ));
        }
        if t.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "{t:?} looks like a host name; junction does not resolve names for peers: {FORMS}"
            ));
        }
        Err(format!(
            "{t:?} is not an address junction understands; {FORMS}"
        ))
    }

    fn parse_net(t: &str, addr: &str, len: &str) -> Result<PeerAddr, String> {
        let ip = match addr.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                return Err(format!(
                    "{t:?}: {addr:?} before the '/' is not an IP address (a network cannot have a port); {FORMS}"
                ))
            }
        };
        let len: u8 = match len.parse::<u8>() {
            Ok(l) if l <= width(ip) => l,
            _ => {
                return Err(format!(
                    "{t:?}: the prefix length after '/' must be a number from 1 to {}",
                    width(ip)
                ))
            }
        };
        // An IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network it carries.
        let (ip, len) = match ip {
            IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), len - 96),
                None => (ip, len),
            },
            _ => (ip, len),
        };
        if len == 0 {
            return Err(format!(
                "{t:?} would accept calls from every address on the internet as this trunk \
                 (an open relay invites toll fraud); list the trunk's own networks"
            ));
        }
        let net = masked(ip, len);
        if net != ip {
            return Err(format!(
                "{t:?} has bits set after the first {len}: did you mean {net}/{len}?"
            ));
        }
        check_source_ip(ip, t)?;
        if len == width(ip) {
            return Ok(PeerAddr::Ip(ip));
        }
        Ok(PeerAddr::Net(ip, len))
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeerAddr::IpPort(ip, port) => write!(f, "{}", SocketAddr::new(ip, port)),
            PeerAddr::Ip(ip) => write!(f, "{ip}"),
            PeerAddr::Net(ip, len) => write!(f, "{ip}/{len}"),
        }
    }
}

/// A peer index's addresses and networks, by family (`PeerIndex::sources`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub v4: Vec<u32>,
    pub v4_nets: Vec<(u32, u32)>,
    pub v6: Vec<u128>,
    pub v6_nets: Vec<(u128, u128)>,
}

/// The compiled source-address index: exact entries in hash maps, networks in one hash map
/// per prefix length, probed longest first. A lookup costs at most one probe per distinct
/// prefix length configured, plus two, whatever the number of peers.
#[derive(Debug, Default)]
pub struct PeerIndex {
    by_addr: HashMap<(IpAddr, u16), TrunkId>,
    by_ip: HashMap<IpAddr, TrunkId>,
    /// (prefix length, masked network -> trunk), longest length first.
    nets_v4: Vec<(u8, HashMap<u32, TrunkId>)>,
    nets_v6: Vec<(u8, HashMap<u128, TrunkId>)>,
}

fn net_slot<K>(nets: &mut Vec<(u8, HashMap<K, TrunkId>)>, len: u8) -> &mut HashMap<K, TrunkId> {
    // Kept sorted by length, longest first.
    let at = nets.partition_point(|(l, _)| *l > len);
    if nets.get(at).map(|(l, _)| *l) != Some(len) {
        nets.insert(at, (len, HashMap::new()));
    }
    match nets.get_mut(at) {
        Some((_, map)) => map,
        None => unreachable!("slot {at} was just ensured"),
    }
}

impl PeerIndex {
    /// Add an entry. If the identical entry already belongs to a trunk, nothing changes and
    /// that trunk is returned as the error.
    pub fn insert(&mut self, peer: PeerAddr, trunk: TrunkId) -> Result<(), TrunkId> {
        use std::collections::hash_map::Entry;
        let entry = match peer {
            PeerAddr::IpPort(ip, port) => self.by_addr.entry((canonical_ip(ip), port)),
            PeerAddr::Ip(ip) => return insert_new(self.by_ip.entry(canonical_ip(ip)), trunk),
            PeerAddr::Net(IpAddr::V4(v4), len) => {
                let map = net_slot(&mut self.nets_v4, len);
                return insert_new(map.entry(mask_v4(u32::from(v4), len)), trunk);
            }
            PeerAddr::Net(IpAddr::V6(v6), len) => {
                let map = net_slot(&mut self.nets_v6, len);
                return insert_new(map.entry(mask_v6(u128::from(v6), len)), trunk);
            }
        };
        fn insert_new<K>(e: Entry<'_, K, TrunkId>, trunk: TrunkId) -> Result<(), TrunkId> {
            match e {
                Entry::Occupied(o) => Err(*o.get()),
                Entry::Vacant(v) => {
                    v.insert(trunk);
                    Ok(())
                }
            }
        }
        insert_new(entry, trunk)
    }

    /// The trunk of the most specific entry that covers `src`.
    pub fn lookup(&self, src: SocketAddr) -> Option<TrunkId> {
        self.lookup_entry(src).map(|(_, t)| t)
    }

    /// The most specific entry that covers `src`, and its trunk.
    pub fn lookup_entry(&self, src: SocketAddr) -> Option<(PeerAddr, TrunkId)> {
        let ip = canonical_ip(src.ip());
        if let Some(t) = self.by_addr.get(&(ip, src.port())) {
            return Some((PeerAddr::IpPort(ip, src.port()), *t));
        }
        if let Some(t) = self.by_ip.get(&ip) {
            return Some((PeerAddr::Ip(ip), *t));
        }
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.nets_v4.iter().find_map(|(len, map)| {
                    let net = mask_v4(bits, *len);
                    map.get(&net)
                        .map(|t| (PeerAddr::Net(IpAddr::V4(Ipv4Addr::from(net)), *len), *t))
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.nets_v6.iter().find_map(|(len, map)| {
                    let net = mask_v6(bits, *len);
                    map.get(&net)
                        .map(|t| (PeerAddr::Net(IpAddr::V6(Ipv6Addr::from(net)), *len), *t))
                })
            }
        }
    }

    /// The sources this index knows, for a kernel pre-filter: per family, exact addresses
    /// (from ip and ip:port entries, deduplicated, sorted) and networks as (network, mask).
    pub fn sources(&self) -> Sources {
        let mut out = Sources::default();
        for ip in self
            .by_ip
            .keys()
            .chain(self.by_addr.keys().map(|(ip, _)| ip))
        {
            match ip {
                IpAddr::V4(v4) => out.v4.push(u32::from(*v4)),
                IpAddr::V6(v6) => out.v6.push(u128::from(*v6)),
            }
        }
        for (len, map) in &self.nets_v4 {
            let mask = mask_v4(u32::MAX, *len);
            out.v4_nets.extend(map.keys().map(|net| (*net, mask)));
        }
        for (len, map) in &self.nets_v6 {
            let mask = mask_v6(u128::MAX, *len);
            out.v6_nets.extend(map.keys().map(|net| (*net, mask)));
        }
        out.v4.sort_unstable();
        out.v4.dedup();
        out.v6.sort_unstable();
        out.v6.dedup();
        out.v4_nets.sort_unstable();
        out.v6_nets.sort_unstable();
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_addr.len()
            + self.by_ip.len()
            + self.nets_v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.nets_v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_canonically() {
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        };
        assert_eq!(
            PeerAddr::parse("10.0.0.1"),
            Ok(PeerAddr::Ip(ip("10.0.0.1")))
        );
        assert_eq!(
            PeerAddr::parse(" 10.0.0.1 "),
            Ok(PeerAddr::Ip(ip("10.0.0.1")))
        );
        assert_eq!(
            PeerAddr::parse("10.0.0.1:5070"),
            Ok(PeerAddr::IpPort(ip("10.0.0.1"), 5070))
        );
        assert_eq!(PeerAddr::parse("[::1]"), Ok(PeerAddr::Ip(ip("::1"))));
        assert_eq!(
            PeerAddr::parse("[::1]:5070"),
            Ok(PeerAddr::IpPort(ip("::1"), 5070))
        );
        assert_eq!(
            PeerAddr::parse("10.1.0.0/24"),
            Ok(PeerAddr::Net(ip("10.1.0.0"), 24))
        );
        assert_eq!(
            PeerAddr::parse("10.1.0.9/32"),
            Ok(PeerAddr::Ip(ip("10.1.0.9")))
        );
        assert_eq!(
            PeerAddr::parse("2001:db8::/32"),
            Ok(PeerAddr::Net(ip("2001:db8::"), 32))
        );
        assert_eq!(
            PeerAddr::parse("::ffff:10.0.0.1"),
            Ok(PeerAddr::Ip(ip("10.0.0.1")))
        );
        assert_eq!(
            PeerAddr::parse("::ffff:10.2.0.0/112"),
            Ok(PeerAddr::Net(ip("10.2.0.0"), 16))
        );
    }

    #[test]
    fn rejects_what_cannot_identify_a_trunk() {
        for bad in [
            "",
            "10.1.0.5/24",
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "10.0.0.0/24:5060",
            "0.0.0.0",
            "224.0.0.1",
            "10.0.0.1:0",
            "gw.example.net",
            "10.0.0.300",
            "2001:db8::1:5060x",
        ] {
            assert!(PeerAddr::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let msg = PeerAddr::parse("10.1.0.5/24").err().unwrap_or_default();
        assert!(msg.contains("10.1.0.0/24"), "{msg}");
        let msg = PeerAddr::parse("gw.example.net").err().unwrap_or_default();
        assert!(msg.contains("host name"), "{msg}");
    }

    #[test]
    fn identical_entries_conflict() {
        let mut idx = PeerIndex::default();
        let net = PeerAddr::Net(
            "10.0.0.0"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            8,
        );
        assert_eq!(idx.insert(net, TrunkId(0)), Ok(()));
        assert_eq!(idx.insert(net, TrunkId(1)), Err(TrunkId(0)));
        assert_eq!(idx.len(), 1);
    }
}
