//! Routed INVITEs and their attempts (ROUTING.md steps 2-6): normalize the numbers, walk the
//! attempt list with admission control, translate numbers per egress trunk, fail over on
//! 5xx/408/timeouts, and answer with the best final response when nothing is left.

use super::{Core, Forward};
use crate::routing::{Attempts, Decision, Number, TrunkId};
use crate::sip::dialog::CallState;
use crate::sip::header::HeaderName;
use crate::sip::rewrite::{self, ResponseEdits};
use crate::sip::scan::{Message, StartLine};
use crate::sip::transaction::{Id, Plan, ServerState};
use crate::sip::uri::{self, Scheme};
use crate::sip::Span;
use std::net::SocketAddr;
use std::time::Instant;

/// The user part of the URI in `uri` (a bare URI span).
pub(super) fn user_span(buf: &[u8], uri: Span) -> Option<Span> {
    uri::parse(buf, uri).ok()?.user
}

/// The user part of the URI in a name-addr header value.
fn name_addr_user(buf: &[u8], value: Span) -> Option<Span> {
    let (u, _) = uri::name_addr(buf, value).ok()?;
    user_span(buf, u)
}

/// The Q.850 cause of a response's `Reason: Q.850;cause=N` header, if any.
pub(super) fn reason_cause(buf: &[u8], msg: &Message) -> Option<u16> {
    msg.headers()
        .iter()
        .filter(|h| h.name == HeaderName::Reason)
        .find_map(|h| {
            let v = h.value.get(buf);
            let lower = v.to_ascii_lowercase();
            if !lower.starts_with(b"q.850") {
                return None;
            }
            let at = lower.windows(6).position(|w| w == b"cause=")? + 6;
            let digits = v.get(at..)?;
            let end = digits
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
        })
}

/// RFC 3261 16.7 step 6: is final response `new` better than `old`? A 6xx wins; otherwise
/// the lower class; within a class the first one received stays.
pub(super) fn better(new: u16, old: u16) -> bool {
    match (new / 100, old / 100) {
        (6, 6) => false,
        (6, _) => true,
        (_, 6) => false,
        (n, o) => n < o,
    }
}

/// The `Warning` (with `reason`) and `Retry-After` lines of a 503 for a temporary
/// condition of junction's own (overload, a full table, the memory cap), in one allocation.
pub(super) fn unavailable(reason: &str, retry_after_s: u32) -> String {
    if retry_after_s == 0 {
        format!("Warning: 399 junction \"{reason}\"\r\n")
    } else {
        format!("Warning: 399 junction \"{reason}\"\r\nRetry-After: {retry_after_s}\r\n")
    }
}

/// A `Warning` header line carrying junction's machine-readable reason (empty for none).
pub(super) fn warning(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!("Warning: 399 junction \"{reason}\"\r\n")
    }
}

impl Core {
    /// The extra lines of a response junction generates for `reason`: its Warning, and for
    /// a refusal on trunk limits (temporary) also Retry-After.
    pub(super) fn reason_lines(&self, reason: &str) -> String {
        if reason == "admission-refused" {
            unavailable(reason, self.routing.retry_after_s())
        } else {
            warning(reason)
        }
    }

    /// Ingress admission of a new call from trunk `ingress` (`max_calls_in`, `max_cps_in`,
    /// exact over all shards): `true` when it was refused, answered (`refuse_in_code`,
    /// default 503, with Retry-After where RFC 3261 allows it) and recorded. Admitted with
    /// a slot taken: the slot goes to `slot`, for the call to hold until it ends.
    pub(super) fn refused_in(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        from: SocketAddr,
        ingress: TrunkId,
        slot: &mut Option<std::sync::Arc<crate::trunks::TrunkState>>,
    ) -> bool {
        let (Some(tr), Some(s)) = (
            self.routing.trunk(ingress),
            self.states.get(ingress.0 as usize),
        ) else {
            return false;
        };
        let refusal = match s.admit_in(tr, now) {
            Ok(true) => {
                *slot = Some(s.clone());
                return false;
            }
            Ok(false) => return false,
            Err(r) => r,
        };
        let code = tr.refuse_in_code;
        let reason = refusal.reason();
        let extra = if matches!(code, 404 | 413 | 480 | 486 | 500 | 503 | 600 | 603) {
            unavailable(reason, self.routing.retry_after_s())
        } else {
            warning(reason)
        };
        self.reply_stateless(buf, msg, from, code, extra.as_bytes());
        self.rejected_call(now, buf, msg, ingress, code, reason);
        true
    }

