//! ICMP errors for datagrams a shard sent (IP_RECVERR / IPV6_RECVERR on its socket): read
//! from the socket's error queue with `recvmsg(MSG_ERRQUEUE)`, which gives the address the
//! datagram went to (msg_name), the first bytes of it the ICMP message quoted (the data)
//! and a `sock_extended_err` saying what happened. Only "unreachable" errors from ICMP or
//! ICMPv6 (port, host, network) are reported; the core fails the attempt at once
//! (`Core::handle_unreachable`).
//!
//! With IP_RECVERR the kernel also reports a pending error on the next receive or send of
//! the socket (ECONNREFUSED and friends): `is_unreachable_errno` tells those apart from
//! real socket failures, so that they neither back the receive loop off nor drop a datagram
//! (batch.rs retries the send).

use super::batch::sockaddr_to_std;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Most quoted bytes read per error (`limits::ICMP_QUOTED_BYTES_MAX`).
pub const QUOTED_BYTES_MAX: usize = crate::limits::ICMP_QUOTED_BYTES_MAX;

/// Most errors read in one loop round (`limits::ICMP_ERRORS_PER_ROUND_MAX`).
pub const ERRORS_PER_ROUND_MAX: usize = crate::limits::ICMP_ERRORS_PER_ROUND_MAX;

/// One ICMP unreachable: where the datagram went, and how much of it was quoted (in the
/// caller's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreachable {
    pub dest: SocketAddr,
    pub quoted: usize,
}

/// Whether `errno` is how the kernel reports a pending ICMP unreachable on a socket with
/// IP_RECVERR (on a receive or a send that has nothing to do with it).
pub fn is_unreachable_errno(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH)
    )
}

/// Ask for ICMP errors on the socket (IPv4, and for an IPv6 socket IPv6 too; a dual-stack
/// IPv6 socket also takes IP_RECVERR for its IPv4-mapped peers).
pub fn enable(fd: RawFd, ipv6: bool) -> io::Result<()> {
    let set = |level: libc::c_int, option: libc::c_int| -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads size_of::<c_int>() bytes from a live c_int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                option,
                (&one as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if ipv6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVERR)?;
        // Best effort: an IPv6-only socket has no IPv4 peers.
        let _ = set(libc::IPPROTO_IP, libc::IP_RECVERR);
        Ok(())
    } else {
        set(libc::IPPROTO_IP, libc::IP_RECVERR)
    }
}

/// Read one error from the queue into `quoted` (without blocking). `Ok(None)`: the queue
/// is empty. Errors that are not an ICMP unreachable are read (removed) and skipped.
pub fn read(fd: RawFd, quoted: &mut [u8]) -> io::Result<Option<Unreachable>> {
    loop {
        // SAFETY: all-zero is valid for these plain C structs.
        let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: quoted.as_mut_ptr().cast(),
            iov_len: quoted.len(),
        };
        // SAFETY: as above.
        let mut header: libc::msghdr = unsafe { mem::zeroed() };
        header.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        header.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = mem::size_of_val(&control);
        // SAFETY: every pointer in `header` points at a live buffer of the length given.
        let n = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        let mut unreachable = false;
        // SAFETY: the kernel filled msg_control up to msg_controllen; CMSG_FIRSTHDR and
        // CMSG_NXTHDR stay within it, and a sock_extended_err follows an IP(V6)_RECVERR
        // header (read unaligned).
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let ours = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                    || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
                if ours
                    && c.cmsg_len as usize
                        >= libc::CMSG_LEN(mem::size_of::<libc::sock_extended_err>() as u32) as usize
                {
                    let ee: libc::sock_extended_err =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    let icmp = ee.ee_origin == libc::SO_EE_ORIGIN_ICMP
                        || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
                    unreachable |= icmp && is_unreachable_errno(Some(ee.ee_errno as i32));
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        let dest = sockaddr_to_std(&name, header.msg_namelen);
        match dest {
            Some(dest) if unreachable => {
                return Ok(Some(Unreachable {
                    dest,
                    quoted: (n as usize).min(quoted.len()),
                }))
            }
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_datagram_to_a_closed_port_comes_back_as_unreachable_with_its_bytes() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_nonblocking(true).expect("nonblocking");
        enable(sock.as_raw_fd(), false).expect("IP_RECVERR");
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr")
        };
        sock.send_to(
            b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKjn",
            closed,
        )
        .expect("send");
        let mut buf = [0u8; QUOTED_BYTES_MAX];
        // Loopback delivers the ICMP error synchronously; allow for a slow machine.
        let mut got = None;
        for _ in 0..200 {
            got = read(sock.as_raw_fd(), &mut buf).expect("read");
            if got.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let u = got.expect("an unreachable error");
        assert_eq!(u.dest, closed);
        assert!(buf[..u.quoted].starts_with(b"INVITE sip:x"), "{u:?}");
        assert_eq!(read(sock.as_raw_fd(), &mut buf).expect("read"), None);
        assert!(is_unreachable_errno(Some(libc::ECONNREFUSED)));
        assert!(!is_unreachable_errno(Some(libc::EBADF)));
    }
}
