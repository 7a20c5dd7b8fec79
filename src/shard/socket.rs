//! Socket creation, all on the starting thread before any shard runs, in a fixed order.
//!
//! glommio's `UdpSocket::bind` always sets SO_REUSEPORT, so a stale second instance would
//! silently share (steal) our traffic. We therefore (1) bind a probe socket WITHOUT
//! SO_REUSEPORT to refuse to start when anyone holds the port, then (2) create one
//! SO_REUSEPORT socket per shard with socket2 and hand each fd to its shard.

use crate::limits;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// The per-shard sockets, bound to one address.
pub struct ShardSockets {
    pub sockets: Vec<Socket>,
    /// The address actually bound (the chosen port when `listen` had port 0).
    pub local: SocketAddr,
    /// Problems worth telling the operator that do not stop us (buffer sizes capped).
    pub warnings: Vec<String>,
}

/// Refuse to start when another socket (of any process, with or without SO_REUSEPORT) is
/// bound to `listen`. Port 0 asks the kernel for a free port, so there is nothing to check.
pub fn probe_free(listen: SocketAddr) -> Result<(), String> {
    if listen.port() == 0 {
        return Ok(());
    }
    // std never sets SO_REUSEADDR/SO_REUSEPORT on UDP sockets: this bind fails if anyone
    // else holds the address, whatever options they used. A predecessor that was just
    // killed (kill -9, then a restart by systemd) can hold it a little longer while the
    // kernel tears down its io_uring rings: wait for that, then refuse.
    let give_up = std::time::Instant::now() + crate::limits::BIND_RELEASE_WAIT;
    loop {
        match UdpSocket::bind(listen) {
            Ok(probe) => {
                drop(probe);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= give_up {
                    return Err(format!("udp:{listen} is already in use by another process"));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(format!("udp:{listen}: cannot bind: {e}")),
        }
    }
}

/// Create and bind `count` SO_REUSEPORT sockets on `listen` (after `probe_free`).
pub fn bind_shard_sockets(listen: SocketAddr, count: usize) -> Result<ShardSockets, String> {
    assert!(count > 0);
    let mut sockets = Vec::with_capacity(count);
    let mut warnings = Vec::new();
    let mut local = listen;
    for shard in 0..count {
        let socket = new_socket(local, &mut warnings)
            .map_err(|e| format!("udp:{listen}: cannot create the socket of shard {shard}: {e}"))?;
        socket.bind(&local.into()).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => format!("udp:{local} is already in use by another process"),
            _ => format!("udp:{local}: cannot bind the socket of shard {shard}: {e}"),
        })?;
        if shard == 0 {
            // With port 0 the kernel chose a port: every other shard binds that one.
            local = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| format!("udp:{listen}: cannot read the bound address"))?;
        }
        sockets.push(socket);
    }
    // Warnings are identical for every socket: keep one of each.
    warnings.dedup();
    Ok(ShardSockets {
        sockets,
        local,
        warnings,
    })
}

/// Create and bind one socket per shard on port `base + shard` of `ip` (`[server]
/// shard_ports`), without SO_REUSEPORT: each port belongs to one shard, and a port someone
/// else holds refuses the start.
pub fn bind_shard_port_sockets(
    ip: std::net::IpAddr,
    base: u16,
    count: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<Socket>, String> {
    let mut sockets = Vec::with_capacity(count);
    for shard in 0..count {
        let port = u16::try_from(usize::from(base) + shard)
            .map_err(|_| format!("server.shard_ports: shard {shard}'s port is beyond 65535"))?;
        let addr = SocketAddr::new(ip, port);
        let socket = new_socket_with(addr, false, warnings)
            .map_err(|e| format!("udp:{addr}: cannot create shard {shard}'s own socket: {e}"))?;
        socket.bind(&addr.into()).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => format!(
                "udp:{addr} (server.shard_ports, shard {shard}) is already in use by another process"
            ),
            _ => format!("udp:{addr}: cannot bind shard {shard}'s own socket: {e}"),
        })?;
        sockets.push(socket);
    }
    warnings.dedup();
    Ok(sockets)
}

fn new_socket(addr: SocketAddr, warnings: &mut Vec<String>) -> io::Result<Socket> {
    new_socket_with(addr, true, warnings)
}

fn new_socket_with(
    addr: SocketAddr,
    reuse_port: bool,
    warnings: &mut Vec<String>,
) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    set_buffer(&socket, Buffer::Receive, warnings)?;
    set_buffer(&socket, Buffer::Send, warnings)?;
    // Kernel receive timestamps: the shard measures how long datagrams queued (overload
    // control). Without them overload control stays idle; that is worth a warning only.
    // ICMP errors for what we send (port/host unreachable): an attempt to a dead gateway
    // fails at once instead of waiting for its timers (errqueue.rs).
    if let Err(e) = super::errqueue::enable(socket.as_raw_fd(), addr.is_ipv6()) {
        warnings.push(format!(
            "IP_RECVERR refused ({e}): a dead gateway is noticed only by timeouts and probes"
        ));
    }
    if let Err(e) = set_int_option(socket.as_raw_fd(), libc::SO_TIMESTAMPNS, 1) {
        warnings.push(format!(
            "SO_TIMESTAMPNS refused ({e}): overload control cannot measure queueing delay"
        ));
    }
    Ok(socket)
}

