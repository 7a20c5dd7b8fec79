//! The built-in UAS: answers INVITEs with a configurable mix of final responses, at once,
//! after a ring time, or never; copies Record-Route into its 18x and 2xx (RFC 3261 12.1.1);
//! retransmits its final response (2xx: 13.3.1.4, non-2xx: Timer G) until the ACK, gives up
//! after 64*T1 (Timer H); answers retransmitted INVITEs with its last response, CANCEL with
//! 200 + 487, BYE with 200 (and keeps the call 64*T1 to answer BYE retransmissions), OPTIONS
//! with 200, unknown dialogs with 481.
//!
//! Requests answered without call state (BYE, CANCEL, OPTIONS, 481s) are answered from the
//! request itself, so their retransmissions get the same answer without anything stored.

use crate::limits::CALLS_PER_WORKER_MAX;
use crate::sip::msg::{classify, Hdr, Msg};
use crate::sip::write::Put;
use crate::sip::Method;
use crate::stats::{Fail, Stats};
use crate::time::{Micros, SEC};
use crate::timer::{slots, Timed, TimerQueue};
use crate::ua::config::UasConfig;
use crate::ua::out::Out;
use crate::ua::text::{hash64, reason, response_from, sdp};
use crate::ua::Engine;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

const NEVER: Micros = Micros::MAX;

/// The user part of a SIP URI (`sip:USER@host;...`), empty when it has none. Bytes that
/// could break the header line it is copied into (`;`, white space) end it.
fn uri_user(uri: &[u8]) -> &[u8] {
    let rest = uri
        .strip_prefix(b"sip:")
        .or_else(|| uri.strip_prefix(b"sips:"))
        .or_else(|| uri.strip_prefix(b"tel:"))
        .unwrap_or(uri);
    let user = match rest.iter().position(|&b| b == b'@') {
        Some(at) => rest.get(..at).unwrap_or(&[]),
        // tel:NUMBER;params: the number is the whole URI.
        None if uri.starts_with(b"tel:") => rest,
        None => return &[],
    };
    let end = user
        .iter()
        .position(|&b| b == b';' || b == b':' || b.is_ascii_whitespace() || b < 0x20)
        .unwrap_or(user.len());
    user.get(..end).unwrap_or(&[])
}

const RETRANS: u8 = 0; // 2xx retransmission / Timer G
const TIMEOUT: u8 = 1; // Timer H: no ACK
const ANSWER: u8 = 2; // end of the ring time: send the final response
const LINGER: u8 = 3; // forget the call
const HANGUP: u8 = 4; // the UAS's own hang-up: send BYE
const KINDS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Provisional sent, final pending (or never coming).
    Proceeding,
    /// Final sent, waiting for the ACK.
    Completed,
    /// 2xx ACKed, waiting for the BYE.
    Confirmed,
    /// Our BYE sent (Timer E/F), waiting for its final response.
    Hangup,
    /// Done; kept to answer retransmissions.
    Lingering,
}

/// The table is keyed by a 64-bit hash of the Call-ID already: no need to hash again.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

struct UasCall {
    gen: u32,
    state: State,
    key: u64,
    sock: u16,
    peer: SocketAddr,
    /// The lines every response to the INVITE repeats: Via..., From, To (with our tag),
    /// Call-ID, CSeq; then from `rr_at` the Record-Route lines (for 18x and 2xx only).
    echo: Vec<u8>,
    rr_at: usize,
    call_id: (u32, u32),
    code: u16,
    /// The last response sent to the INVITE (0: none).
    last: u16,
    interval: Micros,
    deadline: [Micros; KINDS],
    /// The Contact URI of the INVITE: where our own BYE goes when no route set.
    contact: Vec<u8>,
    /// A named UAS: the `X-JL-Reached` line every response but 100 carries.
    reached: Vec<u8>,
}

impl Timed for UasCall {
    fn gen(&self) -> u32 {
        self.gen
    }
    fn deadlines(&mut self) -> &mut [Micros] {
        &mut self.deadline
    }
}

pub struct Uas {
    cfg: UasConfig,
    calls: Vec<UasCall>,
    free: Vec<u32>,
    index: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    timers: TimerQueue,
    stats: Stats,
    active: u64,
    answered: u64,
    sdp: Vec<u8>,
    /// `--record` lines not yet appended to the file.
    record_buf: Vec<u8>,
}

