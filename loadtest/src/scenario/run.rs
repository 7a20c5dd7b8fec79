//! The scenario interpreter: one program counter per call over the scenario's steps, with
//! SIPp's rules. A received message is matched against the current `recv` and the optional ones
//! after it, then against the `optional="global"` ones; a byte-identical copy of a message
//! already matched is a retransmission (a request gets our last response again, a response the
//! ACK we sent after it); anything else fails the call as unexpected. `send retrans` is
//! retransmitted at RFC 3261 intervals until a later `recv` matches or 64*T1 passes.

use super::template::{Kw, Template};
use super::{Expect, Optional, Role, Scenario, Step};
use crate::limits::{CALLS_PER_WORKER_MAX, SCENARIO_STEPS_MAX};
use crate::sip::msg::Msg;
use crate::sip::write::Put;
use crate::sip::Method;
use crate::stats::{Fail, Lat, Stats};
use crate::time::{Micros, Timers};
use crate::timer::TimerQueue;
use crate::ua::out::Out;
use crate::ua::text::hash64;
use crate::ua::uac::decode_call_id;
use crate::ua::Engine;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

const NEVER: Micros = Micros::MAX;
const RETRANS: u8 = 0;
const TXTIMEOUT: u8 = 1;
const PAUSE: u8 = 2;
const RECVTIMEOUT: u8 = 3;
const TIMEWAIT: u8 = 4;
const KINDS: usize = 5;

/// Messages remembered per call for retransmission handling.
const REMEMBERED_MAX: usize = 32;

/// What a scenario call needs from the outside.
#[derive(Clone, Debug)]
pub struct Env {
    pub local: Vec<SocketAddr>,
    /// UAC: where every message goes. UAS: `None` (answers go to the sender).
    pub remote: Option<SocketAddr>,
    pub service: String,
    /// `<pause/>` without milliseconds: the hold time.
    pub pause: Micros,
    pub timers: Timers,
    pub run_id: u64,
    pub worker: u32,
    /// The worker's tick: the end of a pause is intended for the grid point after it.
    pub quantum: Micros,
    /// `--inf` (`[fieldN]`) and per-call numbers (`[service]`), when given.
    pub numbers: Option<Arc<crate::numbers::Plan>>,
    /// Workers of this role in the process (injection file lines are interleaved over them).
    pub workers: u32,
}

#[derive(Clone, Copy)]
struct Sent {
    step: u16,
    start: u32,
    end: u32,
    response: bool,
    ack: bool,
}

#[derive(Default)]
struct Call {
    gen: u32,
    live: bool,
    /// Reached `timewait`: succeeded, kept only for retransmissions.
    done: bool,
    pc: usize,
    sock: u16,
    peer: Option<SocketAddr>,
    number: u64,
    key: u64,
    call_id: Vec<u8>,
    cseq: u32,
    branch: u32,
    last: Vec<u8>,
    remote_tag: Vec<u8>,
    routes: Vec<u8>,
    next_url: Vec<u8>,
    recv_hashes: Vec<(u64, u16)>,
    sent: Vec<u8>,
    sent_list: Vec<Sent>,
    /// The message being retransmitted (index into sent_list), its interval and kind.
    rt: Option<usize>,
    rt_interval: Micros,
    rt_capped: bool,
    rt_method: Option<Method>,
    deadline: [Micros; KINDS],
    /// When the schedule (or the end of a pause) wanted the next request sent.
    intended_next: Micros,
    invite_at: Micros,
    bye_at: Micros,
    options_at: Micros,
    got_100: bool,
    got_18x: bool,
    got_200: bool,
    /// `[service]` of this call (the number plan's called number).
    service: Vec<u8>,
    /// `[fieldN]`: this call's line of the injection file.
    row: Option<usize>,
}

pub struct ScenarioEngine {
    sc: Arc<Scenario>,
    env: Env,
    calls: Vec<Call>,
    free: Vec<u32>,
    index: HashMap<u64, u32>,
    timers: TimerQueue,
    stats: Stats,
    active: u64,
    next_sock: usize,
    counter: u64,
    pid: u32,
    /// Kernel receive time of the datagram being handled (latencies end there).
    rx: Micros,
    rng: crate::numbers::Rng,
}

