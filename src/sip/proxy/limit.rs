//! Maximum call duration (`max_duration_s` on the ingress trunk, the egress trunk or the
//! route that answered; the smallest applies): when an answered call reaches it, junction
//! ends it with a BYE to each side, as a proxy that holds the dialog can (RFC 3261 12.2.1.1,
//! 16.12): Request-URI the side's Contact, its part of the route set (the Record-Route
//! entries on its side of junction's own), From and To as that side knows them (tags
//! included), and a CSeq above any that side's peer used. The CDR says `ended_by = "limit"`.
//!
//! What the BYEs need is copied when the call is answered, and only for calls with a cap
//! (a boxed `CallLimit` on the call; calls without one pay a null pointer). In-dialog
//! requests keep the CSeqs current.

use super::{name_addr_addr, uri_addr, Core};
use crate::sip::cdr::EndedBy;
use crate::sip::dialog::CallState;
use crate::sip::header::HeaderName;
use crate::sip::scan::Message;
use crate::sip::timer;
use crate::sip::transaction::{ClientTxn, Id, TimerKey, TimerKind, TimerTarget};
use crate::sip::{uri, Span};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One side's BYE, as far as it is known at answer time.
#[derive(Debug)]
pub struct LegBye {
    pub dest: SocketAddr,
    pub request_uri: Box<[u8]>,
    /// `Route: ...\r\n` lines (empty: none).
    pub routes: Box<[u8]>,
    /// `From: ...\r\n` and `To: ...\r\n` as this side knows them.
    pub from: Box<[u8]>,
    pub to: Box<[u8]>,
    /// The highest CSeq the other side used toward this one (ours goes above it).
    pub cseq: u32,
}

/// A call's cap and its two BYEs.
#[derive(Debug)]
pub struct CallLimit {
    pub at: Instant,
    pub callee: LegBye,
    pub caller: LegBye,
}

