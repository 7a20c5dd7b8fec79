//! The kernel pre-filter on each shard's socket (classic BPF, SO_ATTACH_FILTER): with
//! `unknown_source = "drop"`, a request from an address that is no trunk peer is discarded
//! by the kernel before it is queued on the socket, so a flood from unknown sources costs
//! the shards nothing and cannot fill their receive buffers (on loopback the filter even
//! runs on the sender's CPU). Let through: every datagram from a trunk peer's address or
//! network (any port: the exact ip:port match stays in the core), and every datagram
//! whose payload starts with "SIP/" (a response: a dialog's far end may answer from an
//! address of its own; the core checks it). Everything else would be dropped unparsed by
//! the core anyway (`Core::handle_datagram`), so the filter changes only where, not what.
//!
//! An IPv4 socket's program reads the IPv4 source address. An IPv6 socket's first reads the
//! IP version: a dual-stack socket also receives IPv4 datagrams (IPv4-mapped, with an IPv4
//! header), checked against the IPv4 peers; IPv6 datagrams have their 128-bit source
//! compared word by word. Datagrams the filter drops are counted by the kernel in the
//! socket's drop counter (SO_MEMINFO, `junction_socket_drops_total`), not in the core's
//! `rejected_unknown_source`.

use crate::routing::peer::Sources;
use crate::routing::{RoutingTable, UnknownSource};
use std::io;
use std::os::fd::RawFd;

/// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h): class | size | mode.
const BPF_LD: u16 = 0x00;
const BPF_ST: u16 = 0x02;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_ABS: u16 = 0x20;
const BPF_B: u16 = 0x10;
const BPF_JA: u16 = 0x00;
const BPF_MEM: u16 = 0x60;
const BPF_AND: u16 = 0x50;
const BPF_JEQ: u16 = 0x10;
/// BPF_W (a 32-bit load) and BPF_K (an immediate operand) are both 0.
const LD_W_ABS: u16 = BPF_LD | BPF_ABS;
const LD_B_ABS: u16 = BPF_LD | BPF_B | BPF_ABS;
const JA: u16 = BPF_JMP | BPF_JA;
const LD_MEM: u16 = BPF_LD | BPF_MEM;
const ST: u16 = BPF_ST;
const ALU_AND_K: u16 = BPF_ALU | BPF_AND;
const JEQ_K: u16 = BPF_JMP | BPF_JEQ;
const RET_K: u16 = BPF_RET;

/// SKF_NET_OFF: loads relative to the network (IP) header; +12 is the IPv4 source address,
/// +8 the first of the IPv6 source address's four words, +0 holds the version (top nibble).
const SKF_NET_OFF: i32 = -0x10_0000;
const IPV4_SOURCE: u32 = (SKF_NET_OFF + 12) as u32;
const IPV6_SOURCE: i32 = SKF_NET_OFF + 8;
const IP_VERSION: u32 = SKF_NET_OFF as u32;
/// For a UDP socket the program sees the packet from the UDP header: the payload is at 8.
const UDP_PAYLOAD: u32 = 8;
/// "SIP/" as the big-endian word BPF loads.
const SIP_SLASH: u32 = u32::from_be_bytes(*b"SIP/");
/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const PROGRAM_MAX: usize = 4096;

const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program for an IPv4 socket and these trunk sources, or `None` when it would exceed
/// the kernel's limit (then the core does all the filtering).
pub fn program(sources: &Sources) -> Option<Vec<libc::sock_filter>> {
    let mut p = Vec::new();
    ipv4_checks(&mut p, sources);
    tail(&mut p);
    (p.len() <= PROGRAM_MAX).then_some(p)
}

/// The program for a (dual-stack) IPv6 socket: IPv4 datagrams are checked against the IPv4
/// sources, IPv6 ones against the IPv6 sources.
pub fn program_dual(sources: &Sources) -> Option<Vec<libc::sock_filter>> {
    let mut v6 = Vec::new();
    ipv6_checks(&mut v6, sources);
    let mut v4 = Vec::new();
    ipv4_checks(&mut v4, sources);
    let mut p = Vec::with_capacity(5 + v6.len() + v4.len() + 4);
    p.push(op(LD_B_ABS, 0, 0, IP_VERSION));
    p.push(op(ALU_AND_K, 0, 0, 0xf0));
    // IPv4: to the IPv4 checks (past the IPv6 ones and their jump to the tail).
    p.push(op(JEQ_K, 0, 1, 0x40));
    p.push(op(JA, 0, 0, u32::try_from(v6.len() + 1).ok()?));
    p.extend(v6);
    p.push(op(JA, 0, 0, u32::try_from(v4.len()).ok()?));
    p.extend(v4);
    tail(&mut p);
    (p.len() <= PROGRAM_MAX).then_some(p)
}

