//! The built-in UAC: places calls (INVITE, ACK, hold, BYE), cancelled calls, or OPTIONS, as a
//! correct RFC 3261 UA over UDP: Timer A/B for the INVITE, E/F for BYE, CANCEL and OPTIONS,
//! ACK for every non-2xx final (same branch, hop by hop) and for every 2xx including
//! retransmissions (new branch, along the route set learnt from the 2xx's Record-Route, to the
//! remote target from its Contact), BYE along the same route set.
//!
//! Call-IDs carry the run, the worker, the call slot and its generation, so a response finds its
//! call without a hash table, and a response to a call long gone (a 2xx or 486 retransmitted
//! after we finished) is still ACKed, from the response alone.

use crate::limits::{CALLS_PER_WORKER_MAX, ROUTE_SET_MAX, TAG_MAX};
use crate::numbers::Rng;
use crate::sip::msg::{addr_uri, Msg, Span};
use crate::sip::uri::uri_addr;
use crate::sip::write::{parse_hex, Put};
use crate::sip::Method;
use crate::stats::{CodeOf, Fail, Lat, Stats};
use crate::time::Micros;
use crate::timer::{slots, Timed, TimerQueue};
use crate::ua::config::{UacConfig, UacScenario};
use crate::ua::oc::Oc;
use crate::ua::out::Out;
use crate::ua::text::sdp;
use crate::ua::Engine;
use std::net::SocketAddr;

const NEVER: Micros = Micros::MAX;

/// Timer kinds (index into `UacCall::deadline`).
const RETRANS: u8 = 0; // Timer A / E of the request in flight
const TIMEOUT: u8 = 1; // Timer B / F, or the wait for the 487 after a CANCEL
const HOLD: u8 = 2; // end of the hold time: send BYE
const ANSWER: u8 = 3; // answer timeout: CANCEL
const CANCEL: u8 = 4; // cancel scenario: CANCEL now
const KINDS: usize = 5;

/// Transaction numbers in branches.
const TX_INVITE: u64 = 1;
const TX_ACK2XX: u64 = 2;
const TX_BYE: u64 = 3;
const TX_OPTIONS: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional heard.
    Proceeding,
    /// CANCEL sent (`cancel_answered` once its final arrived); waiting for the INVITE's final.
    Cancelling,
    /// 2xx ACKed; holding.
    Established,
    /// BYE sent.
    Terminating,
    /// OPTIONS sent.
    Options,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelWhy {
    /// The scenario cancels: a 487 is the success.
    Scenario,
    /// Nobody answered in time: a failure whatever comes back.
    NoAnswer,
}

/// The dialog learnt from the 2xx: remote target, route set, remote tag, next hop.
#[derive(Default)]
struct Dialog {
    buf: Vec<u8>,
    target: (u32, u32),
    tag: (u32, u32),
    routes: [(u32, u32); ROUTE_SET_MAX],
    route_count: usize,
    dest: Option<SocketAddr>,
}

impl Dialog {
    fn part(&self, r: (u32, u32)) -> &[u8] {
        self.buf.get(r.0 as usize..r.1 as usize).unwrap_or(&[])
    }

    fn push(&mut self, b: &[u8]) -> (u32, u32) {
        let s = self.buf.len();
        self.buf.extend_from_slice(b);
        (s as u32, self.buf.len() as u32)
    }

    /// Learn from a 2xx to our INVITE (RFC 3261 12.1.2): the route set is the Record-Route in
    /// reverse order, the remote target the Contact URI, the remote tag the To tag.
    fn learn(&mut self, m: &Msg) {
        self.buf.clear();
        self.target = self.push(m.get(m.contact_uri));
        let tag = m.get(m.to_tag);
        self.tag = self.push(tag.get(..TAG_MAX.min(tag.len())).unwrap_or(&[]));
        self.route_count = 0;
        let n = m.record_route_count.min(ROUTE_SET_MAX);
        for i in (0..n).rev() {
            let r = m.record_route.get(i).copied().unwrap_or_default();
            let p = self.push(m.get(r));
            if let Some(slot) = self.routes.get_mut(self.route_count) {
                *slot = p;
                self.route_count += 1;
            }
        }
        let first = if self.route_count > 0 {
            self.routes.first().map(|&r| self.part(r))
        } else {
            None
        };
        self.dest = next_hop(first, self.part(self.target));
    }

