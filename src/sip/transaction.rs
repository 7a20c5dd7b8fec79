//! Transaction records (RFC 3261 17, with RFC 6026's Accepted state) and the per-shard tables
//! that hold them. The state transitions live in `proxy`, which owns the tables; this file is
//! the data: states, timers, and generation-checked slabs (`slab`) so a stale timer or
//! branch never reaches a reused slot.

use super::index::Index;
pub use super::slab::{Id, Slab};
use super::timer::{self, TimerWheel};
use crate::routing::{Attempts, RoutingTable, TrunkId};
use crate::trunks::TrunkState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Server transaction states (RFC 3261 17.2.1 / 17.2.2, RFC 6026 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// non-INVITE: request received, nothing sent yet.
    Trying,
    /// A provisional response was sent (for INVITE: our 100 Trying at least).
    Proceeding,
    /// A final non-2xx response was sent; retransmitted until ACK (INVITE) / absorbs
    /// retransmissions (non-INVITE).
    Completed,
    /// INVITE: ACK received for our non-2xx.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026): 2xx retransmissions from downstream pass through.
    Accepted,
}

/// Client transaction states (RFC 3261 17.1.1 / 17.1.2, RFC 6026 7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, no response yet (INVITE "Calling" / non-INVITE "Trying").
    Calling,
    Proceeding,
    Completed,
    /// INVITE: a 2xx was received.
    Accepted,
}

/// Which timer of a transaction an entry in the wheel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Client: A (INVITE) / E (non-INVITE) retransmission.
    Retransmit,
    /// Client: B / F; server: H / J / I / L; call: idle expiry and linger.
    Timeout,
    /// Client INVITE: Timer C (proxy), also the 64*T1 wait after we sent CANCEL.
    ProxyC,
    /// Server INVITE: Timer G (retransmit the final response).
    ResponseRetransmit,
    /// Client INVITE: the egress trunk's progress timer (no 18x/2xx in time: fail over).
    Progress,
}

pub const TIMER_KINDS: usize = 5;

impl TimerKind {
    pub fn index(self) -> usize {
        match self {
            TimerKind::Retransmit => 0,
            TimerKind::Timeout => 1,
            TimerKind::ProxyC => 2,
            TimerKind::ResponseRetransmit => 3,
            TimerKind::Progress => 4,
        }
    }
}