/// The entries of every Record-Route header of `msg`, in order (commas inside `<>` or
/// quotes do not split).
fn record_routes(buf: &[u8], msg: &Message) -> Vec<Span> {
    let mut out = Vec::new();
    for h in msg
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::RecordRoute)
    {
        let v = h.value.get(buf);
        let base = h.value.start as usize;
        let (mut depth, mut quoted, mut start) = (0u32, false, 0usize);
        for (i, &c) in v.iter().enumerate() {
            match c {
                b'"' => quoted = !quoted,
                b'<' if !quoted => depth += 1,
                b'>' if !quoted => depth = depth.saturating_sub(1),
                b',' if !quoted && depth == 0 => {
                    out.push(trimmed(v, base, start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(trimmed(v, base, start, v.len()));
    }
    out.retain(|s| !s.is_empty());
    out
}

fn trimmed(v: &[u8], base: usize, mut start: usize, mut end: usize) -> Span {
    while start < end && v.get(start).is_some_and(|c| c.is_ascii_whitespace()) {
        start += 1;
    }
    while end > start && v.get(end - 1).is_some_and(|c| c.is_ascii_whitespace()) {
        end -= 1;
    }
    Span::new(base + start, base + end)
}

/// `Name: value\r\n` for a header value.
fn line(name: &str, buf: &[u8], value: Span) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.get(buf));
    out.extend_from_slice(b"\r\n");
    out.into_boxed_slice()
}

/// The URI of a Contact value (name-addr or bare addr-spec).
fn contact_uri(buf: &[u8], contact: Span) -> Option<Span> {
    uri::name_addr(buf, contact).ok().map(|(u, _)| u)
}

impl Core {
    /// The cap of a call from `ingress` answered by `egress` on `route`: the smallest
    /// `max_duration_s` of the three.
    fn call_cap(
        &self,
        ingress: Option<crate::routing::TrunkId>,
        egress: Option<crate::routing::TrunkId>,
        route: Option<u16>,
    ) -> Option<Duration> {
        let table = &self.routing;
        let trunk = |t: Option<crate::routing::TrunkId>| {
            t.and_then(|t| table.trunk(t)).and_then(|t| t.max_duration)
        };
        [
            trunk(ingress),
            trunk(egress),
            route.and_then(|r| table.route_max_duration(r)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Call `call` was answered by 2xx `msg` to the INVITE of server transaction `st_id`
    /// (whose request is still held), sent to trunk `egress`: if a cap applies, copy what its
    /// BYEs need and arm it.
    pub(super) fn arm_limit(
        &mut self,
        now: Instant,
        st_id: Id,
        call: Option<Id>,
        egress: Option<crate::routing::TrunkId>,
        buf: &[u8],
        msg: &Message,
    ) {
        let Some(call) = call else {
            return;
        };
        let Some(st) = self.txns.servers.get(st_id) else {
            return;
        };
        let route = st.attempts.route((st.attempt as usize).saturating_sub(1));
        let Some(cap) = self.call_cap(st.ingress, egress, route) else {
            return;
        };
        let request = st.request.clone();
        let Some((caller_addr, callee_addr)) = self.calls.get(call).map(|c| (c.caller, c.callee))
        else {
            return;
        };
        // The response's Record-Route entries: ours, those before it (toward the callee,
        // nearest last) and those after it (toward the caller, nearest first).
        let entries = record_routes(buf, msg);
        let ours = entries.iter().position(|e| self.points_at_us(buf, *e));
        let (toward_callee, toward_caller): (Vec<Span>, Vec<Span>) = match ours {
            Some(i) => (
                entries
                    .get(..i)
                    .unwrap_or(&[])
                    .iter()
                    .rev()
                    .copied()
                    .collect(),
                entries.get(i + 1..).unwrap_or(&[]).to_vec(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let routes = |list: &[Span]| -> Box<[u8]> {
            let mut out = Vec::new();
            for r in list {
                out.extend_from_slice(b"Route: ");
                out.extend_from_slice(r.get(buf));
                out.extend_from_slice(b"\r\n");
            }
            out.into_boxed_slice()
        };
        let to_value = msg.headers.get(msg.to.header).map(|h| h.value);
        let from_value = msg.headers.get(msg.from.header).map(|h| h.value);
        let (Some(to_value), Some(from_value)) = (to_value, from_value) else {
            return;
        };
        let callee_uri = msg.contact.and_then(|c| contact_uri(buf, c));
        let callee = LegBye {
            dest: toward_callee
                .first()
                .and_then(|r| name_addr_addr(buf, *r))
                .or_else(|| callee_uri.and_then(|u| uri_addr(buf, u)))
                .unwrap_or(callee_addr),
            request_uri: callee_uri.map_or_else(
                || format!("sip:{callee_addr}").into_bytes().into(),
                |u| u.get(buf).into(),
            ),
            routes: routes(&toward_callee),
            from: line("From", buf, from_value),
            to: line("To", buf, to_value),
            cseq: msg.cseq,
        };
        // Toward the caller: its own From (from its INVITE, untranslated) is our To, the
        // callee's To (with its tag) our From; its Contact our Request-URI.
        let caller = self.with_scanned(&request, |_, req| {
            let uri = req.contact.and_then(|c| contact_uri(&request, c));
            let their_from = req.headers.get(req.from.header).map(|h| h.value)?;
            Some(LegBye {
                dest: toward_caller
                    .first()
                    .and_then(|r| name_addr_addr(buf, *r))
                    .or_else(|| uri.and_then(|u| uri_addr(&request, u)))
                    .unwrap_or(caller_addr),
                request_uri: uri.map_or_else(
                    || format!("sip:{caller_addr}").into_bytes().into(),
                    |u| u.get(&request).into(),
                ),
                routes: routes(&toward_caller),
                from: line("From", buf, to_value),
                to: line("To", &request, their_from),
                // The callee has sent nothing yet; its first request may use any number.
                cseq: 0,
            })
        });
        let Some(Some(caller)) = caller else {
            return;
        };
        let at = now + cap;
        if let Some(c) = self.calls.get_mut(call) {
            c.limit = Some(Box::new(CallLimit { at, callee, caller }));
        }
        self.txns.wheel.insert(
            at,
            TimerKey {
                target: TimerTarget::Call(call),
                kind: TimerKind::ProxyC,
                deadline: at,
            },
        );
    }

    /// An in-dialog request of `call` went from one side to the other with CSeq `cseq`:
    /// the BYE junction may send that way later goes above it.
    pub(super) fn note_cseq(&mut self, call: Option<Id>, from_caller: bool, cseq: u32) {
        let Some(l) = call
            .and_then(|id| self.calls.get_mut(id))
            .and_then(|c| c.limit.as_deref_mut())
        else {
            return;
        };
        let leg = if from_caller {
            &mut l.callee
        } else {
            &mut l.caller
        };
        leg.cseq = leg.cseq.max(cseq);
    }

    /// The cap timer of `call` fired: an answered call still up is ended with a BYE to
    /// each side.
    pub(super) fn limit_timer(&mut self, now: Instant, call: Id) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.state != CallState::Confirmed || c.limit.as_ref().is_none_or(|l| l.at > now) {
            return;
        }
        let Some(limit) = c.limit.take() else {
            return;
        };
        c.ended_by = Some(EndedBy::Limit);
        let call_id = c.call_id.clone();
        self.send_bye(now, &limit.callee, &call_id);
        self.send_bye(now, &limit.caller, &call_id);
        self.set_call_state(now, Some(call), CallState::Terminated);
    }

    /// Send one BYE of a capped call, as a client transaction of its own (its response is
    /// absorbed; it retransmits until answered or Timer F).
    fn send_bye(&mut self, now: Instant, leg: &LegBye, call_id: &[u8]) {
        let ct_id = self
            .txns
            .clients
            .insert(ClientTxn::new(false, leg.dest, None, None));
        self.write_via(false, |v| {
            let _ = write!(v, "{:x}.{:x}", ct_id.idx, ct_id.gen);
        });
        let start = self.out.len();
        self.out.extend_from_slice(b"BYE ");
        self.out.extend_from_slice(&leg.request_uri);
        self.out.extend_from_slice(b" SIP/2.0\r\n");
        self.out.extend_from_slice(&self.via_line);
        self.out.extend_from_slice(&leg.routes);
        self.out.extend_from_slice(b"Max-Forwards: 70\r\n");
        self.out.extend_from_slice(&leg.from);
        self.out.extend_from_slice(&leg.to);
        self.out.extend_from_slice(b"Call-ID: ");
        self.out.extend_from_slice(call_id);
        let _ = write!(
            self.out,
            "\r\nCSeq: {} BYE\r\nReason: SIP;cause=200;text=\"maximum call duration\"\r\n\
             Content-Length: 0\r\n\r\n",
            leg.cseq.saturating_add(1)
        );
        let end = self.out.len();
        let bytes = self.out.get(start..end).unwrap_or(&[]).to_vec();
        if let Some(ct) = self.txns.clients.get_mut(ct_id) {
            ct.request = bytes;
        }
        self.stats.requests_forwarded += 1;
        self.queue(leg.dest, start..end);
        let t = TimerTarget::Client(ct_id);
        self.txns.arm(t, TimerKind::Retransmit, now + timer::T1);
        self.txns.arm(t, TimerKind::Timeout, now + timer::T1_X64);
    }
}
