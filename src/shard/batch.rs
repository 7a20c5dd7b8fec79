//! Batched datagram I/O on a raw socket: `recvmmsg` into reusable buffers and `sendmmsg`
//! from borrowed slices. glommio 0.9 has neither; we use it only to wait for readability.
//!
//! Both calls pass MSG_DONTWAIT and never block. Addresses are converted between
//! `sockaddr_storage` and `SocketAddr` here; IPv4-mapped IPv6 sources (a dual-stack `[::]`
//! socket receiving from an IPv4 peer) are reported as IPv4, and IPv4 destinations are
//! mapped back when the socket is IPv6, so the core only ever sees one form per peer.

use crate::limits;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

/// One received datagram, borrowed from a `RecvBatch`.
#[derive(Debug)]
pub struct Received<'a> {
    pub data: &'a [u8],
    /// `None` when the kernel reported an address family we do not speak (never for UDP).
    pub from: Option<SocketAddr>,
    /// The datagram was larger than our buffer (MSG_TRUNC): it must be dropped.
    pub truncated: bool,
}

/// Reusable buffers for one `recvmmsg` call of up to `limits::BATCH_DATAGRAMS_MAX`
/// datagrams of up to `limits::DATAGRAM_BYTES_MAX` bytes each (~2 MiB, allocated once, laid
/// out as `RECV_SLOT_BYTES` says).
pub struct RecvBatch {
    buffers: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    addresses: Vec<libc::sockaddr_storage>,
    headers: Vec<libc::mmsghdr>,
    /// Ancillary data per datagram: the kernel's receive timestamp (SO_TIMESTAMPNS).
    /// u64 elements keep each buffer aligned for `cmsghdr`.
    controls: Vec<[u64; CONTROL_WORDS]>,
    /// Datagrams held by the last successful `recv`.
    len: usize,
}

/// Distance between the starts of two receive buffers: room for the largest datagram,
/// rounded up to 64 KiB, plus 17 cache lines. Without the 17 lines every buffer would start
/// at (almost) the same offset modulo 64 KiB, so the n-th cache line of all 32 datagrams of
/// a full batch would fall into one cache set of L1 and L2 (8-16 ways): under load, when
/// every batch is full, a datagram can be evicted by the ones received after it before it
/// is parsed. Shifting each buffer by an odd number of lines spreads them over all sets.
/// (Measured at a steady 22,000 calls/s, shard at 40% of a CPU, two alternating pairs:
/// 51 and 47 us of shard CPU per call before, 49 and 46 after: within this VM's noise.)
const RECV_SLOT_BYTES: usize = (limits::DATAGRAM_BYTES_MAX + 1).next_multiple_of(65_536) + 17 * 64;
const _: () = assert!(RECV_SLOT_BYTES >= limits::DATAGRAM_BYTES_MAX);

/// Room for one SCM_TIMESTAMPNS message (CMSG_SPACE(sizeof(timespec)) = 32 bytes on
/// 64-bit Linux), with slack.
const CONTROL_WORDS: usize = 8;

impl RecvBatch {
    pub fn new() -> RecvBatch {
        let n = limits::BATCH_DATAGRAMS_MAX;
        RecvBatch {
            buffers: vec![0u8; n * RECV_SLOT_BYTES],
            // SAFETY: iovec, sockaddr_storage and mmsghdr are plain C structs for which
            // all-zero bytes is a valid value (null pointers, zero lengths).
            iovecs: vec![unsafe { mem::zeroed() }; n],
            addresses: vec![unsafe { mem::zeroed() }; n],
            headers: vec![unsafe { mem::zeroed() }; n],
            controls: vec![[0u64; CONTROL_WORDS]; n],
            len: 0,
        }
    }

