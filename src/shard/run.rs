//! The per-shard loop (the run-loop contract at the top of `sip/proxy.rs`).
//!
//! One glommio executor per shard runs one main task that owns the `Core` and does all the
//! work. While there is work it never waits for glommio: every round it drains a batch from
//! the socket with `recvmmsg`, takes one hand-off batch per other shard straight from the
//! channels (it knows a batch is there from `HandoffCounters`), gives owned datagrams to the
//! core and gathers the others per owner, hands full (or overdue) batches off, runs
//! `handle_timeout` when due, sends every transmit with `sendmmsg` and publishes metrics
//! when due. It yields to glommio only when glommio asks (`need_preempt`).
//!
//! After sending, a round hands the records of the calls that ended to the CDR writer
//! (`try_send`, never waiting) and times what it sent for the residence histograms
//! (`residence.rs`); the per-trunk statistics and those histograms are published with the
//! counters.
//!
//! Every round starts with one atomic load of the shard's `ReloadSlot`: when the control
//! plane has published a newer routing table (a reload), the shard swaps it into its core
//! there, between batches (never per datagram), and acknowledges it.
//!
//! When a round finds nothing to do, the main task parks until the socket is readable, a
//! hand-off arrives, the next core deadline, the next metrics publication, a new routing
//! table or a stop request. The waiting is done by helper tasks that only signal:
//!
//! - the *reader* awaits readability (glommio `peek_from` into a 1-byte buffer);
//! - one *pump* per other shard awaits that shard's channel and puts the batch it receives
//!   into a one-batch slot (the main task processes slots before taking more from the
//!   channel, so batches from one shard stay in order);
//! - the *wake listener* awaits a byte on the shard's wake socket (sent by the control plane
//!   to stop the shard or after publishing a routing table).
//!
//! Three glommio 0.9 behaviours shape this (all read in its source, the first one hit in a
//! load test):
//!
//! 1. The executor can go to sleep with runnable tasks: `run_task_queues` reports "nothing
//!    ran" when `need_preempt()` is already true on entry (the preempt timer fired while the
//!    thread was descheduled), and the executor then parks; the preempt timer's completion
//!    wakes no task, so it sleeps until some unrelated event. Hence the main task does not
//!    rely on other tasks running while it is busy, and every yield and every park arms a
//!    glommio timer (`YIELD_WATCHDOG`, `limits::SHARD_PARK_MAX`) that bounds such a sleep.
//! 2. Every poll of a pending shared-channel receive pushes another waker
//!    (`add_shared_channel_waker`), and wakers are only drained as items arrive; the same for
//!    pending socket operations (`add_waiter_many`). A task that re-polls them on unrelated
//!    wake-ups accumulates wakers without bound (and a task's waker count is an i16: it
//!    panics past 32,767). Each helper therefore polls exactly one such future and is woken
//!    only by it; the main task never polls a receive that could be pending.
//! 3. There is no wait for writability and the io_uring `send_to` path sends only the first
//!    byte of a datagram: see `limits::SEND_RETRY_INTERVAL`.

use super::batch::{RecvBatch, SendBatch};
use super::errqueue;
use super::handoff::{HandoffBatch, HandoffCounters};
use super::owner::owner;
use super::reload::ReloadSlot;
use super::residence::Recorder;
use super::CallIdFinder;
use crate::control::cdr::CdrSink;
use crate::control::metrics::{handoff_kind, ShardSnapshot, ShardState};
use crate::control::ShardSlot;
use crate::limits;
use crate::routing::RoutingTable;
use crate::sip::cdr::CallRecord;
use crate::sip::proxy::{Core, CoreConfig};
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::net::UdpSocket;
use glommio::timer::Timer;
use glommio::{GlommioError, Task};
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a yield may last at most if glommio parks the executor by mistake (see the
/// module comment, point 1). Yields happen once per glommio preempt period (100 ms) of
/// continuous work, so the timer costs nothing measurable.
const YIELD_WATCHDOG: Duration = Duration::from_millis(1);

/// Everything a shard needs, built on the starting thread and moved into the executor.
pub(crate) struct ShardSetup {
    pub index: usize,
    pub shards: usize,
    pub socket: socket2::Socket,
    /// The shard's own port (`[server] shard_ports`): what peers send to when they follow
    /// this shard's Via or Record-Route.
    pub shard_port: Option<socket2::Socket>,
    pub ipv6: bool,
    pub wake: std::net::UdpSocket,
    /// (owner shard, sender) for every other shard.
    pub senders: Vec<(usize, SharedSender<HandoffBatch>)>,
    /// (sending shard, receiver) for every other shard.
    pub receivers: Vec<(usize, SharedReceiver<HandoffBatch>)>,
    pub handoff_counters: Arc<HandoffCounters>,
    pub core_config: CoreConfig,
    pub routing: Arc<RoutingTable>,
    pub states: Arc<[Arc<crate::trunks::TrunkState>]>,
    /// Where reloads leave this shard its next routing table.
    pub reload: Arc<ReloadSlot>,
    pub slot: Arc<ShardSlot>,
    /// Where records of ended calls go (`None`: CDRs are off; records are discarded).
    pub cdr: Option<CdrSink>,
    pub call_id: CallIdFinder,
    pub stop: Arc<AtomicBool>,
    /// The memory cap's pressure flag (new calls refused while set).
    pub memory: Arc<crate::control::memory::MemoryGuard>,
    /// Told once the shard serves (then dropped).
    pub started: mpsc::Sender<usize>,
}

/// Marks the shard stopped however its task ends (return, error or panic).
struct StoppedOnDrop(Arc<ShardSlot>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.set_state(ShardState::Stopped);
    }
}

