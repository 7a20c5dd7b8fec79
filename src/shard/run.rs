//! The per-shard loop (the run-loop contract at the top of `sip/proxy.rs`).
//!
//! One glommio executor per shard runs one main task that owns the `Core` and does all the
//! work, and a few helper tasks that only wait and signal:
//!
//! - the *reader* awaits readability of the shard's socket (glommio `peek_from` into a
//!   1-byte buffer) when the main task found it empty, then marks it readable;
//! - one *pump* per other shard moves hand-off batches from that shard's channel into a
//!   one-batch inbox slot;
//! - the *stop listener* awaits a byte on the shard's wake socket and checks the stop flag.
//!
//! Why helper tasks rather than one `select` in the main task: glommio 0.9 stacks a new
//! waker on every poll of a pending shared-channel receive (`add_shared_channel_waker`
//! pushes, and wakers are only drained as items arrive) and of a pending socket operation
//! (`add_waiter_many`). A main task that re-polls those futures on every wake-up leaks
//! wakers for as long as the channel or socket stays quiet. Each helper task polls exactly
//! one such future and is woken only by it, so at most one waker is outstanding; the helpers
//! signal the main task through single-slot wakers of our own.
//!
//! The main task: drain the socket with `recvmmsg` (one batch per round), give owned
//! datagrams to the core and batch the others per owner, hand those batches off, give the
//! inbox batches to the core, run `handle_timeout` when due, send every transmit with
//! `sendmmsg`, publish metrics when due; then yield (to let the pumps run) if it did work,
//! or sleep until the socket is readable, a batch is in the inbox, the next core deadline,
//! the next metrics publication, or the stop request.

use super::batch::{RecvBatch, SendBatch};
use super::handoff::HandoffBatch;
use super::owner::owner;
use super::CallIdFinder;
use crate::control::metrics::{ShardSnapshot, ShardState};
use crate::control::ShardSlot;
use crate::limits;
use crate::routing::RoutingTable;
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
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Everything a shard needs, built on the starting thread and moved into the executor.
pub(crate) struct ShardSetup {
    pub index: usize,
    pub shards: usize,
    pub socket: socket2::Socket,
    pub ipv6: bool,
    pub wake: std::net::UdpSocket,
    /// (owner shard, sender) for every other shard.
    pub senders: Vec<(usize, SharedSender<HandoffBatch>)>,
    /// (sending shard, receiver) for every other shard.
    pub receivers: Vec<(usize, SharedReceiver<HandoffBatch>)>,
    pub core_config: CoreConfig,
    pub routing: Arc<RoutingTable>,
    pub states: Arc<[Arc<crate::trunks::TrunkState>]>,
    pub slot: Arc<ShardSlot>,
    pub call_id: CallIdFinder,
    pub stop: Arc<AtomicBool>,
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
    /// The socket may have datagrams: the main task should call recvmmsg.
    readable: Cell<bool>,
    /// The main task found the socket empty: the reader should wait for readability.
    want_read: Cell<bool>,
    /// The reader should pause `RECV_ERROR_BACKOFF` before its next wait.
    backoff: Cell<bool>,
    /// Readiness errors seen by the reader (folded into the metrics by the main task).
    readiness_errors: Cell<u64>,
    stop: Cell<bool>,
    /// One hand-off batch per sending shard, waiting for the main task.
    inbox: RefCell<Vec<Option<HandoffBatch>>>,
    inbox_pending: Cell<bool>,
    main_waker: RefCell<Option<Waker>>,
    reader_waker: RefCell<Option<Waker>>,
    pump_wakers: RefCell<Vec<Option<Waker>>>,
}

