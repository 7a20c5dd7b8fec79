//! Sockets and syscalls: UDP sockets made with socket2 (non-blocking, large buffers,
//! SO_REUSEPORT for a listening port shared by the workers), batches of datagrams moved with
//! `recvmmsg`/`sendmmsg`, and an epoll set with a sub-millisecond wait.

use crate::limits::{BATCH_MAX, DATAGRAM_MAX, SOCKET_BUFFER_BYTES};
use crate::ua::out::Out;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// A non-blocking UDP socket bound to `addr`, with SO_REUSEPORT when `shared` (one socket per
/// worker on the same port; the kernel spreads peers over them by 4-tuple).
pub fn udp_socket(addr: SocketAddr, shared: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        s.set_reuse_port(true)?;
    }
    // As root the forced variants go past net.core.rmem_max; otherwise take what we get.
    let fd = s.as_raw_fd();
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        let v = SOCKET_BUFFER_BYTES as libc::c_int;
        // SAFETY: setsockopt on a valid fd with a pointer to a c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let _ = if opt == libc::SO_RCVBUFFORCE {
                s.set_recv_buffer_size(SOCKET_BUFFER_BYTES)
            } else {
                s.set_send_buffer_size(SOCKET_BUFFER_BYTES)
            };
        }
    }
    // Kernel receive timestamps: latencies end when the datagram arrived, not when a batching
    // worker got to it.
    let one: libc::c_int = 1;
    // SAFETY: as above.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Refuse a listening address another process already uses: a plain bind (no SO_REUSEPORT)
/// fails if anybody holds the port, while our SO_REUSEPORT sockets would silently share it.
pub fn probe_free(addr: SocketAddr) -> io::Result<()> {
    UdpSocket::bind(addr).map(drop)
}

/// Receive buffers for one `recvmmsg` batch, allocated once per worker.
pub struct RecvBatch {
    bufs: Vec<u8>,
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
    /// Control-message space per datagram (the receive timestamp), 8-byte aligned.
    ctrl: Vec<[u64; CTRL_WORDS]>,
}

const CTRL_WORDS: usize = 8;

// The raw pointers inside point into the batch's own vectors, which never reallocate.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> RecvBatch {
        RecvBatch::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![0u8; BATCH_MAX * DATAGRAM_MAX],
            // SAFETY: all-zero is a valid value of these plain C structs.
            iov: (0..BATCH_MAX)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            names: (0..BATCH_MAX)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            hdrs: (0..BATCH_MAX)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            ctrl: vec![[0u64; CTRL_WORDS]; BATCH_MAX],
        };
        let base = b.bufs.as_mut_ptr();
        for i in 0..BATCH_MAX {
            // SAFETY: i * DATAGRAM_MAX + DATAGRAM_MAX <= bufs.len().
            b.iov[i].iov_base = unsafe { base.add(i * DATAGRAM_MAX) }.cast();
            b.iov[i].iov_len = DATAGRAM_MAX;
        }
        b
    }

    /// Receive up to BATCH_MAX datagrams without blocking. Returns how many arrived.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH_MAX {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CTRL_WORDS * 8;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: hdrs holds BATCH_MAX initialised headers pointing into our own buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH_MAX as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }

    /// The kernel receive time of datagram `i` (CLOCK_REALTIME, ns), if the kernel gave one.
    pub fn rx_time_ns(&self, i: usize) -> Option<i128> {
        let h = &self.hdrs.get(i)?.msg_hdr;
        // SAFETY: walking the control messages the kernel wrote into our buffer, within
        // msg_controllen, with the libc CMSG macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    return Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    /// Datagram `i` of the last batch: (source, bytes, truncated).
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8], bool)> {
        let h = self.hdrs.get(i)?;
        let len = (h.msg_len as usize).min(DATAGRAM_MAX);
        let bytes = self.bufs.get(i * DATAGRAM_MAX..i * DATAGRAM_MAX + len)?;
        let name = *self.names.get(i)?;
        // SAFETY: the kernel wrote a socket address of msg_namelen bytes into `name`.
        let addr = unsafe { SockAddr::new(name, h.msg_hdr.msg_namelen) };
        let from = addr.as_socket()?;
        Some((from, bytes, h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0))
    }
}