    fn routes(&self) -> impl Iterator<Item = &[u8]> {
        self.routes
            .iter()
            .take(self.route_count)
            .map(|&r| self.part(r))
    }
}

/// Where an in-dialog request goes: the first route (loose routing), else the remote target.
fn next_hop(first_route: Option<&[u8]>, target: &[u8]) -> Option<SocketAddr> {
    match first_route {
        Some(r) => {
            let span = addr_uri(r, Span::new(0, r.len()));
            uri_addr(span.get(r))
        }
        None => uri_addr(target),
    }
}

struct UacCall {
    gen: u32,
    state: State,
    sock: u16,
    /// When the schedule wanted the INVITE (or OPTIONS) sent.
    intended: Micros,
    /// When the schedule wanted the current BYE sent (the end of the hold).
    bye_intended: Micros,
    deadline: [Micros; KINDS],
    interval: Micros,
    got_100: bool,
    got_18x: bool,
    got_provisional: bool,
    cancel_why: CancelWhy,
    cancel_answered: bool,
    lost_race: bool,
    dialog: Dialog,
    /// This call's called number (Request-URI and To user part).
    called: Vec<u8>,
    /// This call's calling number (From user part); empty: `junction-load`.
    calling: Vec<u8>,
    /// The line of the expectation file this call follows (`--expect`).
    expect: Option<u32>,
}

impl Timed for UacCall {
    fn gen(&self) -> u32 {
        self.gen
    }
    fn deadlines(&mut self) -> &mut [Micros] {
        &mut self.deadline
    }
}

impl UacCall {
    fn new() -> UacCall {
        UacCall {
            gen: 0,
            state: State::Free,
            sock: 0,
            intended: 0,
            bye_intended: 0,
            deadline: [NEVER; KINDS],
            interval: 0,
            got_100: false,
            got_18x: false,
            got_provisional: false,
            cancel_why: CancelWhy::Scenario,
            cancel_answered: false,
            lost_race: false,
            dialog: Dialog::default(),
            called: Vec::new(),
            calling: Vec::new(),
            expect: None,
        }
    }
}

pub struct Uac {
    cfg: UacConfig,
    calls: Vec<UacCall>,
    free: Vec<u32>,
    timers: TimerQueue,
    stats: Stats,
    active: u64,
    next_sock: usize,
    sdp: Vec<u8>,
    /// Kernel receive time of the datagram being handled (latencies end there).
    rx: Micros,
    /// RFC 7339 overload control state (used with `cfg.oc`).
    oc: Oc,
    /// Calls started by this worker: numbers are picked for call `counter * workers + worker`.
    counter: u64,
    rng: Rng,
}

/// The identifiers of a call of ours, decoded from its Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRef {
    pub run: u64,
    pub worker: u32,
    pub slot: u32,
    pub gen: u32,
}

const CALL_ID_SUFFIX: &[u8] = b"@junction-load";

/// The header a named UAS (`uas --listen ... --name TRUNK`) adds to its responses to an INVITE:
/// `TRUNK;called=USER;calling=USER`, what reached it.
pub const REACHED_HEADER: &[u8] = b"X-JL-Reached";

fn cfg_seed(cfg: &UacConfig) -> u64 {
    cfg.run_id ^ (u64::from(cfg.worker) << 48) ^ 0x9e37_79b9_7f4a_7c15
}

pub fn decode_call_id(b: &[u8]) -> Option<CallRef> {
    let b = b.strip_suffix(CALL_ID_SUFFIX)?;
    let mut it = b.split(|&c| c == b'-');
    let run = parse_hex(it.next()?)?;
    let worker = u32::try_from(parse_hex(it.next()?)?).ok()?;
    let slot = u32::try_from(parse_hex(it.next()?)?).ok()?;
    let gen = u32::try_from(parse_hex(it.next()?)?).ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(CallRef {
        run,
        worker,
        slot,
        gen,
    })
}

