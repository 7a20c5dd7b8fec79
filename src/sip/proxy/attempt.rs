//! Routed INVITEs and their attempts (docs/routing.md steps 2-6): normalize the numbers, walk the
//! attempt list with admission control, translate numbers per egress trunk, fail over on
//! 5xx/408/timeouts, and answer with the best final response when nothing is left.

use super::{Core, Forward};
use crate::routing::walk::Quiet;
use crate::routing::{Attempts, Decision, HeaderPolicy, Number, TrunkId};
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

/// The From that replaces a withheld caller's toward an untrusted trunk (RFC 3323 4.1.1.3).
pub(super) const ANONYMOUS_FROM: &[u8] = b"\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// RFC 3323: `anonymous` is no number; it is never normalized, translated or replaced.
pub(super) fn is_anonymous(user: &[u8]) -> bool {
    user.eq_ignore_ascii_case(b"anonymous")
}

/// Where a call's calling-number swap applies in From or To (`side`): its user part, or
/// its whole name-addr (`whole`: an anonymized From).
pub(super) fn swap_span(
    buf: &[u8],
    msg: &Message,
    side: &crate::sip::scan::NameAddr,
    whole: bool,
) -> Option<Span> {
    if whole {
        let h = msg.headers.get(side.header)?;
        name_addr_span(buf, h.value)
    } else {
        user_span(buf, side.uri)
    }
}

/// The name-addr of a From or To header value (display name and `<uri>`, or the bare URI),
/// without its header parameters (`;tag=...`).
pub(super) fn name_addr_span(buf: &[u8], value: Span) -> Option<Span> {
    let (_, params) = uri::name_addr(buf, value).ok()?;
    let mut end = params.start.max(value.start);
    while end > value.start
        && buf
            .get(end as usize - 1)
            .is_some_and(|b| b.is_ascii_whitespace())
    {
        end -= 1;
    }
    Some(Span::new(value.start as usize, end as usize))
}

/// Call `each` with every element of a comma-separated header value (commas inside quotes
/// or `<...>` do not separate), white space trimmed.
pub(super) fn each_value(buf: &[u8], value: Span, mut each: impl FnMut(Span)) {
    let s = value.get(buf);
    let (mut start, mut quoted, mut angle) = (0usize, false, false);
    let mut emit = |a: usize, b: usize| {
        let seg = s.get(a..b).unwrap_or(&[]);
        let lead = seg.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let trail = seg
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        if lead + trail < seg.len() {
            let base = value.start as usize;
            each(Span::new(base + a + lead, base + b - trail));
        }
    };
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        match c {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                emit(start, i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    emit(start, s.len());
}

/// The calling number of a P-Asserted-Identity value (sip/sips user part, or tel number).
pub(super) fn pai_user(buf: &[u8], value: Span) -> Option<Span> {
    name_addr_user(buf, value)
}

/// The first P-Asserted-Identity number of `msg`.
pub(super) fn first_pai_user(buf: &[u8], msg: &Message) -> Option<Span> {
    let mut found = None;
    for h in msg.headers() {
        if h.name == HeaderName::PAssertedIdentity && found.is_none() {
            each_value(buf, h.value, |v| {
                if found.is_none() {
                    found = pai_user(buf, v);
                }
            });
        }
    }
    found
}

/// Whether the request asks for its identity to be withheld: a Privacy header listing `id`
/// (RFC 3325 9.3), `user` or `header` (RFC 3323 4.2).
pub(super) fn privacy_requested(buf: &[u8], msg: &Message) -> bool {
    msg.headers()
        .iter()
        .filter(|h| h.name == HeaderName::Privacy)
        .any(|h| {
            h.value
                .get(buf)
                .split(|&c| c == b';' || c == b',')
                .map(|t| t.trim_ascii())
                .any(|t| {
                    t.eq_ignore_ascii_case(b"id")
                        || t.eq_ignore_ascii_case(b"user")
                        || t.eq_ignore_ascii_case(b"header")
                })
        })
}

/// The called number's parameters in a Request-URI: a sip user part's tail from its first
/// `;` (`+13105551234;npdi;rn=+13105550000`), or a tel URI's parameters.
pub(super) fn called_params<'a>(buf: &'a [u8], parsed: &uri::Uri) -> &'a [u8] {
    if parsed.scheme == Scheme::Tel {
        return parsed.params.get(buf);
    }
    crate::routing::split_called(parsed.user.map_or(&[][..], |u| u.get(buf))).1
}