    /// Normalize the numbers with the ingress trunk's rules and route the called number.
    /// Err: the status and machine-readable reason to answer with.
    pub(super) fn plan(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
        parsed: &uri::Uri,
    ) -> Result<(Plan, Attempts), (u16, &'static str)> {
        // Only the reject route this call meets sets a phrase (a CANCEL's routing must not
        // leave one behind for the next refusal).
        self.reject_phrase = None;
        let table = self.routing.clone();
        let states = self.states.clone();
        let raw_called = parsed.user.map_or(&[][..], |u| u.get(buf));
        let raw_called = match raw_called.iter().position(|&c| c == b';') {
            Some(i) => raw_called.get(..i).unwrap_or(raw_called),
            None => raw_called,
        };
        let raw_calling = user_span(buf, msg.from.uri).map_or(&[][..], |u| u.get(buf));
        let mut called = Vec::new();
        let mut calling = Vec::new();
        table.normalize(ingress, Number::Called, raw_called, &mut called);
        table.normalize(ingress, Number::Calling, raw_calling, &mut calling);
        self.rotation = self.rotation.wrapping_add(1);
        let usable = |t: TrunkId| match (states.get(t.0 as usize), table.trunk(t)) {
            (Some(s), Some(tr)) => s.usable() && !s.full(tr),
            _ => true,
        };
        // Time-of-day windows: wall-clock seconds derived from `now` (never the clock).
        let unix_secs = (self.config.wall.unix_ms(now) / 1000) as i64;
        match table.route_at(ingress, &called, self.rotation, &usable, unix_secs) {
            Decision::Route { route, attempts } => {
                if let Some(cid) = table.route_caller_id(route) {
                    calling.clear();
                    calling.extend_from_slice(cid);
                }
                Ok((
                    Plan {
                        table: table.clone(),
                        states: states.clone(),
                        called,
                        calling,
                    },
                    attempts,
                ))
            }
            Decision::NoRoute => {
                self.stats.rejected_no_route += 1;
                Err((404, "no-route"))
            }
            Decision::Reject { route } => {
                // A reject route (`action = "reject"`): its code, and its reason phrase
                // for the response (`reject_phrase`).
                let reject = table.route_reject(route);
                self.reject_phrase = reject.and_then(|r| r.reason.clone());
                Err((reject.map_or(403, |r| r.code), "route-reject"))
            }
            Decision::NoTrunk => {
                // Down, or full? Full trunks mean admission refused (503 + Retry-After).
                let up = |t: TrunkId| states.get(t.0 as usize).is_none_or(|s| s.usable());
                if matches!(
                    table.route_at(ingress, &called, self.rotation, &up, unix_secs),
                    Decision::Route { .. }
                ) {
                    self.stats.rejected_admission += 1;
                    Err((503, "admission-refused"))
                } else {
                    self.stats.rejected_no_route += 1;
                    Err((503, "no-usable-trunk"))
                }
            }
        }
    }

    /// The Request-URI for trunk `t` at `dest` into `self.uri_buf`: the called number after
    /// the trunk's outbound translation, at the trunk's address.
    pub(super) fn write_request_uri(
        &mut self,
        buf: &[u8],
        parsed: &uri::Uri,
        plan: &Plan,
        t: TrunkId,
        dest: SocketAddr,
    ) {
        plan.table
            .translate(t, Number::Called, &plan.called, &mut self.num_a);
        self.uri_buf.clear();
        self.uri_buf
            .extend_from_slice(if parsed.scheme == Scheme::Sips {
                b"sips:"
            } else {
                b"sip:"
            });
        if !self.num_a.is_empty() {
            self.uri_buf.extend_from_slice(&self.num_a);
            self.uri_buf.push(b'@');
        }
        rewrite::write_hostport(&mut self.uri_buf, dest);
        if parsed.scheme == Scheme::Tel {
            self.uri_buf.extend_from_slice(b";user=phone");
        } else {
            self.uri_buf.extend_from_slice(parsed.params.get(buf));
        }
    }