impl Uac {
    pub fn new(cfg: UacConfig) -> Uac {
        let seed = cfg_seed(&cfg);
        let ip = cfg
            .local
            .first()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Uac {
            sdp: sdp(ip),
            cfg,
            calls: Vec::new(),
            free: Vec::new(),
            timers: TimerQueue::default(),
            stats: Stats::new(),
            active: 0,
            next_sock: 0,
            rx: 0,
            oc: Oc::new(),
            counter: 0,
            rng: Rng::new(seed),
        }
    }

    /// Check the final response to call `slot`'s INVITE against its expectation (`--expect`);
    /// true when the call went where the plan says (an expected answer code is then a success).
    fn check(&mut self, slot: u32, m: &Msg, code: u16) -> bool {
        let Some(plan) = self.cfg.numbers.clone() else {
            return false;
        };
        let Some(c) = self.calls.get(slot as usize) else {
            return false;
        };
        let Some(e) = c
            .expect
            .and_then(|i| plan.expect.as_ref().and_then(|l| l.get(i as usize)))
        else {
            return false;
        };
        let reached = m.lines_named(REACHED_HEADER).next().map(|l| m.get(l.value));
        let verdict = crate::verify::judge(e, reached, code);
        let ok = verdict == crate::verify::Verdict::Ok;
        self.stats
            .check(verdict, || crate::verify::example(e, reached, code));
        ok
    }

    pub fn config(&self) -> &UacConfig {
        &self.cfg
    }

    fn local(&self, sock: u16) -> SocketAddr {
        self.cfg
            .local
            .get(sock as usize)
            .copied()
            .unwrap_or(self.cfg.target)
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
        if let Some(c) = self.calls.get_mut(slot as usize) {
            if c.state != State::Free {
                c.state = State::Free;
                c.deadline = [NEVER; KINDS];
                self.free.push(slot);
                self.active = self.active.saturating_sub(1);
            }
        }
    }

    fn succeed(&mut self, slot: u32) {
        self.stats.succeeded += 1;
        self.release(slot);
    }

    fn fail(&mut self, slot: u32, why: Fail) {
        self.stats.fail(why);
        self.trace(slot, why.name(), None);
        self.release(slot);
    }

    /// A final response `m` (with `code`) failed the call.
    fn fail_code(&mut self, slot: u32, of: CodeOf, code: u16, m: &[u8]) {
        self.stats.fail_code(of, code);
        self.trace(slot, "failure response", Some(m));
        self.release(slot);
    }

    /// `--trace-err`: the failed call's Call-ID, numbers, reason, and the message that ended it.
    fn trace(&mut self, slot: u32, why: &str, m: Option<&[u8]>) {
        if !self.cfg.trace_err {
            return;
        }
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let mut id = Vec::new();
        self.put_call_id(&mut id, slot, c.gen);
        let text = format!(
            "call {} (called {}, calling {}) failed: {why}\n{}\n",
            String::from_utf8_lossy(&id),
            String::from_utf8_lossy(&c.called),
            if c.calling.is_empty() {
                "-".into()
            } else {
                String::from_utf8_lossy(&c.calling)
            },
            match m {
                Some(b) => String::from_utf8_lossy(b).into_owned(),
                None => "(no message: a timer ended it)\n".into(),
            }
        );
        self.stats.trace_failure(|| text);
    }

    // ---- message text --------------------------------------------------------------------

    fn put_call_id(&self, b: &mut Vec<u8>, slot: u32, gen: u32) {
        b.put_hex(self.cfg.run_id);
        b.put(b"-");
        b.put_hex(u64::from(self.cfg.worker));
        b.put(b"-");
        b.put_hex(u64::from(slot));
        b.put(b"-");
        b.put_hex(u64::from(gen));
        b.put(CALL_ID_SUFFIX);
    }

    fn put_via(&self, b: &mut Vec<u8>, local: SocketAddr, slot: u32, gen: u32, tx: u64) {
        b.put(b"Via: SIP/2.0/UDP ");
        b.put_addr(local);
        b.put(b";branch=z9hG4bK");
        b.put_hex(self.cfg.run_id);
        b.put(b".");
        b.put_hex(u64::from(self.cfg.worker));
        b.put(b".");
        b.put_hex(u64::from(slot));
        b.put(b".");
        b.put_hex(u64::from(gen));
        b.put(b".");
        b.put_u64(tx);
        b.put(if self.cfg.oc {
            &b";rport;oc\r\n"[..]
        } else {
            b";rport\r\n"
        });
    }