fn expect_matches(e: &Expect, m: &Msg) -> bool {
    match (e, m.start) {
        (Expect::Request(name), crate::sip::msg::StartLine::Request { method_span, .. }) => {
            m.get(method_span) == name.as_slice()
        }
        (Expect::Response(code), crate::sip::msg::StartLine::Response { code: c }) => *code == c,
        _ => false,
    }
}

impl ScenarioEngine {
    pub fn uac(sc: Arc<Scenario>, env: Env) -> ScenarioEngine {
        ScenarioEngine::new(sc, env)
    }

    pub fn uas(sc: Arc<Scenario>, env: Env) -> ScenarioEngine {
        ScenarioEngine::new(sc, env)
    }

    fn new(sc: Arc<Scenario>, env: Env) -> ScenarioEngine {
        let seed = env.run_id ^ (u64::from(env.worker) << 48);
        ScenarioEngine {
            sc,
            env,
            calls: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            timers: TimerQueue::default(),
            stats: Stats::new(),
            active: 0,
            next_sock: 0,
            counter: 0,
            pid: std::process::id(),
            rx: 0,
            rng: crate::numbers::Rng::new(seed),
        }
    }

    fn alloc(&mut self) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.calls.len() < CALLS_PER_WORKER_MAX => {
                self.calls.push(Call::default());
                (self.calls.len() - 1) as u32
            }
            None => return None,
        };
        let number =
            1 + self.counter * crate::limits::WORKERS_MAX as u64 + u64::from(self.env.worker);
        let seq = self.counter * u64::from(self.env.workers.max(1)) + u64::from(self.env.worker);
        self.counter += 1;
        let mut service = Vec::new();
        let mut row = None;
        if let Some(plan) = &self.env.numbers {
            let mut calling = Vec::new();
            row = plan
                .pick(seq, &mut self.rng, &mut service, &mut calling)
                .row;
        }
        let c = self.calls.get_mut(slot as usize)?;
        let gen = c.gen.wrapping_add(1);
        let keep = (
            std::mem::take(&mut c.last),
            std::mem::take(&mut c.sent),
            std::mem::take(&mut c.call_id),
        );
        *c = Call {
            gen,
            live: true,
            number,
            deadline: [NEVER; KINDS],
            ..Call::default()
        };
        (c.last, c.sent, c.call_id) = keep;
        c.service = service;
        c.row = row;
        c.last.clear();
        c.sent.clear();
        c.call_id.clear();
        self.active += 1;
        Some(slot)
    }

    fn release(&mut self, slot: u32) {
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if !c.live {
            return;
        }
        if !c.done {
            self.active = self.active.saturating_sub(1);
        }
        c.live = false;
        c.deadline = [NEVER; KINDS];
        if self.index.get(&c.key) == Some(&slot) {
            self.index.remove(&c.key);
        }
        self.free.push(slot);
    }

    fn fail(&mut self, slot: u32, why: Fail) {
        if self.sc.role == Role::Uas {
            self.stats.uas_fail(why);
            self.stats.failed += 1;
        } else {
            self.stats.fail(why);
        }
        self.release(slot);
    }

    fn succeed(&mut self, slot: u32) {
        self.stats.succeeded += 1;
        if self.sc.role == Role::Uas {
            self.stats.uas_completed += 1;
        }
        if let Some(c) = self.calls.get_mut(slot as usize) {
            if !c.done {
                c.done = true;
                self.active = self.active.saturating_sub(1);
            }
        }
    }

    fn arm(&mut self, slot: u32, kind: u8, at: Micros) {
        if let Some(c) = self.calls.get_mut(slot as usize) {
            if let Some(d) = c.deadline.get_mut(kind as usize) {
                *d = at;
            }
            self.timers.push(at, slot, c.gen, kind);
        }
    }

    fn disarm(&mut self, slot: u32, kinds: &[u8]) {
        if let Some(c) = self.calls.get_mut(slot as usize) {
            for &k in kinds {
                if let Some(d) = c.deadline.get_mut(k as usize) {
                    *d = NEVER;
                }
            }
        }
    }

    fn local(&self, sock: u16) -> SocketAddr {
        self.env
            .local
            .get(sock as usize)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Render step `step`'s message for call `slot` and send it.
    fn send(
        &mut self,
        now: Micros,
        slot: u32,
        step: usize,
        msg: &Template,
        retrans: Option<Micros>,
        out: &mut Out,
    ) {
        let method = msg.method.as_deref().map(Method::parse);
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if msg.is_request()
            && !matches!(method, Some(Method::Ack | Method::Cancel))
            && msg.uses(&Kw::Cseq)
        {
            c.cseq += 1;
        }
        c.branch += 1;
        match method {
            Some(Method::Invite) => c.invite_at = c.intended_next,
            Some(Method::Bye) => c.bye_at = c.intended_next,
            Some(Method::Options) => c.options_at = c.intended_next,
            _ => {}
        }
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let Some(peer) = c.peer else { return };
        let local = self.local(c.sock);
        let last = Msg::parse(&c.last).ok();
        let start = out.begin();
        let (env, pid) = (&self.env, self.pid);
        msg.render(&mut out.buf, |k, o, len| {
            let before = o.len();
            match k {
                Kw::CallId => o.put(&c.call_id),
                Kw::CallNumber => o.put_u64(c.number),
                Kw::Branch => {
                    o.put(b"z9hG4bK-");
                    o.put_hex(env.run_id);
                    o.put(b"-");
                    o.put_u64(u64::from(env.worker));
                    o.put(b"-");
                    o.put_hex(u64::from(slot));
                    o.put(b"-");
                    o.put_hex(u64::from(c.gen));
                    o.put(b"-");
                    o.put_u64(u64::from(c.branch));
                }
                Kw::Cseq => o.put_u64(u64::from(c.cseq.max(1))),
                Kw::Service if !c.service.is_empty() => o.put(&c.service),
                Kw::Service => o.put(env.service.as_bytes()),
                Kw::Field(i) => {
                    if let Some(f) = env
                        .numbers
                        .as_ref()
                        .and_then(|p| p.row_fields(c.row).get(*i))
                    {
                        o.put(f.as_bytes());
                    }
                }
                Kw::RemoteIp => put_host(o, peer),
                Kw::RemotePort => o.put_u64(u64::from(peer.port())),
                Kw::LocalIp | Kw::MediaIp => put_host(o, local),
                Kw::LocalPort => o.put_u64(u64::from(local.port())),
                Kw::LocalIpType | Kw::MediaIpType => {
                    o.put(if local.is_ipv4() { b"4" } else { b"6" })
                }
                Kw::MediaPort => o.put(b"6000"),
                Kw::Transport => o.put(b"UDP"),
                Kw::Pid => o.put_u64(u64::from(pid)),
                Kw::Len => o.put_u64(len as u64),
                Kw::PeerTagParam => {
                    if !c.remote_tag.is_empty() {
                        o.put(b";tag=");
                        o.put(&c.remote_tag);
                    }
                }
                Kw::Routes => {
                    if !c.routes.is_empty() {
                        o.put(b"Route: ");
                        o.put(&c.routes);
                    }
                }
                Kw::NextUrl => {
                    if c.next_url.is_empty() {
                        o.put(b"sip:");
                        o.put(if c.service.is_empty() {
                            env.service.as_bytes()
                        } else {
                            &c.service
                        });
                        o.put(b"@");
                        o.put_addr(peer);
                    } else {
                        o.put(&c.next_url);
                    }
                }
                Kw::Last(name) => {
                    if let Some(m) = &last {
                        let mut first = true;
                        for l in m.lines_named(name) {
                            if !first {
                                o.put(b"\r\n");
                            }
                            first = false;
                            o.put(m.get(l.line));
                        }
                    }
                }
            }
            o.len() > before
        });
        let sock = c.sock;
        out.finish(start, sock, peer);
        self.stats.sent += 1;
        let bytes_range = start..out.buf.len();
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if c.sent_list.len() >= REMEMBERED_MAX {
            return;
        }
        let s = c.sent.len();
        c.sent
            .extend_from_slice(out.buf.get(bytes_range).unwrap_or(&[]));
        c.sent_list.push(Sent {
            step: step as u16,
            start: s as u32,
            end: c.sent.len() as u32,
            response: !msg.is_request(),
            ack: method == Some(Method::Ack),
        });
        if let Some(first) = retrans {
            c.rt = Some(c.sent_list.len() - 1);
            c.rt_interval = first;
            c.rt_capped = method != Some(Method::Invite);
            c.rt_method = method;
            let t = self.env.timers.transaction_timeout();
            self.arm(slot, RETRANS, now + first);
            self.arm(slot, TXTIMEOUT, now + t);
        }
    }

    fn resend(&mut self, slot: u32, idx: usize, out: &mut Out) {
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let (Some(s), Some(peer)) = (c.sent_list.get(idx).copied(), c.peer) else {
            return;
        };
        let start = out.begin();
        out.buf
            .extend_from_slice(c.sent.get(s.start as usize..s.end as usize).unwrap_or(&[]));
        out.finish(start, c.sock, peer);
        self.stats.sent += 1;
        self.stats.retransmissions += 1;
    }

    /// Run the steps from the call's pc until it waits (recv, pause) or ends.
    fn advance(&mut self, now: Micros, slot: u32, out: &mut Out) {
        let sc = self.sc.clone();
        for _ in 0..SCENARIO_STEPS_MAX * 2 {
            let Some(c) = self.calls.get(slot as usize) else {
                return;
            };
            if !c.live || c.done {
                return;
            }
            let pc = c.pc;
            let Some(step) = sc.steps.get(pc) else {
                self.succeed(slot);
                self.release(slot);
                return;
            };
            match step {
                Step::Send { msg, retrans, next } => {
                    self.send(now, slot, pc, msg, *retrans, out);
                    self.goto(slot, next.unwrap_or(pc + 1));
                }
                Step::Recv { timeout, .. } => {
                    if let Some(t) = timeout {
                        self.arm(slot, RECVTIMEOUT, now + t);
                    }
                    return;
                }
                Step::Pause { ms, .. } => {
                    let d = ms.unwrap_or(self.env.pause);
                    let at = now + d;
                    let q = self.env.quantum;
                    if let Some(c) = self.calls.get_mut(slot as usize) {
                        c.intended_next = crate::time::grid_up(at, q);
                    }
                    self.arm(slot, PAUSE, at);
                    return;
                }
                Step::Nop { next } => self.goto(slot, next.unwrap_or(pc + 1)),
                Step::Timewait { ms } => {
                    self.succeed(slot);
                    self.arm(slot, TIMEWAIT, now + ms);
                    return;
                }
            }
        }
        // A jump loop without any wait: our limit, not the peer's fault.
        self.fail(slot, Fail::ScenarioTimeout);
    }

    fn goto(&mut self, slot: u32, pc: usize) {
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.pc = pc;
        }
    }

    fn on_msg(&mut self, now: Micros, slot: u32, m: &Msg, bytes: &[u8], out: &mut Out) {
        let h = hash64(bytes);
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        // A retransmission of a message we already matched?
        if let Some(&(_, step)) = c.recv_hashes.iter().find(|(x, _)| *x == h) {
            let idx = if m.is_request() {
                c.sent_list
                    .iter()
                    .rposition(|s| s.response && s.step > step)
            } else {
                c.sent_list
                    .iter()
                    .position(|s| s.step > step)
                    .filter(|&i| c.sent_list.get(i).is_some_and(|s| s.ack))
            };
            if let Some(i) = idx {
                self.resend(slot, i, out);
            }
            return;
        }
        if c.done {
            return; // timewait: only retransmissions matter
        }
        let sc = self.sc.clone();
        let mut found = None;
        for (i, st) in sc.steps.iter().enumerate().skip(c.pc) {
            match st {
                Step::Recv {
                    expect, optional, ..
                } => {
                    if expect_matches(expect, m) {
                        found = Some(i);
                        break;
                    }
                    if *optional == Optional::No {
                        break;
                    }
                }
                _ => break,
            }
        }
        if found.is_none() {
            found = sc.steps.iter().position(|st| matches!(st, Step::Recv { expect, optional: Optional::Global, .. } if expect_matches(expect, m)));
        }
        let Some(i) = found else {
            self.fail(slot, Fail::Unexpected);
            return;
        };
        let Some(Step::Recv {
            rrs, advance, next, ..
        }) = sc.steps.get(i)
        else {
            return;
        };
        let is_uas = sc.role == Role::Uas;
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if c.recv_hashes.len() < REMEMBERED_MAX {
            c.recv_hashes.push((h, i as u16));
        }
        c.last.clear();
        c.last.extend_from_slice(bytes);
        let tag = if m.is_request() {
            m.get(m.from_tag)
        } else {
            m.get(m.to_tag)
        };
        if !tag.is_empty() && (!is_uas || m.is_request()) {
            c.remote_tag.clear();
            c.remote_tag.extend_from_slice(tag);
        }
        if *rrs {
            c.routes.clear();
            let n = m.record_route_count.min(m.record_route.len());
            let order: Vec<usize> = if m.is_request() {
                (0..n).collect()
            } else {
                (0..n).rev().collect()
            };
            for (k, &j) in order.iter().enumerate() {
                if k > 0 {
                    c.routes.put(b", ");
                }
                c.routes
                    .put(m.get(m.record_route.get(j).copied().unwrap_or_default()));
            }
            c.next_url.clear();
            c.next_url.extend_from_slice(m.get(m.contact_uri));
        }
        // Latencies, from the intended send time of the request answered.
        if let Some(code) = m.code() {
            match m.cseq_method {
                Method::Invite => {
                    let at = c.invite_at;
                    let lat = if code == 100 && !c.got_100 {
                        c.got_100 = true;
                        Some(Lat::Trying)
                    } else if (180..190).contains(&code) && !c.got_18x {
                        c.got_18x = true;
                        Some(Lat::Ringing)
                    } else if (200..300).contains(&code) && !c.got_200 {
                        c.got_200 = true;
                        Some(Lat::Answer)
                    } else {
                        None
                    };
                    if let Some(l) = lat {
                        self.stats.record(l, at, self.rx);
                    }
                }
                Method::Bye if code >= 200 => self.stats.record(Lat::Bye, c.bye_at, self.rx),
                Method::Options if code >= 200 => {
                    self.stats.record(Lat::Options, c.options_at, self.rx)
                }
                _ => {}
            }
        }
        // Any match ends the retransmission of what we sent before, and a recv timeout.
        self.disarm(slot, &[RETRANS, TXTIMEOUT, RECVTIMEOUT]);
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.rt = None;
        }
        if *advance {
            self.goto(slot, next.unwrap_or(i + 1));
            if let Some(c) = self.calls.get_mut(slot as usize) {
                c.intended_next = now;
            }
            self.advance(now, slot, out);
        }
    }

    fn on_timer(&mut self, now: Micros, slot: u32, kind: u8, out: &mut Out) {
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if let Some(d) = c.deadline.get_mut(kind as usize) {
            *d = NEVER;
        }
        match kind {
            RETRANS => {
                let Some(idx) = c.rt else { return };
                let next = self.env.timers.next_interval(c.rt_interval, c.rt_capped);
                c.rt_interval = next;
                self.resend(slot, idx, out);
                self.arm(slot, RETRANS, now + next);
            }
            TXTIMEOUT => {
                let why = match c.rt_method {
                    Some(Method::Invite) => Fail::TimeoutInvite,
                    Some(Method::Bye) => Fail::TimeoutBye,
                    Some(Method::Options) => Fail::TimeoutOptions,
                    _ => Fail::ScenarioTimeout,
                };
                self.fail(slot, why);
            }
            PAUSE => {
                c.intended_next = c.intended_next.min(now);
                let pc = c.pc;
                let next = match self.sc.steps.get(pc) {
                    Some(Step::Pause { next, .. }) => next.unwrap_or(pc + 1),
                    _ => pc + 1,
                };
                self.goto(slot, next);
                self.advance(now, slot, out);
            }
            RECVTIMEOUT => {
                let pc = c.pc;
                match self.sc.steps.get(pc) {
                    Some(Step::Recv {
                        on_timeout: Some(l),
                        ..
                    }) => {
                        let l = *l;
                        self.goto(slot, l);
                        self.advance(now, slot, out);
                    }
                    _ => self.fail(slot, Fail::ScenarioTimeout),
                }
            }
            TIMEWAIT => self.release(slot),
            _ => {}
        }
    }
}