/// A = the IPv4 source: equal to a peer, or in a peer network -> accept; else fall through.
fn ipv4_checks(p: &mut Vec<libc::sock_filter>, sources: &Sources) {
    p.push(op(LD_W_ABS, 0, 0, IPV4_SOURCE));
    p.push(op(ST, 0, 0, 0));
    for ip in &sources.v4 {
        p.push(op(JEQ_K, 0, 1, *ip));
        p.push(op(RET_K, 0, 0, ACCEPT));
    }
    for (net, mask) in &sources.v4_nets {
        p.push(op(LD_MEM, 0, 0, 0));
        p.push(op(ALU_AND_K, 0, 0, *mask));
        p.push(op(JEQ_K, 0, 1, *net));
        p.push(op(RET_K, 0, 0, ACCEPT));
    }
}

/// The IPv6 source's four words into M[0..4], then each exact address and network compared
/// word by word (words a network's mask leaves out are not compared); a match accepts, and
/// a mismatch skips to the next entry; none matching falls through.
fn ipv6_checks(p: &mut Vec<libc::sock_filter>, sources: &Sources) {
    for w in 0..4u32 {
        p.push(op(LD_W_ABS, 0, 0, (IPV6_SOURCE + 4 * w as i32) as u32));
        p.push(op(ST, 0, 0, w));
    }
    let entries = sources
        .v6
        .iter()
        .map(|ip| (*ip, u128::MAX))
        .chain(sources.v6_nets.iter().copied());
    for (net, mask) in entries {
        let words: Vec<(u32, u32, u32)> = (0..4u32)
            .map(|w| {
                let shift = 96 - 32 * w;
                (w, (net >> shift) as u32, (mask >> shift) as u32)
            })
            .filter(|&(_, _, m)| m != 0)
            .collect();
        // Per word: load, mask (unless all ones), compare; then the accept.
        let len: usize = words
            .iter()
            .map(|&(_, _, m)| if m == u32::MAX { 2 } else { 3 })
            .sum::<usize>()
            + 1;
        let start = p.len();
        for (w, n, m) in words {
            p.push(op(LD_MEM, 0, 0, w));
            if m != u32::MAX {
                p.push(op(ALU_AND_K, 0, 0, m));
            }
            // On a mismatch, skip what is left of this entry (its accept included).
            let left = len - (p.len() + 1 - start);
            p.push(op(JEQ_K, 0, u8::try_from(left).unwrap_or(u8::MAX), n));
        }
        p.push(op(RET_K, 0, 0, ACCEPT));
    }
}

/// Not a peer: only responses pass. A datagram too short to load from is dropped by the
/// kernel (an out-of-bounds load ends the program with 0).
fn tail(p: &mut Vec<libc::sock_filter>) {
    p.push(op(LD_W_ABS, 0, 0, UDP_PAYLOAD));
    p.push(op(JEQ_K, 0, 1, SIP_SLASH));
    p.push(op(RET_K, 0, 0, ACCEPT));
    p.push(op(RET_K, 0, 0, DROP));
}

/// What `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// A filter with this many instructions is attached.
    Attached(usize),
    /// No filter (any previous one removed): why.
    None(&'static str),
}

/// Attach (or replace, or remove) the filter for `routing` on socket `fd`.
pub fn apply(fd: RawFd, ipv4: bool, routing: &RoutingTable) -> io::Result<Applied> {
    let why = if routing.unknown_source() != UnknownSource::Drop {
        "unknown_source = \"reject\" (they are answered)"
    } else {
        let sources = routing.peer_sources();
        let built = if ipv4 {
            program(&sources)
        } else {
            program_dual(&sources)
        };
        match built {
            Some(p) => {
                attach(fd, &p)?;
                return Ok(Applied::Attached(p.len()));
            }
            None => "too many trunk peers for a kernel filter",
        }
    };
    detach(fd);
    Ok(Applied::None(why))
}

fn attach(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::ErrorKind::InvalidInput)?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn detach(fd: RawFd) {
    // ENOENT (no filter attached) is the expected "error".
    let _ = super::socket::set_int_option(fd, libc::SO_DETACH_FILTER, 0);
}

