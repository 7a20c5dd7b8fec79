//! The proxy core (RFC 3261 16, transactions per 17 and RFC 6026): a synchronous state
//! machine. Feed it datagrams and timeouts with `now`; drain what it wants sent. It never
//! touches a socket or a clock.
//!
//! Run loop contract (the shard shell):
//! 1. for each received datagram: `handle_datagram(now, from, bytes)`;
//! 2. when `now >= next_deadline()`: `handle_timeout(now)`;
//! 3. send every `transmits()`, then `clear_transmits()`;
//! 4. sleep until a datagram arrives or `next_deadline()`.

use super::dialog::{Call, CallState, Calls};
use super::response::{self, Derived};
use super::rewrite::{self, RequestEdits, Splice};
use super::scan::{self, Message, ScanError, StartLine};
use super::timer::{self, TimerWheel};
use super::transaction::{
    server_key, ClientState, ClientTxn, Deadlines, Id, ServerState, ServerTxn, TimerKey, TimerKind,
    TimerTarget, Transactions,
};
use super::uri::{self, Scheme};
use super::via::{Rport, MAGIC_COOKIE};
use super::{Method, Span};
use crate::limits;
use crate::routing::{Attempts, Decision, RoutingTable, TrunkId};
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
    pub dropped_stray: u64,
    pub rejected_unknown_source: u64,
    pub rejected_no_route: u64,
    pub rejected_overload: u64,
    /// Calls this shard has owned (INVITEs that created call state).
    pub calls_created: u64,
    /// Gauges.
    pub calls_active: u64,
    pub transactions_active: u64,
    pub timers_active: u64,
}

/// Method class byte of a server transaction key (ACK matches INVITE).
const CLASS_INVITE: u8 = b'I';
const CLASS_CANCEL: u8 = b'C';
const CLASS_OTHER: u8 = b'N';

pub struct Core {
    config: CoreConfig,
    routing: Arc<RoutingTable>,
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
    via_line: Vec<u8>,
    uri_buf: Vec<u8>,
    tmp: Vec<u8>,
    fired: Vec<TimerKey>,
    /// `z9hG4bKjn<boot><shard>.`: every branch we generate starts with it.
    branch_prefix: Vec<u8>,
    record_route_line: Vec<u8>,
    hash_seed: RandomState,
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
    pub fn new(config: CoreConfig, routing: Arc<RoutingTable>) -> Core {
        let hash_seed = RandomState::new();
        let boot = hash_seed.hash_one(config.shard) as u32;
        let mut branch_prefix = MAGIC_COOKIE.to_vec();
        let _ = write!(branch_prefix, "jn{:08x}{:x}.", boot, config.shard);
        let mut record_route_line = b"Record-Route: <sip:".to_vec();
        rewrite::write_hostport(&mut record_route_line, config.advertise);
        record_route_line.extend_from_slice(b";lr>\r\n");
        let now = Instant::now();
        Core {
            config,
            routing,
            stats: CoreStats::default(),
            out: Vec::new(),
            transmits: Vec::new(),
            txns: Transactions::new(now),
            calls: Calls::default(),
            wheel_started: false,
            msg: Some(Box::default()),
            aux: Some(Box::default()),
            splice: Splice::default(),
            key: Vec::new(),
            via_line: Vec::new(),
            uri_buf: Vec::new(),
            tmp: Vec::new(),
            fired: Vec::new(),
            branch_prefix,
            record_route_line,
            hash_seed,
        }
    }

    /// Swap in a new routing table (reload); calls in progress keep their decisions.
    pub fn set_routing(&mut self, routing: Arc<RoutingTable>) {
        self.routing = routing;
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// The counters, as a copy (the gauges are current after every handle_* call).
    pub fn stats_snapshot(&self) -> CoreStats {
        self.stats.clone()
    }

    fn refresh_gauges(&mut self) {
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
    }

    fn queue(&mut self, to: SocketAddr, range: Range<usize>) {
        if sendable(to) {
            self.transmits.push((to, range));
        } else {
            self.out.truncate(range.start);
            self.stats.dropped_stray += 1;
        }
    }

    // ---------------------------------------------------------------- input

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.start_clock(now);
        if data.len() > limits::DATAGRAM_BYTES_MAX {
            self.stats.dropped_malformed += 1;
            return;
        }
        let mut msg = self.msg.take().unwrap_or_default();
        let result = scan::scan(data, &mut msg);
        match result {
            Err(ScanError::Drop(_)) => self.stats.dropped_malformed += 1,
            Err(ScanError::Reject { status, .. }) => {
                self.stats.dropped_malformed += 1;
                let known = self.routing.ingress(from).is_some();
                if msg.is_request() && known && msg.top_via_header != usize::MAX {
                    self.reply_stateless(data, &msg, from, status, b"");
                }
            }
            Ok(()) if msg.is_request() => self.on_request(now, from, data, &msg),
            Ok(()) => self.on_response(now, data, &msg),
        }
        self.msg = Some(msg);
        self.refresh_gauges();
    }

