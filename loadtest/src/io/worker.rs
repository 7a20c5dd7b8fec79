//! One worker: a thread pinned to a core, owning its sockets and its engines outright. The loop
//! is: wait for a readable socket or the next deadline; read whole batches and feed them; fire
//! timers; start the calls the schedule says are due; send everything in batches. Nothing is
//! shared with other workers on this path; a stats snapshot goes to the main thread once a
//! second.

use crate::io::net::{send_all, Epoll, RecvBatch, SendScratch};
use crate::limits::{BATCH_MAX, DIRECT_READ_SOCKETS_MAX, STARTS_PER_TURN_MAX};
use crate::rate::Schedule;
use crate::stats::Stats;
use crate::time::{grid_down, grid_up, Micros, SEC};
use crate::ua::out::Out;
use crate::ua::Engine;
use crossbeam_channel::Sender;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// An engine with its sockets and, for a UAC, its schedule.
pub struct Endpoint {
    pub engine: Box<dyn Engine + Send>,
    pub socks: Vec<UdpSocket>,
    pub schedule: Option<Schedule>,
    /// Most calls in progress at once (u64::MAX: no limit).
    pub limit: u64,
    /// After the schedule is over, how long to wait for calls still in progress.
    pub drain: Micros,
    /// `--duration`: the run ends then, whatever is still in progress.
    pub end: Option<Micros>,
}

pub struct WorkerPlan {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub endpoints: Vec<Endpoint>,
    /// `--trace-msg`: every datagram in and out is appended here (SIPp's -trace_msg).
    pub trace_msg: Option<Arc<std::sync::Mutex<std::fs::File>>>,
}

/// `--trace-msg`: a worker's trace, gathered and appended to the shared file in blocks.
struct MsgTrace {
    file: Arc<std::sync::Mutex<std::fs::File>>,
    buf: Vec<u8>,
}

impl MsgTrace {
    fn add(&mut self, what: &str, peer: std::net::SocketAddr, bytes: &[u8]) {
        use std::io::Write;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = write!(
            self.buf,
            "----------------------------------------------- {t:.6}\nUDP message {what} {peer} [{}] bytes :\n\n",
            bytes.len()
        );
        self.buf.extend_from_slice(bytes);
        self.buf.extend_from_slice(b"\n\n");
        if self.buf.len() >= 64 * 1024 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        use std::io::Write;
        if self.buf.is_empty() {
            return;
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(&self.buf) {
            eprintln!("junction-load: --trace-msg: {e}");
        }
        self.buf.clear();
    }
}

impl Drop for MsgTrace {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What all workers see: the common clock epoch and the stop flag.
pub struct Shared {
    pub epoch: Instant,
    /// The same instant on CLOCK_REALTIME (ns), to place kernel receive timestamps.
    pub epoch_realtime_ns: i128,
    pub stop: AtomicBool,
    /// Least time between two turns woken by the network (µs): datagrams that arrive
    /// meanwhile wait in the socket and are read in one batch, and a worker that sleeps
    /// outside epoll costs the sender no wake-up. 0: handle every datagram at once.
    pub tick: Micros,
}

impl Shared {
    pub fn new(lead: std::time::Duration, tick: Micros) -> Shared {
        let mono = Instant::now();
        let rt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Shared {
            epoch: mono + lead,
            epoch_realtime_ns: rt + lead.as_nanos() as i128,
            stop: AtomicBool::new(false),
            tick,
        }
    }

    /// A kernel receive timestamp on our clock, never after `now`.
    pub fn rx_time(&self, realtime_ns: Option<i128>, now: Micros) -> Micros {
        match realtime_ns {
            Some(ns) => {
                let us = (ns - self.epoch_realtime_ns) / 1000;
                (us.max(0) as u64).min(now)
            }
            None => now,
        }
    }
}

impl Shared {
    pub fn now(&self) -> Micros {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_micros() as Micros
    }
}

pub struct Snapshot {
    pub worker: usize,
    pub uac: Option<Stats>,
    pub uas: Option<Stats>,
    /// The worker's UAC schedules are over and their calls finished.
    pub uac_done: bool,
    /// The worker has stopped; these are its final numbers.
    pub last: bool,
    /// The worker's clock when it took these numbers (from the common epoch): a snapshot that
    /// reaches the reporter late still says which second it covers.
    pub at: Micros,
}

struct Live {
    ep: Endpoint,
    fds: Vec<RawFd>,
    out: Out,
    done_at: Option<Micros>,
    /// The concurrency limit held calls back: calls released after this start no earlier
    /// than the moment a slot freed (their wait is ours, not the system under test's).
    unblocked_at: Micros,
    blocked: bool,
}

impl Live {
    fn is_uac(&self) -> bool {
        self.ep.schedule.is_some()
    }

