//! The kernel's UDP receive-buffer errors (the UDP MIB's `RcvbufErrors`, from
//! /proc/net/snmp and /proc/net/snmp6): datagrams lost because a socket's receive buffer
//! was full.
//!
//! A shard socket's own drop counter (`junction_socket_drops_total`, SO_MEMINFO) counts
//! two things alike: datagrams the kernel pre-filter discarded on purpose (requests from
//! unknown sources) and datagrams lost to a full receive buffer. Under a scan the first
//! grows by the million and hides the second, which is real loss of trunk traffic (the
//! callers retransmit, later). The MIB counts only the second, for every UDP socket of the
//! host (its network namespace), not per socket; on a server that runs junction alone it is
//! junction's.

use super::exposition::{Exposition, Kind};

/// `RcvbufErrors` from /proc/net/snmp's text: the value under that name on the second of
/// the two `Udp:` lines (names, then values). `UdpLite:` lines are another protocol's.
pub fn parse_snmp(text: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// `Udp6RcvbufErrors` from /proc/net/snmp6's text (a name and a value per line).
pub fn parse_snmp6(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()? == "Udp6RcvbufErrors").then_some(())?;
        words.next()?.parse().ok()
    })
}

/// Both counters, read now: (IPv4, IPv6). A file that cannot be read (IPv6 disabled, no
/// /proc) gives `None` for its family.
pub fn read() -> (Option<u64>, Option<u64>) {
    let v4 = std::fs::read_to_string("/proc/net/snmp")
        .ok()
        .and_then(|t| parse_snmp(&t));
    let v6 = std::fs::read_to_string("/proc/net/snmp6")
        .ok()
        .and_then(|t| parse_snmp6(&t));
    (v4, v6)
}

/// Append `junction_udp_receive_buffer_errors_total{family}` to `out`.
pub fn render(out: &mut String) {
    let (v4, v6) = read();
    if v4.is_none() && v6.is_none() {
        return;
    }
    let mut e = Exposition {
        out: std::mem::take(out),
    };
    let name = "junction_udp_receive_buffer_errors_total";
    e.family(
        name,
        Kind::Counter,
        "Datagrams the kernel lost because a UDP socket's receive buffer was full, for every UDP socket of this host (network namespace): the UDP MIB's RcvbufErrors. Unlike junction_socket_drops_total it leaves out what the kernel pre-filter discarded on purpose, so a rise here is lost traffic (a shard fell behind by more than its 4 MiB socket buffer).",
    );
    for (family, value) in [("ipv4", v4), ("ipv6", v6)] {
        if let Some(v) = value {
            e.sample(name, &[("family", family)], v);
        }
    }
    *out = e.out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn the_counters_are_read_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
            Udp: 100 2 30 99 17 0\n\
            UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
            UdpLite: 0 0 0 0 5 0\n";
        assert_eq!(parse_snmp(snmp), Some(17));
        // Another column order is read by name, not by position.
        assert_eq!(
            parse_snmp("Udp: RcvbufErrors InErrors\nUdp: 4 9\n"),
            Some(4)
        );
        assert_eq!(parse_snmp("Udp: InDatagrams\nUdp: 4\n"), None);
        assert_eq!(parse_snmp("Udp: RcvbufErrors\n"), None);
        assert_eq!(parse_snmp("Udp: RcvbufErrors\nUdp: x\n"), None);
        let snmp6 = "Udp6InDatagrams                 \t5\nUdp6InErrors \t3\n\
            Udp6RcvbufErrors                \t2\nUdp6SndbufErrors 0\n";
        assert_eq!(parse_snmp6(snmp6), Some(2));
        assert_eq!(parse_snmp6("Udp6InErrors 3\n"), None);
    }

    /// A socket whose small receive buffer nobody reads loses datagrams, and the host's
    /// counter grows by at least that many (other tests' sockets can only add to it).
    #[test]
    fn a_full_receive_buffer_counts() {
        let (Some(before), _) = read() else {
            return; // no /proc/net/snmp here: nothing to check against
        };
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sink);
        crate::shard::socket::set_int_option(fd, libc::SO_RCVBUF, 4096).unwrap();
        let source = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        for _ in 0..200 {
            source.send_to(&[0u8; 1000], to).unwrap();
        }
        // The kernel keeps at most a handful of 1000-byte datagrams in 4 KiB (doubled).
        let (Some(after), _) = read() else {
            panic!("/proc/net/snmp went away");
        };
        assert!(after >= before + 150, "{before} -> {after}");
        let mut text = String::new();
        render(&mut text);
        assert!(text.contains("junction_udp_receive_buffer_errors_total{family=\"ipv4\"} "));
    }
}