/// State shared between the main task and its helper tasks (one executor, one thread).
struct Signals {
    /// A reader saw a datagram queued (or an error): the main task should stop parking.
    readable: Cell<bool>,
    /// The main task found the sockets empty and parks: the readers should wait (one flag
    /// per reader: 0 for the shared port's socket, 1 for the shard's own port's).
    want_read: [Cell<bool>; 2],
    /// The reader should pause `RECV_ERROR_BACKOFF` before its next wait.
    backoff: Cell<bool>,
    /// Readiness errors seen by the reader (folded into the metrics by the main task).
    readiness_errors: Cell<u64>,
    /// An ICMP error waits in the socket's error queue (IP_RECVERR; errqueue.rs).
    errqueue: Cell<bool>,
    stop: Cell<bool>,
    /// Per sending shard: the batch its pump received, waiting for the main task.
    slots: RefCell<Vec<Option<HandoffBatch>>>,
    /// Per sending shard: batches taken from its channel (by the pump or the main task).
    taken: RefCell<Vec<u64>>,
    main_waker: RefCell<Option<Waker>>,
    reader_wakers: [RefCell<Option<Waker>>; 2],
    pump_wakers: RefCell<Vec<Option<Waker>>>,
}

impl Signals {
    fn new(shards: usize) -> Signals {
        Signals {
            readable: Cell::new(false),
            want_read: [Cell::new(false), Cell::new(false)],
            backoff: Cell::new(false),
            readiness_errors: Cell::new(0),
            errqueue: Cell::new(false),
            stop: Cell::new(false),
            slots: RefCell::new((0..shards).map(|_| None).collect()),
            taken: RefCell::new(vec![0; shards]),
            main_waker: RefCell::new(None),
            reader_wakers: [RefCell::new(None), RefCell::new(None)],
            pump_wakers: RefCell::new(vec![None; shards]),
        }
    }