    fn put_from(&self, b: &mut Vec<u8>, local: SocketAddr, slot: u32, gen: u32) {
        let calling = self
            .calls
            .get(slot as usize)
            .map_or(&[][..], |c| c.calling.as_slice());
        b.put(b"From: <sip:");
        b.put(if calling.is_empty() {
            b"junction-load"
        } else {
            calling
        });
        b.put(b"@");
        b.put_addr(local);
        b.put(b">;tag=");
        b.put_hex(u64::from(self.cfg.worker));
        b.put(b".");
        b.put_hex(u64::from(slot));
        b.put(b".");
        b.put_hex(u64::from(gen));
        b.put(b"\r\n");
    }

    fn put_request_uri(&self, b: &mut Vec<u8>, slot: u32) {
        let number = self
            .calls
            .get(slot as usize)
            .map_or(self.cfg.number.as_bytes(), |c| c.called.as_slice());
        b.put(b"sip:");
        b.put(number);
        b.put(b"@");
        b.put_addr(self.cfg.target);
    }

    /// INVITE, CANCEL or OPTIONS: out of dialog, to the target.
    fn send_initial(&mut self, out: &mut Out, slot: u32, method: Method) {
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let (sock, gen) = (c.sock, c.gen);
        let local = self.local(sock);
        let start = out.begin();
        let b = &mut out.buf;
        let m = method.as_str().as_bytes();
        b.put(m);
        b.put(b" ");
        self.put_request_uri(b, slot);
        b.put(b" SIP/2.0\r\n");
        let tx = if method == Method::Options {
            TX_OPTIONS
        } else {
            TX_INVITE
        };
        self.put_via(b, local, slot, gen, tx);
        b.put(b"Max-Forwards: 70\r\n");
        self.put_from(b, local, slot, gen);
        b.put(b"To: <");
        self.put_request_uri(b, slot);
        b.put(b">\r\nCall-ID: ");
        self.put_call_id(b, slot, gen);
        b.put(b"\r\nCSeq: 1 ");
        b.put(m);
        b.put(b"\r\n");
        if method == Method::Invite {
            b.put(b"Contact: <sip:junction-load@");
            b.put_addr(local);
            b.put(b">\r\nContent-Type: application/sdp\r\nContent-Length: ");
            b.put_u64(self.sdp.len() as u64);
            b.put(b"\r\n\r\n");
            b.put(&self.sdp);
        } else {
            b.put(b"Content-Length: 0\r\n\r\n");
        }
        out.finish(start, sock, self.cfg.target);
        self.stats.sent += 1;
    }

    /// An in-dialog request (ACK for a 2xx, or BYE) along `routes` to `target`.
    #[allow(clippy::too_many_arguments)]
    fn write_in_dialog(
        &self,
        out: &mut Out,
        sock: u16,
        dest: SocketAddr,
        method: Method,
        slot: u32,
        gen: u32,
        target: &[u8],
        routes: &[&[u8]],
        remote_tag: &[u8],
        cseq: u64,
    ) {
        let local = self.local(sock);
        let start = out.begin();
        let b = &mut out.buf;
        let m = method.as_str().as_bytes();
        b.put(m);
        b.put(b" ");
        b.put(target);
        b.put(b" SIP/2.0\r\n");
        let tx = if method == Method::Ack {
            TX_ACK2XX
        } else {
            TX_BYE
        };
        self.put_via(b, local, slot, gen, tx);
        for r in routes {
            b.put(b"Route: ");
            b.put(r);
            b.put(b"\r\n");
        }
        b.put(b"Max-Forwards: 70\r\n");
        self.put_from(b, local, slot, gen);
        b.put(b"To: <");
        self.put_request_uri(b, slot);
        b.put(b">;tag=");
        b.put(remote_tag);
        b.put(b"\r\nCall-ID: ");
        self.put_call_id(b, slot, gen);
        b.put(b"\r\nCSeq: ");
        b.put_u64(cseq);
        b.put(b" ");
        b.put(m);
        b.put(b"\r\nContent-Length: 0\r\n\r\n");
        out.finish(start, sock, dest);
    }