/// Datagrams the kernel dropped for this socket so far (receive buffer full, or the
/// filter): SO_MEMINFO's SK_MEMINFO_DROPS.
pub fn socket_drops(fd: RawFd) -> Option<u64> {
    const SK_MEMINFO_VARS: usize = 9;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < (SK_MEMINFO_DROPS + 1) * 4 {
        return None;
    }
    info.get(SK_MEMINFO_DROPS).map(|&d| u64::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn ip6(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    /// Send `payload` from `from` to `to`; did it arrive?
    fn arrives(to: &UdpSocket, from: &str, payload: &[u8]) -> bool {
        let sender = UdpSocket::bind((from, 0)).unwrap();
        let mut target = to.local_addr().unwrap();
        if from.contains('.') && target.is_ipv6() {
            // A dual-stack socket, reached over IPv4.
            target = std::net::SocketAddr::new(Ipv4Addr::LOCALHOST.into(), target.port());
        }
        sender.send_to(payload, target).unwrap();
        let mut buf = [0u8; 2048];
        to.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        to.recv_from(&mut buf).is_ok()
    }

    const INVITE: &[u8] = b"INVITE sip:1@127.0.0.1 SIP/2.0\r\n\r\n";

    #[test]
    fn the_kernel_passes_peers_and_responses_and_drops_the_rest() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = program(&Sources {
            v4: vec![ip("127.0.0.2")],
            v4_nets: vec![(ip("127.0.5.0"), ip("255.255.255.0"))],
            ..Sources::default()
        })
        .unwrap();
        attach(sock.as_raw_fd(), &p).unwrap();
        let drops = socket_drops(sock.as_raw_fd()).unwrap();
        assert!(arrives(&sock, "127.0.0.2", INVITE), "exact peer");
        assert!(arrives(&sock, "127.0.5.77", INVITE), "peer network");
        assert!(!arrives(&sock, "127.0.6.1", INVITE), "unknown source");
        assert!(!arrives(&sock, "127.0.0.3", b"x"), "short junk");
        assert!(
            arrives(&sock, "127.0.0.3", b"SIP/2.0 200 OK\r\n\r\n"),
            "a response from anywhere"
        );
        assert_eq!(socket_drops(sock.as_raw_fd()), Some(drops + 2));
        // Removed: everything arrives again.
        detach(sock.as_raw_fd());
        assert!(arrives(&sock, "127.0.6.1", INVITE));
    }

    /// ::1 is the one IPv6 loopback source, so the IPv6 checks are seen to pass it when it
    /// is a peer (exactly, or in a network) and drop it when it is not; the same socket,
    /// dual-stack, checks IPv4 senders against the IPv4 peers.
    #[test]
    fn an_ipv6_socket_checks_ipv6_sources_word_by_word_and_ipv4_ones_as_ipv4() {
        let Ok(sock) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 on this machine
        };
        let fd = sock.as_raw_fd();
        let others = Sources {
            v4: vec![ip("127.0.0.2")],
            v4_nets: vec![(ip("127.0.5.0"), ip("255.255.255.0"))],
            // ::1's neighbours: they differ from it in the last word only, or by a bit
            // that /127 (but not /126) leaves out.
            v6: vec![ip6("::2"), ip6("1::1")],
            v6_nets: vec![(ip6("::2"), ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))],
        };
        attach(fd, &program_dual(&others).unwrap()).unwrap();
        let drops = socket_drops(fd).unwrap();
        assert!(!arrives(&sock, "::1", INVITE), "::1 is no peer");
        assert!(
            arrives(&sock, "::1", b"SIP/2.0 200 OK\r\n\r\n"),
            "a response"
        );
        assert!(arrives(&sock, "127.0.0.2", INVITE), "IPv4 peer, dual-stack");
        assert!(arrives(&sock, "127.0.5.9", INVITE), "IPv4 peer network");
        assert!(!arrives(&sock, "127.0.6.1", INVITE), "unknown IPv4 source");
        assert_eq!(socket_drops(fd), Some(drops + 2));
        for peers in [
            Sources {
                v6: vec![ip6("::2"), ip6("::1")],
                ..Sources::default()
            },
            Sources {
                v6_nets: vec![(ip6("::"), ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc"))],
                ..Sources::default()
            },
            Sources {
                v6_nets: vec![(ip6("::"), ip6("ffff::"))],
                ..Sources::default()
            },
        ] {
            attach(fd, &program_dual(&peers).unwrap()).unwrap();
            assert!(arrives(&sock, "::1", INVITE), "{peers:?}");
            assert!(!arrives(&sock, "127.0.0.2", INVITE), "{peers:?}");
        }
    }

    #[test]
    fn a_program_beyond_the_kernel_limit_is_refused() {
        let many = |n: u32| Sources {
            v4: (0..n).collect(),
            ..Sources::default()
        };
        assert!(program(&many(3000)).is_none());
        assert_eq!(program(&many(10)).map(|p| p.len()), Some(2 + 20 + 4));
        let many6 = Sources {
            v6: (0..500u128).collect(),
            ..Sources::default()
        };
        assert!(program_dual(&many6).is_none(), "9 instructions per address");
    }
}
