//! The proxy core (RFC 3261 16, transactions per 17 and RFC 6026): a synchronous state
//! machine. Feed it datagrams and timeouts with `now`; drain what it wants sent. It never
//! touches a socket or a clock.
//!
//! Run loop contract (the shard shell):
//! 1. for each received datagram: `handle_datagram(now, from, bytes)`;
//! 2. when `now >= next_deadline()`: `handle_timeout(now)`;
//! 3. send every `transmits()`, then `clear_transmits()`;
//! 4. sleep until a datagram arrives or `next_deadline()`.

mod attempt;
mod health;
mod limit;
mod loops;
mod probe;
mod record;

pub use health::{unreachable_owner, HealthEvent};
pub use limit::{CallLimit, LegBye};

use super::cdr::{CallRecord, EndedBy};
use super::dialog::{Call, CallState, Calls};
use super::flood::Verdict;
use super::overload::{Admission, OverloadControl};
use super::response::{self, local_response, Derived};
use super::rewrite::{self, RequestEdits, ResponseEdits, Splice};
use super::scan::{self, Message, ScanError, StartLine};
use super::timer::{self, TimerWheel};
use super::transaction::{
    server_key, ClientState, ClientTxn, Id, ServerState, ServerTxn, TimerKey, TimerKind,
    TimerTarget, Transactions,
};
use super::trunk_stats::TrunkStatsMap;
use super::uri::{self, Scheme};
use super::via::{Rport, Via, MAGIC_COOKIE};
use super::{Method, Span};
use crate::limits;
use crate::routing::{RoutingTable, TrunkId};
use crate::trunks::{Registry, TrunkState};
use attempt::{unavailable, user_span, warning};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This shard's index (0..shards) and the shard count.
    pub shard: u16,
    pub shards: u16,
    /// The address peers reach us at: in our Via and Record-Route, and how we recognise a
    /// Route or Request-URI that points at us.
    pub advertise: SocketAddr,
    /// Per-shard ports (`[server] shard_ports`): shard i puts port `base + i` of the
    /// advertised address in its Via and Record-Route, so that responses and in-dialog
    /// requests come straight back to the shard that owns the call (docs/scaling.md).
    /// `None`: every shard advertises `advertise`.
    pub shard_ports: Option<u16>,
    /// Wall-clock time of an instant: RFC 7339 feedback carries wall-clock sequence numbers.
    pub wall: super::oc::WallAnchor,
}

/// Counters kept by the core (plain integers: one shard writes them).
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    pub requests_in: u64,
    pub responses_in: u64,
    pub requests_forwarded: u64,
    pub responses_forwarded: u64,
    pub responses_local: u64,
    pub retransmissions_absorbed: u64,
    pub retransmissions_sent: u64,
    pub dropped_malformed: u64,
    /// Messages over a `[limits]` input limit (answered 4xx when from a trunk, else dropped).
    pub rejected_input_limits: u64,
    pub dropped_stray: u64,
    pub rejected_unknown_source: u64,
    pub rejected_no_route: u64,
    /// New calls answered 503 because the shard was saturated (overload control), near
    /// the memory cap, or a table was full.
    pub rejected_overload: u64,
    /// New calls dropped unparsed because the shard was too saturated even to answer 503.
    pub dropped_overload: u64,
    /// Responses that carried RFC 7339 overload control feedback to a trunk that asked.
    pub oc_responses: u64,
    /// New calls admitted while shedding because their trunk withholds its share itself
    /// (RFC 7339): refusing them too would shed that trunk twice.
    pub oc_admitted: u64,
    /// RFC 7339 feedback from trunks junction sends calls to (`overload_control`), applied
    /// to the trunk's share of new calls withheld, and ignored (stale, malformed, out of
    /// range, or another algorithm).
    pub oc_feedback_applied: u64,
    pub oc_feedback_ignored: u64,
    /// Trunks that refused a call for their limits (each refusal; the call may go on to
    /// the next trunk).
    pub rejected_admission: u64,
    /// Calls moved to their next trunk after a failure.
    pub failovers: u64,
    /// OPTIONS probes sent to trunks, and probes that failed.
    pub probes_sent: u64,
    pub probe_failures: u64,
    /// Call records dropped because nobody took them in time.
    pub records_dropped: u64,
    /// Datagrams dropped by flood protection, and source addresses blocked so far.
    pub dropped_flood: u64,
    pub flood_blocks: u64,
    /// Calls this shard has owned (INVITEs that created call state).
    pub calls_created: u64,
    /// Gauges.
    pub calls_active: u64,
    pub transactions_active: u64,
    pub timers_active: u64,
    /// Percentage of new calls overload control admits (100 when not overloaded).
    pub admission_percent: u64,
}

/// Method class byte of a server transaction key (ACK matches INVITE).
const CLASS_INVITE: u8 = b'I';
const CLASS_CANCEL: u8 = b'C';
const CLASS_OTHER: u8 = b'N';

/// How to forward one request statefully.
struct Forward<'a> {
    dest: SocketAddr,
    egress: Option<TrunkId>,
    invite: bool,
    pop_route: bool,
    record_route: bool,
    new_uri: Option<&'a [u8]>,
    source: SocketAddr,
    replace: &'a [(Span, &'a [u8])],
    delete: &'a [Span],
    /// The egress trunk's progress timer (fast failover), for INVITEs.
    progress: Option<std::time::Duration>,
    /// Loop detection (RFC 3261 16.3 item 4): the hash of the routing state of a request
    /// routed by number, appended to our branch (`Core::loop_hash`).
    loop_hash: Option<u32>,
}

pub struct Core {
    config: CoreConfig,
    /// How many transactions and calls it holds at most (limits::TableBounds).
    bounds: limits::TableBounds,
    routing: Arc<RoutingTable>,
    /// Live state of `routing`'s trunks (index = TrunkId), shared by all shards.
    states: Arc<[Arc<TrunkState>]>,
    /// Round-robin counter for routes with several trunks.
    rotation: u64,
    /// OPTIONS probing of the trunks this shard owns (index = TrunkId); rebuilt when the
    /// routing table changes (`probes_due`).
    probes: Vec<probe::ProbeState>,
    probes_due: bool,
    /// Records of ended calls, drained by the shell toward the CDR writer.
    records: std::collections::VecDeque<Box<CallRecord>>,
    flood: super::flood::FloodGuard,
    /// Set by the shell while this shard cannot keep up: new calls are refused first.
    overload: OverloadControl,
    /// Overload control refused the INVITE being handled (503 once it is parsed).
    shed_this: bool,
    /// The RFC 7339 parameters every response to a supporting trunk carries now (empty:
    /// none), and the (value, decision time) they were written for.
    oc_params: Arc<[u8]>,
    oc_none: Arc<[u8]>,
    oc_written: (Option<u8>, Option<Instant>),
    trunk_stats: TrunkStatsMap,
    num_a: Vec<u8>,
    num_b: Vec<u8>,
    /// Scratch for calling-number translation: P-Asserted-Identity numbers sent, one
    /// translation, one normalization; and the header lines an attempt removes.
    num_c: Vec<u8>,
    num_d: Vec<u8>,
    num_t: Vec<u8>,
    delete_buf: Vec<Span>,
    stats: CoreStats,
    out: Vec<u8>,
    transmits: Vec<(SocketAddr, Range<usize>)>,
    txns: Transactions,
    calls: Calls,
    wheel_started: bool,
    msg: Option<Box<Message>>,
    aux: Option<Box<Message>>,
    splice: Splice,
    key: Vec<u8>,
    /// `key`'s hash in the server index (`make_server_key` sets both).
    key_hash: u64,
    via_line: Vec<u8>,
    uri_buf: Vec<u8>,
    tmp: Vec<u8>,
    fired: Vec<TimerKey>,
    /// `z9hG4bKjn<boot><shard>.`: every branch we generate starts with it.
    branch_prefix: Vec<u8>,
    record_route_line: Vec<u8>,
    hash_seed: RandomState,
    /// The reason phrase of the reject route `plan` just met (`None`: the standard one).
    reject_phrase: Option<Box<str>>,
    /// Trunk state changes for the shell to log (`health_events`).
    health_events: Vec<HealthEvent>,
}

/// The address a URI points at, if its host is an IP literal (no DNS on the data path).
fn uri_addr(buf: &[u8], span: Span) -> Option<SocketAddr> {
    let u = uri::parse(buf, span).ok()?;
    let ip = uri::host_ip(buf, u.host)?;
    let default_port = if u.scheme == Scheme::Sips { 5061 } else { 5060 };
    Some(SocketAddr::new(ip, u.port.unwrap_or(default_port)))
}

/// The address a name-addr (Route value) points at.
fn name_addr_addr(buf: &[u8], value: Span) -> Option<SocketAddr> {
    let (u, _) = uri::name_addr(buf, value).ok()?;
    uri_addr(buf, u)
}

fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

impl CoreConfig {
    /// The address this shard writes into its Via and Record-Route: the advertised address,
    /// on this shard's own port when per-shard ports are on.
    pub fn own_address(&self) -> SocketAddr {
        match self.shard_ports {
            Some(base) => SocketAddr::new(self.advertise.ip(), base.saturating_add(self.shard)),
            None => self.advertise,
        }
    }

    /// Whether `a` is one of junction's addresses: the advertised one, or (with per-shard
    /// ports) any shard's port on the advertised address, since a message another shard
    /// steered to itself may reach this one after a change of shard count.
    pub fn is_own_address(&self, a: SocketAddr) -> bool {
        if same_addr(a, self.advertise) {
            return true;
        }
        self.shard_ports.is_some_and(|base| {
            a.ip().to_canonical() == self.advertise.ip().to_canonical()
                && a.port() >= base
                && u32::from(a.port()) < u32::from(base) + u32::from(self.shards)
        })
    }
}