/// Send every datagram of `out` from the fds in `fds` (indexed by the transmit's socket), in
/// `sendmmsg` batches per socket. Returns (sent, failed).
pub fn send_all(out: &Out, fds: &[RawFd], scratch: &mut SendScratch) -> (u64, u64) {
    let mut sent = 0;
    let mut failed = 0;
    let list = &out.list;
    // Group by socket, keeping the order within each socket (180 before 200).
    scratch.order.clear();
    scratch.order.extend(0..list.len() as u32);
    if list.windows(2).any(|w| w[0].sock != w[1].sock) {
        scratch
            .order
            .sort_by_key(|&i| list.get(i as usize).map_or(0, |t| t.sock));
    }
    let mut i = 0;
    while i < scratch.order.len() {
        let sock = list.get(scratch.order[i] as usize).map_or(0, |t| t.sock);
        let mut j = i;
        while j < scratch.order.len()
            && j - i < BATCH_MAX
            && list.get(scratch.order[j] as usize).map(|t| t.sock) == Some(sock)
        {
            j += 1;
        }
        let Some(&fd) = fds.get(sock as usize) else {
            failed += (j - i) as u64;
            i = j;
            continue;
        };
        scratch.addrs.clear();
        scratch.iov.clear();
        scratch.hdrs.clear();
        for k in i..j {
            let Some(t) = list.get(scratch.order[k] as usize) else {
                continue;
            };
            scratch.addrs.push(SockAddr::from(t.dest));
            let bytes = out.bytes(t);
            scratch.iov.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
        for k in 0..scratch.iov.len() {
            // SAFETY: zeroed mmsghdr is valid; pointers filled below point into scratch/out,
            // which outlive the sendmmsg call.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = scratch.addrs[k].as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = scratch.addrs[k].len();
            h.msg_hdr.msg_iov = &mut scratch.iov[k];
            h.msg_hdr.msg_iovlen = 1;
            scratch.hdrs.push(h);
        }
        let mut done = 0;
        let total = scratch.hdrs.len();
        while done < total {
            // SAFETY: hdrs[done..] are valid headers as built above.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    scratch.hdrs.as_mut_ptr().add(done),
                    (total - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // Buffer full or an ICMP error pending: drop this datagram (UDP; the
                // retransmission timers recover) and go on with the next.
                failed += 1;
                done += 1;
            } else {
                sent += n as u64;
                done += n as usize;
            }
        }
        i = j;
    }
    (sent, failed)
}

#[derive(Default)]
pub struct SendScratch {
    order: Vec<u32>,
    addrs: Vec<SockAddr>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

unsafe impl Send for SendScratch {}

/// An epoll set of the worker's sockets (level-triggered, readable).
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
    pwait2: bool,
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own this fd.
        unsafe { libc::close(self.fd) };
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zeroed epoll_event is valid.
        Ok(Epoll {
            fd,
            events: (0..BATCH_MAX)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            pwait2: true,
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd, valid socket fd, pointer to an initialised event.
        if unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait up to `timeout_us` for readable sockets; returns their tokens through `tokens`.
    pub fn wait(&mut self, timeout_us: u64, tokens: &mut Vec<u64>) -> io::Result<()> {
        tokens.clear();
        let n = if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: (timeout_us / 1_000_000) as libc::time_t,
                tv_nsec: ((timeout_us % 1_000_000) * 1000) as libc::c_long,
            };
            // SAFETY: epoll_pwait2(epfd, events, maxevents, timeout, sigmask=NULL, sigsetsize).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd,
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    8usize,
                )
            };
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.pwait2 = false;
                return self.wait(timeout_us, tokens);
            }
            r as i32
        } else {
            let ms = timeout_us.div_ceil(1000).min(i32::MAX as u64) as libc::c_int;
            // SAFETY: valid epoll fd and event buffer.
            unsafe {
                libc::epoll_wait(
                    self.fd,
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    ms,
                )
            }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for e in self.events.iter().take(n as usize) {
            tokens.push(e.u64);
        }
        Ok(())
    }
}