/// The calling number `raw` as sent to egress trunk `t`: `anonymous` unchanged; otherwise
/// normalized by the ingress trunk's inbound rules, replaced by the route's `caller_id`
/// when it has one, then translated by the trunk's outbound rules. Into `out`.
pub(super) fn calling_for(
    table: &crate::routing::RoutingTable,
    ingress: Option<TrunkId>,
    t: TrunkId,
    caller_id: Option<&[u8]>,
    raw: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    if is_anonymous(raw) {
        out.clear();
        out.extend_from_slice(raw);
        return;
    }
    let number: &[u8] = match (caller_id, ingress) {
        (Some(c), _) => c,
        (None, Some(i)) => {
            table.normalize(i, Number::Calling, raw, scratch);
            scratch
        }
        (None, None) => raw,
    };
    table.translate(t, Number::Calling, number, out);
}

/// Most P-Asserted-Identity values translated in one request (RFC 3325 allows two: one
/// sip/sips and one tel); the lines of any beyond are removed.
const PAI_VALUES_MAX: usize = 4;

/// How one attempt's request carries the caller's identity (see `Core::identity_edits`).
#[derive(Default)]
pub(super) struct IdentityEdits {
    /// From: the span to replace, and whether it becomes `ANONYMOUS_FROM` (else its user
    /// part becomes the translated number in `num_b`).
    pub from: Option<(Span, bool)>,
    /// P-Asserted-Identity numbers kept: each user span and its translation's range in
    /// `num_c`, and whether it changed (only changed ones are replaced).
    pub pai: [(Span, std::ops::Range<usize>, bool); PAI_VALUES_MAX],
    pub pai_len: usize,
}

