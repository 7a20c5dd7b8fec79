//! The kernel pre-filter on each shard's socket (classic BPF, SO_ATTACH_FILTER): with
//! `unknown_source = "drop"`, a request from an address that is no trunk peer is discarded
//! by the kernel before it is queued on the socket, so a flood from unknown sources costs
//! the shards nothing and cannot fill their receive buffers (on loopback the filter even
//! runs on the sender's CPU). Let through: every datagram from a trunk peer's IPv4 address
//! or network (any port: the exact ip:port match stays in the core), and every datagram
//! whose payload starts with "SIP/" (a response: a dialog's far end may answer from an
//! address of its own; the core checks it). Everything else would be dropped unparsed by
//! the core anyway (`Core::handle_datagram`), so the filter changes only where, not what.
//!
//! Only IPv4 sockets get one (the program reads the IPv4 source address). Datagrams the
//! filter drops are counted by the kernel in the socket's drop counter (SO_MEMINFO,
//! `junction_socket_drops_total`), not in the core's `rejected_unknown_source`.

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
const BPF_MEM: u16 = 0x60;
const BPF_AND: u16 = 0x50;
const BPF_JEQ: u16 = 0x10;
/// BPF_W (a 32-bit load) and BPF_K (an immediate operand) are both 0.
const LD_W_ABS: u16 = BPF_LD | BPF_ABS;
const LD_MEM: u16 = BPF_LD | BPF_MEM;
const ST: u16 = BPF_ST;
const ALU_AND_K: u16 = BPF_ALU | BPF_AND;
const JEQ_K: u16 = BPF_JMP | BPF_JEQ;
const RET_K: u16 = BPF_RET;

/// SKF_NET_OFF: loads relative to the network (IP) header; +12 is the IPv4 source address.
const SKF_NET_OFF: i32 = -0x10_0000;
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

/// The program for these trunk sources, or `None` when it would exceed the kernel's limit
/// (then the core does all the filtering).
pub fn program(exact: &[u32], nets: &[(u32, u32)]) -> Option<Vec<libc::sock_filter>> {
    let len = 2 + 2 * exact.len() + 4 * nets.len() + 4;
    if len > PROGRAM_MAX {
        return None;
    }
    let mut p = Vec::with_capacity(len);
    p.push(op(LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) as u32));
    p.push(op(ST, 0, 0, 0));
    // A = source address: equal to a peer -> accept (the next instruction), else skip it.
    for ip in exact {
        p.push(op(JEQ_K, 0, 1, *ip));
        p.push(op(RET_K, 0, 0, ACCEPT));
    }
    for (net, mask) in nets {
        p.push(op(LD_MEM, 0, 0, 0));
        p.push(op(ALU_AND_K, 0, 0, *mask));
        p.push(op(JEQ_K, 0, 1, *net));
        p.push(op(RET_K, 0, 0, ACCEPT));
    }
    // Not a peer: only responses pass. A datagram too short to load from is dropped by
    // the kernel (an out-of-bounds load ends the program with 0).
    p.push(op(LD_W_ABS, 0, 0, UDP_PAYLOAD));
    p.push(op(JEQ_K, 0, 1, SIP_SLASH));
    p.push(op(RET_K, 0, 0, ACCEPT));
    p.push(op(RET_K, 0, 0, DROP));
    Some(p)
}

/// What `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// A filter with this many instructions is attached.
    Attached(usize),
    /// No filter (any previous one removed): why.
    None(&'static str),
}

/// Attach (or replace, or remove) the filter for `routing` on an IPv4 socket `fd`.
pub fn apply(fd: RawFd, ipv4: bool, routing: &RoutingTable) -> io::Result<Applied> {
    let why = if !ipv4 {
        "IPv6 socket"
    } else if routing.unknown_source() != UnknownSource::Drop {
        "unknown_source = \"reject\" (they are answered)"
    } else {
        let (exact, nets) = routing.peer_ipv4_sources();
        match program(&exact, &nets) {
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
    use std::net::{Ipv4Addr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    /// Send `payload` from `from` to `to`; did it arrive?
    fn arrives(to: &UdpSocket, from: &str, payload: &[u8]) -> bool {
        let sender = UdpSocket::bind((from, 0)).unwrap();
        sender.send_to(payload, to.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 2048];
        to.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        to.recv_from(&mut buf).is_ok()
    }

    #[test]
    fn the_kernel_passes_peers_and_responses_and_drops_the_rest() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = program(
            &[ip("127.0.0.2")],
            &[(ip("127.0.5.0"), ip("255.255.255.0"))],
        )
        .unwrap();
        attach(sock.as_raw_fd(), &p).unwrap();
        let drops = socket_drops(sock.as_raw_fd()).unwrap();
        let invite = b"INVITE sip:1@127.0.0.1 SIP/2.0\r\n\r\n";
        assert!(arrives(&sock, "127.0.0.2", invite), "exact peer");
        assert!(arrives(&sock, "127.0.5.77", invite), "peer network");
        assert!(!arrives(&sock, "127.0.6.1", invite), "unknown source");
        assert!(!arrives(&sock, "127.0.0.3", b"x"), "short junk");
        assert!(
            arrives(&sock, "127.0.0.3", b"SIP/2.0 200 OK\r\n\r\n"),
            "a response from anywhere"
        );
        assert_eq!(socket_drops(sock.as_raw_fd()), Some(drops + 2));
        // Removed: everything arrives again.
        detach(sock.as_raw_fd());
        assert!(arrives(&sock, "127.0.6.1", invite));
    }

    #[test]
    fn a_program_beyond_the_kernel_limit_is_refused() {
        let many: Vec<u32> = (0..3000).collect();
        assert!(program(&many, &[]).is_none());
        assert_eq!(program(&many[..10], &[]).map(|p| p.len()), Some(2 + 20 + 4));
    }
}