    fn uac_done(&mut self, now: Micros) -> bool {
        let Some(s) = self.ep.schedule.as_mut() else {
            return true;
        };
        if !s.is_done() {
            return false;
        }
        let at = *self.done_at.get_or_insert(now);
        let until = at
            .saturating_add(self.ep.drain)
            .min(self.ep.end.unwrap_or(Micros::MAX));
        self.ep.engine.active() == 0 || now >= until
    }

    /// Start the calls due at `now`. With a tick, the schedule is served on the tick grid: a
    /// turn starts every call due before the next grid point, and their intended time is the
    /// grid point they belong to (so a worker late past its grid point shows as latency, the
    /// quantisation itself does not).
    fn start_due(&mut self, now: Micros, tick: Micros) {
        let Some(s) = self.ep.schedule.as_mut() else {
            return;
        };
        for _ in 0..STARTS_PER_TURN_MAX {
            if self.ep.engine.active() >= self.ep.limit {
                self.blocked = true;
                return;
            }
            if self.blocked {
                self.blocked = false;
                self.unblocked_at = now;
            }
            let horizon = if tick > 0 {
                grid_down(now, tick) + tick - 1
            } else {
                now
            };
            let Some(t) = s.poll(horizon) else { return };
            let intended = grid_down(t, tick).max(self.unblocked_at).min(now);
            self.ep.engine.start_call(now, intended, &mut self.out);
        }
    }
}

pub fn run(plan: WorkerPlan, shared: Arc<Shared>, tx: Sender<Snapshot>) {
    if let Some(core) = plan.core {
        core_affinity::set_for_current(core);
    }
    let index = plan.index;
    let mut trace = plan.trace_msg.clone().map(|file| MsgTrace {
        file,
        buf: Vec::new(),
    });
    // Start on the common epoch, so that every worker's `now` is real time from the first call.
    let wait = shared.epoch.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    let mut epoll = match Epoll::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("junction-load: worker {index}: epoll: {e}");
            shared.stop.store(true, Ordering::Relaxed);
            let _ = tx.send(Snapshot {
                worker: index,
                uac: None,
                uas: None,
                uac_done: true,
                last: true,
                at: shared.now(),
            });
            return;
        }
    };
    let mut live: Vec<Live> = Vec::new();
    for (e, ep) in plan.endpoints.into_iter().enumerate() {
        let fds: Vec<RawFd> = ep.socks.iter().map(|s| s.as_raw_fd()).collect();
        for (s, &fd) in fds.iter().enumerate() {
            if let Err(err) = epoll.add(fd, ((e as u64) << 32) | s as u64) {
                eprintln!("junction-load: worker {index}: epoll add: {err}");
            }
        }
        live.push(Live {
            ep,
            fds,
            out: Out::default(),
            done_at: None,
            unblocked_at: 0,
            blocked: false,
        });
    }
    let all_tokens: Vec<u64> = live
        .iter()
        .enumerate()
        .flat_map(|(e, l)| (0..l.fds.len()).map(move |s| ((e as u64) << 32) | s as u64))
        .collect();
    let mut batch = RecvBatch::new();
    let mut scratch = SendScratch::default();
    let mut tokens = Vec::with_capacity(BATCH_MAX);
    let mut next_snapshot = SEC;
    let has_uas = live.iter().any(|l| !l.is_uac());
    let mut uac_done_sent = false;
    loop {
        let now = shared.now();
        let mut received = 0usize;
        // Input: every readable socket, whole batches; a short batch means drained (epoll is
        // level-triggered and tells us again if more came meanwhile).
        for &tok in &tokens {
            let (e, s) = ((tok >> 32) as usize, (tok & 0xffff_ffff) as u16);
            let Some(l) = live.get_mut(e) else { continue };
            let Some(&fd) = l.fds.get(s as usize) else {
                continue;
            };
            for _ in 0..4 {
                let n = batch.recv(fd).unwrap_or_default();
                received += n;
                for i in 0..n {
                    let rx = shared.rx_time(batch.rx_time_ns(i), now);
                    let Some((from, bytes, truncated)) = batch.get(i) else {
                        continue;
                    };
                    if truncated {
                        l.ep.engine.stats_mut().truncated += 1;
                        continue;
                    }
                    if let Some(t) = trace.as_mut() {
                        t.add("received from", from, bytes);
                    }
                    l.ep.engine.on_datagram(now, rx, s, from, bytes, &mut l.out);
                }
                if n < BATCH_MAX {
                    break;
                }
            }
        }
        let stop = shared.stop.load(Ordering::Relaxed);
        let mut all_uac_done = true;
        for l in live.iter_mut() {
            l.ep.engine.on_timeout(now, &mut l.out);
            if !stop {
                l.start_due(now, shared.tick);
            }
            if !l.out.is_empty() {
                if let Some(t) = trace.as_mut() {
                    for x in &l.out.list {
                        t.add("sent to", x.dest, l.out.bytes(x));
                    }
                }
                let (_, failed) = send_all(&l.out, &l.fds, &mut scratch);
                if failed > 0 {
                    l.ep.engine.stats_mut().send_errors += failed;
                }
                l.out.clear();
            }
            if l.is_uac() && !l.uac_done(now) {
                all_uac_done = false;
            }
        }
        let finished = stop || (all_uac_done && !has_uas);
        if now >= next_snapshot || finished || (all_uac_done && !uac_done_sent) {
            // On whole seconds of the common clock, so that every worker's snapshots cover
            // the same seconds however late a busy turn takes them.
            next_snapshot = (now / SEC + 1) * SEC;
            uac_done_sent |= all_uac_done;
            let _ = tx.send(snapshot(index, &mut live, all_uac_done, finished, now));
        }
        if finished {
            return;
        }
        // Sleep until the next deadline, the next scheduled call, or the next snapshot; at
        // most 100 ms so the stop flag is seen.
        let mut wake = next_snapshot.min(now + 100_000);
        for l in live.iter_mut() {
            if let Some(d) = l.ep.engine.next_deadline() {
                wake = wake.min(grid_up(d, shared.tick));
            }
            if l.ep.engine.active() < l.ep.limit {
                if let Some(t) = l.ep.schedule.as_mut().and_then(|s| s.next_time()) {
                    wake = wake.min(grid_down(t, shared.tick));
                }
            }
        }
        // Batching: after a turn that read datagrams, let the next ones gather in the socket
        // for `tick` (the worker sleeps outside epoll, so senders need not wake it), unless a
        // deadline comes first. With few sockets, then read them all without asking epoll.
        // After an idle turn, block in epoll: the first datagram is handled at once.
        if shared.tick > 0 && received > 0 {
            let t = shared.now();
            let until = (grid_down(now, shared.tick) + shared.tick).min(wake);
            if until > t {
                std::thread::sleep(std::time::Duration::from_micros(until - t));
            }
            if all_tokens.len() <= DIRECT_READ_SOCKETS_MAX {
                tokens.clone_from(&all_tokens);
                continue;
            }
        }
        let timeout = wake.saturating_sub(shared.now());
        if let Err(e) = epoll.wait(timeout, &mut tokens) {
            eprintln!("junction-load: worker {index}: epoll wait: {e}");
            tokens.clear();
        }
    }
}

fn snapshot(worker: usize, live: &mut [Live], uac_done: bool, last: bool, at: Micros) -> Snapshot {
    let mut uac: Option<Stats> = None;
    let mut uas: Option<Stats> = None;
    for l in live.iter_mut() {
        let is_uac = l.is_uac();
        let s = l.ep.engine.stats_mut();
        let slot = if is_uac { &mut uac } else { &mut uas };
        match slot {
            Some(acc) => acc.merge(s),
            None => *slot = Some(s.clone()),
        }
    }
    Snapshot {
        worker,
        uac,
        uas,
        uac_done,
        last,
        at,
    }
}