impl IdentityEdits {
    /// The first P-Asserted-Identity number sent, if any (`pai_out` is `num_c`).
    pub fn pai_first<'a>(&self, pai_out: &'a [u8]) -> Option<&'a [u8]> {
        self.pai
            .get(..self.pai_len)
            .and_then(|p| p.first())
            .and_then(|(_, r, _)| pai_out.get(r.clone()))
    }
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
        self.rejected_call(now, buf, msg, ingress, from, code, reason);
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
        let raw_called = crate::routing::split_called(raw_called).0;
        // The caller's identity (RFC 3325): the asserted one from a trunk inside the trust
        // domain, else From.
        let trusted = table.trunk(ingress).is_some_and(|t| t.trusted);
        let identity = match trusted.then(|| first_pai_user(buf, msg)).flatten() {
            Some(u) => Some(u),
            None => user_span(buf, msg.from.uri),
        };
        let raw_calling = identity.map_or(&[][..], |u| u.get(buf));
        let mut called = Vec::new();
        let mut calling = Vec::new();
        table.normalize(ingress, Number::Called, raw_called, &mut called);
        if is_anonymous(raw_calling) {
            calling.extend_from_slice(raw_calling);
        } else {
            table.normalize(ingress, Number::Calling, raw_calling, &mut calling);
        }
        // Number portability (RFC 4694): the routing number, normalized like the called
        // number, routes the call when the trunk (or a route) says so.
        let rn = crate::routing::number_param(called_params(buf, parsed), b"rn")
            .filter(|r| !r.is_empty());
        let mut rn_norm = Vec::new();
        if let Some(r) = rn {
            table.normalize(ingress, Number::Called, r, &mut rn_norm);
        }
        let rn = rn.map(|_| &rn_norm[..]);
        self.rotation = self.rotation.wrapping_add(1);
        let usable = |t: TrunkId| match (states.get(t.0 as usize), table.trunk(t)) {
            (Some(s), Some(tr)) => s.usable() && !s.full(tr),
            _ => true,
        };
        // Time-of-day windows: wall-clock seconds derived from `now` (never the clock).
        let at = Some((self.config.wall.unix_ms(now) / 1000) as i64);
        match table.walk_call(ingress, &called, rn, self.rotation, &usable, at, &mut Quiet) {
            Decision::Route { attempts, .. } => Ok((
                Plan {
                    table: table.clone(),
                    states: states.clone(),
                    called,
                    calling,
                },
                attempts,
            )),
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
                    table.walk_call(ingress, &called, rn, self.rotation, &up, at, &mut Quiet),
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

    /// The caller's identity in the request `msg` sent to trunk `t` (RFC 3325, RFC 3323,
    /// RFC 8224), as edits: From's number translated on its own (into `num_b`), or From
    /// anonymized toward an untrusted trunk when the caller asked for privacy; every
    /// P-Asserted-Identity number translated on its own (into `num_c`) when both trunks
    /// are trusted and `t` takes PAI, else every PAI line removed; Identity removed when
    /// junction changed the number (or `t` says remove), Diversion and History-Info when
    /// `t` says remove. Lines to delete go to `delete_buf`.
    pub(super) fn identity_edits(
        &mut self,
        buf: &[u8],
        msg: &Message,
        plan: &Plan,
        ingress: Option<TrunkId>,
        t: TrunkId,
        caller_id: Option<&[u8]>,
    ) -> IdentityEdits {
        let table = &plan.table;
        let egress = table.trunk(t);
        let ingress_trusted = ingress
            .and_then(|i| table.trunk(i))
            .is_some_and(|tr| tr.trusted);
        let egress_trusted = egress.is_some_and(|e| e.trusted);
        let keep_pai = ingress_trusted && egress_trusted && egress.is_some_and(|e| e.forward_pai);
        let mut e = IdentityEdits::default();
        self.delete_buf.clear();
        self.num_c.clear();
        let mut changed = false;
        let from_user = user_span(buf, msg.from.uri);
        let anonymous_from = from_user.is_some_and(|u| is_anonymous(u.get(buf)));
        if privacy_requested(buf, msg) && !egress_trusted && !anonymous_from {
            let from = msg.headers.get(msg.from.header);
            if let Some(span) = from.and_then(|h| name_addr_span(buf, h.value)) {
                e.from = Some((span, true));
                changed = true;
            }
        } else if let Some(u) = from_user {
            let raw = u.get(buf);
            calling_for(
                table,
                ingress,
                t,
                caller_id,
                raw,
                &mut self.num_t,
                &mut self.num_b,
            );
            if raw != &self.num_b[..] {
                e.from = Some((u, false));
                changed = true;
            }
        }
        for h in msg.headers() {
            if h.name != HeaderName::PAssertedIdentity {
                continue;
            }
            if !keep_pai {
                self.delete_buf.push(h.line);
                continue;
            }
            let mut values = [Span::EMPTY; PAI_VALUES_MAX + 1];
            let mut n = 0;
            each_value(buf, h.value, |v| {
                if let Some(slot) = values.get_mut(n) {
                    *slot = v;
                    n += 1;
                }
            });
            if e.pai_len + n > PAI_VALUES_MAX {
                // More identities than any caller asserts: not passed untranslated.
                self.delete_buf.push(h.line);
                continue;
            }
            for v in values.iter().take(n) {
                let Some(u) = pai_user(buf, *v) else {
                    continue;
                };
                let raw = u.get(buf);
                calling_for(
                    table,
                    ingress,
                    t,
                    caller_id,
                    raw,
                    &mut self.num_t,
                    &mut self.num_d,
                );
                let from = self.num_c.len();
                self.num_c.extend_from_slice(&self.num_d);
                let differs = raw != &self.num_d[..];
                changed |= differs;
                if let Some(slot) = e.pai.get_mut(e.pai_len) {
                    *slot = (u, from..self.num_c.len(), differs);
                    e.pai_len += 1;
                }
            }
        }
        let policy =
            |f: fn(&crate::routing::Trunk) -> HeaderPolicy| egress.map_or(HeaderPolicy::Pass, f);
        let (identity, diversion, history) = (
            policy(|e| e.identity),
            policy(|e| e.diversion),
            policy(|e| e.history_info),
        );
        for h in msg.headers() {
            let remove = match h.name {
                HeaderName::Identity => changed || identity == HeaderPolicy::Remove,
                HeaderName::Diversion => diversion == HeaderPolicy::Remove,
                HeaderName::HistoryInfo => history == HeaderPolicy::Remove,
                _ => false,
            };
            if remove {
                self.delete_buf.push(h.line);
            }
        }
        e
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
            // The number's own parameters stay with it (`;npdi`, `;rn=`, `;phone-context`;
            // a tel URI's become the sip user part's, RFC 3261 19.1.6).
            self.uri_buf.extend_from_slice(called_params(buf, parsed));
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
            let progress = trunk.progress_timeout;
            let call = st.call;
            let ingress = st.ingress;
            let caller_id = st
                .attempts
                .route(st.attempt as usize - 1)
                .and_then(|r| plan.table.route_caller_id(r));
            let route = st.attempts.route(st.attempt as usize - 1);
            let route_name = route.and_then(|r| plan.table.route_name_shared(r));
            self.write_request_uri(buf, &parsed, &plan, t, dest);
            let edits = self.identity_edits(buf, msg, &plan, ingress, t, caller_id);
            let calling = std::mem::take(&mut self.num_b);
            let pai_out = std::mem::take(&mut self.num_c);
            let mut replace: [(Span, &[u8]); 1 + PAI_VALUES_MAX] =
                [(Span::EMPTY, &[]); 1 + PAI_VALUES_MAX];
            let mut n_replace = 0;
            if let Some((span, anonymize)) = edits.from {
                replace[0] = (
                    span,
                    if anonymize {
                        ANONYMOUS_FROM
                    } else {
                        &calling[..]
                    },
                );
                n_replace = 1;
            }
            for (span, range, _) in edits.pai.iter().take(edits.pai_len).filter(|p| p.2) {
                if let (Some(slot), Some(bytes)) =
                    (replace.get_mut(n_replace), pai_out.get(range.clone()))
                {
                    *slot = (*span, bytes);
                    n_replace += 1;
                }
            }
            let delete = std::mem::take(&mut self.delete_buf);
            // Remember the translation so responses and in-dialog requests are restored.
            if let Some(c) = call.and_then(|id| self.calls.get_mut(id)) {
                c.egress = Some(t);
                c.callee = dest;
                match edits.from {
                    Some((span, true)) => {
                        c.from_user_orig = span.get(buf).into();
                        c.from_user_new = ANONYMOUS_FROM.into();
                        c.from_whole = true;
                    }
                    Some((span, false)) => {
                        c.from_user_orig = span.get(buf).into();
                        c.from_user_new = calling[..].into();
                        c.from_whole = false;
                    }
                    None => {
                        c.from_user_orig = Box::default();
                        c.from_user_new = Box::default();
                        c.from_whole = false;
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
                delete: &delete,
                progress: (invite && !progress.is_zero()).then_some(progress),
                loop_hash: Some(self.loop_hash(buf, msg)),
            };
            let name = trunk.name.clone();
            if let Some(st) = self.txns.servers.get_mut(st_id) {
                st.plan = Some(plan);
            }
            if self.forward_stateful(now, buf, msg, st_id, &fwd).is_some() && invite {
                let called = std::mem::take(&mut self.num_a);
                let from_sent: &[u8] = match edits.from {
                    Some((_, true)) => b"anonymous",
                    Some((_, false)) => &calling,
                    None => user_span(buf, msg.from.uri).map_or(&[][..], |u| u.get(buf)),
                };
                let pai_sent = edits.pai_first(&pai_out);
                self.attempt_started(now, call, &name, route_name, &called, from_sent, pai_sent);
                self.num_a = called;
            }
            self.uri_buf = uri_buf;
            self.num_b = calling;
            self.num_c = pai_out;
            self.delete_buf = delete;
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
        if let Some((b, m)) = response {
            let phrase = match m.start {
                StartLine::Response { reason, .. } => reason.get(b),
                StartLine::Request { .. } => &[],
            };
            self.attempt_failure(call, cause, phrase);
        }
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
        // RFC 3261 16.7 step 6: a gateway's 503 (and its Retry-After, which would take
        // junction itself out of service for a PBX that honours it) is never relayed
        // upstream: a 5xx becomes 500, unless response_codes made it another 5xx on purpose.
        let code =
            if st.plan.is_some() && (500..600).contains(&code) && (code == 503 || code == received)
            {
                500
            } else {
                code
            };
        let mut retry_after = [Span::EMPTY; 2];
        let mut n_retry = 0;
        if st.plan.is_some() && (500..600).contains(&code) {
            for h in msg
                .headers()
                .iter()
                .filter(|h| h.name == HeaderName::RetryAfter)
            {
                if let Some(slot) = retry_after.get_mut(n_retry) {
                    *slot = h.line;
                    n_retry += 1;
                }
            }
        }
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
            delete: retry_after.get(..n_retry).unwrap_or(&[]),
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
        let (side, want, put) = if st.from_caller {
            (&msg.from, &c.from_user_new, &c.from_user_orig)
        } else {
            (&msg.to, &c.from_user_orig, &c.from_user_new)
        };
        let u = swap_span(buf, msg, side, c.from_whole).filter(|u| u.get(buf) == &want[..])?;
        Some((u, put.clone()))
    }
}