/// Bytes of `--record` lines an engine gathers before it appends them to the file.
const RECORD_FLUSH: usize = 64 * 1024;

impl Drop for Uas {
    fn drop(&mut self) {
        self.flush_record();
    }
}

impl Uas {
    pub fn new(cfg: UasConfig) -> Uas {
        let ip = cfg
            .local
            .first()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Uas {
            sdp: sdp(ip),
            cfg,
            calls: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            timers: TimerQueue::default(),
            stats: Stats::new(),
            active: 0,
            answered: 0,
            record_buf: Vec::new(),
        }
    }

    fn flush_record(&mut self) {
        use std::io::Write;
        if self.record_buf.is_empty() {
            return;
        }
        if let Some(f) = &self.cfg.record {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = f.write_all(&self.record_buf) {
                eprintln!("junction-load: --record: {e}");
            }
        }
        self.record_buf.clear();
    }

    fn local(&self, sock: u16) -> SocketAddr {
        self.cfg
            .local
            .get(sock as usize)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    fn arm(&mut self, slot: u32, kind: u8, at: Micros) {
        slots::arm(&mut self.calls, &mut self.timers, slot, kind, at);
    }

    fn set_deadline(&mut self, slot: u32, kind: u8, at: Micros) {
        slots::set_deadline(&mut self.calls, slot, kind, at);
    }

    fn rearm_retrans(&mut self, slot: u32, at: Micros) {
        slots::rearm_retrans(
            &mut self.calls,
            &mut self.timers,
            slot,
            (RETRANS, TIMEOUT),
            at,
        );
    }

    fn disarm(&mut self, slot: u32, kinds: &[u8]) {
        slots::disarm(&mut self.calls, slot, kinds);
    }

    fn release(&mut self, slot: u32) {
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if c.state == State::Free {
            return;
        }
        if c.state != State::Lingering {
            self.active = self.active.saturating_sub(1);
        }
        c.state = State::Free;
        c.deadline = [NEVER; KINDS];
        if self.index.get(&c.key) == Some(&slot) {
            self.index.remove(&c.key);
        }
        self.free.push(slot);
    }

    /// Enter Lingering: the call is over, kept for `linger` to absorb retransmissions.
    fn linger(&mut self, now: Micros, slot: u32, linger: Micros) {
        if let Some(c) = self.calls.get_mut(slot as usize) {
            if c.state != State::Lingering {
                self.active = self.active.saturating_sub(1);
            }
            c.state = State::Lingering;
            c.deadline = [NEVER; KINDS];
        }
        self.arm(slot, LINGER, now + linger);
    }

    fn lookup(&self, m: &Msg) -> Option<u32> {
        let cid = m.get(m.call_id);
        let slot = *self.index.get(&hash64(cid))?;
        let c = self.calls.get(slot as usize)?;
        let stored = c.echo.get(c.call_id.0 as usize..c.call_id.1 as usize)?;
        (stored == cid && c.state != State::Free).then_some(slot)
    }

    fn tag(&self, b: &mut Vec<u8>, slot: u32, gen: u32) {
        b.put(b"jl");
        b.put_hex(self.cfg.run_id & 0xffff_ffff);
        b.put(b".");
        b.put_hex(u64::from(slot));
        b.put(b".");
        b.put_hex(u64::from(gen));
    }

    /// Copy what every response to this INVITE repeats (received at `now`).
    fn fill_echo(
        &self,
        now: Micros,
        slot: u32,
        gen: u32,
        m: &Msg,
        echo: &mut Vec<u8>,
    ) -> (usize, (u32, u32)) {
        echo.clear();
        let mut call_id = (0, 0);
        let mut top_via = true;
        for l in m.headers() {
            match classify(m.get(l.name)) {
                Hdr::Via => {
                    let first = std::mem::take(&mut top_via);
                    match self.cfg.oc_reduce {
                        Some(reduce) if first => answer_oc(m.get(l.line), reduce, now, echo),
                        _ => echo.put(m.get(l.line)),
                    }
                    echo.put(b"\r\n");
                }
                Hdr::From | Hdr::CSeq => {
                    echo.put(m.get(l.line));
                    echo.put(b"\r\n");
                }
                Hdr::CallId => {
                    echo.put(b"Call-ID: ");
                    let s = echo.len();
                    echo.put(m.get(l.value));
                    call_id = (s as u32, echo.len() as u32);
                    echo.put(b"\r\n");
                }
                Hdr::To => {
                    echo.put(m.get(l.line));
                    if m.to_tag.is_empty() {
                        echo.put(b";tag=");
                        self.tag(echo, slot, gen);
                    }
                    echo.put(b"\r\n");
                }
                _ => {}
            }
        }
        let rr_at = echo.len();
        for l in m.headers() {
            if classify(m.get(l.name)) == Hdr::RecordRoute {
                echo.put(m.get(l.line));
                echo.put(b"\r\n");
            }
        }
        (rr_at, call_id)
    }

    /// A response to the INVITE of call `slot`, from its echo.
    fn respond(&mut self, out: &mut Out, slot: u32, code: u16) {
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let local = self.local(c.sock);
        let start = out.begin();
        let b = &mut out.buf;
        b.put(b"SIP/2.0 ");
        b.put_u64(u64::from(code));
        b.put(b" ");
        b.put(reason(code));
        b.put(b"\r\n");
        let with_rr = (101..300).contains(&code);
        let end = if with_rr { c.echo.len() } else { c.rr_at };
        b.put(c.echo.get(..end).unwrap_or(&[]));
        if code > 100 {
            b.put(b"Contact: <sip:");
            b.put_addr(local);
            b.put(b">\r\n");
            b.put(&c.reached);
        }
        if (200..300).contains(&code) {
            b.put(b"Content-Type: application/sdp\r\nContent-Length: ");
            b.put_u64(self.sdp.len() as u64);
            b.put(b"\r\n\r\n");
            b.put(&self.sdp);
        } else {
            b.put(b"Content-Length: 0\r\n\r\n");
        }
        let (sock, peer) = (c.sock, c.peer);
        out.finish(start, sock, peer);
        self.stats.sent += 1;
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.last = code;
        }
    }