    fn wake(slot: &RefCell<Option<Waker>>) {
        let waker = slot.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_main(&self) {
        Signals::wake(&self.main_waker);
    }

    fn count_taken(&self, peer: usize) {
        if let Some(n) = self.taken.borrow_mut().get_mut(peer) {
            *n += 1;
        }
    }
}

/// The body of a shard's executor.
pub(crate) async fn shard_main(setup: ShardSetup) -> Result<(), String> {
    let ShardSetup {
        index,
        shards,
        socket,
        shard_port,
        ipv6,
        wake,
        senders,
        receivers,
        handoff_counters,
        core_config,
        routing,
        states,
        reload,
        slot,
        cdr,
        call_id,
        stop,
        memory,
        started,
    } = setup;
    let _stopped = StoppedOnDrop(Arc::clone(&slot));

    let fd = socket.as_raw_fd();
    // SAFETY: the descriptors come from sockets we own and give up here.
    let socket = Rc::new(unsafe { UdpSocket::from_raw_fd(socket.into_raw_fd()) });
    let shard_port_fd = shard_port.as_ref().map(|s| s.as_raw_fd());
    // SAFETY: as above.
    let shard_port =
        shard_port.map(|s| Rc::new(unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) }));
    let wake = Rc::new(unsafe { UdpSocket::from_raw_fd(wake.into_raw_fd()) });

    // Connect every hand-off channel end at once: `connect` waits for the peer shard to
    // connect its end, so connecting one by one would deadlock two shards on each other.
    let sender_tasks: Vec<_> = senders
        .into_iter()
        .map(|(peer, sender)| (peer, glommio::spawn_local(sender.connect())))
        .collect();
    let receiver_tasks: Vec<_> = receivers
        .into_iter()
        .map(|(peer, receiver)| (peer, glommio::spawn_local(receiver.connect())))
        .collect();
    let mut connected_senders: Vec<Option<ConnectedSender<HandoffBatch>>> =
        (0..shards).map(|_| None).collect();
    for (peer, task) in sender_tasks {
        let sender = task.await;
        if let Some(slot) = connected_senders.get_mut(peer) {
            *slot = Some(sender);
        }
    }
    let mut connected_receivers: Vec<Option<Rc<ConnectedReceiver<HandoffBatch>>>> =
        (0..shards).map(|_| None).collect();
    for (peer, task) in receiver_tasks {
        let receiver = Rc::new(task.await);
        if let Some(slot) = connected_receivers.get_mut(peer) {
            *slot = Some(receiver);
        }
    }

    let signals = Rc::new(Signals::new(shards));
    let mut helpers: Vec<Task<()>> = Vec::new();
    helpers.push(glommio::spawn_local(reader(
        Rc::clone(&socket),
        Rc::clone(&signals),
        0,
    )));
    if let Some(own) = &shard_port {
        helpers.push(glommio::spawn_local(reader(
            Rc::clone(own),
            Rc::clone(&signals),
            1,
        )));
    }
    helpers.push(glommio::spawn_local(wake_listener(
        wake,
        Arc::clone(&stop),
        Rc::clone(&signals),
    )));
    for (peer, receiver) in connected_receivers.iter().enumerate() {
        if let Some(receiver) = receiver {
            helpers.push(glommio::spawn_local(pump(
                peer,
                Rc::clone(receiver),
                Rc::clone(&signals),
            )));
        }
    }

    let cpu = slot.read().snapshot.cpu;
    let mut core = Core::with_states(core_config, routing, states);
    // Start the core's clock now: it schedules the OPTIONS probes of its trunks, which
    // would otherwise wait for the first datagram.
    core.handle_timeout(Instant::now());
    let mut shard = Shard {
        index,
        shards,
        fd,
        shard_port_fd,
        ipv6,
        core,
        recv: RecvBatch::new(),
        send: SendBatch::new(ipv6),
        requests: SendBatch::new(ipv6),
        outgoing: (0..shards).map(|_| HandoffBatch::new()).collect(),
        outgoing_since: None,
        cpu_read_at: None,
        senders: connected_senders,
        receivers: connected_receivers,
        handoff_counters,
        signals: Rc::clone(&signals),
        stop,
        memory,
        reload,
        generation: 0,
        snapshot: ShardSnapshot::new(index, shards, cpu),
        slot: Arc::clone(&slot),
        cdr,
        records: Vec::new(),
        residence: Recorder::new(),
        call_id,
        last_publish: Instant::now(),
        unpublished: true,
        stats_pending: false,
        noop_waker: Waker::from(Arc::new(NoopWake)),
    };
    slot.set_state(ShardState::Running);
    let _ = started.send(index);
    drop(started);

    shard.run().await;

    shard.forward_records();
    shard.snapshot.core.clone_from(shard.core.stats());
    shard.fold_readiness_errors();
    slot.publish(&shard.snapshot);
    slot.publish_stats(shard.core.trunk_stats(), &shard.residence.histograms);
    crate::log_info!("shard stopped", shard = index, cpu = cpu);
    // Cancel the helpers before the sockets and channels they use go away. The reader's
    // readiness wait is an io_uring operation that holds a reference to the socket: glommio
    // only submits its cancellation at the next ring poll, and if the executor exits first
    // the kernel releases the socket (and the port) asynchronously, some milliseconds after
    // the shard's thread has ended. Let the rings turn once so that the port is free when
    // `Server::shutdown` returns.
    drop(helpers);
    Timer::new(Duration::from_millis(1)).await;
    drop(shard);
    drop(socket);
    drop(shard_port);
    Ok(())
}

struct Shard {
    index: usize,
    shards: usize,
    fd: RawFd,
    /// The socket of the shard's own port (`[server] shard_ports`), if any.
    shard_port_fd: Option<RawFd>,
    /// The socket is IPv6 (no kernel pre-filter).
    ipv6: bool,
    core: Core,
    recv: RecvBatch,
    send: SendBatch,
    /// With a shard port: the requests of a flush, sent from that port (responses leave
    /// from the shared port, where the requests they answer arrived).
    requests: SendBatch,
    /// Foreign datagrams waiting to be handed off, per owner.
    outgoing: Vec<HandoffBatch>,
    /// When the oldest of them was received (`None`: all batches are empty).
    outgoing_since: Option<Instant>,
    /// When the thread's CPU time was last reported to the core.
    cpu_read_at: Option<Instant>,
    senders: Vec<Option<ConnectedSender<HandoffBatch>>>,
    /// Per sending shard, shared with its pump.
    receivers: Vec<Option<Rc<ConnectedReceiver<HandoffBatch>>>>,
    handoff_counters: Arc<HandoffCounters>,
    signals: Rc<Signals>,
    stop: Arc<AtomicBool>,
    memory: Arc<crate::control::memory::MemoryGuard>,
    reload: Arc<ReloadSlot>,
    /// The configuration generation the core routes with.
    generation: u64,
    /// The shard's counters, kept in the published form.
    snapshot: ShardSnapshot,
    slot: Arc<ShardSlot>,
    cdr: Option<CdrSink>,
    /// Records of ended calls on their way to `cdr` (reused). Boxed as the core hands them
    /// out: each moves to the writer thread as one pointer.
    #[allow(clippy::vec_box)]
    records: Vec<Box<CallRecord>>,
    residence: Recorder,
    call_id: CallIdFinder,
    last_publish: Instant,
    unpublished: bool,
    /// The counters were published; the statistics are still being copied.
    stats_pending: bool,
    /// For polls that are known to be ready (`Waker::noop` needs Rust 1.85; MSRV is 1.80).
    noop_waker: Waker,
}

