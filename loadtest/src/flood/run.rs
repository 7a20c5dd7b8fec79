//! The flood's threads: each owns its share of the source sockets and of the rate, sends
//! precomputed datagrams in `sendmmsg` batches (one source per batch, round robin), paces per
//! batch, and reads every reply between batches without blocking. The main thread prints a
//! live line each second from shared counters and sums them at the end.

use super::payload::{Pools, Rng, Template, KINDS};
use super::Plan;
use crate::io::net::{Epoll, RecvBatch};
use crate::limits::BATCH_MAX;
use crate::time::{Micros, SEC};
use serde_json::json;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt::Write as _;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Status codes counted one by one; anything else (and requests, and datagrams that are not
/// SIP) is counted under 0.
const CODES: usize = 700;
/// Socket buffers of each source (forced as root).
const SOURCE_BUFFER_BYTES: libc::c_int = 1 << 20;

/// Counters shared by a worker and the main thread (relaxed; read once a second).
pub struct Counters {
    pub sent: AtomicU64,
    pub bytes: AtomicU64,
    pub by_kind: [AtomicU64; 4],
    /// Datagrams the kernel refused: send buffer full (EAGAIN), no buffer space (ENOBUFS),
    /// anything else (an ICMP error pending on the socket...).
    pub eagain: AtomicU64,
    pub enobufs: AtomicU64,
    pub other_errors: AtomicU64,
    pub replies: AtomicU64,
    pub reply_bytes: AtomicU64,
    pub by_code: Vec<AtomicU64>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            sent: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            by_kind: Default::default(),
            eagain: AtomicU64::new(0),
            enobufs: AtomicU64::new(0),
            other_errors: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            reply_bytes: AtomicU64::new(0),
            by_code: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// The totals of a run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub target: Option<SocketAddr>,
    pub sources: usize,
    pub target_rate: f64,
    /// From the first send to the last (seconds).
    pub elapsed: f64,
    pub sent: u64,
    pub bytes: u64,
    pub by_kind: [u64; 4],
    pub eagain: u64,
    pub enobufs: u64,
    pub other_errors: u64,
    pub replies: u64,
    pub reply_bytes: u64,
    /// (status code, count); code 0: requests and datagrams that are not SIP responses.
    pub by_code: Vec<(u16, u64)>,
}

impl Outcome {
    pub fn send_errors(&self) -> u64 {
        self.eagain + self.enobufs + self.other_errors
    }

    pub fn achieved_rate(&self) -> f64 {
        if self.elapsed > 0.0 {
            self.sent as f64 / self.elapsed
        } else {
            0.0
        }
    }

    /// Reply bytes per byte sent.
    pub fn amplification(&self) -> f64 {
        if self.bytes > 0 {
            self.reply_bytes as f64 / self.bytes as f64
        } else {
            0.0
        }
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let target = self.target.map_or(String::from("?"), |t| t.to_string());
        let rate = if self.target_rate > 0.0 {
            format!("{:.0}/s", self.target_rate)
        } else {
            "unpaced".into()
        };
        let _ = writeln!(
            s,
            "flood: {} datagrams ({} bytes) to {target} from {} sources in {:.1} s: {:.0} datagrams/s achieved (asked {rate})",
            self.sent,
            self.bytes,
            self.sources,
            self.elapsed,
            self.achieved_rate()
        );
        let kinds: Vec<String> = KINDS
            .iter()
            .zip(self.by_kind)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let _ = writeln!(s, "flood: sent by kind: {}", kinds.join(", "));
        let _ = writeln!(
            s,
            "flood: send errors: {} (EAGAIN {}, ENOBUFS {}, other {})",
            self.send_errors(),
            self.eagain,
            self.enobufs,
            self.other_errors
        );
        let _ = writeln!(
            s,
            "flood: replies received: {} ({} bytes, {:.4} bytes per byte sent)",
            self.replies,
            self.reply_bytes,
            self.amplification()
        );
        if !self.by_code.is_empty() {
            let codes: Vec<String> = self
                .by_code
                .iter()
                .map(|(c, n)| {
                    if *c == 0 {
                        format!("other {n}")
                    } else {
                        format!("{c} {n}")
                    }
                })
                .collect();
            let _ = writeln!(s, "flood: replies by status: {}", codes.join(", "));
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let kinds: serde_json::Map<String, serde_json::Value> = KINDS
            .iter()
            .zip(self.by_kind)
            .map(|(k, n)| (k.name().to_string(), json!(n)))
            .collect();
        let codes: serde_json::Map<String, serde_json::Value> = self
            .by_code
            .iter()
            .map(|(c, n)| {
                let key = if *c == 0 {
                    "other".to_string()
                } else {
                    c.to_string()
                };
                (key, json!(n))
            })
            .collect();
        json!({
            "target": self.target.map(|t| t.to_string()),
            "sources": self.sources,
            "target_rate": self.target_rate,
            "duration_s": self.elapsed,
            "datagrams_sent": self.sent,
            "bytes_sent": self.bytes,
            "achieved_rate": self.achieved_rate(),
            "sent_by_kind": kinds,
            "send_errors": {
                "total": self.send_errors(),
                "eagain": self.eagain,
                "enobufs": self.enobufs,
                "other": self.other_errors,
            },
            "replies": self.replies,
            "reply_bytes": self.reply_bytes,
            "amplification": self.amplification(),
            "replies_by_status": codes,
        })
    }
}

/// A non-blocking UDP socket bound to `ip` on any port.
fn source_socket(ip: std::net::Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let fd = s.as_raw_fd();
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_RCVBUFFORCE] {
        // SAFETY: setsockopt on a valid fd with a pointer to a c_int and its size. Failure
        // (not root) leaves the default size, which only means more EAGAIN.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&SOURCE_BUFFER_BYTES as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
    Ok(s.into())
}

/// Raise the soft limit on open files towards the hard one when `want` fds are needed.
fn raise_fd_limit(want: u64) {
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

struct Worker {
    index: usize,
    workers: usize,
    sockets: Vec<UdpSocket>,
    core: Option<core_affinity::CoreId>,
    /// This worker's share of the rate (datagrams/s; 0: unpaced).
    rate: f64,
    pools: Pools,
    counters: Arc<Counters>,
}

/// Reads every readable socket until it has nothing left; counts replies by status.
fn drain(
    epoll: &mut Epoll,
    tokens: &mut Vec<u64>,
    sockets: &[UdpSocket],
    batch: &mut RecvBatch,
    c: &Counters,
    timeout_us: u64,
) {
    if epoll.wait(timeout_us, tokens).is_err() {
        return;
    }
    for &t in tokens.iter() {
        let Some(sock) = sockets.get(t as usize) else {
            continue;
        };
        loop {
            let n = match batch.recv(sock.as_raw_fd()) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            for i in 0..n {
                let Some((_, bytes, _)) = batch.get(i) else {
                    continue;
                };
                add(&c.replies, 1);
                add(&c.reply_bytes, bytes.len() as u64);
                let code = status_code(bytes);
                if let Some(slot) = c.by_code.get(usize::from(code)) {
                    add(slot, 1);
                }
            }
            if n < BATCH_MAX {
                break;
            }
        }
    }
}

/// The status code of a SIP response, or 0.
pub fn status_code(b: &[u8]) -> u16 {
    let Some(rest) = b.strip_prefix(b"SIP/2.0 ") else {
        return 0;
    };
    match rest.get(..3) {
        Some(d) if d.iter().all(u8::is_ascii_digit) => {
            let code = d.iter().fold(0u16, |a, &x| a * 10 + u16::from(x - b'0'));
            if (100..CODES as u16).contains(&code) {
                code
            } else {
                0
            }
        }
        _ => 0,
    }
}

fn work(mut w: Worker, target: SocketAddr, duration: Micros, drain_for: Micros, epoch: Instant) {
    if let Some(core) = w.core {
        core_affinity::set_for_current(core);
    }
    let c = Arc::clone(&w.counters);
    let mut epoll = match Epoll::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("junction-load flood: epoll: {e}");
            return;
        }
    };
    for (i, s) in w.sockets.iter().enumerate() {
        if let Err(e) = epoll.add(s.as_raw_fd(), i as u64) {
            eprintln!("junction-load flood: epoll: {e}");
            return;
        }
    }
    let mut tokens = Vec::with_capacity(BATCH_MAX);
    let mut rx = RecvBatch::new();
    let dest = SockAddr::from(target);
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH_MAX);
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH_MAX);
    let mut batch_kind: Vec<usize> = Vec::with_capacity(BATCH_MAX);
    let mut kind_next = [0usize; 4];
    let mut counter: u64 = 0; // datagrams taken from the pools (sent or refused)
    let mut source = 0usize;
    let end = Duration::from_micros(duration);
    let per_sec = w.rate;
    // Pacing: the schedule allows rate * elapsed datagrams; at most 10 ms worth of debt (and
    // at least a batch) is kept, so a worker that was descheduled does not burst to catch up:
    // the time lost shows as a lower achieved rate.
    let slack = ((per_sec / 100.0) as u64).max(BATCH_MAX as u64);
    let mut allowed_base: u64 = 0;
    let mut base_time = Duration::ZERO;
    loop {
        if SIGNALLED.load(Ordering::Relaxed) {
            break;
        }
        let now = epoch.elapsed();
        if now >= end {
            break;
        }
        let due = if per_sec > 0.0 {
            let allowed = allowed_base + ((now - base_time).as_secs_f64() * per_sec) as u64;
            if allowed > counter + slack {
                allowed_base = counter + slack;
                base_time = now;
                slack
            } else {
                allowed.saturating_sub(counter)
            }
        } else {
            BATCH_MAX as u64
        };
        if due == 0 {
            // Wait for the next datagram's turn (at most 2 ms), reading replies meanwhile.
            let next = (1.0 / per_sec * 1e6).clamp(20.0, 2000.0) as u64;
            drain(&mut epoll, &mut tokens, &w.sockets, &mut rx, &c, next);
            continue;
        }
        let n = (due as usize).min(BATCH_MAX);
        iov.clear();
        hdrs.clear();
        batch_kind.clear();
        for _ in 0..n {
            let deck = &w.pools.deck;
            let Some(&kind) = deck.get((counter % deck.len().max(1) as u64) as usize) else {
                break;
            };
            let k = KINDS.iter().position(|&x| x == kind).unwrap_or(0);
            let pool = &mut w.pools.by_kind[k];
            if pool.is_empty() {
                counter += 1;
                continue;
            }
            let slot = kind_next[k] % pool.len();
            kind_next[k] = kind_next[k].wrapping_add(1);
            let Some(p) = pool.get_mut(slot) else {
                continue;
            };
            // Unique across workers: worker i stamps i, i + workers, i + 2 * workers...
            p.stamp(counter * w.workers as u64 + w.index as u64);
            counter += 1;
            batch_kind.push(k);
            iov.push(libc::iovec {
                iov_base: p.bytes.as_ptr() as *mut libc::c_void,
                iov_len: p.bytes.len(),
            });
        }
        for v in iov.iter_mut() {
            // SAFETY: a zeroed mmsghdr is valid; the pointers set point into `dest`, `iov`
            // and the pools, which outlive the sendmmsg call below and are not moved.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = dest.len();
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            hdrs.push(h);
        }
        let Some(sock) = w.sockets.get(source) else {
            break;
        };
        source = (source + 1) % w.sockets.len();
        let fd = sock.as_raw_fd();
        let total = hdrs.len();
        let mut done = 0;
        while done < total {
            // SAFETY: hdrs[done..] are valid headers built above.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs.as_mut_ptr().add(done),
                    (total - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                done += r as usize;
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // The buffer is full: the rest of this batch is not sent (counted).
                Some(libc::EAGAIN) => {
                    add(&c.eagain, (total - done) as u64);
                    break;
                }
                Some(libc::ENOBUFS) => {
                    add(&c.enobufs, (total - done) as u64);
                    break;
                }
                // Something about this datagram (an ICMP error pending...): skip it.
                _ => {
                    add(&c.other_errors, 1);
                    done += 1;
                }
            }
        }
        // What the kernel took: the headers it filled in (every payload has at least a byte).
        for (h, &k) in hdrs.iter().zip(&batch_kind) {
            if h.msg_len > 0 {
                add(&c.sent, 1);
                add(&c.bytes, u64::from(h.msg_len));
                add(&c.by_kind[k], 1);
            }
        }
        // Replies between batches: one epoll_wait with no timeout.
        drain(&mut epoll, &mut tokens, &w.sockets, &mut rx, &c, 0);
    }
    // Late replies.
    let stop = epoch.elapsed() + Duration::from_micros(drain_for);
    while epoch.elapsed() < stop && !SIGNALLED.load(Ordering::Relaxed) {
        drain(&mut epoll, &mut tokens, &w.sockets, &mut rx, &c, 10_000);
    }
}