    fn send_final(&mut self, now: Micros, out: &mut Out, slot: u32, code: u16) {
        self.respond(out, slot, code);
        self.stats.uas_answer(code);
        let t1 = self.cfg.timers.t1;
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.state = State::Completed;
            c.interval = t1;
        }
        self.disarm(slot, &[ANSWER, LINGER]);
        self.set_deadline(slot, TIMEOUT, now + self.cfg.timers.transaction_timeout());
        self.rearm_retrans(slot, now + t1);
    }

    fn on_invite(&mut self, now: Micros, sock: u16, from: SocketAddr, m: &Msg, out: &mut Out) {
        if let Some(slot) = self.lookup(m) {
            // A retransmission (or a re-INVITE, which these scenarios never send): repeat the
            // last response while the transaction lives.
            let (state, last) = self
                .calls
                .get(slot as usize)
                .map_or((State::Free, 0), |c| (c.state, c.last));
            if matches!(state, State::Proceeding | State::Completed) && last != 0 {
                self.respond(out, slot, last);
                self.stats.retransmissions += 1;
            }
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.calls.len() < CALLS_PER_WORKER_MAX => {
                self.calls.push(UasCall {
                    gen: 0,
                    state: State::Free,
                    key: 0,
                    sock: 0,
                    peer: from,
                    echo: Vec::new(),
                    rr_at: 0,
                    call_id: (0, 0),
                    code: 0,
                    last: 0,
                    interval: 0,
                    deadline: [NEVER; KINDS],
                    contact: Vec::new(),
                    reached: Vec::new(),
                });
                (self.calls.len() - 1) as u32
            }
            None => {
                self.stats.uas_fail(Fail::UasTableFull);
                response_from(out, m, 503, b"jl-full", b"", sock, from);
                self.stats.sent += 1;
                return;
            }
        };
        let code = self.cfg.code_for(self.answered);
        self.answered += 1;
        let key = hash64(m.get(m.call_id));
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        c.gen = c.gen.wrapping_add(1);
        let gen = c.gen;
        let mut echo = std::mem::take(&mut c.echo);
        let (rr_at, call_id) = self.fill_echo(now, slot, gen, m, &mut echo);
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        c.echo = echo;
        c.rr_at = rr_at;
        c.call_id = call_id;
        c.state = State::Proceeding;
        c.key = key;
        c.sock = sock;
        c.peer = from;
        c.code = code;
        c.last = 0;
        c.deadline = [NEVER; KINDS];
        c.contact.clear();
        c.contact.extend_from_slice(m.get(m.contact_uri));
        c.reached.clear();
        if let Some(name) = &self.cfg.name {
            let b = &mut c.reached;
            b.put(crate::ua::uac::REACHED_HEADER);
            b.put(b": ");
            b.put(name.as_bytes());
            b.put(b";called=");
            if let crate::sip::msg::StartLine::Request { uri, .. } = m.start {
                b.put(uri_user(m.get(uri)));
            }
            let from = uri_user(m.get(crate::sip::msg::addr_uri(m.buf, m.from)));
            if !from.is_empty() {
                b.put(b";calling=");
                b.put(from);
            }
            b.put(b"\r\n");
            self.stats.trunk_call(name);
            if self.cfg.record.is_some() {
                let r = &mut self.record_buf;
                r.put(name.as_bytes());
                r.put(b"\t");
                r.put(m.get(m.call_id));
                r.put(b"\t");
                if let crate::sip::msg::StartLine::Request { uri, .. } = m.start {
                    r.put(uri_user(m.get(uri)));
                }
                r.put(b"\t");
                let from = uri_user(m.get(crate::sip::msg::addr_uri(m.buf, m.from)));
                r.put(if from.is_empty() { b"-" } else { from });
                r.put(b"\n");
            }
        }
        if self.record_buf.len() >= RECORD_FLUSH {
            self.flush_record();
        }
        self.index.insert(key, slot);
        self.active += 1;
        self.stats.uas_calls += 1;
        if self.cfg.never || self.cfg.ring > 0 {
            self.respond(out, slot, 100);
            if self.cfg.ringing {
                self.respond(out, slot, 180);
            }
            if self.cfg.never {
                self.arm(slot, LINGER, now + self.cfg.dialog_max);
            } else {
                self.arm(slot, ANSWER, now + self.cfg.ring);
            }
        } else {
            if self.cfg.ringing {
                self.respond(out, slot, 180);
            }
            self.send_final(now, out, slot, code);
        }
    }

    fn on_request(
        &mut self,
        now: Micros,
        sock: u16,
        from: SocketAddr,
        m: &Msg,
        method: Method,
        out: &mut Out,
    ) {
        match method {
            Method::Invite => self.on_invite(now, sock, from, m, out),
            Method::Ack => {
                let Some(slot) = self.lookup(m) else {
                    self.stats.stray += 1;
                    return;
                };
                let (state, last) = self
                    .calls
                    .get(slot as usize)
                    .map_or((State::Free, 0), |c| (c.state, c.last));
                if state != State::Completed {
                    return; // an ACK retransmission
                }
                if (200..300).contains(&last) {
                    if let Some(c) = self.calls.get_mut(slot as usize) {
                        c.state = State::Confirmed;
                    }
                    self.disarm(slot, &[RETRANS, TIMEOUT]);
                    self.arm(slot, LINGER, now + self.cfg.dialog_max);
                    if let Some(h) = self.cfg.hangup {
                        self.arm(slot, HANGUP, now + h);
                    }
                } else {
                    // Timer I: T4 for unreliable transports.
                    self.linger(now, slot, self.cfg.timers.t4);
                }
            }
            Method::Bye => match self.lookup(m) {
                Some(slot) => {
                    let local = self.local(sock);
                    let contact = contact_line(local);
                    response_from(out, m, 200, b"", &contact, sock, from);
                    self.stats.sent += 1;
                    let state = self
                        .calls
                        .get(slot as usize)
                        .map_or(State::Free, |c| c.state);
                    if state != State::Lingering {
                        self.stats.uas_completed += 1;
                        // Timer J: absorb BYE retransmissions for 64*T1.
                        self.linger(now, slot, self.cfg.timers.transaction_timeout());
                    } else {
                        self.stats.retransmissions += 1;
                    }
                }
                None => {
                    response_from(out, m, 481, b"jl-481", b"", sock, from);
                    self.stats.sent += 1;
                }
            },
            Method::Cancel => match self.lookup(m) {
                Some(slot) => {
                    response_from(out, m, 200, b"", b"", sock, from);
                    self.stats.sent += 1;
                    let state = self
                        .calls
                        .get(slot as usize)
                        .map_or(State::Free, |c| c.state);
                    if state == State::Proceeding {
                        self.send_final(now, out, slot, 487);
                    }
                }
                None => {
                    response_from(out, m, 481, b"jl-481", b"", sock, from);
                    self.stats.sent += 1;
                }
            },
            Method::Options => {
                response_from(
                    out,
                    m,
                    200,
                    b"jl-options",
                    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nAccept: application/sdp\r\n",
                    sock,
                    from,
                );
                self.stats.sent += 1;
                self.stats.uas_answer(200);
            }
            Method::Other => {
                response_from(out, m, 501, b"jl-501", b"", sock, from);
                self.stats.sent += 1;
            }
        }
    }

    fn on_timer(&mut self, now: Micros, slot: u32, kind: u8, out: &mut Out) {
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        if let Some(d) = c.deadline.get_mut(kind as usize) {
            *d = NEVER;
        }
        let (state, code, last, interval) = (c.state, c.code, c.last, c.interval);
        match (kind, state) {
            (ANSWER, State::Proceeding) => self.send_final(now, out, slot, code),
            (HANGUP, State::Confirmed) => {
                if let Some(c) = self.calls.get_mut(slot as usize) {
                    c.state = State::Hangup;
                    c.interval = self.cfg.timers.t1;
                }
                self.disarm(slot, &[LINGER]);
                self.send_bye(out, slot);
                self.set_deadline(slot, TIMEOUT, now + self.cfg.timers.transaction_timeout());
                self.rearm_retrans(slot, now + self.cfg.timers.t1);
            }
            (RETRANS, State::Hangup) => {
                self.send_bye(out, slot);
                self.stats.retransmissions += 1;
                let next = self.cfg.timers.next_interval(interval, true);
                if let Some(c) = self.calls.get_mut(slot as usize) {
                    c.interval = next;
                }
                self.rearm_retrans(slot, now + next);
            }
            (TIMEOUT, State::Hangup) => {
                self.stats.uas_fail(Fail::TimeoutBye);
                self.release(slot);
            }
            (RETRANS, State::Completed) => {
                self.respond(out, slot, last);
                self.stats.retransmissions += 1;
                let next = self.cfg.timers.next_interval(interval, true);
                if let Some(c) = self.calls.get_mut(slot as usize) {
                    c.interval = next;
                }
                self.rearm_retrans(slot, now + next);
            }
            (TIMEOUT, State::Completed) => {
                self.stats.uas_fail(Fail::UasNoAck);
                self.release(slot);
            }
            (LINGER, _) => self.release(slot),
            _ => {}
        }
    }
}