/// Starts a hand-off entry that is an ICMP error (what follows is the quoted datagram, the
/// address its destination): no SIP message starts with a NUL byte.
const UNREACHABLE_MARK: &[u8] = b"\0junction-unreachable\0";

/// Log every trunk state change the core reports (rare: one line each).
fn log_health_events(core: &mut Core) {
    for e in core.health_events() {
        if e.up {
            crate::log_info!(
                "trunk up",
                trunk = e.trunk,
                cause = "probe",
                successes = e.count
            );
        } else {
            crate::log_warn!(
                "trunk down",
                trunk = e.trunk,
                cause = e.cause.as_str(),
                failures = e.count
            );
        }
    }
}

/// Transmits the core has queued (its iterator knows its exact length).
fn queued(core: &Core) -> usize {
    let transmits = core.transmits();
    match transmits.size_hint() {
        (low, Some(high)) if low == high => low,
        _ => transmits.count(),
    }
}

/// A waker that does nothing.
struct NoopWake;

impl std::task::Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

impl Shard {
    async fn run(&mut self) {
        loop {
            if self.signals.stop.get() || self.stop.load(Ordering::Relaxed) {
                return;
            }
            self.slot.beat();
            if self.reload.pending(self.generation) {
                self.switch_routing();
            }
            self.core.set_memory_pressure(self.memory.pressure());
            let mut busy = false;
            self.residence.begin_round(queued(&self.core));
            // The shared port, then the shard's own port when there is one: empty when both
            // had nothing.
            let mut socket_empty = true;
            for (fd, own_port) in [(Some(self.fd), false), (self.shard_port_fd, true)] {
                let Some(fd) = fd else {
                    continue;
                };
                match self.recv.recv(fd) {
                    Ok(0) => {}
                    Ok(_) => {
                        busy = true;
                        socket_empty = false;
                        self.dispatch_received(Instant::now(), own_port);
                    }
                    // A pending ICMP error (IP_RECVERR), reported instead of the next
                    // datagram: its details are in the error queue, and datagrams may wait
                    // behind it.
                    Err(e) if errqueue::is_unreachable_errno(e.raw_os_error()) => {
                        self.signals.errqueue.set(true);
                        busy = true;
                        socket_empty = false;
                    }
                    Err(_) => {
                        self.snapshot.shell.receive_errors += 1;
                        self.signals.backoff.set(true);
                    }
                }
            }
            if !busy {
                // Nothing queued: no queueing delay (overload control).
                self.core
                    .observe_queue_delay(Instant::now(), Duration::ZERO);
            }
            if self.signals.errqueue.replace(false) {
                busy |= self.read_unreachables(Instant::now());
            }
            busy |= self.take_hand_ins();
            let now = Instant::now();
            self.report_cpu_time(now);
            let mut timed_out = false;
            if self
                .core
                .next_deadline()
                .is_some_and(|deadline| now >= deadline)
            {
                self.core.handle_timeout(now);
                self.snapshot.shell.timeouts += 1;
                timed_out = true;
            }
            if busy || timed_out {
                self.unpublished = true;
            }
            // Foreign datagrams wait to fill their batch while the shard is busy, at most
            // HANDOFF_BATCH_DELAY_MAX; before parking the shard hands off everything.
            if let Some(since) = self.outgoing_since {
                if !busy || now.saturating_duration_since(since) >= limits::HANDOFF_BATCH_DELAY_MAX
                {
                    self.hand_off_all();
                }
            }
            self.transmit().await;
            if busy || timed_out {
                self.forward_records();
                log_health_events(&mut self.core);
            }
            self.publish_if_due(Instant::now());
            self.publish_stats_step();
            if busy || self.stats_pending {
                if glommio::executor().need_preempt() {
                    yield_with_watchdog().await;
                }
            } else {
                self.park(timed_out, socket_empty).await;
            }
        }
    }

    /// Tell the core how much CPU time this thread has used (overload control tells a shard
    /// held back by a CPU quota or another process from one with time to spare), at most
    /// once per `limits::SHARD_CPU_READ_INTERVAL`.
    fn report_cpu_time(&mut self, now: Instant) {
        if self
            .cpu_read_at
            .is_some_and(|at| now.saturating_duration_since(at) < limits::SHARD_CPU_READ_INTERVAL)
        {
            return;
        }
        self.cpu_read_at = Some(now);
        if let Some(cpu) = thread_cpu_time() {
            self.core.observe_cpu_time(now, cpu);
        }
    }