    /// Receive up to `limits::BATCH_DATAGRAMS_MAX` datagrams without blocking. Returns how
    /// many were received: 0 when the socket is empty (EAGAIN). Other errors are returned.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        let n = self.headers.len();
        assert!(self.iovecs.len() == n && self.addresses.len() == n && self.controls.len() == n);
        assert!(self.buffers.len() == n * RECV_SLOT_BYTES);
        let base = self.buffers.as_mut_ptr();
        for i in 0..n {
            // The pointers are rebuilt on every call, so moving `self` can never leave a
            // stale one behind; the Vecs' heap blocks themselves never move.
            self.iovecs[i] = libc::iovec {
                // SAFETY: i * RECV_SLOT_BYTES + DATAGRAM_BYTES_MAX <= buffers.len().
                iov_base: unsafe { base.add(i * RECV_SLOT_BYTES) }.cast(),
                iov_len: limits::DATAGRAM_BYTES_MAX,
            };
            let header = &mut self.headers[i];
            header.msg_hdr.msg_name =
                (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen =
                mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        loop {
            // SAFETY: every header points at live buffers owned by `self` (set up above),
            // and `n` is the length of `headers`.
            let got = unsafe {
                libc::recvmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got >= 0 {
                self.len = (got as usize).min(n);
                return Ok(self.len);
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(error),
            }
        }
    }

    /// How many datagrams the last `recv` returned.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the kernel received datagram `i` of the last `recv` (CLOCK_REALTIME, as time
    /// since the Unix epoch), if the socket has SO_TIMESTAMPNS on.
    pub fn kernel_time(&self, i: usize) -> Option<Duration> {
        if i >= self.len {
            return None;
        }
        let header = &self.headers.get(i)?.msg_hdr;
        if header.msg_controllen == 0 || header.msg_control.is_null() {
            return None;
        }
        // SAFETY: `header` describes a control buffer of ours that the kernel filled
        // (msg_controllen is what it wrote); CMSG_FIRSTHDR/CMSG_NXTHDR stay within it.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    let secs = u64::try_from(ts.tv_sec).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec).ok()?;
                    return Some(Duration::new(secs, nanos));
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }

    /// Datagram `i` of the last `recv` (`None` past the end).
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.len {
            return None;
        }
        let header = self.headers.get(i)?;
        let start = i * RECV_SLOT_BYTES;
        let len = (header.msg_len as usize).min(limits::DATAGRAM_BYTES_MAX);
        let data = self.buffers.get(start..start + len)?;
        let from = sockaddr_to_std(self.addresses.get(i)?, header.msg_hdr.msg_namelen);
        Some(Received {
            data,
            from,
            truncated: header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

/// What happened to the datagrams given to one `SendBatch::send`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    /// Datagrams the kernel refused for good (bad address, too large, unreachable...).
    pub failed: usize,
    /// The first datagram not attempted because the send buffer is full (EAGAIN/ENOBUFS):
    /// the caller waits and calls `send` again from here.
    pub blocked_at: Option<usize>,
    /// A send reported an ICMP unreachable pending on the socket (IP_RECVERR) for an
    /// earlier datagram: its details wait in the error queue (errqueue.rs).
    pub unreachable_pending: bool,
}

/// Reusable headers for one `sendmmsg` call of up to `limits::BATCH_DATAGRAMS_MAX`
/// datagrams. The payloads are borrowed from the caller for the duration of `send`.
pub struct SendBatch {
    iovecs: Vec<libc::iovec>,
    addresses: Vec<libc::sockaddr_storage>,
    address_lens: Vec<libc::socklen_t>,
    headers: Vec<libc::mmsghdr>,
    len: usize,
    /// The socket is AF_INET6: IPv4 destinations are sent as IPv4-mapped addresses.
    ipv6_socket: bool,
}

impl SendBatch {
    pub fn new(ipv6_socket: bool) -> SendBatch {
        let n = limits::BATCH_DATAGRAMS_MAX;
        SendBatch {
            // SAFETY: plain C structs, all-zero is valid.
            iovecs: vec![unsafe { mem::zeroed() }; n],
            addresses: vec![unsafe { mem::zeroed() }; n],
            address_lens: vec![0; n],
            headers: vec![unsafe { mem::zeroed() }; n],
            len: 0,
            ipv6_socket,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.headers.len()
    }

    /// Queue one datagram. Returns false (and queues nothing) when the destination cannot
    /// be reached from this socket's address family; the caller counts that as a send error.
    /// The caller must not queue more than `limits::BATCH_DATAGRAMS_MAX` (check `is_full`).
    pub fn push(&mut self, to: SocketAddr, data: &[u8]) -> bool {
        assert!(!self.is_full(), "SendBatch overfilled");
        let i = self.len;
        let Some(len) = std_to_sockaddr(to, self.ipv6_socket, &mut self.addresses[i]) else {
            return false;
        };
        self.address_lens[i] = len;
        self.iovecs[i] = libc::iovec {
            // sendmmsg only reads through this pointer.
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        self.len += 1;
        true
    }

    /// Send the queued datagrams from index `from` on, without blocking. The slices given
    /// to `push` must still be alive (the caller holds the borrow across both calls).
    pub fn send(&mut self, fd: RawFd, from: usize) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        let mut next = from;
        // The datagram already retried after a pending ICMP error was reported on it.
        let mut retried = None;
        while next < self.len {
            for i in next..self.len {
                let header = &mut self.headers[i];
                header.msg_hdr.msg_name =
                    (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
                header.msg_hdr.msg_namelen = self.address_lens[i];
                header.msg_hdr.msg_iov = &mut self.iovecs[i];
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_control = std::ptr::null_mut();
                header.msg_hdr.msg_controllen = 0;
                header.msg_hdr.msg_flags = 0;
                header.msg_len = 0;
            }
            let count = self.len - next;
            // SAFETY: headers[next..len] point at addresses and iovecs owned by `self`, and
            // the iovecs at payloads the caller keeps alive; `count` stays within `headers`.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.as_mut_ptr().add(next),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if sent > 0 {
                let sent = (sent as usize).min(count);
                outcome.sent += sent;
                next += sent;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    outcome.blocked_at = Some(next);
                    return outcome;
                }
                // With IP_RECVERR a pending ICMP error of an earlier datagram is reported
                // by the next send, which did not go out: send it again (once).
                e if super::errqueue::is_unreachable_errno(e) && retried != Some(next) => {
                    outcome.unreachable_pending = true;
                    retried = Some(next);
                }
                // sendmmsg reports the error of the first datagram it could not send: that
                // datagram is undeliverable, skip it and go on with the rest.
                _ => {
                    outcome.failed += 1;
                    next += 1;
                }
            }
        }
        outcome
    }
}

/// Convert a kernel socket address to a `SocketAddr`; IPv4-mapped IPv6 becomes IPv4.
pub fn sockaddr_to_std(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            match ip.to_ipv4_mapped() {
                Some(v4) => Some(SocketAddr::V4(SocketAddrV4::new(v4, port))),
                None => Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                ))),
            }
        }
        _ => None,
    }
}