impl Uas {
    /// A final response to our own BYE ends the call.
    fn on_response(&mut self, now: Micros, m: &Msg) {
        let code = m.code().unwrap_or(0);
        let slot = self.lookup(m).filter(|&s| {
            self.calls
                .get(s as usize)
                .is_some_and(|c| c.state == State::Hangup)
        });
        match slot {
            Some(slot) if m.cseq_method == Method::Bye && code >= 200 => {
                if code < 300 {
                    self.stats.uas_completed += 1;
                } else {
                    self.stats.uas_fail(Fail::UasByeRefused);
                }
                self.linger(now, slot, self.cfg.timers.t4);
            }
            Some(_) => {}
            None => self.stats.stray += 1,
        }
    }

    /// Our BYE for call `slot` (RFC 3261 12.2.1.1 from the UAS side): From is the INVITE's To
    /// with our tag, To the INVITE's From, the route set is the INVITE's Record-Route in order,
    /// the Request-URI its Contact; sent to the first route, else the Contact, else the peer.
    fn send_bye(&mut self, out: &mut Out, slot: u32) {
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        // The echo holds the INVITE's Via, From, To (tagged), Call-ID, CSeq and Record-Route
        // lines: read them back as a message.
        let mut text = Vec::with_capacity(c.echo.len() + 24);
        text.put(b"SIP/2.0 200 OK\r\n");
        text.put(&c.echo);
        text.put(b"\r\n");
        let Ok(inv) = Msg::parse(&text) else { return };
        let routes: Vec<&[u8]> = (0..inv.record_route_count)
            .filter_map(|i| inv.record_route.get(i).map(|s| inv.get(*s)))
            .collect();
        let dest = routes
            .first()
            .and_then(|r| {
                let span = crate::sip::msg::addr_uri(r, crate::sip::Span::new(0, r.len()));
                crate::sip::uri::uri_addr(span.get(r))
            })
            .or_else(|| crate::sip::uri::uri_addr(&c.contact))
            .unwrap_or(c.peer);
        let target: &[u8] = if c.contact.is_empty() {
            b"sip:junction-load@127.0.0.1"
        } else {
            &c.contact
        };
        let local = self.local(c.sock);
        let start = out.begin();
        let b = &mut out.buf;
        b.put(b"BYE ");
        b.put(target);
        b.put(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
        b.put_addr(local);
        b.put(b";branch=z9hG4bK-jlbye.");
        b.put_hex(self.cfg.run_id);
        b.put(b".");
        b.put_hex(u64::from(slot));
        b.put(b".");
        b.put_hex(u64::from(c.gen));
        b.put(b";rport\r\n");
        for r in &routes {
            b.put(b"Route: ");
            b.put(r);
            b.put(b"\r\n");
        }
        b.put(b"Max-Forwards: 70\r\nFrom: ");
        b.put(inv.get(inv.to));
        b.put(b"\r\nTo: ");
        b.put(inv.get(inv.from));
        b.put(b"\r\nCall-ID: ");
        b.put(inv.get(inv.call_id));
        b.put(b"\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n");
        let sock = c.sock;
        out.finish(start, sock, dest);
        self.stats.sent += 1;
    }
}

/// Append the top Via header `line` with its offer of overload control (the first valueless
/// `oc` parameter of its first via-parm) answered as an overloaded RFC 7339 server would:
/// `oc=reduce;oc-algo="loss";oc-validity=500;oc-seq=<now>` (seconds.5 digits, so that later
/// values are newer). A line that offers nothing is appended as it is.
pub fn answer_oc(line: &[u8], reduce: u8, now: Micros, out: &mut Vec<u8>) {
    let first = line.iter().position(|&b| b == b',').unwrap_or(line.len());
    let top = line.get(..first).unwrap_or(line);
    let offer = (0..top.len()).find(|&i| {
        top.get(i..i + 3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b";oc"))
            && top
                .get(i + 3)
                .map_or(true, |b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
    });
    let Some(at) = offer else {
        out.put(line);
        return;
    };
    out.put(line.get(..at).unwrap_or(&[]));
    out.put(b";oc=");
    out.put_u64(u64::from(reduce.min(100)));
    out.put(b";oc-algo=\"loss\";oc-validity=500;oc-seq=");
    out.put_u64(now / SEC);
    out.put(b".");
    let frac = (now % SEC) / 10;
    for d in [10_000, 1_000, 100, 10, 1] {
        out.put(&[b'0' + (frac / d % 10) as u8]);
    }
    out.put(line.get(at + 3..).unwrap_or(&[]));
}

fn contact_line(local: SocketAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.put(b"Contact: <sip:");
    v.put_addr(local);
    v.put(b">\r\n");
    v
}

impl Engine for Uas {
    fn on_datagram(
        &mut self,
        now: Micros,
        _rx: Micros,
        sock: u16,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Out,
    ) {
        self.stats.received += 1;
        let m = match Msg::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.parse_errors += 1;
                return;
            }
        };
        match m.method() {
            Some(method) => self.on_request(now, sock, from, &m, method, out),
            None => self.on_response(now, &m),
        }
    }

    fn on_timeout(&mut self, now: Micros, out: &mut Out) {
        while let Some(e) = self.timers.pop_due(now) {
            let live = self.calls.get(e.slot as usize).is_some_and(|c| {
                c.gen == e.gen
                    && c.state != State::Free
                    && c.deadline.get(e.kind as usize) == Some(&e.at)
            });
            if live {
                self.on_timer(now, e.slot, e.kind, out);
            }
        }
    }

    fn start_call(&mut self, _now: Micros, _intended: Micros, _out: &mut Out) -> bool {
        false
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

#[cfg(test)]
mod tests {
    use super::uri_user;

    #[test]
    fn user_parts() {
        assert_eq!(uri_user(b"sip:2125551234@10.0.0.1:5060"), b"2125551234");
        assert_eq!(uri_user(b"sip:+12125551234;npdi@h"), b"+12125551234");
        assert_eq!(uri_user(b"sips:alice:secret@h"), b"alice");
        assert_eq!(
            uri_user(b"tel:+12125551234;phone-context=x"),
            b"+12125551234"
        );
        assert_eq!(uri_user(b"sip:10.0.0.1:5060"), b"");
        assert_eq!(uri_user(b"sip:a b@h"), b"a");
    }
}