    /// Swap in the routing table the control plane published (between batches: calls in
    /// progress keep the table they started with). The replaced table is not freed here:
    /// the control plane still holds it.
    fn switch_routing(&mut self) {
        let Some(next) = self.reload.try_take() else {
            return; // being replaced right now: next turn
        };
        if next.generation <= self.generation {
            return;
        }
        // The kernel pre-filter follows the new trunk peers.
        for fd in std::iter::once(self.fd).chain(self.shard_port_fd) {
            match super::filter::apply(fd, !self.ipv6, &next.routing) {
                Ok(_) => {}
                Err(e) => crate::log_warn!(
                    "kernel filter not replaced: unknown sources are dropped by the shard",
                    shard = self.index,
                    error = e.to_string()
                ),
            }
        }
        self.core.set_routing(next.routing, next.states);
        // Let the core schedule the probes of the new table's trunks now.
        self.core.handle_timeout(Instant::now());
        self.generation = next.generation;
        self.snapshot.config_reloads += 1;
        self.snapshot.config_generation = next.generation;
        self.unpublished = true;
        self.reload.applied(next.generation);
    }

    /// Give owned datagrams of the receive batch to the core; gather the others per owner.
    fn dispatch_received(&mut self, now: Instant, own_port: bool) {
        let count = self.recv.len();
        // Overload: how long the oldest datagram of the batch waited in the kernel. The core
        // sheds new calls when a queue persists and keeps serving calls already up.
        if let Some(received) = self.recv.kernel_time(0) {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            self.core
                .observe_queue_delay(now, wall.saturating_sub(received));
        }
        self.snapshot.shell.datagrams_received += count as u64;
        if own_port {
            self.snapshot.shell.datagrams_received_shard_port += count as u64;
        }
        self.snapshot.shell.receive_batches += 1;
        for i in 0..count {
            let Some(datagram) = self.recv.get(i) else {
                continue;
            };
            if datagram.truncated {
                self.snapshot.shell.dropped_oversize += 1;
                continue;
            }
            let Some(from) = datagram.from else {
                self.snapshot.shell.dropped_bad_source += 1;
                continue;
            };
            let owner = if self.shards == 1 {
                self.index
            } else {
                let call_id = (self.call_id)(datagram.data)
                    .map(|span| span.get(datagram.data))
                    .filter(|id| !id.is_empty());
                match call_id {
                    Some(id) => owner(id, self.shards),
                    None => {
                        self.snapshot.shell.datagrams_without_call_id += 1;
                        self.index
                    }
                }
            };
            if owner == self.index {
                self.core.handle_datagram(now, from, datagram.data);
                self.residence.handled(now, queued(&self.core));
                self.snapshot.shell.datagrams_processed += 1;
            } else if let Some(batch) = self.outgoing.get_mut(owner) {
                let shell = &mut self.snapshot.shell;
                if let Some(n) = shell.handoff_by_kind.get_mut(handoff_kind(datagram.data)) {
                    *n += 1;
                }
                if own_port {
                    shell.handoff_from_shard_port += 1;
                }
                if batch.is_full() {
                    hand_off(
                        self.index,
                        owner,
                        batch,
                        &self.senders,
                        &self.handoff_counters,
                        &mut self.snapshot,
                    );
                }
                batch.push(now, from, datagram.data);
                self.outgoing_since.get_or_insert(now);
            }
        }
    }

    /// Hand every gathered batch to its owner.
    fn hand_off_all(&mut self) {
        for (owner, batch) in self.outgoing.iter_mut().enumerate() {
            if !batch.is_empty() {
                hand_off(
                    self.index,
                    owner,
                    batch,
                    &self.senders,
                    &self.handoff_counters,
                    &mut self.snapshot,
                );
            }
        }
        self.outgoing_since = None;
    }

    /// Take at most one hand-off batch from every other shard (the one its pump holds, else
    /// one straight from the channel when the counters say one is there) and give it to the
    /// core. True if there was any.
    /// Read the ICMP errors waiting in the socket's error queue (at most
    /// `ERRORS_PER_ROUND_MAX`; the flag stays set when more may wait) and give each to the
    /// shard that sent the datagram: this one's core, or the sender's by hand-off (the
    /// kernel queues an ICMP error on the socket the reply would reach, not necessarily the
    /// sender's). Returns whether any was read.
    fn read_unreachables(&mut self, now: Instant) -> bool {
        let mut quoted = [0u8; errqueue::QUOTED_BYTES_MAX];
        let mut any = false;
        // Both sockets (the shared port's and the shard's own): one flag says "an error
        // queue may hold something", so each is read.
        for fd in [Some(self.fd), self.shard_port_fd].into_iter().flatten() {
            for n in 0.. {
                if n == errqueue::ERRORS_PER_ROUND_MAX {
                    self.signals.errqueue.set(true);
                    break;
                }
                let u = match errqueue::read(fd, &mut quoted) {
                    Ok(Some(u)) => u,
                    Ok(None) => break,
                    Err(_) => {
                        self.snapshot.shell.receive_errors += 1;
                        break;
                    }
                };
                any = true;
                let bytes = quoted.get(..u.quoted).unwrap_or(&[]);
                let owner = crate::sip::proxy::unreachable_owner(bytes)
                    .map_or(self.index, usize::from)
                    .min(self.shards.saturating_sub(1));
                if owner == self.index {
                    self.core.handle_unreachable(now, u.dest, bytes);
                } else if let Some(batch) = self.outgoing.get_mut(owner) {
                    if batch.is_full() {
                        hand_off(
                            self.index,
                            owner,
                            batch,
                            &self.senders,
                            &self.handoff_counters,
                            &mut self.snapshot,
                        );
                    }
                    let mut data = Vec::with_capacity(UNREACHABLE_MARK.len() + bytes.len());
                    data.extend_from_slice(UNREACHABLE_MARK);
                    data.extend_from_slice(bytes);
                    batch.push(now, u.dest, &data);
                    self.outgoing_since.get_or_insert(now);
                }
            }
        }
        any
    }