    /// Send the routed request of server transaction `st_id` (received as `buf`/`msg`) to
    /// its next usable, admitting trunk; answer upstream when none is left.
    pub(super) fn next_attempt(&mut self, now: Instant, st_id: Id, buf: &[u8], msg: &Message) {
        let StartLine::Request { uri: ruri, .. } = msg.start else {
            return;
        };
        let Ok(parsed) = uri::parse(buf, ruri) else {
            return;
        };
        loop {
            let Some(st) = self.txns.servers.get_mut(st_id) else {
                return;
            };
            if !matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
                return;
            }
            if st.cancelled {
                let request = std::mem::take(&mut st.request);
                self.answer_from_request(now, st_id, &request, 487, "");
                return;
            }
            let Some(t) = st.attempts.get(st.attempt as usize) else {
                self.attempts_exhausted(now, st_id);
                return;
            };
            st.attempt += 1;
            let invite = st.invite;
            let Some(plan) = st.plan.take() else {
                return;
            };
            let trunk = plan.table.trunk(t);
            let dest = trunk.and_then(|tr| tr.send_to);
            let state = plan.states.get(t.0 as usize);
            let mut refused_by = None;
            let admitted = match (trunk, dest, state) {
                (Some(tr), Some(_), Some(s)) if s.usable() => {
                    if invite {
                        match s.admit(tr, now) {
                            Ok(()) => Some(Some(s.clone())),
                            Err(_) => {
                                st.refused = true;
                                self.stats.rejected_admission += 1;
                                refused_by = Some(tr.name.clone());
                                None
                            }
                        }
                    } else {
                        Some(None)
                    }
                }
                (Some(_), Some(_), None) => Some(None),
                _ => None,
            };
            let (Some(admitted), Some(dest), Some(trunk)) = (admitted, dest, trunk) else {
                st.plan = Some(plan);
                if let Some(name) = refused_by {
                    self.attempt_refused(&name);
                }
                continue;
            };
            st.admitted = admitted;
            let (forward_pai, progress) = (trunk.forward_pai, trunk.progress_timeout);
            let call = st.call;
            self.write_request_uri(buf, &parsed, &plan, t, dest);
            plan.table
                .translate(t, Number::Calling, &plan.calling, &mut self.num_b);
            let calling = std::mem::take(&mut self.num_b);
            let mut replace: [(Span, &[u8]); 2] = [(Span::EMPTY, &[]); 2];
            let mut n_replace = 0;
            let from_user = user_span(buf, msg.from.uri);
            if let Some(u) = from_user.filter(|u| u.get(buf) != &calling[..]) {
                replace[0] = (u, &calling[..]);
                n_replace = 1;
            }
            let mut delete: [Span; 1] = [Span::EMPTY];
            let mut n_delete = 0;
            if let Some(pai) = msg
                .headers()
                .iter()
                .find(|h| h.name == HeaderName::PAssertedIdentity)
            {
                if !forward_pai {
                    delete[0] = pai.line;
                    n_delete = 1;
                } else if let Some(u) = name_addr_user(buf, pai.value) {
                    if u.get(buf) != &calling[..] {
                        if let Some(slot) = replace.get_mut(n_replace) {
                            *slot = (u, &calling[..]);
                            n_replace += 1;
                        }
                    }
                }
            }
            // Remember the translation so responses and in-dialog requests are restored.
            if let Some(c) = call.and_then(|id| self.calls.get_mut(id)) {
                c.egress = Some(t);
                c.callee = dest;
                match from_user {
                    Some(u) if u.get(buf) != &calling[..] => {
                        c.from_user_orig = u.get(buf).into();
                        c.from_user_new = calling[..].into();
                    }
                    _ => {
                        c.from_user_orig = Box::default();
                        c.from_user_new = Box::default();
                    }
                }
            }
            let uri_buf = std::mem::take(&mut self.uri_buf);
            let fwd = Forward {
                dest,
                egress: Some(t),
                invite,
                pop_route: msg
                    .route_first
                    .is_some_and(|r| self.points_at_us(buf, r.value)),
                record_route: msg.to.tag.is_none()
                    && matches!(
                        msg.start,
                        StartLine::Request {
                            method: crate::sip::Method::Invite
                                | crate::sip::Method::Subscribe
                                | crate::sip::Method::Refer
                                | crate::sip::Method::Notify,
                            ..
                        }
                    ),
                new_uri: Some(&uri_buf),
                source: self.txns.servers.get(st_id).map_or(dest, |s| s.source),
                replace: replace.get(..n_replace).unwrap_or(&[]),
                delete: delete.get(..n_delete).unwrap_or(&[]),
                progress: (invite && !progress.is_zero()).then_some(progress),
                loop_hash: Some(self.loop_hash(buf, msg)),
            };
            let name = trunk.name.clone();
            if let Some(st) = self.txns.servers.get_mut(st_id) {
                st.plan = Some(plan);
            }
            if self.forward_stateful(now, buf, msg, st_id, &fwd).is_some() && invite {
                let called = std::mem::take(&mut self.num_a);
                self.attempt_started(now, call, &name, &called, &calling);
                self.num_a = called;
            }
            self.uri_buf = uri_buf;
            self.num_b = calling;
            return;
        }
    }

    /// The current attempt of `st_id` ended with final `code` (from trunk `egress`; the
    /// response itself when there was one, `None` for a timeout): fail over, or answer.
    pub(super) fn branch_failed(
        &mut self,
        now: Instant,
        st_id: Id,
        egress: Option<TrunkId>,
        code: u16,
        response: Option<(&[u8], &Message)>,
    ) {
        let Some(st) = self.txns.servers.get_mut(st_id) else {
            return;
        };
        if !matches!(st.state, ServerState::Trying | ServerState::Proceeding) {
            return;
        }
        st.client = None;
        if let Some(s) = st.admitted.take() {
            s.answered();
            s.ended();
        }
        let call = st.call;
        let Some(plan) = st.plan.as_ref() else {
            if let Some((b, m)) = response {
                self.relay_final(now, st_id, b, m, code, "");
            }
            return;
        };
        let cause = response.and_then(|(b, m)| reason_cause(b, m));
        let code = egress.map_or(code, |t| plan.table.translate_response(t, code, cause));
        let recorded = if response.is_some() { code } else { 0 };
        let keep = st.best.as_ref().is_none_or(|(old, _)| better(code, *old));
        if keep {
            st.best = Some((code, response.map(|(b, _)| b.to_vec()).unwrap_or_default()));
        }
        let may_retry = (code == 408 || (500..600).contains(&code))
            && !st.cancelled
            && (!st.provisional_relayed || plan.table.failover_after_provisional());
        self.attempt_final(now, call, recorded);
        let Some(st) = self.txns.servers.get_mut(st_id) else {
            return;
        };
        if !may_retry {
            match response {
                Some((b, m)) => self.relay_final(now, st_id, b, m, code, ""),
                None => {
                    let request = std::mem::take(&mut st.request);
                    let code = if st.cancelled { 487 } else { code };
                    self.answer_from_request(now, st_id, &request, code, "");
                }
            }
            return;
        }
        if (st.attempt as usize) < st.attempts.len() {
            self.stats.failovers += 1;
            self.attempt_failover(call);
            let Some(st) = self.txns.servers.get_mut(st_id) else {
                return;
            };
            let request = std::mem::take(&mut st.request);
            self.with_scanned(&request, |core, req| {
                core.next_attempt(now, st_id, &request, req);
            });
            if let Some(st) = self.txns.servers.get_mut(st_id) {
                st.request = request;
            }
        } else {
            self.attempts_exhausted(now, st_id);
        }
    }

    /// No attempt left: the best final response received (RFC 3261 16.7), or 503 saying
    /// why (admission refused: with Retry-After).
    fn attempts_exhausted(&mut self, now: Instant, st_id: Id) {
        let Some(st) = self.txns.servers.get_mut(st_id) else {
            return;
        };
        let best = st.best.take();
        let refused = st.refused;
        let request = std::mem::take(&mut st.request);
        match best {
            Some((code, bytes)) if !bytes.is_empty() => {
                self.with_scanned(&bytes, |core, resp| {
                    core.relay_final(now, st_id, &bytes, resp, code, "all-attempts-failed");
                });
            }
            Some((code, _)) => {
                self.answer_from_request(now, st_id, &request, code, "all-attempts-failed")
            }
            None if refused => {
                self.answer_from_request(now, st_id, &request, 503, "admission-refused")
            }
            None => self.answer_from_request(now, st_id, &request, 503, "no-usable-trunk"),
        }
    }

    /// Answer `st_id` with a response we generate from the request it received.
    pub(super) fn answer_from_request(
        &mut self,
        now: Instant,
        st_id: Id,
        request: &[u8],
        code: u16,
        reason: &'static str,
    ) {
        let call = self.txns.servers.get(st_id).and_then(|s| s.call);
        self.note_final(call, code, reason);
        let extra = self.reason_lines(reason);
        self.with_scanned(request, |core, req| {
            core.answer_upstream(now, st_id, request, req, usize::MAX, code, extra.as_bytes());
        });
    }

    /// Relay final response `msg` upstream as `code` (translated), with a Warning when
    /// `reason` is set, the caller's own From restored.
    pub(super) fn relay_final(
        &mut self,
        now: Instant,
        st_id: Id,
        buf: &[u8],
        msg: &Message,
        code: u16,
        reason: &'static str,
    ) {
        let StartLine::Response { code: received, .. } = msg.start else {
            return;
        };
        let Some(st) = self.txns.servers.get(st_id) else {
            return;
        };
        if msg.via_count < 2 {
            // No Via left once ours is removed: it was meant for us (RFC 3261 16.7 step 3).
            // Answer the caller from its own request instead (or let the transaction's
            // safety timer end it).
            self.stats.dropped_stray += 1;
            let request = self
                .txns
                .servers
                .get_mut(st_id)
                .map(|st| std::mem::take(&mut st.request))
                .unwrap_or_default();
            if !request.is_empty() {
                self.answer_from_request(now, st_id, &request, code, reason);
            }
            return;
        }
        let (to, invite, call) = (st.reply_to, st.invite, st.call);
        let trunk = st.ingress.is_some();
        if invite {
            self.note_final(call, code, reason);
        }
        let extra = warning(reason);
        let swap = self.response_swap(st_id, buf, msg);
        let replace = swap.as_ref().map(|(s, b)| [(*s, &b[..])]);
        let oc = self.oc_for(msg.second_via.as_ref(), |_| trunk);
        let edits = ResponseEdits {
            status: (code != received).then_some(code),
            replace: replace.as_ref().map_or(&[][..], |a| &a[..]),
            insert: extra.as_bytes(),
            oc: &oc,
        };
        let r = rewrite::forward_response(buf, msg, &edits, &mut self.splice, &mut self.out);
        if let Some(st) = self.txns.servers.get_mut(st_id) {
            st.last_response.clear();
            st.last_response
                .extend_from_slice(self.out.get(r.clone()).unwrap_or(&[]));
        }
        self.stats.responses_forwarded += 1;
        self.queue(to, r);
        self.server_completed(now, st_id, code, invite);
        if invite || call.is_some() {
            self.set_call_state(now, call, CallState::Terminated);
        }
    }

    /// For a response relayed through `st_id`: the span and bytes that restore the
    /// calling-number translation of its call for the side the response goes to.
    pub(super) fn response_swap(
        &self,
        st_id: Id,
        buf: &[u8],
        msg: &Message,
    ) -> Option<(Span, Box<[u8]>)> {
        let st = self.txns.servers.get(st_id)?;
        let call_id = self.calls.find(msg.call_id.get(buf))?;
        let c = self.calls.get(call_id)?;
        if c.from_user_new.is_empty() {
            return None;
        }
        // Toward the caller: From carries the translated number; toward the callee (its
        // own in-dialog requests answered by the caller), To carries the caller's.
        let (uri, want, put) = if st.from_caller {
            (msg.from.uri, &c.from_user_new, &c.from_user_orig)
        } else {
            (msg.to.uri, &c.from_user_orig, &c.from_user_new)
        };
        let u = user_span(buf, uri).filter(|u| u.get(buf) == &want[..])?;
        Some((u, put.clone()))
    }
}