    // ------------------------------------------------------------- requests

    fn on_request(&mut self, now: Instant, from: SocketAddr, buf: &[u8], msg: &Message) {
        self.stats.requests_in += 1;
        let StartLine::Request { method, .. } = msg.start else {
            return;
        };
        let Some(ingress) = self.routing.ingress(from) else {
            // Never route for an unknown source (toll fraud); never answer an ACK.
            self.stats.rejected_unknown_source += 1;
            if method != Method::Ack {
                self.reply_stateless(buf, msg, from, 403, b"");
            }
            return;
        };
        if buf.len() > limits::MESSAGE_BYTES_MAX {
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
    }

    /// Where responses to this request go: RFC 3261 18.2.2 with RFC 3581 (rport).
    fn reply_addr(buf: &[u8], msg: &Message, from: SocketAddr) -> SocketAddr {
        let _ = buf;
        match msg.top_via.rport {
            Rport::Absent => SocketAddr::new(from.ip(), msg.top_via.port.unwrap_or(5060)),
            _ => from,
        }
    }

    /// A deterministic To tag for responses we generate to this request.
    fn local_tag(&self, buf: &[u8], msg: &Message, out: &mut Vec<u8>) {
        let branch = msg.top_via.branch.map_or(&[][..], |b| b.get(buf));
        let h = self
            .hash_seed
            .hash_one((msg.call_id.get(buf), branch, msg.cseq));
        out.extend_from_slice(b"jn");
        hex(out, h);
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
        self.local_tag(buf, msg, &mut tag);
        let r = response::local_response(buf, msg, code, &tag, extra, usize::MAX, &mut self.out);
        self.tmp = tag;
        let to = Self::reply_addr(buf, msg, from);
        self.stats.responses_local += 1;
        self.queue(to, r);
    }

    fn points_at_us(&self, buf: &[u8], value: Span) -> bool {
        name_addr_addr(buf, value).is_some_and(|a| same_addr(a, self.config.advertise))
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
        let class = if method == Method::Invite {
            CLASS_INVITE
        } else {
            CLASS_OTHER
        };
        self.make_server_key(buf, msg, class);
        if let Some(&id) = self.txns.server_index.get(&self.key[..]) {
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
        if self.txns.len() + 2 > limits::TRANSACTIONS_PER_SHARD_MAX {
            self.stats.rejected_overload += 1;
            self.reply_stateless(buf, msg, from, 503, b"Retry-After: 5\r\n");
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
        let (dest, egress, attempts, new_uri) =
            match self.target(now, buf, msg, from, ingress, &parsed, pop_route, call) {
                Ok(t) => t,
                Err(code) => {
                    self.reply_stateless(buf, msg, from, code, b"");
                    return;
                }
            };

        // The server transaction (and for INVITE our 100 Trying, RFC 3261 16.2).
        let invite = method == Method::Invite;
        let reply_to = Self::reply_addr(buf, msg, from);
        let mut st = ServerTxn {
            key: self.key.clone().into_boxed_slice(),
            invite,
            state: ServerState::Trying,
            reply_to,
            last_response: Vec::new(),
            last_code: 0,
            request: Vec::new(),
            client: None,
            attempts,
            attempt: 0,
            ingress: Some(ingress),
            best: None,
            cancelled: false,
            g_interval: timer::T1,
            call: None,
            deadlines: Deadlines::default(),
        };
        if invite {
            let r = response::local_response(buf, msg, 100, b"", b"", usize::MAX, &mut self.out);
            st.last_response = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
            st.last_code = 100;
            st.state = ServerState::Proceeding;
            self.stats.responses_local += 1;
            self.queue(reply_to, r);
        }

        // Call state: an initial INVITE creates the call; a BYE ends it.
        if invite && !in_dialog {
            if self.calls.len() >= limits::CALLS_PER_SHARD_MAX {
                self.stats.rejected_overload += 1;
                self.reply_stateless(buf, msg, from, 503, b"Retry-After: 5\r\n");
                return;
            }
            let expiry = now + limits::CALL_IDLE_MAX;
            let id = self.calls.insert(Call {
                call_id: msg.call_id.get(buf).into(),
                state: CallState::Trying,
                ingress: Some(ingress),
                egress,
                caller: from,
                callee: dest,
                created: now,
                last_activity: now,
                expiry,
            });
            self.arm_call(id, expiry);
            self.stats.calls_created += 1;
            st.call = Some(id);
        } else if method == Method::Bye {
            st.call = call;
        }

        let st_id = self.txns.servers.insert(st);
        self.txns
            .server_index
            .insert(self.key.clone().into_boxed_slice(), st_id);

        let dialog_creating = !in_dialog
            && matches!(
                method,
                Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
            );
        self.forward_stateful(
            now,
            buf,
            msg,
            from,
            st_id,
            dest,
            egress,
            invite,
            pop_route,
            dialog_creating,
            new_uri,
        );
    }

    fn addressed_to_us(&self, buf: &[u8], parsed: &uri::Uri) -> bool {
        parsed.user.is_none()
            && uri::host_ip(buf, parsed.host).is_some_and(|ip| {
                same_addr(
                    SocketAddr::new(ip, parsed.port.unwrap_or(5060)),
                    self.config.advertise,
                )
            })
    }

    /// Where a request goes (RFC 3261 16.5, 16.6): an in-dialog request of a call we know
    /// follows its Route set, else its remote target. Anything else is routed by number to
    /// a trunk, with the Request-URI rewritten (in `self.uri_buf`). An in-dialog request for
    /// a call we do not know (say, after a restart) goes straight to its next hop only when
    /// that is one of our trunks: junction is never an open relay.
    /// Returns (destination, egress trunk, attempt list, rewrite the Request-URI) or the
    /// status to answer with.
    #[allow(clippy::too_many_arguments)]
    fn target(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        from: SocketAddr,
        ingress: TrunkId,
        parsed: &uri::Uri,
        pop_route: bool,
        call: Option<Id>,
    ) -> Result<(SocketAddr, Option<TrunkId>, Attempts, bool), u16> {
        let StartLine::Request { uri: ruri, .. } = msg.start else {
            return Err(400);
        };
        if msg.to.tag.is_some() {
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
                if let Some(dest) = hop.or_else(|| self.dialog_peer(call, from)) {
                    return Ok((dest, None, Attempts::EMPTY, false));
                }
            } else if let Some(dest) = hop.filter(|h| self.routing.ingress(*h).is_some()) {
                return Ok((dest, None, Attempts::EMPTY, false));
            }
        }
        let called = parsed.user.map_or(&[][..], |u| u.get(buf));
        let called = match called.iter().position(|&c| c == b';') {
            Some(i) => called.get(..i).unwrap_or(called),
            None => called,
        };
        let attempts = match self.routing.route(ingress, called) {
            Decision::Route { attempts, .. } => attempts,
            Decision::NoRoute => {
                self.stats.rejected_no_route += 1;
                return Err(404);
            }
            Decision::NoTrunk => {
                self.stats.rejected_no_route += 1;
                return Err(503);
            }
        };
        let Some((egress, dest)) = attempts.first().and_then(|t| {
            self.routing
                .trunk(t)
                .and_then(|tr| tr.send_to)
                .map(|a| (t, a))
        }) else {
            self.stats.rejected_no_route += 1;
            return Err(503);
        };
        self.uri_buf.clear();
        self.uri_buf
            .extend_from_slice(if parsed.scheme == Scheme::Sips {
                b"sips:"
            } else {
                b"sip:"
            });
        if let Some(u) = parsed.user {
            self.uri_buf.extend_from_slice(u.get(buf));
            self.uri_buf.push(b'@');
        }
        rewrite::write_hostport(&mut self.uri_buf, dest);
        if parsed.scheme == Scheme::Tel {
            self.uri_buf.extend_from_slice(b";user=phone");
        } else {
            self.uri_buf.extend_from_slice(parsed.params.get(buf));
        }
        Ok((dest, Some(egress), attempts, true))
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

    fn write_via(&mut self, branch_tail: impl FnOnce(&mut Vec<u8>)) {
        self.via_line.clear();
        self.via_line.extend_from_slice(b"Via: SIP/2.0/UDP ");
        rewrite::write_hostport(&mut self.via_line, self.config.advertise);
        self.via_line.extend_from_slice(b";branch=");
        self.via_line.extend_from_slice(&self.branch_prefix);
        branch_tail(&mut self.via_line);
        self.via_line.extend_from_slice(b";rport\r\n");
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_stateful(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        from: SocketAddr,
        st_id: Id,
        dest: SocketAddr,
        egress: Option<TrunkId>,
        invite: bool,
        pop_route: bool,
        record_route: bool,
        new_uri: bool,
    ) {
        let ct_id = self.txns.clients.insert(ClientTxn {
            invite,
            cancel: false,
            state: ClientState::Calling,
            request: Vec::new(),
            dest,
            server: Some(st_id),
            cancel_txn: None,
            cancel_pending: false,
            cancel_sent: false,
            provisional_seen: false,
            retransmit_interval: timer::T1,
            ack: Vec::new(),
            egress,
            deadlines: Deadlines::default(),
        });
        self.write_via(|v| {
            hex(v, ct_id.idx as u64);
            v.push(b'.');
            hex(v, ct_id.gen as u64);
        });
        let edits = RequestEdits {
            via_line: &self.via_line,
            record_route_line: record_route.then_some(&self.record_route_line[..]),
            new_uri: new_uri.then_some(&self.uri_buf[..]),
            source: from,
            pop_route,
        };
        let r = rewrite::forward_request(buf, msg, &edits, &mut self.splice, &mut self.out);
        if r.len() > limits::MESSAGE_BYTES_MAX {
            self.out.truncate(r.start);
            self.txns.clients.remove(ct_id);
            self.answer_upstream(now, st_id, buf, msg, usize::MAX, 513);
            return;
        }
        let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
        if let Some(ct) = self.txns.clients.get_mut(ct_id) {
            ct.request = bytes;
        }
        if let Some(st) = self.txns.servers.get_mut(st_id) {
            st.client = Some(ct_id);
        }
        self.stats.requests_forwarded += 1;
        self.queue(dest, r);
        let target = TimerTarget::Client(ct_id);
        self.txns
            .arm(target, TimerKind::Retransmit, now + timer::T1);
        self.txns
            .arm(target, TimerKind::Timeout, now + timer::T1_X64);
        if invite {
            self.txns
                .arm(target, TimerKind::ProxyC, now + timer::TIMER_C);
        }
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
        self.make_server_key(buf, msg, CLASS_INVITE);
        if let Some(&id) = self.txns.server_index.get(&self.key[..]) {
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
        if let Some(&id) = self.txns.server_index.get(&self.key[..]) {
            self.server_retransmission(id);
            return;
        }
        self.make_server_key(buf, msg, CLASS_INVITE);
        let Some(&invite_st) = self.txns.server_index.get(&self.key[..]) else {
            // RFC 3261 16.10: no response context: forward statelessly.
            self.forward_stateless(now, from, buf, msg, ingress);
            return;
        };
        // Answer the CANCEL itself (200), in a transaction that absorbs its retransmissions.
        self.make_server_key(buf, msg, CLASS_CANCEL);
        let reply_to = Self::reply_addr(buf, msg, from);
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(buf, msg, &mut tag);
        let r = response::local_response(buf, msg, 200, &tag, b"", usize::MAX, &mut self.out);
        self.tmp = tag;
        let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
        self.stats.responses_local += 1;
        self.queue(reply_to, r);
        let cancel_st = self.txns.servers.insert(ServerTxn {
            key: self.key.clone().into_boxed_slice(),
            invite: false,
            state: ServerState::Completed,
            reply_to,
            last_response: bytes,
            last_code: 200,
            request: Vec::new(),
            client: None,
            attempts: Attempts::EMPTY,
            attempt: 0,
            ingress: Some(ingress),
            best: None,
            cancelled: false,
            g_interval: timer::T1,
            call: None,
            deadlines: Deadlines::default(),
        });
        self.txns
            .server_index
            .insert(self.key.clone().into_boxed_slice(), cancel_st);
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

    /// Send CANCEL for the INVITE client transaction `ct_id` (RFC 3261 9.1).
    fn send_cancel(&mut self, now: Instant, ct_id: Id) {
        let Some(ct) = self.txns.clients.get(ct_id) else {
            return;
        };
        let dest = ct.dest;
        let mut aux = self.aux.take().unwrap_or_default();
        let request = std::mem::take(&mut self.tmp);
        let mut request = request;
        request.clear();
        request.extend_from_slice(&ct.request);
        if scan::scan(&request, &mut aux).is_ok() {
            let r = response::derived_request(&request, &aux, Derived::Cancel, b"", &mut self.out);
            let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
            let cancel_id = self.txns.clients.insert(ClientTxn {
                invite: false,
                cancel: true,
                state: ClientState::Calling,
                request: bytes,
                dest,
                server: None,
                cancel_txn: None,
                cancel_pending: false,
                cancel_sent: false,
                provisional_seen: false,
                retransmit_interval: timer::T1,
                ack: Vec::new(),
                egress: None,
                deadlines: Deadlines::default(),
            });
            self.queue(dest, r);
            self.stats.requests_forwarded += 1;
            let t = TimerTarget::Client(cancel_id);
            self.txns.arm(t, TimerKind::Retransmit, now + timer::T1);
            self.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
            if let Some(ct) = self.txns.clients.get_mut(ct_id) {
                ct.cancel_txn = Some(cancel_id);
                ct.cancel_sent = true;
                ct.cancel_pending = false;
            }
            // Give the callee 64*T1 to answer 487 (RFC 3261 9.1), then give up.
            self.txns.arm(
                TimerTarget::Client(ct_id),
                TimerKind::ProxyC,
                now + timer::T1_X64,
            );
        }
        self.tmp = request;
        self.aux = Some(aux);
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
        let target = uri::parse(buf, ruri)
            .map_err(|_| 400)
            .and_then(|parsed| self.target(now, buf, msg, from, ingress, &parsed, pop_route, call));
        let (dest, new_uri) = match target {
            Ok((dest, _, _, new_uri)) => (dest, new_uri),
            Err(code) => {
                if method == Method::Cancel {
                    self.reply_stateless(buf, msg, from, code, b"");
                } else {
                    self.stats.dropped_stray += 1;
                }
                return;
            }
        };
        // A stateless branch: the same for every retransmission of this request.
        let incoming = msg.top_via.branch.map_or(&[][..], |b| b.get(buf));
        let h = self.hash_seed.hash_one((incoming, method == Method::Ack));
        self.write_via(|v| {
            v.push(b's');
            hex(v, h);
        });
        let edits = RequestEdits {
            via_line: &self.via_line,
            record_route_line: None,
            new_uri: new_uri.then_some(&self.uri_buf[..]),
            source: from,
            pop_route,
        };
        let r = rewrite::forward_request(buf, msg, &edits, &mut self.splice, &mut self.out);
        self.stats.requests_forwarded += 1;
        self.queue(dest, r);
    }

    // ------------------------------------------------------------ responses

    fn on_response(&mut self, now: Instant, buf: &[u8], msg: &Message) {
        self.stats.responses_in += 1;
        let StartLine::Response { code, .. } = msg.start else {
            return;
        };
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
            let r = rewrite::forward_response(buf, msg, &mut self.splice, &mut self.out);
            self.stats.responses_forwarded += 1;
            self.queue(to, r);
            return;
        }
        let mut parts = tail.splitn(2, |&c| c == b'.');
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
        if ct.invite {
            self.on_invite_response(now, id, buf, msg, code);
        } else {
            self.on_non_invite_response(now, id, buf, msg, code);
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
        let to = st.reply_to;
        let r = rewrite::forward_response(buf, msg, &mut self.splice, &mut self.out);
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
            let expiry = now + limits::CALL_LINGER;
            c.expiry = expiry;
            self.arm_call(id, expiry);
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
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.disarm(t, TimerKind::Timeout);
                if !cancel_sent && (first || code > 100) {
                    // Timer C restarts on every provisional (RFC 3261 16.7 step 2).
                    self.txns.arm(t, TimerKind::ProxyC, now + timer::TIMER_C);
                }
                if cancel_now {
                    self.send_cancel(now, id);
                }
                if code > 100 {
                    if let Some(st_id) = st_id {
                        let call = self.txns.servers.get(st_id).and_then(|s| s.call);
                        if self.relay_up(st_id, buf, msg, true) && msg.to.tag.is_some() {
                            self.set_call_state(now, call, CallState::Early);
                        }
                    }
                }
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                ct.state = ClientState::Accepted;
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.disarm(t, TimerKind::ProxyC);
                self.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
                if let Some(st_id) = st_id {
                    let call = self.txns.servers.get(st_id).and_then(|s| s.call);
                    if self.relay_up(st_id, buf, msg, false) {
                        if let Some(st) = self.txns.servers.get_mut(st_id) {
                            st.state = ServerState::Accepted;
                            st.last_code = code;
                            let s = TimerTarget::Server(st_id);
                            self.txns.disarm(s, TimerKind::ResponseRetransmit);
                            self.txns.arm(s, TimerKind::Timeout, now + timer::T1_X64);
                        }
                        self.set_call_state(now, call, CallState::Confirmed);
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
                self.txns.disarm(t, TimerKind::Retransmit);
                self.txns.disarm(t, TimerKind::ProxyC);
                self.txns.arm(t, TimerKind::Timeout, now + timer::TIMER_D);
                self.send_ack(id, buf, msg);
                if let Some(st_id) = st_id {
                    self.final_up(now, st_id, buf, msg, code);
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
        let mut aux = self.aux.take().unwrap_or_default();
        let mut request = std::mem::take(&mut self.tmp);
        request.clear();
        request.extend_from_slice(&ct.request);
        if scan::scan(&request, &mut aux).is_ok() {
            let r = response::derived_request(&request, &aux, Derived::Ack, to_line, &mut self.out);
            let bytes = self.out.get(r.clone()).unwrap_or(&[]).to_vec();
            if let Some(ct) = self.txns.clients.get_mut(id) {
                ct.ack = bytes;
            }
            self.queue(dest, r);
        }
        self.tmp = request;
        self.aux = Some(aux);
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
    fn answer_upstream(
        &mut self,
        now: Instant,
        st_id: Id,
        req_buf: &[u8],
        req: &Message,
        skip: usize,
        code: u16,
    ) {
        let Some(st) = self.txns.servers.get(st_id) else {
            return;
        };
        if !matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
            return;
        }
        let (to, invite, call) = (st.reply_to, st.invite, st.call);
        let mut tag = std::mem::take(&mut self.tmp);
        tag.clear();
        self.local_tag(req_buf, req, &mut tag);
        let r = response::local_response(req_buf, req, code, &tag, b"", skip, &mut self.out);
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
        let mut aux = self.aux.take().unwrap_or_default();
        if scan::scan(&request, &mut aux).is_ok() {
            self.answer_upstream(now, st_id, &request, &aux, aux.top_via_header, code);
        }
        self.aux = Some(aux);
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
            match key.target {
                TimerTarget::Client(id) => self.client_timer(now, id, key),
                TimerTarget::Server(id) => self.server_timer(now, id, key),
                TimerTarget::Call(id) => self.call_timer(now, id, key),
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
                // Timer B / F: no final response in 64*T1.
                ClientState::Calling | ClientState::Proceeding if !ct.cancel => {
                    self.answer_for_client(now, id, 408, true);
                }
                // Timer D / K / M, or a CANCEL transaction's end.
                _ => {
                    self.txns.clients.remove(id);
                }
            },
            TimerKind::ProxyC => {
                if ct.cancel_sent {
                    // The callee never answered our CANCEL with a final response.
                    let cancelled = ct
                        .server
                        .and_then(|s| self.txns.servers.get(s))
                        .is_some_and(|s| s.cancelled);
                    self.answer_for_client(now, id, if cancelled { 487 } else { 408 }, true);
                } else if ct.provisional_seen {
                    // Timer C with a provisional: CANCEL it and answer 408 upstream.
                    // Timer C with a provisional: CANCEL the branch and answer 408 upstream;
                    // the branch stays to take the callee's 487 and ACK it.
                    self.send_cancel(now, id);
                    self.answer_for_client(now, id, 408, false);
                } else {
                    self.answer_for_client(now, id, 408, true);
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
            // Timer H, I, J or L: the transaction is over.
            _ => {
                self.txns.remove_server(id);
            }
        }
    }

    fn call_timer(&mut self, now: Instant, id: Id, key: TimerKey) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.expiry != key.deadline {
            return;
        }
        if c.state != CallState::Terminated {
            let idle_until = c.last_activity + limits::CALL_IDLE_MAX;
            if idle_until > now {
                c.expiry = idle_until;
                self.arm_call(id, idle_until);
                return;
            }
        }
        self.calls.remove(id);
    }
}