/// Write `addr` into `storage` for a socket of the given family; returns the address length,
/// or `None` when an IPv4 socket is asked to reach an IPv6 address.
pub fn std_to_sockaddr(
    addr: SocketAddr,
    ipv6_socket: bool,
    storage: &mut libc::sockaddr_storage,
) -> Option<libc::socklen_t> {
    let v6 = match (addr, ipv6_socket) {
        (SocketAddr::V4(v4), false) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage and all-zero is valid for it.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            *sin = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            return Some(mem::size_of::<libc::sockaddr_in>() as libc::socklen_t);
        }
        (SocketAddr::V6(_), false) => return None,
        (SocketAddr::V4(v4), true) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
        (SocketAddr::V6(v6), true) => v6,
    };
    // SAFETY: sockaddr_in6 fits in sockaddr_storage and all-zero is valid for it.
    let sin6 =
        unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    *sin6 = unsafe { mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_port = v6.port().to_be();
    sin6.sin6_addr.s6_addr = v6.ip().octets();
    sin6.sin6_flowinfo = v6.flowinfo();
    sin6.sin6_scope_id = v6.scope_id();
    Some(mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn address_round_trips() {
        let cases: [(SocketAddr, bool, SocketAddr); 4] = [
            (
                "192.0.2.7:5060".parse().unwrap(),
                false,
                "192.0.2.7:5060".parse().unwrap(),
            ),
            // An IPv4 peer seen through a dual-stack socket comes back as IPv4.
            (
                "192.0.2.7:5060".parse().unwrap(),
                true,
                "192.0.2.7:5060".parse().unwrap(),
            ),
            (
                "[2001:db8::1]:5061".parse().unwrap(),
                true,
                "[2001:db8::1]:5061".parse().unwrap(),
            ),
            ("[::1]:1".parse().unwrap(), true, "[::1]:1".parse().unwrap()),
        ];
        for (addr, ipv6_socket, expected) in cases {
            let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = std_to_sockaddr(addr, ipv6_socket, &mut storage).unwrap();
            assert_eq!(sockaddr_to_std(&storage, len), Some(expected), "{addr}");
        }
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        assert_eq!(
            std_to_sockaddr("[::1]:1".parse().unwrap(), false, &mut storage),
            None
        );
        // A length too short for the family is refused, not read past.
        storage.ss_family = libc::AF_INET6 as libc::sa_family_t;
        assert_eq!(sockaddr_to_std(&storage, 8), None);
    }

    #[test]
    fn receive_slots_start_in_different_cache_sets() {
        // 64 sets of 64-byte lines: an L1 data cache of 32-48 KiB, 8-12 ways. The L2's
        // sets (1024 or more) are told apart by more bits of the same index.
        let sets: std::collections::HashSet<usize> = (0..limits::BATCH_DATAGRAMS_MAX)
            .map(|i| (i * RECV_SLOT_BYTES / 64) % 64)
            .collect();
        assert_eq!(sets.len(), limits::BATCH_DATAGRAMS_MAX);
    }

    #[test]
    fn recvmmsg_and_sendmmsg_move_batches_over_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let mut recv = RecvBatch::new();
        assert_eq!(
            recv.recv(b.as_raw_fd()).unwrap(),
            0,
            "empty socket is not an error"
        );

        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + usize::from(i) * 3]).collect();
        let mut send = SendBatch::new(false);
        let mut total = 0;
        for chunk in payloads.chunks(limits::BATCH_DATAGRAMS_MAX) {
            send.clear();
            for p in chunk {
                assert!(send.push(b_addr, p));
            }
            let outcome = send.send(a.as_raw_fd(), 0);
            assert_eq!(
                outcome,
                SendOutcome {
                    sent: chunk.len(),
                    failed: 0,
                    blocked_at: None,
                    unreachable_pending: false,
                }
            );
            total += outcome.sent;
        }
        assert_eq!(total, 40);

        let mut seen = Vec::new();
        while seen.len() < 40 {
            let n = recv.recv(b.as_raw_fd()).unwrap();
            assert!(n > 0 && n <= limits::BATCH_DATAGRAMS_MAX);
            for i in 0..n {
                let r = recv.get(i).unwrap();
                assert!(!r.truncated);
                assert_eq!(r.from, Some(a.local_addr().unwrap()));
                seen.push(r.data.to_vec());
            }
            assert!(recv.get(n).is_none());
        }
        assert_eq!(seen, payloads);
    }

    #[test]
    fn undeliverable_datagram_is_counted_and_the_rest_still_sent() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut send = SendBatch::new(false);
        let too_big = vec![0u8; 70_000];
        assert!(send.push(b.local_addr().unwrap(), b"one"));
        assert!(send.push(b.local_addr().unwrap(), &too_big)); // EMSGSIZE
        assert!(send.push(b.local_addr().unwrap(), b"three"));
        assert!(!send.push("[::1]:5060".parse().unwrap(), b"wrong family"));
        let outcome = send.send(a.as_raw_fd(), 0);
        assert_eq!(
            outcome,
            SendOutcome {
                sent: 2,
                failed: 1,
                blocked_at: None,
                unreachable_pending: false,
            }
        );
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
    }

    #[test]
    fn a_pending_icmp_error_does_not_cost_the_next_datagram() {
        // With IP_RECVERR the kernel reports an ICMP error of an earlier datagram on the
        // next send, which then did not go out: it is sent again.
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        super::super::errqueue::enable(a.as_raw_fd(), false).unwrap();
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut send = SendBatch::new(false);
        let mut pending = false;
        for _ in 0..50 {
            send.clear();
            assert!(send.push(closed, b"to nobody"));
            send.send(a.as_raw_fd(), 0);
            std::thread::sleep(Duration::from_millis(2));
            send.clear();
            assert!(send.push(b.local_addr().unwrap(), b"wanted"));
            let outcome = send.send(a.as_raw_fd(), 0);
            assert_eq!((outcome.sent, outcome.failed), (1, 0), "{outcome:?}");
            let mut buf = [0u8; 16];
            assert_eq!(b.recv(&mut buf).unwrap(), 6);
            if outcome.unreachable_pending {
                pending = true;
                break;
            }
        }
        assert!(
            pending,
            "the kernel never reported the pending error on a send"
        );
    }
}