/// setsockopt(SOL_SOCKET, option, value) for an int-valued socket option.
pub(crate) fn set_int_option(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[derive(Clone, Copy)]
enum Buffer {
    Receive,
    Send,
}

/// Ask for `limits::SOCKET_BUFFER_BYTES`. The kernel caps SO_RCVBUF/SO_SNDBUF at
/// net.core.rmem_max/wmem_max (often ~200 KiB); when that happened and we are privileged we
/// use the FORCE variant, otherwise we note a warning with the sysctl to raise.
fn set_buffer(socket: &Socket, which: Buffer, warnings: &mut Vec<String>) -> io::Result<()> {
    let want = limits::SOCKET_BUFFER_BYTES;
    match which {
        Buffer::Receive => socket.set_recv_buffer_size(want)?,
        Buffer::Send => socket.set_send_buffer_size(want)?,
    }
    let got = || match which {
        Buffer::Receive => socket.recv_buffer_size(),
        Buffer::Send => socket.send_buffer_size(),
    };
    // Linux reports twice the requested value (it includes bookkeeping overhead).
    if got()? >= want {
        return Ok(());
    }
    let option = match which {
        Buffer::Receive => libc::SO_RCVBUFFORCE,
        Buffer::Send => libc::SO_SNDBUFFORCE,
    };
    let forced = set_int_option(socket.as_raw_fd(), option, want as libc::c_int).is_ok();
    let now = got()?;
    if !forced || now < want {
        let (name, sysctl) = match which {
            Buffer::Receive => ("SO_RCVBUF", "net.core.rmem_max"),
            Buffer::Send => ("SO_SNDBUF", "net.core.wmem_max"),
        };
        warnings.push(format!(
            "{name} is {now} bytes, not the {want} asked for: raise {sysctl} (bursts may be dropped by the kernel)"
        ));
    }
    Ok(())
}

/// The sockets used to wake a parked shard from another thread (to stop it): each shard
/// gets a loopback UDP socket connected to one control-side socket, so only that socket
/// can send to it.
pub struct WakeSockets {
    pub control: UdpSocket,
    /// One per shard, connected to `control`.
    pub shards: Vec<UdpSocket>,
}

pub fn wake_sockets(count: usize) -> Result<WakeSockets, String> {
    let error = |e: io::Error| format!("cannot create the shard wake-up sockets on 127.0.0.1: {e}");
    let control = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(error)?;
    let control_addr = control.local_addr().map_err(error)?;
    let mut shards = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(error)?;
        socket.connect(control_addr).map_err(error)?;
        socket.set_nonblocking(true).map_err(error)?;
        shards.push(socket);
    }
    Ok(WakeSockets { control, shards })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_refuses_a_port_held_without_reuseport() {
        let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let error = probe_free(addr).unwrap_err();
        assert_eq!(
            error,
            format!("udp:{addr} is already in use by another process")
        );
        drop(holder);
        assert_eq!(probe_free(addr), Ok(()));
    }

    #[test]
    fn probe_refuses_a_port_held_with_reuseport() {
        // A stale instance of ourselves holds the port WITH SO_REUSEPORT: binding our own
        // SO_REUSEPORT sockets would succeed and share its traffic; the probe must not.
        let first = bind_shard_sockets("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let error = probe_free(first.local).unwrap_err();
        assert!(
            error.contains("already in use by another process"),
            "{error}"
        );
    }

    #[test]
    fn port_zero_binds_every_shard_to_the_same_chosen_port() {
        let bound = bind_shard_sockets("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_ne!(bound.local.port(), 0);
        assert_eq!(bound.sockets.len(), 3);
        for socket in &bound.sockets {
            assert_eq!(socket.local_addr().unwrap().as_socket(), Some(bound.local));
            assert!(socket.reuse_port().unwrap());
        }
    }

    #[test]
    fn wake_socket_only_hears_the_control_socket() {
        let wake = wake_sockets(2).unwrap();
        let shard = &wake.shards[1];
        shard.set_nonblocking(false).unwrap();
        shard
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let target = shard.local_addr().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        wake.control.send_to(&[1], target).unwrap();
        stranger.send_to(&[2], target).unwrap();
        wake.control.send_to(&[3], target).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(shard.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 1);
        assert_eq!(shard.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 3, "a datagram from another socket got through");
    }
}