    fn take_hand_ins(&mut self) -> bool {
        let mut any = false;
        for peer in 0..self.shards {
            let held = self
                .signals
                .slots
                .borrow_mut()
                .get_mut(peer)
                .and_then(Option::take);
            let batch = match held {
                Some(batch) => {
                    let waker = self
                        .signals
                        .pump_wakers
                        .borrow_mut()
                        .get_mut(peer)
                        .and_then(Option::take);
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                    Some(batch)
                }
                None => self.take_from_channel(peer),
            };
            let Some(batch) = batch else {
                continue;
            };
            any = true;
            for (received, from, data) in batch.iter() {
                if let Some(quoted) = data.strip_prefix(UNREACHABLE_MARK) {
                    // An ICMP error another shard read for a datagram this one sent.
                    self.core.handle_unreachable(received, from, quoted);
                    continue;
                }
                self.core.handle_datagram(received, from, data);
                self.residence.handled(received, queued(&self.core));
            }
            let count = batch.len() as u64;
            let shell = &mut self.snapshot.shell;
            shell.handed_in += count;
            shell.datagrams_processed += count;
            if let Some(n) = self.snapshot.handoff_in_from.get_mut(peer) {
                *n += count;
            }
        }
        any
    }

    /// A batch from `peer`'s channel, if the counters say one is there (never waits, never
    /// leaves a waker behind).
    fn take_from_channel(&self, peer: usize) -> Option<HandoffBatch> {
        if !self.handoff_waiting(peer) {
            return None;
        }
        let receiver = self.receivers.get(peer)?.as_ref()?;
        let mut receive = pin!(receiver.recv());
        // The batch is in the channel (the sender counted it after its push), so this poll
        // is ready: the no-op waker is never stored.
        match receive
            .as_mut()
            .poll(&mut Context::from_waker(&self.noop_waker))
        {
            Poll::Ready(Some(batch)) => {
                self.signals.count_taken(peer);
                Some(batch)
            }
            Poll::Ready(None) | Poll::Pending => None,
        }
    }

    /// `peer` has pushed batches that nobody here has taken yet.
    fn handoff_waiting(&self, peer: usize) -> bool {
        let taken = self.signals.taken.borrow().get(peer).copied().unwrap_or(0);
        peer != self.index && self.handoff_counters.sent(peer, self.index) > taken
    }

    fn has_work(&self) -> bool {
        let signals = &self.signals;
        signals.readable.get()
            || signals.stop.get()
            || self.reload.pending(self.generation)
            || signals.slots.borrow().iter().any(Option::is_some)
            || (0..self.shards).any(|peer| self.handoff_waiting(peer))
    }

    /// Send everything the core wants sent, in order, then clear it. With a shard port,
    /// requests leave from it (so that a peer answering to the source port, RFC 3581, answers
    /// this shard) and responses from the shared port, where the requests they answer came
    /// in; the two never need an order between them (UDP gives none).
    async fn transmit(&mut self) {
        let Shard {
            fd,
            shard_port_fd,
            core,
            send,
            requests,
            snapshot,
            residence,
            signals,
            ..
        } = self;
        let shell = &mut snapshot.shell;
        let mut transmits = core.transmits().peekable();
        if transmits.peek().is_none() {
            return;
        }
        // Once one batch has waited SEND_BLOCKED_MAX, the rest of this flush gets a single
        // attempt each: the shard must get back to its calls.
        let mut gave_up = false;
        let mut index = 0;
        loop {
            send.clear();
            requests.clear();
            while !send.is_full() && !requests.is_full() {
                match transmits.next() {
                    Some((to, data)) => {
                        let batch = if shard_port_fd.is_some() && !data.starts_with(b"SIP/") {
                            &mut *requests
                        } else {
                            &mut *send
                        };
                        if batch.push(to, data) {
                            residence.queued(index, data);
                        } else {
                            shell.send_errors += 1;
                        }
                        index += 1;
                    }
                    None => break,
                }
            }
            let exhausted = transmits.peek().is_none();
            let mut sent_any = false;
            for (batch, fd) in [(&mut *send, Some(*fd)), (&mut *requests, *shard_port_fd)] {
                let Some(fd) = fd else {
                    continue;
                };
                if !batch.is_empty() {
                    flush(batch, fd, shell, &mut gave_up, &signals.errqueue).await;
                    sent_any = true;
                }
            }
            if sent_any {
                residence.sent(Instant::now());
            }
            if exhausted {
                break;
            }
        }
        drop(transmits);
        core.clear_transmits();
    }