    /// ACK a 2xx from the 2xx alone (first answer or retransmission, call alive or not).
    fn ack_2xx(&mut self, out: &mut Out, sock: u16, m: &Msg, r: CallRef) -> bool {
        let mut routes: [&[u8]; ROUTE_SET_MAX] = [&[]; ROUTE_SET_MAX];
        let n = m.record_route_count.min(ROUTE_SET_MAX);
        for (i, slot) in routes.iter_mut().take(n).enumerate() {
            let span = m.record_route.get(n - 1 - i).copied().unwrap_or_default();
            *slot = m.get(span);
        }
        let target = m.get(m.contact_uri);
        let Some(dest) = next_hop(if n > 0 { Some(routes[0]) } else { None }, target) else {
            return false;
        };
        self.write_in_dialog(
            out,
            sock,
            dest,
            Method::Ack,
            r.slot,
            r.gen,
            target,
            &routes[..n],
            m.get(m.to_tag),
            u64::from(m.cseq_num),
        );
        self.stats.sent += 1;
        true
    }

    /// ACK a non-2xx final (RFC 3261 17.1.1.3): same branch and Via as the INVITE, the To of the
    /// response, to where the INVITE went; built from the response alone. With overload
    /// control the Via is the INVITE's own, rebuilt from the Call-ID (the response's carries
    /// the server's `oc` value, which is not ours to send back).
    fn ack_non_2xx(&mut self, out: &mut Out, sock: u16, m: &Msg, r: CallRef) {
        let local = self.local(sock);
        let start = out.begin();
        let b = &mut out.buf;
        b.put(b"ACK ");
        // The INVITE's Request-URI, which is our To URI (the call may be gone: a
        // retransmitted final after we finished).
        b.put(m.get(addr_uri(m.buf, m.to)));
        b.put(b" SIP/2.0\r\n");
        if self.cfg.oc {
            self.put_via(b, local, r.slot, r.gen, TX_INVITE);
        } else {
            b.put(b"Via: ");
            b.put(m.get(m.top_via));
            b.put(b"\r\n");
        }
        b.put(b"Max-Forwards: 70\r\nFrom: ");
        b.put(m.get(m.from));
        b.put(b"\r\nTo: ");
        b.put(m.get(m.to));
        b.put(b"\r\nCall-ID: ");
        b.put(m.get(m.call_id));
        b.put(b"\r\nCSeq: ");
        b.put_u64(u64::from(m.cseq_num));
        b.put(b" ACK\r\nContent-Length: 0\r\n\r\n");
        out.finish(start, sock, self.cfg.target);
        self.stats.sent += 1;
    }

    fn send_bye(&mut self, out: &mut Out, slot: u32) {
        let Some(c) = self.calls.get(slot as usize) else {
            return;
        };
        let Some(dest) = c.dialog.dest else { return };
        let mut routes: [&[u8]; ROUTE_SET_MAX] = [&[]; ROUTE_SET_MAX];
        let mut n = 0;
        for (dst, r) in routes.iter_mut().zip(c.dialog.routes()) {
            *dst = r;
            n += 1;
        }
        self.write_in_dialog(
            out,
            c.sock,
            dest,
            Method::Bye,
            slot,
            c.gen,
            c.dialog.part(c.dialog.target),
            &routes[..n],
            c.dialog.part(c.dialog.tag),
            2,
        );
        self.stats.sent += 1;
    }