/// Run the flood: build the sockets and pools, start the workers, print the live line, and
/// return the totals.
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
    raise_fd_limit(plan.source_count as u64 + 64);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut sockets: Vec<Vec<UdpSocket>> = (0..plan.workers).map(|_| Vec::new()).collect();
    for i in 0..plan.source_count {
        let ip = plan.source(i);
        let s = source_socket(ip).map_err(|e| format!("--sources: cannot bind {ip}: {e}"))?;
        if let Some(list) = sockets.get_mut(i % plan.workers) {
            list.push(s);
        }
    }
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        & 0xffff_ffff;
    let counters: Vec<Arc<Counters>> = (0..plan.workers)
        .map(|_| Arc::new(Counters::new()))
        .collect();
    let mut workers = Vec::new();
    for (index, socks) in sockets.into_iter().enumerate() {
        let template = Template {
            target: plan.target.to_string(),
            number: plan.number.clone(),
            via_host: plan.source(index).to_string(),
            run: run_id,
        };
        let mut rng = Rng::new(plan.seed.wrapping_add(index as u64 * 0x1000_0000_01b3));
        let core = match &plan.cpus {
            Some(list) if !list.is_empty() => list
                .get(index % list.len())
                .and_then(|&id| cores.iter().find(|c| c.id == id).copied()),
            _ => None,
        };
        if plan.cpus.is_some() && core.is_none() {
            return Err(format!("--cpus: no CPU for worker {index} among {cores:?}"));
        }
        workers.push(Worker {
            index,
            workers: plan.workers,
            sockets: socks,
            core,
            rate: plan.rate / plan.workers as f64,
            pools: Pools::build(&template, plan.mix, &mut rng),
            counters: Arc::clone(&counters[index]),
        });
    }
    let epoch = Instant::now();
    let mut handles = Vec::new();
    for w in workers {
        let (target, duration, drain_for) = (plan.target, plan.duration, plan.drain);
        let h = std::thread::Builder::new()
            .name(format!("flood-{}", w.index))
            .spawn(move || work(w, target, duration, drain_for, epoch))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(h);
    }
    let total =
        |f: fn(&Counters) -> &AtomicU64| -> u64 { counters.iter().map(|c| get(f(c))).sum() };
    let mut last = (0u64, 0u64);
    let mut second = 1u64;
    while handles.iter().any(|h| !h.is_finished()) {
        let next = epoch + Duration::from_secs(second);
        let now = Instant::now();
        if next > now {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        let sent = total(|c| &c.sent);
        let replies = total(|c| &c.replies);
        if !plan.quiet && Duration::from_secs(second) <= Duration::from_micros(plan.duration) {
            let errors = total(|c| &c.eagain) + total(|c| &c.enobufs) + total(|c| &c.other_errors);
            eprintln!(
                "flood {second:>4}s  sent/s {:>8}  sent {:>10}  errors {:>6}  replies/s {:>6}  replies {:>8}",
                sent - last.0,
                sent,
                errors,
                replies - last.1,
                replies
            );
        }
        last = (sent, replies);
        second += 1;
    }
    let elapsed = epoch.elapsed().as_secs_f64();
    for h in handles {
        let _ = h.join();
    }
    let drain_s = plan.drain as f64 / SEC as f64;
    let mut o = Outcome {
        target: Some(plan.target),
        sources: plan.source_count,
        target_rate: plan.rate,
        elapsed: (elapsed - drain_s).clamp(0.0, plan.duration as f64 / SEC as f64),
        ..Outcome::default()
    };
    for c in &counters {
        o.sent += get(&c.sent);
        o.bytes += get(&c.bytes);
        for k in 0..4 {
            o.by_kind[k] += get(&c.by_kind[k]);
        }
        o.eagain += get(&c.eagain);
        o.enobufs += get(&c.enobufs);
        o.other_errors += get(&c.other_errors);
        o.replies += get(&c.replies);
        o.reply_bytes += get(&c.reply_bytes);
    }
    for code in 0..CODES {
        let n: u64 = counters
            .iter()
            .map(|c| c.by_code.get(code).map_or(0, get))
            .sum();
        if n > 0 {
            o.by_code.push((code as u16, n));
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_code(b"SIP/2.0 403 Forbidden\r\n"), 403);
        assert_eq!(status_code(b"SIP/2.0 100 Trying\r\n"), 100);
        assert_eq!(status_code(b"SIP/2.0 99 x"), 0);
        assert_eq!(status_code(b"OPTIONS sip:x SIP/2.0\r\n"), 0);
        assert_eq!(status_code(b"\0\0\0"), 0);
        assert_eq!(status_code(b"SIP/2.0 "), 0);
    }

    #[test]
    fn outcome_report() {
        let o = Outcome {
            target: Some("127.0.0.1:5060".parse().unwrap()),
            sources: 4,
            target_rate: 100.0,
            elapsed: 2.0,
            sent: 200,
            bytes: 20_000,
            by_kind: [100, 60, 30, 10],
            eagain: 3,
            replies: 10,
            reply_bytes: 4000,
            by_code: vec![(0, 1), (403, 9)],
            ..Outcome::default()
        };
        let s = o.summary();
        assert!(s.contains("200 datagrams"), "{s}");
        assert!(s.contains("100 datagrams/s achieved"), "{s}");
        assert!(s.contains("send errors: 3 (EAGAIN 3"), "{s}");
        assert!(
            s.contains("403 9, other 1") || s.contains("other 1, 403 9"),
            "{s}"
        );
        let j = o.json();
        assert_eq!(j["datagrams_sent"], 200);
        assert_eq!(j["send_errors"]["total"], 3);
        assert_eq!(j["replies_by_status"]["403"], 9);
        assert_eq!(j["sent_by_kind"]["junk"], 60);
        assert_eq!(j["amplification"], 0.2);
    }
}