    fn fold_readiness_errors(&mut self) {
        self.snapshot.shell.receive_errors += self.signals.readiness_errors.replace(0);
    }

    /// Publish when something changed and the last publication is old enough.
    fn publish_if_due(&mut self, now: Instant) {
        if !self.unpublished || now < self.last_publish + limits::METRICS_PUBLISH_INTERVAL {
            return;
        }
        self.fold_readiness_errors();
        self.snapshot.core.clone_from(self.core.stats());
        if self.slot.try_publish(&self.snapshot) {
            self.last_publish = now;
            self.unpublished = false;
            self.stats_pending = true;
        }
    }

    /// Copy the next few changed histograms (and the trunk counters) to the slot: at most
    /// `limits::STATS_COPY_HISTOGRAMS_MAX` per round, so a publication never stalls the
    /// shard for long; the round after the last one clears `stats_pending`.
    fn publish_stats_step(&mut self) {
        if !self.stats_pending {
            return;
        }
        let copied = self.slot.try_publish_stats(
            self.core.trunk_stats(),
            &self.residence.histograms,
            limits::STATS_COPY_HISTOGRAMS_MAX,
        );
        if copied.is_some_and(|c| c.complete) {
            self.stats_pending = false;
        }
    }

    /// Hand the records of ended calls to the CDR writer (never waiting: a full queue drops
    /// and counts them), or discard them when CDRs are off.
    fn forward_records(&mut self) {
        self.core.drain_records(&mut self.records);
        for record in self.records.drain(..) {
            if let Some(cdr) = &self.cdr {
                cdr.offer(record);
            }
        }
    }

    /// Sleep until there is work: the socket is readable, a hand-off arrived, the core's
    /// next deadline, the next due publication of unpublished counters, or stop; and at
    /// most `limits::SHARD_PARK_MAX`.
    async fn park(&mut self, timed_out_this_round: bool, socket_empty: bool) {
        let now = Instant::now();
        let mut wake_at = now + limits::SHARD_PARK_MAX;
        if let Some(deadline) = self.core.next_deadline() {
            if deadline <= now {
                if !timed_out_this_round {
                    return; // became due while we were sending: handle it now
                }
                // handle_timeout just ran and the deadline did not move: never spin on a
                // core that keeps reporting a past deadline.
                wake_at = now + Duration::from_millis(1);
            } else {
                wake_at = wake_at.min(deadline);
            }
        }
        if self.unpublished {
            let due = self.last_publish + limits::METRICS_PUBLISH_INTERVAL;
            wake_at = wake_at.min(due.max(now + Duration::from_millis(1)));
        }
        if socket_empty {
            // Hand the wait for the next datagram to the reader.
            self.signals.readable.set(false);
            for (want, waker) in self
                .signals
                .want_read
                .iter()
                .zip(&self.signals.reader_wakers)
            {
                want.set(true);
                Signals::wake(waker);
            }
        }
        self.snapshot.shell.parks += 1;
        let mut timer = Timer::new(wake_at.saturating_duration_since(now));
        poll_fn(|cx| {
            if self.has_work() {
                return Poll::Ready(());
            }
            *self.signals.main_waker.borrow_mut() = Some(cx.waker().clone());
            Pin::new(&mut timer).poll(cx).map(|_| ())
        })
        .await;
        self.signals.main_waker.borrow_mut().take();
        self.core
            .observe_idle(Instant::now().saturating_duration_since(now));
    }
}

/// Send one batch on `fd`, waiting for buffer space at most `limits::SEND_BLOCKED_MAX` (once
/// one batch of a flush gave up, the others get a single attempt: `gave_up`).
async fn flush(
    batch: &mut SendBatch,
    fd: RawFd,
    shell: &mut crate::control::metrics::ShellCounters,
    gave_up: &mut bool,
    errqueue: &Cell<bool>,
) {
    let mut from = 0;
    let mut blocked_since: Option<Instant> = None;
    loop {
        let outcome = batch.send(fd, from);
        if outcome.unreachable_pending {
            errqueue.set(true);
        }
        shell.send_batches += 1;
        shell.datagrams_sent += outcome.sent as u64;
        shell.send_errors += outcome.failed as u64;
        let Some(at) = outcome.blocked_at else {
            break;
        };
        shell.send_buffer_full += 1;
        from = at;
        let since = *blocked_since.get_or_insert_with(Instant::now);
        if *gave_up || since.elapsed() >= limits::SEND_BLOCKED_MAX {
            *gave_up = true;
            shell.dropped_send_blocked += batch.len().saturating_sub(at) as u64;
            break;
        }
        Timer::new(limits::SEND_RETRY_INTERVAL).await;
    }
}