    fn start_request_timers(&mut self, now: Micros, slot: u32) {
        let t1 = self.cfg.timers.t1;
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.interval = t1;
        }
        self.set_deadline(slot, TIMEOUT, now + self.cfg.timers.transaction_timeout());
        self.rearm_retrans(slot, now + t1);
    }

    fn send_cancel(&mut self, now: Micros, out: &mut Out, slot: u32, why: CancelWhy) {
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.state = State::Cancelling;
            c.cancel_why = why;
            c.cancel_answered = false;
        }
        self.disarm(slot, &[ANSWER, CANCEL]);
        self.send_initial(out, slot, Method::Cancel);
        self.start_request_timers(now, slot);
    }

    // ---- input -----------------------------------------------------------------------------

    fn on_response(&mut self, now: Micros, sock: u16, m: &Msg, code: u16, out: &mut Out) {
        let Some(r) = decode_call_id(m.get(m.call_id))
            .filter(|r| r.run == self.cfg.run_id && r.worker == self.cfg.worker)
        else {
            self.stats.stray += 1;
            return;
        };
        if self.cfg.oc {
            // Any response of ours carries the server's current value.
            self.oc.on_via(now, m.get(m.top_via));
        }
        let state = match self.calls.get(r.slot as usize) {
            Some(c) if c.gen == r.gen => c.state,
            _ => State::Free,
        };
        let slot = r.slot;
        match m.cseq_method {
            Method::Invite => self.on_invite_response(now, sock, m, code, r, state, out),
            Method::Cancel if code >= 200 && state == State::Cancelling => {
                // The CANCEL is done; the INVITE's final (487) is still to come.
                if let Some(c) = self.calls.get_mut(slot as usize) {
                    c.cancel_answered = true;
                }
                self.disarm(slot, &[RETRANS]);
                self.arm(slot, TIMEOUT, now + self.cfg.timers.transaction_timeout());
            }
            Method::Bye if code >= 200 && state == State::Terminating => {
                let (intended, lost_race) = match self.calls.get(slot as usize) {
                    Some(c) => (c.bye_intended, c.lost_race),
                    None => return,
                };
                if code < 300 {
                    self.stats.record(Lat::Bye, intended, self.rx);
                    if lost_race {
                        self.fail(slot, Fail::AnsweredBeforeCancel);
                    } else {
                        self.succeed(slot);
                    }
                } else {
                    self.fail_code(slot, CodeOf::Bye, code, m.buf);
                }
            }
            Method::Options if code >= 200 && state == State::Options => {
                let intended = self.calls.get(slot as usize).map_or(now, |c| c.intended);
                self.stats.record(Lat::Options, intended, self.rx);
                if code < 300 {
                    self.succeed(slot);
                } else {
                    self.fail_code(slot, CodeOf::Options, code, m.buf);
                }
            }
            _ => {
                // Provisionals to BYE/OPTIONS/CANCEL, and retransmitted finals of finished
                // transactions: nothing to do.
                if code >= 200 {
                    self.stats.stray += 1;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_invite_response(
        &mut self,
        now: Micros,
        sock: u16,
        m: &Msg,
        code: u16,
        r: CallRef,
        state: State,
        out: &mut Out,
    ) {
        let slot = r.slot;
        if code < 200 {
            if !matches!(state, State::Calling | State::Proceeding) {
                return;
            }
            let (intended, first_provisional, first_100, first_18x) = {
                let Some(c) = self.calls.get_mut(slot as usize) else {
                    return;
                };
                let first = !c.got_provisional;
                let f100 = code == 100 && !c.got_100;
                let f18x = (180..190).contains(&code) && !c.got_18x;
                c.got_provisional = true;
                c.got_100 |= code == 100;
                c.got_18x |= (180..190).contains(&code);
                c.state = State::Proceeding;
                (c.intended, first, f100, f18x)
            };
            if first_100 {
                self.stats.record(Lat::Trying, intended, self.rx);
            }
            if first_18x {
                self.stats.record(Lat::Ringing, intended, self.rx);
            }
            if first_provisional {
                // Proceeding: Timer A stops, Timer B no longer applies (RFC 3261 17.1.1.2).
                self.disarm(slot, &[RETRANS, TIMEOUT]);
                if self.cfg.answer_timeout > 0 {
                    self.arm(slot, ANSWER, now + self.cfg.answer_timeout);
                }
                if self.cfg.scenario == UacScenario::Cancel {
                    self.arm(slot, CANCEL, now + self.cfg.cancel_after);
                }
            }
            return;
        }
        let first_final = matches!(
            state,
            State::Calling | State::Proceeding | State::Cancelling
        );
        let as_planned = first_final && self.check(slot, m, code);
        if code >= 300 {
            self.ack_non_2xx(out, sock, m, r);
            match state {
                // The expectation file says junction answers this call so: a success.
                State::Calling | State::Proceeding if as_planned => self.succeed(slot),
                State::Calling | State::Proceeding => {
                    self.fail_code(slot, CodeOf::Invite, code, m.buf)
                }
                State::Cancelling => {
                    let why = self
                        .calls
                        .get(slot as usize)
                        .map_or(CancelWhy::Scenario, |c| c.cancel_why);
                    match (why, code) {
                        (CancelWhy::Scenario, 487) => self.succeed(slot),
                        (CancelWhy::NoAnswer, _) => self.fail(slot, Fail::NoAnswer),
                        _ => self.fail_code(slot, CodeOf::Invite, code, m.buf),
                    }
                }
                _ => {} // a retransmitted final, ACKed again
            }
            return;
        }
        // 2xx
        if !self.ack_2xx(out, sock, m, r) {
            if matches!(
                state,
                State::Calling | State::Proceeding | State::Cancelling
            ) {
                self.fail(slot, Fail::BadTarget);
            }
            return;
        }
        if !matches!(
            state,
            State::Calling | State::Proceeding | State::Cancelling
        ) {
            return; // a retransmitted 2xx: the ACK above answers it
        }
        let (intended, has_dest) = match self.calls.get_mut(slot as usize) {
            Some(c) => {
                c.dialog.learn(m);
                (c.intended, c.dialog.dest.is_some())
            }
            None => return,
        };
        if !has_dest {
            self.fail(slot, Fail::BadTarget);
            return;
        }
        self.disarm(slot, &[RETRANS, TIMEOUT, ANSWER, CANCEL]);
        let lost_race = state == State::Cancelling;
        if !lost_race {
            self.stats.record(Lat::Answer, intended, self.rx);
        }
        if let Some(c) = self.calls.get_mut(slot as usize) {
            c.state = State::Established;
            c.lost_race = lost_race;
        }
        // A CANCEL that lost the race with the answer: hang up at once.
        let bye_at = if lost_race { now } else { now + self.cfg.hold };
        self.arm(slot, HOLD, bye_at);
    }

    /// A request from the far end: a BYE (the UAS hangs up) ends an established call as a
    /// success; a BYE for a dialog we do not have gets 481; anything else is stray.
    fn on_request(&mut self, now: Micros, sock: u16, from: SocketAddr, m: &Msg, out: &mut Out) {
        let _ = now;
        if m.method() != Some(Method::Bye) {
            self.stats.stray += 1;
            return;
        }
        let ours = decode_call_id(m.get(m.call_id))
            .filter(|r| r.run == self.cfg.run_id && r.worker == self.cfg.worker);
        let slot = ours
            .filter(|r| {
                self.calls.get(r.slot as usize).is_some_and(|c| {
                    c.gen == r.gen && matches!(c.state, State::Established | State::Terminating)
                })
            })
            .map(|r| r.slot);
        match slot {
            Some(slot) => {
                crate::ua::text::response_from(out, m, 200, b"", b"", sock, from);
                self.stats.sent += 1;
                let lost_race = self.calls.get(slot as usize).is_some_and(|c| c.lost_race);
                if lost_race {
                    self.fail(slot, Fail::AnsweredBeforeCancel);
                } else {
                    self.succeed(slot);
                }
            }
            None => {
                // One of our calls that has ended (the far end retransmits its BYE because our
                // 200 was lost, or its BYE crossed ours): 200 again, from the request alone.
                // A dialog that was never ours: 481.
                let code = if ours.is_some() { 200 } else { 481 };
                crate::ua::text::response_from(out, m, code, b"", b"", sock, from);
                self.stats.sent += 1;
            }
        }
    }

    fn on_timer(&mut self, now: Micros, at: Micros, slot: u32, kind: u8, out: &mut Out) {
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return;
        };
        let state = c.state;
        if let Some(d) = c.deadline.get_mut(kind as usize) {
            *d = NEVER;
        }
        match (kind, state) {
            (RETRANS, State::Calling | State::Terminating | State::Options | State::Cancelling) => {
                let (method, capped) = match state {
                    State::Calling => (Method::Invite, false),
                    State::Terminating => (Method::Bye, true),
                    State::Options => (Method::Options, true),
                    _ => (Method::Cancel, true),
                };
                if state == State::Cancelling && c.cancel_answered {
                    return;
                }
                let interval = self.cfg.timers.next_interval(c.interval, capped);
                c.interval = interval;
                match method {
                    Method::Bye => self.send_bye(out, slot),
                    m => self.send_initial(out, slot, m),
                }
                self.stats.retransmissions += 1;
                self.rearm_retrans(slot, now + interval);
            }
            (TIMEOUT, State::Calling) => self.fail(slot, Fail::TimeoutInvite),
            (TIMEOUT, State::Terminating) => self.fail(slot, Fail::TimeoutBye),
            (TIMEOUT, State::Options) => self.fail(slot, Fail::TimeoutOptions),
            (TIMEOUT, State::Cancelling) => {
                let why = if c.cancel_answered {
                    Fail::No487
                } else {
                    Fail::TimeoutCancel
                };
                let why = if c.cancel_why == CancelWhy::NoAnswer {
                    Fail::NoAnswer
                } else {
                    why
                };
                self.fail(slot, why);
            }
            (HOLD, State::Established) => {
                c.state = State::Terminating;
                c.bye_intended = crate::time::grid_up(at, self.cfg.quantum).min(now);
                self.send_bye(out, slot);
                self.start_request_timers(now, slot);
            }
            (ANSWER, State::Proceeding) => self.send_cancel(now, out, slot, CancelWhy::NoAnswer),
            (CANCEL, State::Proceeding) => self.send_cancel(now, out, slot, CancelWhy::Scenario),
            _ => {}
        }
    }
}

impl Engine for Uac {
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
        match m.code() {
            Some(code) => self.on_response(now, sock, &m, code, out),
            None => self.on_request(now, sock, from, &m, out),
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
                self.on_timer(now, e.at, e.slot, e.kind, out);
            }
        }
    }

    fn start_call(&mut self, now: Micros, intended: Micros, out: &mut Out) -> bool {
        if self.cfg.oc && !self.oc.should_send(now) {
            // Withheld by overload control: rejected locally, never sent, as RFC 7339 has a client do.
            self.stats.started += 1;
            self.stats.throttled += 1;
            return false;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.calls.len() < CALLS_PER_WORKER_MAX => {
                self.calls.push(UacCall::new());
                (self.calls.len() - 1) as u32
            }
            None => {
                self.stats.started += 1;
                self.stats.fail(Fail::TableFull);
                return false;
            }
        };
        let socks = self.cfg.local.len().max(1);
        // With a tick, the calls of one turn share a source port and the port turns with
        // the grid: their datagrams then leave in one sendmmsg and their responses arrive in
        // one socket (a port per call cost a syscall per datagram, 3 to 4 times as many).
        // The 4-tuples still cycle through every port, one tick after another.
        let turn = match intended.checked_div(self.cfg.quantum) {
            Some(t) => t as usize,
            None => {
                let n = self.next_sock;
                self.next_sock = self.next_sock.wrapping_add(1);
                n
            }
        };
        let sock = (turn % socks) as u16;
        let scenario = self.cfg.scenario;
        let Some(c) = self.calls.get_mut(slot as usize) else {
            return false;
        };
        c.gen = c.gen.wrapping_add(1);
        c.state = if scenario == UacScenario::Options {
            State::Options
        } else {
            State::Calling
        };
        c.sock = sock;
        c.intended = intended;
        c.bye_intended = 0;
        c.deadline = [NEVER; KINDS];
        c.got_100 = false;
        c.got_18x = false;
        c.got_provisional = false;
        c.cancel_answered = false;
        c.lost_race = false;
        let n = self.counter * u64::from(self.cfg.workers.max(1)) + u64::from(self.cfg.worker);
        self.counter += 1;
        c.expect = match &self.cfg.numbers {
            Some(plan) => {
                plan.pick(n, &mut self.rng, &mut c.called, &mut c.calling)
                    .expect
            }
            None => {
                c.called.clear();
                c.called.extend_from_slice(self.cfg.number.as_bytes());
                c.calling.clear();
                None
            }
        };
        self.active += 1;
        self.stats.started += 1;
        let method = if scenario == UacScenario::Options {
            Method::Options
        } else {
            Method::Invite
        };
        self.send_initial(out, slot, method);
        self.start_request_timers(now, slot);
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