impl Signals {
    fn new(shards: usize) -> Signals {
        Signals {
            readable: Cell::new(true),
            want_read: Cell::new(false),
            backoff: Cell::new(false),
            readiness_errors: Cell::new(0),
            stop: Cell::new(false),
            inbox: RefCell::new((0..shards).map(|_| None).collect()),
            inbox_pending: Cell::new(false),
            main_waker: RefCell::new(None),
            reader_waker: RefCell::new(None),
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

    fn has_work(&self) -> bool {
        self.readable.get() || self.inbox_pending.get() || self.stop.get()
    }

    /// The main task found the socket empty: hand the wait to the reader.
    fn arm_reader(&self) {
        self.readable.set(false);
        self.want_read.set(true);
        Signals::wake(&self.reader_waker);
    }
}

/// The body of a shard's executor.
pub(crate) async fn shard_main(setup: ShardSetup) -> Result<(), String> {
    let ShardSetup {
        index,
        shards,
        socket,
        ipv6,
        wake,
        senders,
        receivers,
        core_config,
        routing,
        states,
        slot,
        call_id,
        stop,
        started,
    } = setup;
    let _stopped = StoppedOnDrop(Arc::clone(&slot));

    let fd = socket.as_raw_fd();
    // SAFETY: the descriptors come from sockets we own and give up here.
    let socket = Rc::new(unsafe { UdpSocket::from_raw_fd(socket.into_raw_fd()) });
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
    let mut connected_receivers = Vec::with_capacity(receiver_tasks.len());
    for (peer, task) in receiver_tasks {
        connected_receivers.push((peer, task.await));
    }

    let signals = Rc::new(Signals::new(shards));
    let mut helpers: Vec<Task<()>> = Vec::new();
    helpers.push(glommio::spawn_local(reader(
        Rc::clone(&socket),
        Rc::clone(&signals),
    )));
    helpers.push(glommio::spawn_local(stop_listener(
        wake,
        Arc::clone(&stop),
        Rc::clone(&signals),
    )));
    for (peer, receiver) in connected_receivers {
        helpers.push(glommio::spawn_local(pump(
            peer,
            receiver,
            Rc::clone(&signals),
        )));
    }

    let cpu = slot.read().snapshot.cpu;
    let mut shard = Shard {
        index,
        shards,
        fd,
        core: Core::with_states(core_config, routing, states),
        recv: RecvBatch::new(),
        send: SendBatch::new(ipv6),
        outgoing: (0..shards).map(|_| HandoffBatch::new()).collect(),
        senders: connected_senders,
        signals: Rc::clone(&signals),
        stop,
        snapshot: ShardSnapshot::new(index, shards, cpu),
        slot: Arc::clone(&slot),
        call_id,
        last_publish: Instant::now(),
        unpublished: true,
    };
    slot.set_state(ShardState::Running);
    let _ = started.send(index);
    drop(started);

    shard.run().await;

    shard.snapshot.core.clone_from(shard.core.stats());
    shard.fold_readiness_errors();
    slot.publish(&shard.snapshot);
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
    Ok(())
}

struct Shard {
    index: usize,
    shards: usize,
    fd: RawFd,
    core: Core,
    recv: RecvBatch,
    send: SendBatch,
    /// Foreign datagrams of the current receive batch, per owner.
    outgoing: Vec<HandoffBatch>,
    senders: Vec<Option<ConnectedSender<HandoffBatch>>>,
    signals: Rc<Signals>,
    stop: Arc<AtomicBool>,
    /// The shard's counters, kept in the published form.
    snapshot: ShardSnapshot,
    slot: Arc<ShardSlot>,
    call_id: CallIdFinder,
    last_publish: Instant,
    unpublished: bool,
}

impl Shard {
    async fn run(&mut self) {
        loop {
            if self.signals.stop.get() || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let mut busy = false;
            if self.signals.readable.get() {
                match self.recv.recv(self.fd) {
                    Ok(0) => self.signals.arm_reader(),
                    Ok(_) => {
                        busy = true;
                        self.dispatch_received(Instant::now());
                    }
                    Err(_) => {
                        self.snapshot.shell.receive_errors += 1;
                        self.signals.backoff.set(true);
                        self.signals.arm_reader();
                    }
                }
            }
            busy |= self.take_hand_ins();
            let now = Instant::now();
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
            self.transmit().await;
            self.publish_if_due(Instant::now());
            if busy {
                // Let the pumps and the reader run; the executor polls its rings (and so
                // notices hand-offs to idle pumps and the stop request) every
                // SHARD_PREEMPT_INTERVAL even if we never go idle.
                yield_now().await;
            } else {
                self.park(timed_out).await;
            }
        }
    }

    /// Give owned datagrams of the receive batch to the core, hand the others off.
    fn dispatch_received(&mut self, now: Instant) {
        let count = self.recv.len();
        let shell = &mut self.snapshot.shell;
        shell.datagrams_received += count as u64;
        shell.receive_batches += 1;
        for i in 0..count {
            let Some(datagram) = self.recv.get(i) else {
                continue;
            };
            if datagram.truncated {
                shell.dropped_oversize += 1;
                continue;
            }
            let Some(from) = datagram.from else {
                shell.dropped_bad_source += 1;
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
                        shell.datagrams_without_call_id += 1;
                        self.index
                    }
                }
            };
            if owner == self.index {
                self.core.handle_datagram(now, from, datagram.data);
                shell.datagrams_processed += 1;
            } else if let Some(batch) = self.outgoing.get_mut(owner) {
                batch.push(now, from, datagram.data);
            }
        }
        self.hand_off();
    }