fn put_host(o: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => o.put_ip(std::net::IpAddr::V4(*v4.ip())),
        SocketAddr::V6(v6) => o.put_ip(std::net::IpAddr::V6(*v6.ip())),
    }
}

impl Engine for ScenarioEngine {
    fn on_datagram(
        &mut self,
        now: Micros,
        rx: Micros,
        sock: u16,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Out,
    ) {
        self.rx = rx;
        self.stats.received += 1;
        let m = match Msg::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.parse_errors += 1;
                return;
            }
        };
        let cid = m.get(m.call_id);
        let slot = match self.sc.role {
            Role::Uac => decode_call_id(cid)
                .filter(|r| r.run == self.env.run_id && r.worker == self.env.worker)
                .filter(|r| {
                    self.calls
                        .get(r.slot as usize)
                        .is_some_and(|c| c.live && c.gen == r.gen)
                })
                .map(|r| r.slot),
            Role::Uas => {
                let key = hash64(cid);
                match self.index.get(&key).copied().filter(|&s| {
                    self.calls
                        .get(s as usize)
                        .is_some_and(|c| c.live && c.call_id == cid)
                }) {
                    Some(s) => Some(s),
                    None => {
                        let first = matches!(self.sc.steps.first(), Some(Step::Recv { expect, .. }) if expect_matches(expect, &m));
                        if !first {
                            self.stats.stray += 1;
                            return;
                        }
                        let Some(slot) = self.alloc() else {
                            self.stats.uas_fail(Fail::UasTableFull);
                            return;
                        };
                        self.stats.uas_calls += 1;
                        self.stats.started += 1;
                        if let Some(c) = self.calls.get_mut(slot as usize) {
                            c.key = key;
                            c.call_id.extend_from_slice(cid);
                            c.sock = sock;
                            c.peer = Some(from);
                        }
                        self.index.insert(key, slot);
                        Some(slot)
                    }
                }
            }
        };
        match slot {
            Some(s) => self.on_msg(now, s, &m, bytes, out),
            None => self.stats.stray += 1,
        }
    }

    fn on_timeout(&mut self, now: Micros, out: &mut Out) {
        while let Some(e) = self.timers.pop_due(now) {
            let live = self.calls.get(e.slot as usize).is_some_and(|c| {
                c.live && c.gen == e.gen && c.deadline.get(e.kind as usize) == Some(&e.at)
            });
            if live {
                self.on_timer(now, e.slot, e.kind, out);
            }
        }
    }

    fn start_call(&mut self, now: Micros, intended: Micros, out: &mut Out) -> bool {
        if self.sc.role != Role::Uac {
            return false;
        }
        self.stats.started += 1;
        let Some(slot) = self.alloc() else {
            self.stats.fail(Fail::TableFull);
            return false;
        };
        let socks = self.env.local.len().max(1);
        let sock = (self.next_sock % socks) as u16;
        self.next_sock = self.next_sock.wrapping_add(1);
        let (run, worker, remote) = (self.env.run_id, self.env.worker, self.env.remote);
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return false;
        };
        c.sock = sock;
        c.peer = remote;
        c.intended_next = intended;
        c.invite_at = 0;
        c.call_id.put_hex(run);
        c.call_id.put(b"-");
        c.call_id.put_hex(u64::from(worker));
        c.call_id.put(b"-");
        c.call_id.put_hex(u64::from(slot));
        c.call_id.put(b"-");
        c.call_id.put_hex(u64::from(c.gen));
        c.call_id.put(b"@junction-load");
        self.advance(now, slot, out);
        true
    }

    fn next_deadline(&self) -> Option<Micros> {
        self.timers.next_deadline()
    }

    fn active(&self) -> u64 {
        self.active
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut Stats {
        self.stats.active = self.active;
        &mut self.stats
    }
}