/// What a wheel entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerTarget {
    Server(Id),
    Client(Id),
    Call(Id),
    /// The next OPTIONS probe of a trunk (index in the current routing table).
    Probe(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerKey {
    pub target: TimerTarget,
    pub kind: TimerKind,
    pub deadline: Instant,
}

/// The deadlines a record currently expects, one per timer kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadlines([Option<Instant>; TIMER_KINDS]);

impl Deadlines {
    pub fn get(&self, kind: TimerKind) -> Option<Instant> {
        self.0.get(kind.index()).copied().flatten()
    }
    pub fn set(&mut self, kind: TimerKind, at: Option<Instant>) {
        if let Some(slot) = self.0.get_mut(kind.index()) {
            *slot = at;
        }
    }
    /// Whether a fired entry is still the one this record expects.
    pub fn is_current(&self, kind: TimerKind, at: Instant) -> bool {
        self.get(kind) == Some(at)
    }
    pub fn clear(&mut self) {
        self.0 = [None; TIMER_KINDS];
    }
}

/// A server transaction: one request received from upstream and the response context of
/// the proxy for it (RFC 3261 16.7).
pub struct ServerTxn {
    /// The key it is found by (see `server_key`).
    pub key: Box<[u8]>,
    /// `key`'s hash in the server index (`Transactions::server_hash`).
    pub key_hash: u64,
    pub invite: bool,
    pub state: ServerState,
    /// Where responses go (RFC 3261 18.2.2 / RFC 3581).
    pub reply_to: SocketAddr,
    /// The last response sent (for retransmission), or empty.
    pub last_response: Vec<u8>,
    pub last_code: u16,
    /// The request as received (to build the next attempt from), only for routed INVITEs.
    pub request: Vec<u8>,
    /// Where that request came from.
    pub source: SocketAddr,
    /// The client transaction currently working for it.
    pub client: Option<Id>,
    /// Attempt list and the index of the next attempt to try (failover across trunks).
    pub attempts: Attempts,
    pub attempt: u8,
    pub ingress: Option<TrunkId>,
    /// Routed requests: the routing table and trunk states the attempt list refers to (a
    /// reload does not change a call in progress), and the numbers after normalization.
    pub plan: Option<Box<Plan>>,
    /// Best final response received so far (RFC 3261 16.7 step 6): translated code and the
    /// response as received (empty when we generated it, e.g. a timeout).
    pub best: Option<(u16, Vec<u8>)>,
    /// The current attempt holds an admission slot on this trunk.
    pub admitted: Option<Arc<TrunkState>>,
    /// Some trunk refused the call for its limits.
    pub refused: bool,
    /// An 18x with a To tag was relayed upstream (no failover after it, by default).
    pub provisional_relayed: bool,
    /// The request came from the calling side of its call (responses restore the caller's
    /// own From).
    pub from_caller: bool,
    /// A CANCEL was received for it.
    pub cancelled: bool,
    /// Interval for the next Timer G retransmission.
    pub g_interval: Duration,
    pub call: Option<Id>,
    pub deadlines: Deadlines,
}

impl ServerTxn {
    pub fn new(
        key: Box<[u8]>,
        key_hash: u64,
        invite: bool,
        reply_to: SocketAddr,
        source: SocketAddr,
    ) -> Self {
        ServerTxn {
            key,
            key_hash,
            invite,
            state: ServerState::Trying,
            reply_to,
            last_response: Vec::new(),
            last_code: 0,
            request: Vec::new(),
            source,
            client: None,
            attempts: Attempts::EMPTY,
            attempt: 0,
            ingress: None,
            plan: None,
            best: None,
            admitted: None,
            refused: false,
            provisional_relayed: false,
            from_caller: true,
            cancelled: false,
            g_interval: timer::T1,
            call: None,
            deadlines: Deadlines::default(),
        }
    }
}

impl ClientTxn {
    pub fn new(
        invite: bool,
        dest: SocketAddr,
        server: Option<Id>,
        egress: Option<TrunkId>,
    ) -> Self {
        ClientTxn {
            invite,
            cancel: false,
            state: ClientState::Calling,
            request: Vec::new(),
            dest,
            server,
            cancel_txn: None,
            cancel_pending: false,
            cancel_sent: false,
            provisional_seen: false,
            retransmit_interval: timer::T1,
            ack: Vec::new(),
            egress,
            abandoned: false,
            probe: false,
            deadlines: Deadlines::default(),
        }
    }
}

/// What routing decided for an initial request.
pub struct Plan {
    pub table: Arc<RoutingTable>,
    pub states: Arc<[Arc<TrunkState>]>,
    /// Called and calling numbers after the ingress trunk's normalization (the calling
    /// number is the caller's identity: P-Asserted-Identity from a trusted trunk, else
    /// From; each route's `caller_id` applies per attempt).
    pub called: Vec<u8>,
    pub calling: Vec<u8>,
}

/// A client transaction: one request we forwarded downstream.
pub struct ClientTxn {
    pub invite: bool,
    pub cancel: bool,
    pub state: ClientState,
    /// The bytes we sent (retransmitted as is; CANCEL and ACK are derived from them).
    pub request: Vec<u8>,
    pub dest: SocketAddr,
    pub server: Option<Id>,
    /// For an INVITE: the CANCEL client transaction we started for it.
    pub cancel_txn: Option<Id>,
    /// Upstream asked to cancel before any provisional arrived: send CANCEL on the first 1xx.
    pub cancel_pending: bool,
    pub cancel_sent: bool,
    pub provisional_seen: bool,
    pub retransmit_interval: Duration,
    /// The ACK we sent for a non-2xx final (resent on retransmissions of it).
    pub ack: Vec<u8>,
    pub egress: Option<TrunkId>,
    /// Given up on (progress timer): its responses are absorbed (a 2xx is still relayed).
    pub abandoned: bool,
    /// An OPTIONS health probe of trunk `egress`, sent by junction itself.
    pub probe: bool,
    pub deadlines: Deadlines,
}

/// Both tables plus the timer wheel of one shard.
pub struct Transactions {
    pub servers: Slab<ServerTxn>,
    pub clients: Slab<ClientTxn>,
    pub server_index: Index,
    pub wheel: TimerWheel<TimerKey>,
}

impl Transactions {
    pub fn new(origin: Instant) -> Transactions {
        Transactions {
            servers: Slab::default(),
            clients: Slab::default(),
            server_index: Index::default(),
            wheel: TimerWheel::new(origin),
        }
    }

    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set `kind`'s deadline and put an entry for it in the wheel, due at `due`.
    fn set_and_insert(
        &mut self,
        target: TimerTarget,
        kind: TimerKind,
        deadline: Instant,
        due: Instant,
    ) {
        if let Some(d) = deadlines_of(&mut self.servers, &mut self.clients, target) {
            d.set(kind, Some(deadline));
            self.wheel.insert(
                due,
                TimerKey {
                    target,
                    kind,
                    deadline: due,
                },
            );
        }
    }

    pub fn arm(&mut self, target: TimerTarget, kind: TimerKind, deadline: Instant) {
        self.set_and_insert(target, kind, deadline, deadline);
    }

    /// Arm a long timer (Timer C, 181 s; an INVITE server transaction's safety timeout,
    /// 213 s) in steps: its wheel entry is due at most `timer::LONG_TIMER_STEP` ahead and is
    /// put back (`postponed`) until the deadline comes. Such timers are nearly always
    /// cancelled within seconds, and a cancelled timer's entry stays in the wheel until it is
    /// due: whole-length entries held ~2 of them per call for over three minutes (3.9 M at
    /// 10,000 calls/s), each scanned on every revolution.
    pub fn arm_long(
        &mut self,
        now: Instant,
        target: TimerTarget,
        kind: TimerKind,
        deadline: Instant,
    ) {
        let due = deadline.min(now + timer::LONG_TIMER_STEP);
        self.set_and_insert(target, kind, deadline, due);
    }

    /// Move a long timer's deadline later: when one is armed, no new wheel entry (the one
    /// there is put back until the deadline comes). Timer C restarts on every provisional
    /// response (RFC 3261 16.7 step 2): an entry per restart kept ~3 per call.
    pub fn extend(
        &mut self,
        now: Instant,
        target: TimerTarget,
        kind: TimerKind,
        deadline: Instant,
    ) {
        if let Some(d) = deadlines_of(&mut self.servers, &mut self.clients, target) {
            if d.get(kind).is_some_and(|armed| armed <= deadline) {
                d.set(kind, Some(deadline));
                return;
            }
        }
        self.arm_long(now, target, kind, deadline);
    }

    /// A fired entry of a long timer (`arm_long`: a client's Timer C, a server's Timeout)
    /// whose deadline is still ahead: put back, at most one step ahead. Returns whether it
    /// was (the firing is then not the timer's, and its owner is not told).
    pub fn postponed(&mut self, now: Instant, key: TimerKey) -> bool {
        let long = matches!(
            (key.target, key.kind),
            (TimerTarget::Client(_), TimerKind::ProxyC)
                | (TimerTarget::Server(_), TimerKind::Timeout)
        );
        if !long {
            return false;
        }
        let current = deadlines_of(&mut self.servers, &mut self.clients, key.target)
            .and_then(|d| d.get(key.kind));
        match current {
            Some(later) if later > key.deadline => {
                let step = later.min(now + timer::LONG_TIMER_STEP);
                self.wheel.insert(
                    step,
                    TimerKey {
                        deadline: step,
                        ..key
                    },
                );
                true
            }
            _ => false,
        }
    }

    pub fn disarm(&mut self, target: TimerTarget, kind: TimerKind) {
        if let Some(d) = deadlines_of(&mut self.servers, &mut self.clients, target) {
            d.set(kind, None);
        }
    }

    /// The hash server transaction keys are indexed by (`find_server`, `index_server`).
    pub fn server_hash(&self, key: &[u8]) -> u64 {
        self.server_index.hash(key)
    }

    /// The server transaction entered under `key`, whose hash is `hash`.
    pub fn find_server(&self, hash: u64, key: &[u8]) -> Option<Id> {
        let servers = &self.servers;
        self.server_index
            .get(hash, key, |id| servers.get(id).map(|t| &*t.key))
    }

    /// Enter server transaction `id` under its key (an older one under the same key is no
    /// longer found).
    pub fn index_server(&mut self, id: Id) {
        let servers = &self.servers;
        let Some(t) = servers.get(id) else {
            return;
        };
        self.server_index.insert(t.key_hash, &t.key, id, |id| {
            servers.get(id).map(|t| &*t.key)
        });
    }

    pub fn remove_server(&mut self, id: Id) -> Option<ServerTxn> {
        let t = self.servers.remove(id)?;
        self.server_index.remove(t.key_hash, id);
        Some(t)
    }
}

/// The timer deadlines of a transaction (calls and probes keep theirs elsewhere). Takes the
/// two tables rather than `&mut Transactions`, so the wheel stays free to borrow.
fn deadlines_of<'a>(
    servers: &'a mut Slab<ServerTxn>,
    clients: &'a mut Slab<ClientTxn>,
    target: TimerTarget,
) -> Option<&'a mut Deadlines> {
    match target {
        TimerTarget::Server(id) => servers.get_mut(id).map(|t| &mut t.deadlines),
        TimerTarget::Client(id) => clients.get_mut(id).map(|t| &mut t.deadlines),
        TimerTarget::Call(_) | TimerTarget::Probe(_) => None,
    }
}

/// The key a server transaction is matched by (RFC 3261 17.2.3): the top Via branch and
/// sent-by, and the method class (ACK matches INVITE; CANCEL is its own transaction).
/// RFC 2543 requests (no magic cookie) are keyed by Call-ID, CSeq number, From tag and the
/// top Via value instead. Written into `out` (reused, no allocation once warm).
pub fn server_key(out: &mut Vec<u8>, class: u8, rfc3261: bool, parts: &[&[u8]]) {
    out.clear();
    out.push(class);
    out.push(if rfc3261 { b'3' } else { b'2' });
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_do_not_reach_reused_slots() {
        let mut s: Slab<&str> = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.idx, b.idx);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
    }
}