/// Never send to an address that cannot be a SIP peer (broadcast, multicast, port 0):
/// RFC 4475 bcast and amplification attempts.
fn sendable(addr: SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

fn hex(out: &mut Vec<u8>, v: u64) {
    let _ = write!(out, "{v:x}");
}

fn parse_hex(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        let d = (c as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(d)?;
    }
    Some(v)
}

impl Core {
    /// A core with trunk state of its own (tests, benchmarks, a single shard).
    pub fn new(config: CoreConfig, routing: Arc<RoutingTable>) -> Core {
        let states = Registry::new(Instant::now()).states_for(&routing);
        Core::with_states(config, routing, states)
    }

    /// A core sharing trunk state (health, admission counters) with the other shards.
    pub fn with_states(
        config: CoreConfig,
        routing: Arc<RoutingTable>,
        states: Arc<[Arc<TrunkState>]>,
    ) -> Core {
        let shards = config.shards;
        let hash_seed = RandomState::new();
        let boot = hash_seed.hash_one(config.shard) as u32;
        let mut branch_prefix = MAGIC_COOKIE.to_vec();
        let _ = write!(branch_prefix, "jn{:08x}{:x}.", boot, config.shard);
        let mut record_route_line = b"Record-Route: <sip:".to_vec();
        rewrite::write_hostport(&mut record_route_line, config.own_address());
        record_route_line.extend_from_slice(b";lr>\r\n");
        let now = Instant::now();
        Core {
            config,
            bounds: limits::TableBounds::default(),
            routing,
            states,
            rotation: 0,
            probes: Vec::new(),
            probes_due: true,
            records: std::collections::VecDeque::new(),
            flood: super::flood::FloodGuard::new(shards),
            overload: OverloadControl::default(),
            shed_this: false,
            oc_params: Arc::from(&b""[..]),
            oc_none: Arc::from(&b""[..]),
            oc_written: (None, None),
            trunk_stats: TrunkStatsMap::default(),
            num_a: Vec::new(),
            num_b: Vec::new(),
            num_c: Vec::new(),
            num_d: Vec::new(),
            num_t: Vec::new(),
            delete_buf: Vec::new(),
            stats: CoreStats {
                admission_percent: 100,
                ..CoreStats::default()
            },
            out: Vec::new(),
            transmits: Vec::new(),
            txns: Transactions::new(now),
            calls: Calls::default(),
            wheel_started: false,
            msg: Some(Box::default()),
            aux: Some(Box::default()),
            splice: Splice::default(),
            key: Vec::new(),
            key_hash: 0,
            via_line: Vec::new(),
            uri_buf: Vec::new(),
            tmp: Vec::new(),
            fired: Vec::new(),
            branch_prefix,
            record_route_line,
            hash_seed,
            reject_phrase: None,
            health_events: Vec::new(),
        }
    }

    /// Swap in a new routing table and its trunk states (reload); calls in progress keep
    /// the table they started with.
    pub fn set_routing(&mut self, routing: Arc<RoutingTable>, states: Arc<[Arc<TrunkState>]>) {
        self.routing = routing;
        self.states = states;
        self.probes_due = true;
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// The shell measured how long the oldest datagram of a receive batch waited in the
    /// kernel (zero when it found the socket empty). From this overload control decides
    /// how many new INVITEs to admit; the rest get 503 + Retry-After before any routing
    /// work, or are dropped unparsed when even that falls behind. Requests in calls we
    /// know, responses, CANCEL and ACK are always served, so calls already up are never
    /// lost (src/sip/overload.rs).
    pub fn observe_queue_delay(&mut self, now: Instant, delay: std::time::Duration) {
        self.overload.observe(now, delay);
        self.stats.admission_percent = self.overload.percent();
        self.refresh_oc(now);
    }

    /// Rewrite the RFC 7339 parameters when overload control's value or decision changed.
    fn refresh_oc(&mut self, now: Instant) {
        let value = if self.routing.overload_feedback() {
            self.overload.feedback(now)
        } else {
            None
        };
        let decided = self.overload.decided_at();
        if (value, decided) == self.oc_written {
            return;
        }
        self.oc_written = (value, decided);
        self.oc_params = match value {
            Some(percent) => {
                let seq = self.config.wall.unix_ms(decided.unwrap_or(now));
                let mut p = Vec::with_capacity(64);
                super::oc::write_params(&mut p, percent, seq);
                Arc::from(p)
            }
            None => self.oc_none.clone(),
        };
    }

    /// Whether the sender of `msg` withholds new calls itself: it asks for RFC 7339
    /// feedback, we send it, and the shedding is overload (memory pressure refuses all).
    fn withholds_itself(&self, msg: &Message) -> bool {
        msg.top_via.oc.is_some() && !self.oc_params.is_empty() && !self.overload.memory_pressure()
    }

    /// The RFC 7339 feedback for a response whose next hop inserted `via`: empty unless
    /// feedback is on, that Via asks for it (`;oc`) and the request came from a trunk
    /// (`trunk`, asked last: it may cost a lookup). Never toward an unknown address: the
    /// parameters would make our answer larger than its request.
    fn oc_for(&mut self, via: Option<&Via>, trunk: impl FnOnce(&Self) -> bool) -> Arc<[u8]> {
        if self.oc_params.is_empty() || via.and_then(|v| v.oc).is_none() || !trunk(self) {
            return self.oc_none.clone();
        }
        self.stats.oc_responses += 1;
        self.oc_params.clone()
    }

    /// The shell parked the shard for `idle` with nothing to do (overload control counts how
    /// much of an interval the shard was idle).
    pub fn observe_idle(&mut self, idle: std::time::Duration) {
        self.overload.idle(idle);
    }

    /// The shard's thread had used `cpu` of CPU time in all at `now`.
    pub fn observe_cpu_time(&mut self, now: Instant, cpu: std::time::Duration) {
        self.overload.cpu_time(now, cpu);
    }

    /// Lower the table bounds (tests: a full table within a test's time).
    pub fn set_table_bounds(&mut self, bounds: limits::TableBounds) {
        self.bounds = bounds;
    }

    /// The process is near (or back below) its memory cap: while it is, every new call
    /// gets 503 + Retry-After. The shell tells the core every loop round.
    pub fn set_memory_pressure(&mut self, pressure: bool) {
        if pressure == self.overload.memory_pressure() {
            return;
        }
        self.overload.set_memory_pressure(pressure);
        self.stats.admission_percent = self.overload.percent();
    }

    /// Move the records of calls that ended into `out` (the shell sends them to the CDR
    /// writer).
    pub fn drain_records(&mut self, out: &mut Vec<Box<CallRecord>>) {
        out.extend(self.records.drain(..));
    }

    /// Per-trunk counters and latency histograms of this shard.
    pub fn trunk_stats(&self) -> &TrunkStatsMap {
        &self.trunk_stats
    }

    /// The counters, as a copy (the gauges are current after every handle_* call).
    pub fn stats_snapshot(&self) -> CoreStats {
        self.stats.clone()
    }

    fn refresh_gauges(&mut self) {
        self.stats.flood_blocks = self.flood.blocked_sources;
        self.stats.calls_active = self.calls.len() as u64;
        self.stats.transactions_active = self.txns.len() as u64;
        self.stats.timers_active = self.txns.wheel.len() as u64;
    }

    /// Datagrams to send, in order.
    pub fn transmits(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(move |(to, r)| (*to, self.out.get(r.clone()).unwrap_or(&[])))
    }

    pub fn clear_transmits(&mut self) {
        self.transmits.clear();
        self.out.clear();
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.txns.wheel.next_deadline()
    }

    fn start_clock(&mut self, now: Instant) {
        if !self.wheel_started {
            self.wheel_started = true;
            if self.txns.wheel.is_empty() {
                self.txns.wheel = TimerWheel::new(now);
            }
        }
        if self.probes_due {
            self.probes_due = false;
            self.schedule_probes(now);
        }
    }

    /// Send `out[range]` (the bytes just written) to `to`: never to an address that cannot
    /// be a peer, never larger than `[limits] max_message_bytes` (an answer copying a huge
    /// header of its request would be).
    fn queue(&mut self, to: SocketAddr, range: Range<usize>) {
        if !sendable(to) {
            self.out.truncate(range.start);
            self.stats.dropped_stray += 1;
        } else if range.len() > self.routing.input_limits().max_message_bytes {
            self.out.truncate(range.start);
            self.stats.dropped_malformed += 1;
        } else {
            self.transmits.push((to, range));
        }
    }

    // ---------------------------------------------------------------- input

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.start_clock(now);
        if data.len() > limits::DATAGRAM_BYTES_MAX {
            self.stats.dropped_malformed += 1;
            self.overload.count(true);
            return;
        }
        // The source's trunk, looked up once per datagram.
        let ingress = self.routing.ingress(from);
        let known = ingress.is_some();
        // A request from an address that is no trunk is never routed; with the default
        // `unknown_source = "drop"` it gets no answer either, so it is not even scanned and
        // leaves no state (a spoofed-source flood costs one lookup per datagram). Responses
        // are still looked at: a dialog's far end may answer from an address of its own.
        if !known
            && self.routing.unknown_source() == crate::routing::UnknownSource::Drop
            && !data.starts_with(b"SIP/2.0 ")
        {
            self.stats.requests_in += 1;
            self.stats.rejected_unknown_source += 1;
            self.overload.count(true);
            return;
        }
        // Overload control, before any parsing: a new call the shard cannot take is
        // answered 503 once parsed, or dropped here when the shard is too far behind.
        self.shed_this = false;
        if known && self.overload.active() && data.starts_with(b"INVITE ") {
            let new_call =
                scan::peek_call_id(data).is_none_or(|id| self.calls.find(id.get(data)).is_none());
            if new_call {
                match self.overload.admit() {
                    Admission::Admit => {}
                    Admission::Reject => self.shed_this = true,
                    Admission::Drop => {
                        // Not counted as junk: these are callers we shed.
                        self.stats.dropped_overload += 1;
                        return;
                    }
                }
            }
        }
        // Flood protection, before any parsing: a source over its rate is not even scanned.
        let flood = self.routing.flood();
        let threshold = if known {
            flood.per_trunk_source
        } else {
            flood.per_source
        };
        if self.flood.check(now, from.ip(), threshold, flood.block) == Verdict::Block {
            self.stats.dropped_flood += 1;
            self.stats.flood_blocks = self.flood.blocked_sources;
            self.overload.count(true);
            return;
        }
        self.overload.count(false);
        let mut msg = self.msg.take().unwrap_or_default();
        let result = scan::scan(data, &mut msg);
        match result {
            Err(ScanError::Drop(_)) => self.stats.dropped_malformed += 1,
            Err(ScanError::Reject { status, .. }) => {
                self.stats.dropped_malformed += 1;
                if msg.is_request() && known && msg.top_via_header != usize::MAX {
                    self.reply_stateless(data, &msg, from, status, b"");
                }
            }
            Ok(()) if self.over_input_limits(from, known, data, &msg) => {}
            Ok(()) if msg.is_request() => self.on_request(now, from, ingress, data, &msg),
            Ok(()) => self.on_response(now, from, data, &msg),
        }
        self.msg = Some(msg);
        self.refresh_gauges();
    }

    /// `[limits]`: header count, header line length and Request-URI length (message size
    /// and Vias are checked where the answer depends on the method). Over a limit: a
    /// request from a trunk gets 414 (URI) or 400, with a Warning naming the limit; anything
    /// else is dropped. Returns whether the message was refused.
    fn over_input_limits(
        &mut self,
        from: SocketAddr,
        known: bool,
        buf: &[u8],
        msg: &Message,
    ) -> bool {
        let lim = *self.routing.input_limits();
        let refused = if msg.header_count > lim.max_headers {
            Some((400, "too many headers"))
        } else if msg
            .headers
            .get(..msg.header_count)
            .unwrap_or(&[])
            .iter()
            .any(|h| h.line.len() > lim.max_header_line_bytes)
        {
            Some((400, "header line too long"))
        } else if let StartLine::Request { uri, .. } = msg.start {
            (uri.len() > lim.max_uri_bytes).then_some((414, "request-uri too long"))
        } else {
            None
        };
        let Some((status, reason)) = refused else {
            return false;
        };
        self.stats.rejected_input_limits += 1;
        let answer = known
            && matches!(msg.start, StartLine::Request { method, .. } if method != Method::Ack);
        if answer {
            self.reply_stateless(buf, msg, from, status, warning(reason).as_bytes());
        }
        true
    }

    // ------------------------------------------------------------- requests

    fn on_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ingress: Option<TrunkId>,
        buf: &[u8],
        msg: &Message,
    ) {
        self.stats.requests_in += 1;
        let StartLine::Request { method, .. } = msg.start else {
            return;
        };
        let Some(ingress) = ingress else {
            // Never route for an unknown source (toll fraud); never answer an ACK.
            self.stats.rejected_unknown_source += 1;
            let answer = self.routing.unknown_source() == crate::routing::UnknownSource::Reject;
            if method != Method::Ack && answer {
                // Never more bytes toward an address that has not proved it can receive
                // than it sent (no amplification): a 403 larger than the request is dropped.
                let sent = self.transmits.len();
                self.reply_stateless(buf, msg, from, 403, b"");
                if self.transmits.len() > sent
                    && self
                        .transmits
                        .last()
                        .is_some_and(|(_, r)| r.len() > buf.len())
                {
                    if let Some((_, r)) = self.transmits.pop() {
                        self.out.truncate(r.start);
                    }
                }
            }
            return;
        };
        if msg.via_count >= self.routing.input_limits().max_vias {
            // One more Via would put it over the limit every hop enforces.
            if method != Method::Ack {
                self.reply_stateless(buf, msg, from, 483, b"");
            }
            return;
        };
        if buf.len() > self.routing.input_limits().max_message_bytes {
            if method != Method::Ack {
                self.reply_stateless(buf, msg, from, 513, b"");
            }
            return;
        }
        match method {
            Method::Ack => self.on_ack(now, from, buf, msg, ingress),
            Method::Cancel => self.on_cancel(now, from, buf, msg, ingress),
            _ => self.on_new_request(now, from, buf, msg, ingress, method),
        }
    }

    /// A new call overload control decided not to admit (`shed_this`): answered 503 with
    /// Retry-After, unless it comes from an RFC 7339 trunk, which already withholds the
    /// share we refuse (it hears it in every response; refusing its calls again would shed
    /// it twice). Returns whether the call was refused.
    fn shed(&mut self, buf: &[u8], msg: &Message, from: SocketAddr) -> bool {
        if !self.shed_this {
            return false;
        }
        self.shed_this = false;
        if self.withholds_itself(msg) {
            self.stats.oc_admitted += 1;
            return false;
        }
        self.stats.rejected_overload += 1;
        let reason = if self.overload.memory_pressure() {
            "memory-cap"
        } else {
            "overload"
        };
        let extra = unavailable(reason, self.routing.retry_after_s());
        self.reply_stateless(buf, msg, from, 503, extra.as_bytes());
        true
    }

    /// Key of the server transaction `msg` belongs to, in `self.key`.
    fn make_server_key(&mut self, buf: &[u8], msg: &Message, class: u8) {
        let via = &msg.top_via;
        let branch = via.branch.map_or(&[][..], |b| b.get(buf));
        let port = via.port.unwrap_or(0).to_be_bytes();
        if branch.starts_with(MAGIC_COOKIE) {
            server_key(
                &mut self.key,
                class,
                true,
                &[branch, via.host.get(buf), &port],
            );
        } else {
            let cseq = msg.cseq.to_be_bytes();
            let from_tag = msg.from.tag.map_or(&[][..], |t| t.get(buf));
            server_key(
                &mut self.key,
                class,
                false,
                &[msg.call_id.get(buf), &cseq, from_tag, via.value.get(buf)],
            );
        }
        self.key_hash = self.txns.server_hash(&self.key);
    }

    /// The server transaction of the key `make_server_key` made last.
    fn find_server(&self) -> Option<Id> {
        self.txns.find_server(self.key_hash, &self.key)
    }

    /// A new server transaction for the key `make_server_key` made last.
    fn new_server(&self, invite: bool, reply_to: SocketAddr, source: SocketAddr) -> ServerTxn {
        let key = self.key.clone().into_boxed_slice();
        ServerTxn::new(key, self.key_hash, invite, reply_to, source)
    }

    /// Where responses to this request go: RFC 3261 18.2.2 with RFC 3581 (rport).
    fn reply_addr(buf: &[u8], msg: &Message, from: SocketAddr) -> SocketAddr {
        let _ = buf;
        match msg.top_via.rport {
            Rport::Absent => SocketAddr::new(from.ip(), msg.top_via.port.unwrap_or(5060)),
            _ => from,
        }
    }

    /// A deterministic To tag for responses we generate to this request: `jn` and a keyed
    /// hash for a response a server transaction keeps, `js` for one sent without state, so
    /// that the ACK to a stateless final response is known as such without a table lookup.
    fn local_tag(&self, buf: &[u8], msg: &Message, stateless: bool, out: &mut Vec<u8>) {
        let branch = msg.top_via.branch.map_or(&[][..], |b| b.get(buf));
        let h = self
            .hash_seed
            .hash_one((msg.call_id.get(buf), branch, msg.cseq));
        out.extend_from_slice(if stateless { b"js" } else { b"jn" });
        hex(out, h);
    }

    /// Whether `msg` (an ACK) carries the To tag we would write for it (`local_tag`).
    fn has_local_tag(&mut self, buf: &[u8], msg: &Message, stateless: bool) -> bool {
        let Some(to_tag) = msg.to.tag else {
            return false;
        };
        if !to_tag
            .get(buf)
            .starts_with(if stateless { b"js" } else { b"jn" })
        {
            return false;
        }
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(buf, msg, stateless, &mut tag);
        let ours = to_tag.get(buf) == &tag[..];
        self.tmp = tag;
        ours
    }

    /// Answer a request without keeping any state (errors before a transaction exists).
    fn reply_stateless(
        &mut self,
        buf: &[u8],
        msg: &Message,
        from: SocketAddr,
        code: u16,
        extra: &[u8],
    ) {
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(buf, msg, true, &mut tag);
        let oc = self.oc_for(Some(&msg.top_via), |c| c.routing.ingress(from).is_some());
        let r = local_response(
            buf,
            msg,
            code,
            &tag,
            extra,
            usize::MAX,
            &oc,
            Some(from),
            &mut self.out,
        );
        self.tmp = tag;
        let to = Self::reply_addr(buf, msg, from);
        self.stats.responses_local += 1;
        self.queue(to, r);
    }

    /// Give the response just queued (when transmit `sent` was queued, and it is the last
    /// bytes of `out`) the reason phrase `phrase` instead of the standard one (reject
    /// routes; rare, so the copy does not matter).
    fn set_reason_phrase(&mut self, sent: usize, code: u16, phrase: &str) {
        if self.transmits.len() != sent + 1 {
            return;
        }
        let Some((_, range)) = self.transmits.last_mut() else {
            return;
        };
        if range.end != self.out.len() {
            return;
        }
        let Some(eol) = self
            .out
            .get(range.start..)
            .and_then(|r| memchr::memmem::find(r, b"\r\n"))
        else {
            return;
        };
        let rest = self.out.split_off(range.start + eol);
        self.out.truncate(range.start);
        let _ = write!(self.out, "SIP/2.0 {code} {phrase}");
        self.out.extend_from_slice(&rest);
        range.end = self.out.len();
    }

    fn points_at_us(&self, buf: &[u8], value: Span) -> bool {
        name_addr_addr(buf, value).is_some_and(|a| self.config.is_own_address(a))
    }

    fn on_new_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
        method: Method,
    ) {
        let StartLine::Request { uri: ruri, .. } = msg.start else {
            return;
        };
        // A new call the shard sheds is refused before anything else is done for it: while
        // a trunk that does not withhold calls itself offers more than the shard can take,
        // every refusal is capacity taken from the calls it admits. (Its Call-ID is no call
        // of ours, so it cannot be a retransmission of an INVITE we took.)
        if method == Method::Invite && msg.to.tag.is_none() && self.shed(buf, msg, from) {
            return;
        }
        let class = if method == Method::Invite {
            CLASS_INVITE
        } else {
            CLASS_OTHER
        };
        self.make_server_key(buf, msg, class);
        if let Some(id) = self.find_server() {
            self.server_retransmission(id);
            return;
        }
        // RFC 3261 16.3 request validation (syntax was checked by the scanner).
        let Ok(parsed) = uri::parse(buf, ruri) else {
            self.reply_stateless(buf, msg, from, 400, b"");
            return;
        };
        if parsed.scheme == Scheme::Other {
            self.reply_stateless(buf, msg, from, 416, b"");
            return;
        }
        if let Some((0, _)) = msg.max_forwards {
            self.reply_stateless(buf, msg, from, 483, b"");
            return;
        }
        if let Some(h) = msg.proxy_require.and_then(|i| msg.headers.get(i)) {
            let mut extra = b"Unsupported: ".to_vec();
            extra.extend_from_slice(h.value.get(buf));
            extra.extend_from_slice(b"\r\n");
            self.reply_stateless(buf, msg, from, 420, &extra);
            return;
        }
        if self.txns.len() + 2 > self.bounds.transactions {
            if method == Method::Invite && msg.to.tag.is_none() {
                // A new call: refused like any the shard cannot take.
                self.stats.rejected_overload += 1;
                let extra = unavailable("overload", self.routing.retry_after_s());
                self.reply_stateless(buf, msg, from, 503, extra.as_bytes());
            } else {
                // Calls already up are never lost: without room for a transaction, a
                // request in a dialog (or any other) is relayed statelessly.
                self.forward_stateless(now, from, buf, msg, ingress);
            }
            return;
        }
        // RFC 3261 16.4: a top Route that is ours is removed.
        let pop_route = msg
            .route_first
            .is_some_and(|r| self.points_at_us(buf, r.value));
        let in_dialog = msg.to.tag.is_some();
        let call = self.calls.find(msg.call_id.get(buf));

        if !in_dialog && method == Method::Options && self.addressed_to_us(buf, &parsed) {
            // OPTIONS addressed to junction itself (a trunk's keepalive): answer it.
            self.reply_stateless(
                buf,
                msg,
                from,
                200,
                b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nAccept: application/sdp\r\n",
            );
            return;
        }
        let invite = method == Method::Invite;
        let reply_to = Self::reply_addr(buf, msg, from);
        let mut st = self.new_server(invite, reply_to, from);
        st.ingress = Some(ingress);

        if in_dialog {
            if let Some(dest) = self.dialog_target(now, buf, msg, pop_route, call, from) {
                self.forward_in_dialog(now, buf, msg, st, call, dest, pop_route, method);
                return;
            }
            // A dialog we do not know whose next hop is not one of our trunks: route it by
            // number like an initial request (never relay it to an arbitrary address).
        }

        // An INVITE in a dialog we do not know, routed like an initial request: shed too.
        if invite && self.shed(buf, msg, from) {
            return;
        }
        // A request junction routed before, back with the same routing state: a loop
        // (a spiral, which changed the Request-URI, goes on).
        if self.looped(buf, msg) {
            self.reply_stateless(buf, msg, from, 482, warning("loop-detected").as_bytes());
            if invite {
                self.rejected_call(now, buf, msg, ingress, from, 482, "loop-detected");
            }
            return;
        }
        if invite {
            if let Some(name) = self.routing.trunk(ingress).map(|t| t.name.clone()) {
                self.trunk_stats.trunk(&name).counters.calls_in += 1;
            }
        }
        // Ingress admission (`max_calls_in`, `max_cps_in`): the slot is the call's until
        // it ends; released below if the call is refused after all.
        let mut admitted_in = None;
        if invite && self.refused_in(now, buf, msg, from, ingress, &mut admitted_in) {
            return;
        }
        let (plan, attempts) = match self.plan(now, buf, msg, ingress, &parsed) {
            Ok(p) => p,
            Err(code) => {
                if let Some(s) = admitted_in.take() {
                    s.ended_in();
                }
                let extra = self.reason_lines(code.1);
                let sent = self.transmits.len();
                self.reply_stateless(buf, msg, from, code.0, extra.as_bytes());
                if let Some(phrase) = self.reject_phrase.take() {
                    self.set_reason_phrase(sent, code.0, &phrase);
                }
                if invite {
                    self.rejected_call(now, buf, msg, ingress, from, code.0, code.1);
                }
                return;
            }
        };
        st.attempts = attempts;
        let (plan_called, plan_calling) = if invite {
            (plan.called.clone(), plan.calling.clone())
        } else {
            (Vec::new(), Vec::new())
        };
        st.plan = Some(Box::new(plan));
        if invite && self.calls.len() >= self.bounds.calls {
            // No room for the call it would create: refused before our 100 Trying, so
            // nothing of it is left behind to answer or to absorb.
            if let Some(s) = admitted_in.take() {
                s.ended_in();
            }
            self.stats.rejected_overload += 1;
            let extra = unavailable("overload", self.routing.retry_after_s());
            self.reply_stateless(buf, msg, from, 503, extra.as_bytes());
            return;
        }
        if invite {
            st.request = buf.get(..msg.body.end as usize).unwrap_or(buf).to_vec();
            // Our 100 Trying (RFC 3261 16.2).
            let oc = self.oc_for(Some(&msg.top_via), |_| true);
            let r = local_response(
                buf,
                msg,
                100,
                b"",
                b"",
                usize::MAX,
                &oc,
                Some(from),
                &mut self.out,
            );
            st.last_response = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
            st.last_code = 100;
            st.state = ServerState::Proceeding;
            self.stats.responses_local += 1;
            self.queue(reply_to, r);

            // The call: created by its initial INVITE.
            let expiry = now + limits::CALL_IDLE_MAX;
            let caller_tag = self.tag_hash(msg.from.tag.map_or(&[][..], |t| t.get(buf)));
            let id = self.calls.insert(Call {
                call_id: msg.call_id.get(buf).into(),
                call_id_hash: 0,
                state: CallState::Trying,
                ingress: Some(ingress),
                egress: None,
                caller: from,
                callee: from,
                created: now,
                last_activity: now,
                expiry,
                caller_tag,
                from_user_orig: Box::default(),
                from_user_new: Box::default(),
                from_whole: false,
                admitted: None,
                admitted_in: admitted_in.take(),
                limit: None,
                record: Some(Box::new(self.new_record(
                    now,
                    buf,
                    msg,
                    ingress,
                    from,
                    &plan_called,
                    &plan_calling,
                ))),
                ended_by: None,
            });
            // The call's one timer (call_timer): first checked one CALL_LINGER from now.
            self.arm_call(id, now + limits::CALL_LINGER);
            self.stats.calls_created += 1;
            st.call = Some(id);
        }
        let st_id = self.insert_server(now, st);
        self.txns.index_server(st_id);
        self.next_attempt(now, st_id, buf, msg);
    }

    /// Forward an in-dialog request along its route set (RFC 3261 16.12), restoring or
    /// applying the calling-number translation of its call for the direction it travels.
    #[allow(clippy::too_many_arguments)]
    fn forward_in_dialog(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        mut st: ServerTxn,
        call: Option<Id>,
        dest: SocketAddr,
        pop_route: bool,
        method: Method,
    ) {
        let from_tag = self.tag_hash(msg.from.tag.map_or(&[][..], |t| t.get(buf)));
        let mut swap = std::mem::take(&mut self.num_b);
        swap.clear();
        let mut replace_span = None;
        let mut toward = None;
        if let Some(c) = call.and_then(|id| self.calls.get(id)) {
            st.from_caller = c.caller_tag == from_tag;
            toward = if st.from_caller { c.egress } else { c.ingress };
            if !c.from_user_new.is_empty() {
                // Caller to callee: From carries the caller's own number: translate it.
                // Callee to caller: To carries the translated number: restore it.
                let (side, want, put) = if st.from_caller {
                    (&msg.from, &c.from_user_orig, &c.from_user_new)
                } else {
                    (&msg.to, &c.from_user_new, &c.from_user_orig)
                };
                if let Some(u) = attempt::swap_span(buf, msg, side, c.from_whole)
                    .filter(|u| u.get(buf) == &want[..])
                {
                    swap.extend_from_slice(put);
                    replace_span = Some(u);
                }
            }
        }
        // P-Asserted-Identity in a dialog (RFC 3325): only between trusted trunks, and
        // never to one with `forward_pai = false`.
        let mut delete = std::mem::take(&mut self.delete_buf);
        delete.clear();
        let trusted = |t: Option<TrunkId>| {
            t.and_then(|t| self.routing.trunk(t))
                .is_some_and(|tr| tr.trusted && tr.forward_pai)
        };
        let to_trunk = self.routing.ingress(dest).or(toward);
        let keep_pai = trusted(st.ingress) && trusted(to_trunk);
        if !keep_pai {
            delete.extend(
                msg.headers()
                    .iter()
                    .filter(|h| h.name == super::header::HeaderName::PAssertedIdentity)
                    .map(|h| h.line),
            );
        }
        self.note_cseq(call, st.from_caller, msg.cseq);
        if method == Method::Bye {
            st.call = call;
            let side = if st.from_caller {
                EndedBy::Caller
            } else {
                EndedBy::Callee
            };
            if let Some(c) = call.and_then(|id| self.calls.get_mut(id)) {
                if c.ended_by.is_none_or(|b| b == EndedBy::CallerCancel) {
                    c.ended_by = Some(side);
                }
            }
        }
        let st_id = self.insert_server(now, st);
        self.txns.index_server(st_id);
        let repl: Vec<(Span, &[u8])> = replace_span.map(|s| (s, &swap[..])).into_iter().collect();
        let fwd = Forward {
            dest,
            egress: None,
            invite: method == Method::Invite,
            pop_route,
            record_route: false,
            new_uri: None,
            source: self.txns.servers.get(st_id).map_or(dest, |s| s.source),
            replace: &repl,
            delete: &delete,
            progress: None,
            loop_hash: None,
        };
        self.forward_stateful(now, buf, msg, st_id, &fwd);
        drop(repl);
        self.num_b = swap;
        self.delete_buf = delete;
    }

    /// Insert a new server transaction with a safety timeout: one whose branch never gets
    /// a final response (a peer that answers nothing usable) is forgotten after the longest
    /// a real one can live (Timer C plus 64*T1 for INVITE, 64*T1 + T4 otherwise). Sending a
    /// final response re-arms the timer with the RFC 3261 value.
    fn insert_server(&mut self, now: Instant, st: ServerTxn) -> Id {
        let life = if st.invite {
            timer::TIMER_C + timer::T1_X64
        } else {
            timer::T1_X64 + timer::T4
        };
        let id = self.txns.servers.insert(st);
        self.txns
            .arm_long(now, TimerTarget::Server(id), TimerKind::Timeout, now + life);
        id
    }

    fn tag_hash(&self, tag: &[u8]) -> u64 {
        self.hash_seed.hash_one(tag)
    }

    fn addressed_to_us(&self, buf: &[u8], parsed: &uri::Uri) -> bool {
        parsed.user.is_none()
            && uri::host_ip(buf, parsed.host).is_some_and(|ip| {
                self.config
                    .is_own_address(SocketAddr::new(ip, parsed.port.unwrap_or(5060)))
            })
    }

    /// Where an in-dialog request goes (RFC 3261 16.5, 16.6, 16.12): for a call we know,
    /// its next Route, else its remote target (the Request-URI), else the dialog's other
    /// side. For a call we do not know (say, after a restart) only a next hop that is one of
    /// our trunks: junction is never an open relay. `None`: route it by number instead.
    fn dialog_target(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        pop_route: bool,
        call: Option<Id>,
        from: SocketAddr,
    ) -> Option<SocketAddr> {
        let StartLine::Request { uri: ruri, .. } = msg.start else {
            return None;
        };
        let next = if pop_route {
            msg.route_second
        } else {
            msg.route_first.map(|r| r.value)
        };
        let hop = match next {
            Some(v) => name_addr_addr(buf, v),
            None => uri_addr(buf, ruri),
        };
        if let Some(c) = call.and_then(|id| self.calls.get_mut(id)) {
            c.last_activity = now;
            return hop.or_else(|| self.dialog_peer(call, from));
        }
        hop.filter(|h| self.routing.ingress(*h).is_some())
    }

    /// The dialog's other side, for in-dialog requests whose next hop is not an IP literal.
    fn dialog_peer(&self, call: Option<Id>, from: SocketAddr) -> Option<SocketAddr> {
        let c = self.calls.get(call?)?;
        if same_addr(from, c.callee) || from.ip() == c.callee.ip() && from.ip() != c.caller.ip() {
            Some(c.caller)
        } else {
            Some(c.callee)
        }
    }

    /// Our Via for a request we send, into `via_line`: `oc` offers RFC 7339 overload control
    /// to the next hop (a trunk with `overload_control`).
    fn write_via(&mut self, oc: bool, branch_tail: impl FnOnce(&mut Vec<u8>)) {
        self.via_line.clear();
        self.via_line.extend_from_slice(b"Via: SIP/2.0/UDP ");
        rewrite::write_hostport(&mut self.via_line, self.config.own_address());
        self.via_line.extend_from_slice(b";branch=");
        self.via_line.extend_from_slice(&self.branch_prefix);
        branch_tail(&mut self.via_line);
        self.via_line.extend_from_slice(b";rport");
        if oc {
            self.via_line.extend_from_slice(b";oc");
        }
        self.via_line.extend_from_slice(b"\r\n");
    }

    /// Whether requests to trunk `t` offer RFC 7339 overload control.
    fn offers_oc(&self, t: Option<TrunkId>) -> bool {
        t.and_then(|t| self.routing.trunk(t))
            .is_some_and(|tr| tr.overload_control)
    }

    /// Forward `msg` statefully for server transaction `st_id`; returns the new client
    /// transaction (None when the forwarded message would be too large: 513 upstream).
    fn forward_stateful(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        st_id: Id,
        fwd: &Forward<'_>,
    ) -> Option<Id> {
        let ct_id = self.txns.clients.insert(ClientTxn::new(
            fwd.invite,
            fwd.dest,
            Some(st_id),
            fwd.egress,
        ));
        let oc = self.offers_oc(fwd.egress);
        let loop_hash = fwd.loop_hash;
        self.write_via(oc, |v| {
            hex(v, ct_id.idx as u64);
            v.push(b'.');
            hex(v, ct_id.gen as u64);
            if let Some(h) = loop_hash {
                v.push(b'.');
                hex(v, u64::from(h));
            }
        });
        let edits = RequestEdits {
            via_line: &self.via_line,
            record_route_line: fwd.record_route.then_some(&self.record_route_line[..]),
            new_uri: fwd.new_uri,
            source: fwd.source,
            pop_route: fwd.pop_route,
            replace: fwd.replace,
            delete: fwd.delete,
        };
        let r = rewrite::forward_request(buf, msg, &edits, &mut self.splice, &mut self.out);
        if r.len() > limits::MESSAGE_BYTES_MAX {
            self.out.truncate(r.start);
            self.txns.clients.remove(ct_id);
            self.answer_upstream(now, st_id, buf, msg, usize::MAX, 513, b"");
            return None;
        }
        let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
        if let Some(ct) = self.txns.clients.get_mut(ct_id) {
            ct.request = bytes;
        }
        if let Some(st) = self.txns.servers.get_mut(st_id) {
            st.client = Some(ct_id);
        }
        self.stats.requests_forwarded += 1;
        self.queue(fwd.dest, r);
        let target = TimerTarget::Client(ct_id);
        self.txns
            .arm(target, TimerKind::Retransmit, now + timer::T1);
        self.txns
            .arm(target, TimerKind::Timeout, now + timer::T1_X64);
        if fwd.invite {
            self.txns
                .arm_long(now, target, TimerKind::ProxyC, now + timer::TIMER_C);
            if let Some(p) = fwd.progress {
                self.txns.arm(target, TimerKind::Progress, now + p);
            }
        }
        Some(ct_id)
    }

    /// A retransmitted request: resend the last response, if any (RFC 3261 17.2.1, 17.2.2).
    fn server_retransmission(&mut self, id: Id) {
        self.stats.retransmissions_absorbed += 1;
        let Some(st) = self.txns.servers.get(id) else {
            return;
        };
        if st.last_response.is_empty() || st.state == ServerState::Accepted {
            return;
        }
        let to = st.reply_to;
        let start = self.out.len();
        self.out.extend_from_slice(&st.last_response);
        let end = self.out.len();
        self.stats.retransmissions_sent += 1;
        self.queue(to, start..end);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
    ) {
        // ACK for a final response we generated without state (503 while shedding, 404,
        // 4xx for limits...): its To tag is the one we wrote, and no transaction has it.
        // Absorbed (RFC 3261 17.2.1: the ACK for a non-2xx ends at the element that sent
        // the response) before any lookup: under overload there is one per refused call.
        if self.has_local_tag(buf, msg, true) {
            self.stats.retransmissions_absorbed += 1;
            return;
        }
        self.make_server_key(buf, msg, CLASS_INVITE);
        if let Some(id) = self.find_server() {
            let state = self.txns.servers.get(id).map(|s| s.state);
            match state {
                Some(ServerState::Completed) => {
                    // ACK for our non-2xx: absorbed hop by hop; Timer I (RFC 3261 17.2.1).
                    if let Some(st) = self.txns.servers.get_mut(id) {
                        st.state = ServerState::Confirmed;
                    }
                    let t = TimerTarget::Server(id);
                    self.txns.disarm(t, TimerKind::ResponseRetransmit);
                    self.txns.arm(t, TimerKind::Timeout, now + timer::T4);
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                Some(ServerState::Confirmed) | Some(ServerState::Proceeding) => {
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                _ => {}
            }
        }
        // ACK for a final response of ours whose transaction has ended (a late
        // retransmission): absorbed too.
        if self.has_local_tag(buf, msg, false) {
            self.stats.retransmissions_absorbed += 1;
            return;
        }
        // ACK for a 2xx (end to end) or an ACK we know nothing of: forward statelessly.
        self.forward_stateless(now, from, buf, msg, ingress);
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
    ) {
        self.make_server_key(buf, msg, CLASS_CANCEL);
        if let Some(id) = self.find_server() {
            self.server_retransmission(id);
            return;
        }
        self.make_server_key(buf, msg, CLASS_INVITE);
        let Some(invite_st) = self.find_server() else {
            // RFC 3261 16.10: no response context: forward statelessly.
            self.forward_stateless(now, from, buf, msg, ingress);
            return;
        };
        // Answer the CANCEL itself (200), in a transaction that absorbs its retransmissions.
        self.make_server_key(buf, msg, CLASS_CANCEL);
        let reply_to = Self::reply_addr(buf, msg, from);
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(buf, msg, false, &mut tag);
        let oc = self.oc_for(Some(&msg.top_via), |_| true);
        let r = local_response(
            buf,
            msg,
            200,
            &tag,
            b"",
            usize::MAX,
            &oc,
            Some(from),
            &mut self.out,
        );
        self.tmp = tag;
        let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
        self.stats.responses_local += 1;
        self.queue(reply_to, r);
        let mut cancel = self.new_server(false, reply_to, from);
        cancel.state = ServerState::Completed;
        cancel.last_response = bytes;
        cancel.last_code = 200;
        cancel.ingress = Some(ingress);
        let cancel_st = self.txns.servers.insert(cancel);
        self.txns.index_server(cancel_st);
        self.txns.arm(
            TimerTarget::Server(cancel_st),
            TimerKind::Timeout,
            now + timer::T1_X64,
        );

        // Cancel the pending branch (RFC 3261 16.10, 9.1: only after a provisional).
        let Some(st) = self.txns.servers.get_mut(invite_st) else {
            return;
        };
        if st.state != ServerState::Proceeding {
            return;
        }
        st.cancelled = true;
        if let Some(c) = st.call.and_then(|id| self.calls.get_mut(id)) {
            // The caller gave up: its record says so, not "not-answered" (a callee's 487).
            c.ended_by.get_or_insert(EndedBy::CallerCancel);
        }
        let Some(st) = self.txns.servers.get_mut(invite_st) else {
            return;
        };
        let Some(ct_id) = st.client else {
            return;
        };
        let Some(ct) = self.txns.clients.get_mut(ct_id) else {
            return;
        };
        if ct.cancel_sent || !matches!(ct.state, ClientState::Calling | ClientState::Proceeding) {
            return;
        }
        if ct.provisional_seen {
            self.send_cancel(now, ct_id);
        } else {
            ct.cancel_pending = true;
        }
    }

    /// Scan `bytes` (a copy we keep: a request we forwarded or received, a stored response)
    /// into the spare `Message` and run `f` with it; `None` if it does not scan. Re-entrant:
    /// a nested call finds no spare and uses a fresh one.
    fn with_scanned<R>(
        &mut self,
        bytes: &[u8],
        f: impl FnOnce(&mut Core, &Message) -> R,
    ) -> Option<R> {
        let mut aux = self.aux.take().unwrap_or_default();
        let result = scan::scan(bytes, &mut aux).is_ok().then(|| f(self, &aux));
        self.aux = Some(aux);
        result
    }

    /// Send CANCEL for the INVITE client transaction `ct_id` (RFC 3261 9.1).
    fn send_cancel(&mut self, now: Instant, ct_id: Id) {
        let Some(ct) = self.txns.clients.get(ct_id) else {
            return;
        };
        let dest = ct.dest;
        let mut request = std::mem::take(&mut self.tmp);
        request.clear();
        request.extend_from_slice(&ct.request);
        self.with_scanned(&request, |core, req| {
            let r = response::derived_request(&request, req, Derived::Cancel, b"", &mut core.out);
            let bytes = core.out.get(r.clone()).unwrap_or(&[]).to_vec();
            let mut cancel = ClientTxn::new(false, dest, None, None);
            cancel.cancel = true;
            cancel.request = bytes;
            let cancel_id = core.txns.clients.insert(cancel);
            core.queue(dest, r);
            core.stats.requests_forwarded += 1;
            let t = TimerTarget::Client(cancel_id);
            core.txns.arm(t, TimerKind::Retransmit, now + timer::T1);
            core.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
            if let Some(ct) = core.txns.clients.get_mut(ct_id) {
                ct.cancel_txn = Some(cancel_id);
                ct.cancel_sent = true;
                ct.cancel_pending = false;
            }
            // Give the callee 64*T1 to answer 487 (RFC 3261 9.1), then give up.
            core.txns.arm(
                TimerTarget::Client(ct_id),
                TimerKind::ProxyC,
                now + timer::T1_X64,
            );
        });
        self.tmp = request;
    }

    /// Forward without transaction state (RFC 3261 16.11 rules, used for ACK of 2xx and
    /// CANCEL with no response context, RFC 3261 16.10).
    fn forward_stateless(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
    ) {
        let StartLine::Request {
            uri: ruri, method, ..
        } = msg.start
        else {
            return;
        };
        if let Some((0, _)) = msg.max_forwards {
            self.stats.dropped_stray += 1;
            return;
        }
        let pop_route = msg
            .route_first
            .is_some_and(|r| self.points_at_us(buf, r.value));
        let call = self.calls.find(msg.call_id.get(buf));
        let in_dialog = msg.to.tag.is_some() || method == Method::Ack;
        let mut dest = if in_dialog {
            self.dialog_target(now, buf, msg, pop_route, call, from)
        } else {
            None
        };
        let mut new_uri = false;
        if dest.is_none() {
            // A CANCEL for an INVITE we never saw: where that INVITE would have gone.
            let routed = uri::parse(buf, ruri)
                .map_err(|_| (400, ""))
                .and_then(|parsed| {
                    let (plan, attempts) = self.plan(now, buf, msg, ingress, &parsed)?;
                    let t = attempts.first().ok_or((503, "no-usable-trunk"))?;
                    let to = plan.table.trunk(t).and_then(|tr| tr.send_to);
                    let to = to.ok_or((503, "no-usable-trunk"))?;
                    self.write_request_uri(buf, &parsed, &plan, t, to);
                    Ok(to)
                });
            match routed {
                Ok(to) => {
                    dest = Some(to);
                    new_uri = true;
                }
                Err((code, _)) => {
                    if method == Method::Cancel {
                        self.reply_stateless(buf, msg, from, code, b"");
                    } else {
                        self.stats.dropped_stray += 1;
                    }
                    return;
                }
            }
        }
        let Some(dest) = dest else {
            return;
        };
        // A stateless branch: the same for every retransmission of this request.
        let incoming = msg.top_via.branch.map_or(&[][..], |b| b.get(buf));
        let h = self.hash_seed.hash_one((incoming, method == Method::Ack));
        self.write_via(false, |v| {
            v.push(b's');
            hex(v, h);
        });
        let edits = RequestEdits {
            via_line: &self.via_line,
            record_route_line: None,
            new_uri: new_uri.then_some(&self.uri_buf[..]),
            source: from,
            pop_route,
            replace: &[],
            delete: &[],
        };
        let r = rewrite::forward_request(buf, msg, &edits, &mut self.splice, &mut self.out);
        self.stats.requests_forwarded += 1;
        self.queue(dest, r);
    }

    // ------------------------------------------------------------ responses

    fn on_response(&mut self, now: Instant, from: SocketAddr, buf: &[u8], msg: &Message) {
        self.stats.responses_in += 1;
        let StartLine::Response { code, .. } = msg.start else {
            return;
        };
        // Too large to relay: nothing to pass on.
        if buf.len() > self.routing.input_limits().max_message_bytes {
            self.stats.dropped_stray += 1;
            return;
        }
        let branch = msg.top_via.branch.map_or(&[][..], |b| b.get(buf));
        let Some(tail) = branch.strip_prefix(&self.branch_prefix[..]) else {
            self.stats.dropped_stray += 1;
            return;
        };
        if tail.first() == Some(&b's') {
            // Response to a request we forwarded statelessly: pop our Via, pass it on.
            let Some(next) = msg.second_via else {
                self.stats.dropped_stray += 1;
                return;
            };
            let Some(to) = self.via_destination(buf, &next) else {
                self.stats.dropped_stray += 1;
                return;
            };
            // We forward statelessly only requests that came from trunk peers, so a genuine
            // answer goes back to a trunk (or comes from one, when a dialog's Contact is
            // elsewhere). An unknown source aiming it at a non-trunk is a reflection
            // attempt: a forged Via turning our relay on a third party.
            if self.routing.ingress(from).is_none() && self.routing.ingress(to).is_none() {
                self.stats.dropped_stray += 1;
                return;
            }
            let oc = self.oc_for(Some(&next), |c| c.routing.ingress(to).is_some());
            let edits = ResponseEdits {
                oc: &oc,
                ..ResponseEdits::default()
            };
            let r = rewrite::forward_response(buf, msg, &edits, &mut self.splice, &mut self.out);
            self.stats.responses_forwarded += 1;
            self.queue(to, r);
            return;
        }
        // `idx.gen`, and for a routed request `.loop` (its loop-detection hash).
        let mut parts = tail.splitn(3, |&c| c == b'.');
        let id = match (
            parts.next().and_then(parse_hex),
            parts.next().and_then(parse_hex),
        ) {
            (Some(idx), Some(gen)) => Id { idx, gen },
            _ => {
                self.stats.dropped_stray += 1;
                return;
            }
        };
        let Some(ct) = self.txns.clients.get(id) else {
            self.stats.dropped_stray += 1;
            return;
        };
        if msg.cseq_method == Method::Cancel {
            if let Some(cancel_id) = ct.cancel_txn {
                self.on_cancel_response(now, cancel_id, code);
            } else {
                self.stats.dropped_stray += 1;
            }
            return;
        }
        if ct.invite != (msg.cseq_method == Method::Invite) {
            self.stats.dropped_stray += 1;
            return;
        }
        let probe = ct.probe;
        if msg
            .top_via
            .oc
            .is_some_and(|oc| super::oc::has_value(buf, oc))
        {
            self.oc_feedback(now, id, buf, msg);
        }
        if probe {
            if code >= 200 {
                self.probe_answered(now, id, code);
            }
            return;
        }
        if msg.cseq_method == Method::Invite {
            self.on_invite_response(now, id, buf, msg, code);
        } else {
            self.on_non_invite_response(now, id, buf, msg, code);
        }
    }

    /// RFC 7339: the trunk that client transaction `id` went to put overload-control feedback
    /// (an `oc` with a value; a trunk that does not support it echoes our bare offer) in our
    /// Via of this response. Applied to that trunk's shared state when the trunk
    /// offers it (`overload_control`) and the transaction went to the trunk's `send_to` (a
    /// reload since may have renumbered the trunks).
    fn oc_feedback(&mut self, now: Instant, id: Id, buf: &[u8], msg: &Message) {
        let Some(ct) = self.txns.clients.get(id) else {
            return;
        };
        let Some(t) = ct.egress else {
            return;
        };
        let ours = self
            .routing
            .trunk(t)
            .is_some_and(|tr| tr.overload_control && tr.send_to == Some(ct.dest));
        let Some(state) = self.states.get(t.0 as usize).filter(|_| ours) else {
            return;
        };
        match super::oc::feedback(buf, &msg.top_via) {
            Some(fb) if state.oc_update(now, &fb) => self.stats.oc_feedback_applied += 1,
            // Stale (reordered), malformed, out of range, or another algorithm.
            _ => self.stats.oc_feedback_ignored += 1,
        }
    }

    /// Where a response goes after we pop our Via: the next Via's received/rport, else its
    /// sent-by (RFC 3261 18.2.2, RFC 3581).
    fn via_destination(&self, buf: &[u8], via: &super::via::Via) -> Option<SocketAddr> {
        let ip = via
            .received
            .and_then(|r| {
                let b = r.get(buf);
                let b = b
                    .strip_prefix(b"[")
                    .and_then(|x| x.strip_suffix(b"]"))
                    .unwrap_or(b);
                std::str::from_utf8(b).ok()?.parse::<IpAddr>().ok()
            })
            .or_else(|| uri::host_ip(buf, via.host))?;
        let port = match via.rport {
            Rport::Value(p) => p,
            _ => via.port.unwrap_or(5060),
        };
        Some(SocketAddr::new(ip, port))
    }

    fn on_cancel_response(&mut self, now: Instant, cancel_id: Id, code: u16) {
        let Some(ct) = self.txns.clients.get_mut(cancel_id) else {
            return;
        };
        if code < 200 {
            ct.state = ClientState::Proceeding;
            return;
        }
        if ct.state != ClientState::Completed {
            ct.state = ClientState::Completed;
            let t = TimerTarget::Client(cancel_id);
            self.txns.disarm(t, TimerKind::Retransmit);
            self.txns.arm(t, TimerKind::Timeout, now + timer::T4);
        } else {
            self.stats.retransmissions_absorbed += 1;
        }
    }

    /// Relay a response upstream through server transaction `st_id`; returns false if there
    /// is no such transaction.
    fn relay_up(&mut self, st_id: Id, buf: &[u8], msg: &Message, keep: bool) -> bool {
        let Some(st) = self.txns.servers.get(st_id) else {
            return false;
        };
        if msg.via_count < 2 {
            // No Via left once ours is removed: it was meant for us (RFC 3261 16.7 step 3).
            self.stats.dropped_stray += 1;
            return false;
        }
        let (to, trunk) = (st.reply_to, st.ingress.is_some());
        let swap = self.response_swap(st_id, buf, msg);
        let replace = swap.as_ref().map(|(s, b)| [(*s, &b[..])]);
        let oc = self.oc_for(msg.second_via.as_ref(), |_| trunk);
        let edits = ResponseEdits {
            replace: replace.as_ref().map_or(&[][..], |a| &a[..]),
            oc: &oc,
            ..ResponseEdits::default()
        };
        let r = rewrite::forward_response(buf, msg, &edits, &mut self.splice, &mut self.out);
        if keep {
            if let Some(st) = self.txns.servers.get_mut(st_id) {
                st.last_response.clear();
                st.last_response
                    .extend_from_slice(self.out.get(r.clone()).unwrap_or(&[]));
            }
        }
        self.stats.responses_forwarded += 1;
        self.queue(to, r);
        true
    }

    fn set_call_state(&mut self, now: Instant, call: Option<Id>, state: CallState) {
        let Some(id) = call else {
            return;
        };
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.state == CallState::Terminated {
            return;
        }
        c.state = state;
        c.last_activity = now;
        if state == CallState::Terminated {
            if let Some(s) = c.admitted.take() {
                s.ended();
            }
            if let Some(s) = c.admitted_in.take() {
                s.ended_in();
            }
            // No new timer: the call's one timer is due within CALL_LINGER (call_timer)
            // and then finds this expiry.
            c.expiry = now + limits::CALL_LINGER;
            self.finish_record(now, id, None);
        }
    }

    fn arm_call(&mut self, id: Id, at: Instant) {
        self.txns.wheel.insert(
            at,
            TimerKey {
                target: TimerTarget::Call(id),
                kind: TimerKind::Timeout,
                deadline: at,
            },
        );
    }

    fn on_invite_response(&mut self, now: Instant, id: Id, buf: &[u8], msg: &Message, code: u16) {
        // Passive health: the trunk answered (any response ends its failures in a row).
        if let Some((t, dest)) = self
            .txns
            .clients
            .get(id)
            .and_then(|c| Some((c.egress?, c.dest)))
        {
            self.attempt_answered(t, dest);
        }
        let Some(ct) = self.txns.clients.get_mut(id) else {
            return;
        };
        let st_id = ct.server;
        let t = TimerTarget::Client(id);
        match (ct.state, code) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                ct.state = ClientState::Proceeding;
                let first = !ct.provisional_seen;
                ct.provisional_seen = true;
                let cancel_now = ct.cancel_pending && !ct.cancel_sent;
                let cancel_sent = ct.cancel_sent;
                let abandoned = ct.abandoned;
                self.txns.disarm(t, TimerKind::Retransmit);
                if !abandoned {
                    self.txns.disarm(t, TimerKind::Timeout);
                }
                if !cancel_sent && !abandoned && (first || code > 100) {
                    // Timer C restarts on every provisional (RFC 3261 16.7 step 2), and
                    // the server transaction's safety timeout with it: it must outlive Timer
                    // C, whose firing answers 408 upstream through it.
                    self.txns
                        .extend(now, t, TimerKind::ProxyC, now + timer::TIMER_C);
                    if let Some(s) = st_id {
                        let life = now + timer::TIMER_C + timer::T1_X64;
                        self.txns
                            .extend(now, TimerTarget::Server(s), TimerKind::Timeout, life);
                    }
                }
                if (180..=189).contains(&code) {
                    // Progress: the trunk's fast-failover timer stops.
                    self.txns.disarm(t, TimerKind::Progress);
                }
                if cancel_now {
                    self.send_cancel(now, id);
                }
                if code > 100 && !abandoned {
                    if let Some(st_id) = st_id {
                        let call = self.txns.servers.get(st_id).and_then(|s| s.call);
                        if self.relay_up(st_id, buf, msg, true) && msg.to.tag.is_some() {
                            self.set_call_state(now, call, CallState::Early);
                            if (180..=189).contains(&code) {
                                if let Some(st) = self.txns.servers.get_mut(st_id) {
                                    st.provisional_relayed = true;
                                }
                                self.attempt_progress(now, call);
                            }
                        }
                    }
                }
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                let egress = ct.egress;
                ct.state = ClientState::Accepted;
                // Nothing is retransmitted or CANCELled after a 2xx: the copy of the
                // request is dead weight for the 32 s the transaction lingers.
                ct.request = Vec::new();
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.disarm(t, TimerKind::ProxyC);
                self.txns.disarm(t, TimerKind::Progress);
                self.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
                if let Some(st_id) = st_id {
                    let call = self.txns.servers.get(st_id).and_then(|s| s.call);
                    if self.relay_up(st_id, buf, msg, false) {
                        self.arm_limit(now, st_id, call, egress, buf, msg);
                        let mut admitted = None;
                        if let Some(st) = self.txns.servers.get_mut(st_id) {
                            if st.state != ServerState::Accepted {
                                admitted = st.admitted.take();
                            }
                            st.state = ServerState::Accepted;
                            st.last_code = code;
                            // No failover or local answer after a 2xx (see above), and
                            // no retransmission of our own: 2xx retransmissions come from
                            // downstream (RFC 6026).
                            st.request = Vec::new();
                            st.last_response = Vec::new();
                            let s = TimerTarget::Server(st_id);
                            self.txns.disarm(s, TimerKind::ResponseRetransmit);
                            self.txns.arm(s, TimerKind::Timeout, now + timer::T1_X64);
                        }
                        if admitted.is_some() || call.is_some() {
                            self.attempt_progress(now, call);
                            self.attempt_final(now, call, code);
                        }
                        self.set_call_state(now, call, CallState::Confirmed);
                        // The answered call keeps its trunk slot until it ends.
                        if let Some(s) = admitted {
                            s.answered();
                            match call.and_then(|c| self.calls.get_mut(c)) {
                                Some(c) => c.admitted = Some(s),
                                None => s.ended(),
                            }
                        }
                    }
                }
            }
            (ClientState::Accepted, 200..=299) => {
                // A retransmitted 2xx: pass it on (RFC 6026).
                if let Some(st_id) = st_id {
                    self.relay_up(st_id, buf, msg, false);
                }
            }
            (ClientState::Calling | ClientState::Proceeding, 300..=699) => {
                ct.state = ClientState::Completed;
                let (abandoned, egress) = (ct.abandoned, ct.egress);
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.disarm(t, TimerKind::ProxyC);
                self.txns.disarm(t, TimerKind::Progress);
                self.txns.arm(t, TimerKind::Timeout, now + timer::TIMER_D);
                self.send_ack(id, buf, msg);
                if let (Some(st_id), false) = (st_id, abandoned) {
                    self.branch_failed(now, st_id, egress, code, Some((buf, msg)));
                }
            }
            (ClientState::Completed, 300..=699) => {
                // Retransmitted final: resend our ACK (RFC 3261 17.1.1.2).
                self.stats.retransmissions_absorbed += 1;
                if let Some(ct) = self.txns.clients.get(id) {
                    let (to, ack) = (ct.dest, ct.ack.clone());
                    let start = self.out.len();
                    self.out.extend_from_slice(&ack);
                    let end = self.out.len();
                    self.queue(to, start..end);
                }
            }
            _ => self.stats.dropped_stray += 1,
        }
    }

    /// ACK a non-2xx final response to our INVITE, hop by hop (RFC 3261 17.1.1.3).
    fn send_ack(&mut self, id: Id, buf: &[u8], msg: &Message) {
        let Some(ct) = self.txns.clients.get(id) else {
            return;
        };
        let dest = ct.dest;
        let to_line = msg
            .headers
            .get(msg.to.header)
            .map_or(&[][..], |h| h.line.get(buf));
        let mut request = std::mem::take(&mut self.tmp);
        request.clear();
        request.extend_from_slice(&ct.request);
        self.with_scanned(&request, |core, req| {
            let r = response::derived_request(&request, req, Derived::Ack, to_line, &mut core.out);
            let bytes = core.out.get(r.clone()).unwrap_or(&[]).to_vec();
            if let Some(ct) = core.txns.clients.get_mut(id) {
                ct.ack = bytes;
            }
            core.queue(dest, r);
        });
        self.tmp = request;
    }

    /// A final non-2xx response for server transaction `st_id`: relay it and retransmit it
    /// until ACKed (INVITE) or absorb retransmissions (non-INVITE).
    fn final_up(&mut self, now: Instant, st_id: Id, buf: &[u8], msg: &Message, code: u16) {
        let Some(st) = self.txns.servers.get(st_id) else {
            return;
        };
        if !matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
            return;
        }
        let (invite, call) = (st.invite, st.call);
        if !self.relay_up(st_id, buf, msg, true) {
            return;
        }
        self.server_completed(now, st_id, code, invite);
        if invite || call.is_some() {
            self.set_call_state(now, call, CallState::Terminated);
        }
    }

    fn server_completed(&mut self, now: Instant, st_id: Id, code: u16, invite: bool) {
        if let Some(st) = self.txns.servers.get_mut(st_id) {
            st.state = ServerState::Completed;
            st.last_code = code;
            st.g_interval = timer::T1;
        }
        let s = TimerTarget::Server(st_id);
        if invite {
            self.txns
                .arm(s, TimerKind::ResponseRetransmit, now + timer::T1);
        }
        // Timer H (INVITE) or J (non-INVITE over UDP): both 64*T1.
        self.txns.arm(s, TimerKind::Timeout, now + timer::T1_X64);
    }

    /// Answer server transaction `st_id` with a final response we generate (408 on
    /// timeout, 487 after CANCEL, 513), built from `req` (scanned from `req_buf`) with header
    /// `skip` (our own Via, when `req` is the request we forwarded) left out.
    #[allow(clippy::too_many_arguments)]
    fn answer_upstream(
        &mut self,
        now: Instant,
        st_id: Id,
        req_buf: &[u8],
        req: &Message,
        skip: usize,
        code: u16,
        extra: &[u8],
    ) {
        let Some(st) = self.txns.servers.get_mut(st_id) else {
            return;
        };
        if !matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
            return;
        }
        if let Some(s) = st.admitted.take() {
            s.answered();
            s.ended();
        }
        let (to, invite, call, source) = (st.reply_to, st.invite, st.call, st.source);
        if invite {
            self.note_final(call, code, "");
        }
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(req_buf, req, false, &mut tag);
        let via = response::client_via(req, skip);
        let oc = self.oc_for(via, |c| {
            c.txns
                .servers
                .get(st_id)
                .is_some_and(|s| s.ingress.is_some())
        });
        let r = local_response(
            req_buf,
            req,
            code,
            &tag,
            extra,
            skip,
            &oc,
            Some(source),
            &mut self.out,
        );
        self.tmp = tag;
        if let Some(st) = self.txns.servers.get_mut(st_id) {
            st.last_response.clear();
            st.last_response
                .extend_from_slice(self.out.get(r.clone()).unwrap_or(&[]));
        }
        self.stats.responses_local += 1;
        self.queue(to, r);
        self.server_completed(now, st_id, code, invite);
        if invite || call.is_some() {
            self.set_call_state(now, call, CallState::Terminated);
        }
    }

    /// A routed INVITE's client transaction: its server transaction and egress trunk.
    fn routed_invite(&self, ct_id: Id) -> Option<(Id, Option<TrunkId>)> {
        let ct = self.txns.clients.get(ct_id)?;
        let st_id = ct.server?;
        let st = self.txns.servers.get(st_id)?;
        (ct.invite && st.plan.is_some()).then_some((st_id, ct.egress))
    }

    /// Give up on INVITE branch `ct_id`: it stops retransmitting and its responses are no
    /// longer relayed (a 2xx still is); its server transaction fails over or answers 408.
    fn abandon(&mut self, now: Instant, ct_id: Id) {
        let routed = self.routed_invite(ct_id);
        let Some(ct) = self.txns.clients.get_mut(ct_id) else {
            return;
        };
        ct.abandoned = true;
        let t = TimerTarget::Client(ct_id);
        self.txns.disarm(t, TimerKind::Retransmit);
        self.txns.disarm(t, TimerKind::Progress);
        self.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
        match routed {
            Some((st, egress)) => self.branch_failed(now, st, egress, 408, None),
            None => self.answer_for_client(now, ct_id, 408, false),
        }
    }

    /// Answer upstream for client transaction `ct_id` with `code`, built from the request it
    /// forwarded; `remove` ends the client transaction too.
    fn answer_for_client(&mut self, now: Instant, ct_id: Id, code: u16, remove: bool) {
        let (request, st_id) = if remove {
            match self.txns.clients.remove(ct_id) {
                Some(ct) => (ct.request, ct.server),
                None => return,
            }
        } else {
            match self.txns.clients.get(ct_id) {
                Some(ct) => (ct.request.clone(), ct.server),
                None => return,
            }
        };
        let Some(st_id) = st_id else {
            return;
        };
        self.with_scanned(&request, |core, req| {
            core.answer_upstream(now, st_id, &request, req, req.top_via_header, code, b"");
        });
    }

    fn on_non_invite_response(
        &mut self,
        now: Instant,
        id: Id,
        buf: &[u8],
        msg: &Message,
        code: u16,
    ) {
        let Some(ct) = self.txns.clients.get_mut(id) else {
            return;
        };
        let st_id = ct.server;
        let t = TimerTarget::Client(id);
        match (ct.state, code) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                ct.state = ClientState::Proceeding;
                ct.retransmit_interval = timer::T2;
                if code > 100 {
                    if let Some(st_id) = st_id {
                        if self.relay_up(st_id, buf, msg, true) {
                            if let Some(st) = self.txns.servers.get_mut(st_id) {
                                st.state = ServerState::Proceeding;
                            }
                        }
                    }
                }
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=699) => {
                ct.state = ClientState::Completed;
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.arm(t, TimerKind::Timeout, now + timer::T4);
                if let Some(st_id) = st_id {
                    self.final_up(now, st_id, buf, msg, code);
                }
            }
            _ => self.stats.retransmissions_absorbed += 1,
        }
    }

    // --------------------------------------------------------------- timers

    pub fn handle_timeout(&mut self, now: Instant) {
        self.start_clock(now);
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.txns.wheel.expire(now, &mut fired);
        for key in fired.drain(..) {
            if self.txns.postponed(now, key) {
                continue;
            }
            match key.target {
                TimerTarget::Client(id) => self.client_timer(now, id, key),
                TimerTarget::Server(id) => self.server_timer(now, id, key),
                TimerTarget::Call(id) => self.call_timer(now, id, key),
                TimerTarget::Probe(t) => self.probe_timer(now, t, key),
            }
        }
        self.fired = fired;
        self.refresh_gauges();
    }

    fn client_timer(&mut self, now: Instant, id: Id, key: TimerKey) {
        let Some(ct) = self.txns.clients.get_mut(id) else {
            return;
        };
        if !ct.deadlines.is_current(key.kind, key.deadline) {
            return;
        }
        ct.deadlines.set(key.kind, None);
        let t = TimerTarget::Client(id);
        match key.kind {
            TimerKind::Retransmit => {
                let retransmit = if ct.invite {
                    ct.state == ClientState::Calling
                } else {
                    matches!(ct.state, ClientState::Calling | ClientState::Proceeding)
                };
                if !retransmit {
                    return;
                }
                let interval = ct.retransmit_interval;
                ct.retransmit_interval = if ct.invite {
                    interval * 2
                } else if ct.state == ClientState::Proceeding {
                    timer::T2
                } else {
                    (interval * 2).min(timer::T2)
                };
                let next = ct.retransmit_interval;
                let to = ct.dest;
                let start = self.out.len();
                self.out.extend_from_slice(&ct.request);
                let end = self.out.len();
                self.stats.retransmissions_sent += 1;
                self.queue(to, start..end);
                self.txns.arm(t, TimerKind::Retransmit, now + next);
            }
            TimerKind::Timeout => match ct.state {
                ClientState::Calling | ClientState::Proceeding if ct.probe => {
                    self.probe_result(id, None);
                }
                ClientState::Calling | ClientState::Proceeding if ct.abandoned || ct.cancel => {
                    self.txns.clients.remove(id);
                }
                // Timer B / F: no final response in 64*T1.
                ClientState::Calling | ClientState::Proceeding => {
                    self.attempt_timed_out(id);
                    if let Some((st, egress)) = self.routed_invite(id) {
                        self.txns.clients.remove(id);
                        self.branch_failed(now, st, egress, 408, None);
                    } else {
                        self.answer_for_client(now, id, 408, true);
                    }
                }
                // Timer D / K / M.
                _ => {
                    self.txns.clients.remove(id);
                }
            },
            TimerKind::ProxyC => {
                if ct.abandoned {
                    self.txns.clients.remove(id);
                } else if ct.cancel_sent {
                    // The callee never answered our CANCEL with a final response.
                    let cancelled = ct
                        .server
                        .and_then(|s| self.txns.servers.get(s))
                        .is_some_and(|s| s.cancelled);
                    self.answer_for_client(now, id, if cancelled { 487 } else { 408 }, true);
                } else if ct.provisional_seen {
                    // Timer C with a provisional: CANCEL the branch (it stays to take the
                    // callee's 487) and treat it as a 408.
                    self.send_cancel(now, id);
                    self.abandon(now, id);
                } else {
                    self.attempt_timed_out(id);
                    self.answer_for_client(now, id, 408, true);
                }
            }
            TimerKind::Progress => {
                // No 18x/2xx in the trunk's progress time: give up on it, CANCEL it (once it
                // has sent a provisional, RFC 3261 9.1) and fail over.
                if matches!(ct.state, ClientState::Calling | ClientState::Proceeding)
                    && !ct.abandoned
                {
                    self.attempt_timed_out(id);
                    let Some(ct) = self.txns.clients.get_mut(id) else {
                        return;
                    };
                    if ct.provisional_seen {
                        self.send_cancel(now, id);
                    } else if let Some(ct) = self.txns.clients.get_mut(id) {
                        ct.cancel_pending = true;
                    }
                    self.abandon(now, id);
                }
            }
            TimerKind::ResponseRetransmit => {}
        }
    }

    fn server_timer(&mut self, now: Instant, id: Id, key: TimerKey) {
        let Some(st) = self.txns.servers.get_mut(id) else {
            return;
        };
        if !st.deadlines.is_current(key.kind, key.deadline) {
            return;
        }
        st.deadlines.set(key.kind, None);
        match key.kind {
            TimerKind::ResponseRetransmit => {
                // Timer G: retransmit the final response until ACK (RFC 3261 17.2.1).
                if st.state != ServerState::Completed {
                    return;
                }
                let next = (st.g_interval * 2).min(timer::T2);
                st.g_interval = next;
                let to = st.reply_to;
                let start = self.out.len();
                self.out.extend_from_slice(&st.last_response);
                let end = self.out.len();
                self.stats.retransmissions_sent += 1;
                self.queue(to, start..end);
                self.txns.arm(
                    TimerTarget::Server(id),
                    TimerKind::ResponseRetransmit,
                    now + next,
                );
            }
            // Timer H, I, J or L: the transaction is over. Still without a final response:
            // its safety timeout (see insert_server): release what it holds.
            _ => {
                if let Some(st) = self.txns.remove_server(id) {
                    if matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
                        self.stats.dropped_stray += 1;
                        if let Some(s) = st.admitted {
                            s.answered();
                            s.ended();
                        }
                        if st.invite {
                            self.set_call_state(now, st.call, CallState::Terminated);
                        }
                    }
                }
            }
        }
    }

    /// A call has exactly one timer entry, due at most CALL_LINGER ahead; each firing puts it
    /// back until the call's expiry (CALL_LINGER after it ended, or CALL_IDLE_MAX after its
    /// last in-dialog activity) has come. A 12 h idle entry per call that stayed in the wheel
    /// after the call ended grew the wheel by every call of the last 12 h: 4.7 M entries after
    /// 100 s at 10,000 calls/s, ~400 M and tens of GB by the time the first expired, and each
    /// was scanned on every revolution of the wheel.
    fn call_timer(&mut self, now: Instant, id: Id, key: TimerKey) {
        if key.kind == TimerKind::ProxyC {
            // The call's maximum duration (limit.rs): a timer of its own, firing once.
            self.limit_timer(now, id);
            return;
        }
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let terminated = c.state == CallState::Terminated;
        let due = if terminated {
            c.expiry
        } else {
            c.last_activity + limits::CALL_IDLE_MAX
        };
        if due > now {
            c.expiry = due;
            self.arm_call(id, due.min(now + limits::CALL_LINGER));
            return;
        }
        if !terminated {
            self.finish_record(now, id, Some(EndedBy::Expired));
        }
        self.calls.remove(id);
    }
}