/// Send one owner its batch (leaving an empty one in its place); count what happened.
fn hand_off(
    from: usize,
    owner: usize,
    batch: &mut HandoffBatch,
    senders: &[Option<ConnectedSender<HandoffBatch>>],
    counters: &HandoffCounters,
    snapshot: &mut ShardSnapshot,
) {
    let batch = std::mem::take(batch);
    let count = batch.len() as u64;
    let sent = match senders.get(owner).and_then(Option::as_ref) {
        Some(sender) => sender.try_send(batch),
        None => Err(GlommioError::Closed(glommio::ResourceType::Channel(batch))),
    };
    let shell = &mut snapshot.shell;
    match sent {
        Ok(()) => {
            counters.record_sent(from, owner);
            shell.handed_off += count;
            if let Some(n) = snapshot.handoff_out_to.get_mut(owner) {
                *n += count;
            }
        }
        Err(GlommioError::WouldBlock(_)) => shell.dropped_handoff_full += count,
        Err(_) => shell.dropped_handoff_closed += count,
    }
}

/// Wait for readability of one socket when asked, then report it (`which`: 0 the shared
/// port's socket, 1 the shard's own port's).
async fn reader(socket: Rc<UdpSocket>, signals: Rc<Signals>, which: usize) {
    let mut byte = [0u8; 1];
    let (Some(want_read), Some(waker)) = (
        signals.want_read.get(which),
        signals.reader_wakers.get(which),
    ) else {
        debug_assert!(false, "reader {which} has no signals");
        return;
    };
    loop {
        poll_fn(|cx| {
            if want_read.get() {
                Poll::Ready(())
            } else {
                *waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if signals.backoff.replace(false) {
            Timer::new(limits::RECV_ERROR_BACKOFF).await;
        }
        // MSG_PEEK: the datagram stays queued for recvmmsg. glommio first tries the
        // syscall without blocking and only then submits it to io_uring.
        if let Err(e) = socket.peek_from(&mut byte).await {
            let e = std::io::Error::from(e);
            if errqueue::is_unreachable_errno(e.raw_os_error()) {
                // A pending ICMP error (IP_RECVERR): no failure of the socket.
                signals.errqueue.set(true);
            } else {
                signals
                    .readiness_errors
                    .set(signals.readiness_errors.get() + 1);
                signals.backoff.set(true);
            }
        }
        want_read.set(false);
        signals.readable.set(true);
        signals.wake_main();
    }
}

/// Wait for a batch from one peer while the main task is parked; put it in its slot.
async fn pump(peer: usize, receiver: Rc<ConnectedReceiver<HandoffBatch>>, signals: Rc<Signals>) {
    loop {
        // Receive only into an empty slot, and put the batch there in the same poll that
        // received it: the main task then always sees the oldest batch of this peer first.
        poll_fn(|cx| {
            let empty = signals
                .slots
                .borrow()
                .get(peer)
                .is_some_and(Option::is_none);
            if empty {
                Poll::Ready(())
            } else {
                if let Some(waker) = signals.pump_wakers.borrow_mut().get_mut(peer) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await;
        let Some(batch) = receiver.recv().await else {
            return; // the peer stopped: nothing more will come from it
        };
        signals.count_taken(peer);
        if let Some(slot) = signals.slots.borrow_mut().get_mut(peer) {
            *slot = Some(batch);
        }
        signals.wake_main();
    }
}

/// Wait for a byte on the wake socket; stop the shard if the stop flag is set, else wake
/// the main task (it looks for a new routing table when it wakes).
async fn wake_listener(wake: Rc<UdpSocket>, stop: Arc<AtomicBool>, signals: Rc<Signals>) {
    let mut buf = [0u8; 8];
    loop {
        let received = wake.recv(&mut buf).await;
        if stop.load(Ordering::Acquire) {
            signals.stop.set(true);
            signals.wake_main();
            return;
        }
        if received.is_err() {
            Timer::new(limits::RECV_ERROR_BACKOFF).await;
        } else {
            signals.wake_main();
        }
    }
}

/// Let the executor poll its rings and run the other tasks, then continue. The timer bounds
/// the pause if glommio parks the executor although this task is runnable.
async fn yield_with_watchdog() {
    let mut watchdog: Option<Timer> = None;
    poll_fn(|cx| {
        if watchdog.is_some() {
            return Poll::Ready(());
        }
        let mut timer = Timer::new(YIELD_WATCHDOG);
        if Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        watchdog = Some(timer);
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// CPU time used by the calling thread so far (`None` if the clock cannot be read).
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}