    /// Send the batches gathered by `dispatch_received` to their owners.
    fn hand_off(&mut self) {
        let shell = &mut self.snapshot.shell;
        for (owner, batch) in self.outgoing.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(batch);
            let count = batch.len() as u64;
            let sent = match self.senders.get(owner).and_then(Option::as_ref) {
                Some(sender) => sender.try_send(batch),
                None => Err(GlommioError::Closed(glommio::ResourceType::Channel(batch))),
            };
            match sent {
                Ok(()) => {
                    shell.handed_off += count;
                    if let Some(n) = self.snapshot.handoff_out_to.get_mut(owner) {
                        *n += count;
                    }
                }
                Err(GlommioError::WouldBlock(_)) => shell.dropped_handoff_full += count,
                Err(_) => shell.dropped_handoff_closed += count,
            }
        }
    }

    /// Give the batches waiting in the inbox to the core. True if there were any.
    fn take_hand_ins(&mut self) -> bool {
        if !self.signals.inbox_pending.replace(false) {
            return false;
        }
        let mut any = false;
        for peer in 0..self.shards {
            let batch = self
                .signals
                .inbox
                .borrow_mut()
                .get_mut(peer)
                .and_then(Option::take);
            let Some(batch) = batch else {
                continue;
            };
            any = true;
            for (received, from, data) in batch.iter() {
                self.core.handle_datagram(received, from, data);
            }
            let count = batch.len() as u64;
            let shell = &mut self.snapshot.shell;
            shell.handed_in += count;
            shell.datagrams_processed += count;
            if let Some(n) = self.snapshot.handoff_in_from.get_mut(peer) {
                *n += count;
            }
            drop(batch);
            if let Some(waker) = self
                .signals
                .pump_wakers
                .borrow_mut()
                .get_mut(peer)
                .and_then(Option::take)
            {
                waker.wake();
            }
        }
        any
    }

    /// Send everything the core wants sent, in order, then clear it.
    async fn transmit(&mut self) {
        let Shard {
            fd,
            core,
            send,
            snapshot,
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
        loop {
            send.clear();
            let mut exhausted = true;
            while !send.is_full() {
                match transmits.next() {
                    Some((to, data)) => {
                        if !send.push(to, data) {
                            shell.send_errors += 1;
                        }
                    }
                    None => break,
                }
            }
            if send.is_full() {
                exhausted = transmits.peek().is_none();
            }
            if !send.is_empty() {
                let mut from = 0;
                let mut blocked_since: Option<Instant> = None;
                loop {
                    let outcome = send.send(*fd, from);
                    shell.send_batches += 1;
                    shell.datagrams_sent += outcome.sent as u64;
                    shell.send_errors += outcome.failed as u64;
                    let Some(at) = outcome.blocked_at else {
                        break;
                    };
                    shell.send_buffer_full += 1;
                    from = at;
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    if gave_up || since.elapsed() >= limits::SEND_BLOCKED_MAX {
                        gave_up = true;
                        shell.dropped_send_blocked += send.len().saturating_sub(at) as u64;
                        break;
                    }
                    Timer::new(limits::SEND_RETRY_INTERVAL).await;
                }
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
        }
    }

    /// Sleep until there is work: the socket is readable, a hand-off is in the inbox, the
    /// core's next deadline, the next due publication of unpublished counters, or stop.
    async fn park(&mut self, timed_out_this_round: bool) {
        let now = Instant::now();
        let mut wake_at = self.core.next_deadline();
        if let Some(deadline) = wake_at {
            if deadline <= now {
                if !timed_out_this_round {
                    return; // became due while we were sending: handle it now
                }
                // handle_timeout just ran and the deadline did not move: never spin on a
                // core that keeps reporting a past deadline.
                wake_at = Some(now + Duration::from_millis(1));
            }
        }
        if self.unpublished {
            let due = self.last_publish + limits::METRICS_PUBLISH_INTERVAL;
            let due = due.max(now + Duration::from_millis(1));
            wake_at = Some(wake_at.map_or(due, |at| at.min(due)));
        }
        self.snapshot.shell.parks += 1;
        let mut timer = wake_at.map(|at| Timer::new(at.saturating_duration_since(now)));
        let signals = Rc::clone(&self.signals);
        poll_fn(|cx| {
            if signals.has_work() {
                return Poll::Ready(());
            }
            *signals.main_waker.borrow_mut() = Some(cx.waker().clone());
            if let Some(timer) = timer.as_mut() {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
        signals.main_waker.borrow_mut().take();
    }
}

/// Wait for readability when asked, then report it.
async fn reader(socket: Rc<UdpSocket>, signals: Rc<Signals>) {
    let mut byte = [0u8; 1];
    loop {
        poll_fn(|cx| {
            if signals.want_read.get() {
                Poll::Ready(())
            } else {
                *signals.reader_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if signals.backoff.replace(false) {
            Timer::new(limits::RECV_ERROR_BACKOFF).await;
        }
        // MSG_PEEK: the datagram stays queued for recvmmsg. glommio first tries the
        // syscall without blocking and only then submits it to io_uring.
        if socket.peek_from(&mut byte).await.is_err() {
            signals
                .readiness_errors
                .set(signals.readiness_errors.get() + 1);
            signals.backoff.set(true);
        }
        signals.want_read.set(false);
        signals.readable.set(true);
        signals.wake_main();
    }
}

/// Move hand-off batches from one peer's channel into its inbox slot.
async fn pump(peer: usize, receiver: ConnectedReceiver<HandoffBatch>, signals: Rc<Signals>) {
    while let Some(batch) = receiver.recv().await {
        poll_fn(|cx| {
            let free = signals
                .inbox
                .borrow()
                .get(peer)
                .is_some_and(Option::is_none);
            if free {
                Poll::Ready(())
            } else {
                if let Some(waker) = signals.pump_wakers.borrow_mut().get_mut(peer) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await;
        if let Some(slot) = signals.inbox.borrow_mut().get_mut(peer) {
            *slot = Some(batch);
        }
        signals.inbox_pending.set(true);
        signals.wake_main();
    }
    // The peer stopped: nothing more will come from it.
}

/// Wait for a byte on the wake socket; stop the shard if the stop flag is set.
async fn stop_listener(wake: Rc<UdpSocket>, stop: Arc<AtomicBool>, signals: Rc<Signals>) {
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
        }
    }
}

/// Let every other ready task of this executor run once, then continue.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
