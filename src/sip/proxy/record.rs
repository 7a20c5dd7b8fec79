//! Call detail records and per-trunk statistics, filled in as a call goes: created with the
//! call, one attempt per egress trunk tried, progress (post-dial delay), answer, end. Work
//! happens once per call event, never per packet.

use super::Core;
use crate::routing::TrunkId;
use crate::sip::cdr::{AttemptRecord, CallRecord, EndedBy};
use crate::sip::scan::{Message, StartLine};
use crate::sip::transaction::Id;
use crate::sip::trunk_stats;
use std::net::SocketAddr;
use std::time::Instant;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Core {
    /// A new record for the INVITE `msg` from trunk `ingress`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_record(
        &self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
        source: SocketAddr,
        called_normalized: &[u8],
        calling_normalized: &[u8],
    ) -> CallRecord {
        let called = match msg.start {
            StartLine::Request { uri, .. } => super::user_span(buf, uri).map(|u| u.get(buf)),
            StartLine::Response { .. } => None,
        };
        let from = super::user_span(buf, msg.from.uri).map(|u| u.get(buf));
        let pai = super::attempt::first_pai_user(buf, msg).map(|u| u.get(buf));
        let trusted = self.routing.trunk(ingress).is_some_and(|t| t.trusted);
        let calling = if trusted { pai.or(from) } else { from };
        // The Call-ID is the call's key (held by the call table) and the normalized numbers
        // are usually the received ones: both are filled in when the record is finished,
        // so a call in progress holds no copies of them.
        let normalized = |n: &[u8], raw: Option<&[u8]>| {
            if Some(n) == raw {
                String::new()
            } else {
                text(n)
            }
        };
        CallRecord {
            call_id: String::new(),
            ingress: self
                .routing
                .trunk(ingress)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            source: Some(source),
            listener: Some(self.config.advertise),
            called: text(called.unwrap_or(&[])),
            calling: text(calling.unwrap_or(&[])),
            // Usually the calling number itself: filled in when the record is finished.
            from: if from == calling {
                String::new()
            } else {
                text(from.unwrap_or(&[]))
            },
            pai: pai.map(|p| text(p).into_boxed_str()),
            privacy: super::attempt::privacy_requested(buf, msg),
            called_normalized: normalized(called_normalized, called),
            calling_normalized: normalized(calling_normalized, calling),
            attempts: Vec::new(),
            started: now,
            answered: None,
            ended: now,
            ended_by: EndedBy::NotAnswered,
            status: 0,
            reason: "",
        }
    }

    /// An INVITE refused before any attempt (no route, no usable trunk, limits): its record
    /// is complete at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rejected_call(
        &mut self,
        now: Instant,
        buf: &[u8],
        msg: &Message,
        ingress: TrunkId,
        source: SocketAddr,
        status: u16,
        reason: &'static str,
    ) {
        let mut r = self.new_record(now, buf, msg, ingress, source, &[], &[]);
        r.call_id = text(msg.call_id.get(buf));
        r.called_normalized = r.called.clone();
        r.calling_normalized = r.calling.clone();
        if r.from.is_empty() {
            r.from = r.calling.clone();
        }
        r.status = status;
        r.reason = reason;
        let stats = self.trunk_stats.trunk(&r.ingress);
        match reason {
            "no-route" => stats.counters.rejected_no_route += 1,
            "route-reject" => stats.counters.rejected_route += 1,
            "ingress-calls-limit" | "ingress-rate-limit" => stats.counters.rejected_ingress += 1,
            _ => stats.counters.rejected_no_trunk += 1,
        }
        self.push_record(Box::new(r));
    }

    fn record_mut(&mut self, call: Option<Id>) -> Option<&mut CallRecord> {
        self.calls.get_mut(call?)?.record.as_deref_mut()
    }

    /// An INVITE went to trunk `name`, offered by route `route`, with these numbers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attempt_started(
        &mut self,
        now: Instant,
        call: Option<Id>,
        name: &str,
        route: Option<std::sync::Arc<str>>,
        called: &[u8],
        calling: &[u8],
        pai: Option<&[u8]>,
    ) {
        self.trunk_stats.trunk(name).counters.attempts_out += 1;
        if let Some(r) = self.record_mut(call) {
            // Most calls make one attempt: grow by one, not by Vec's minimum of four.
            r.attempts.reserve_exact(1);
            r.attempts.push(AttemptRecord {
                trunk: name.to_string(),
                route,
                called: text(called),
                calling: text(calling),
                pai: pai.map(|p| text(p).into_boxed_str()),
                failure: None,
                sent: now,
                progress: None,
                final_at: None,
                status: 0,
            });
        }
    }

    /// The current attempt sent its first 18x: post-dial delay.
    pub(super) fn attempt_progress(&mut self, now: Instant, call: Option<Id>) {
        let Some(r) = self.record_mut(call) else {
            return;
        };
        let Some(a) = r.attempts.last_mut() else {
            return;
        };
        if a.progress.is_some() || a.final_at.is_some() {
            return;
        }
        a.progress = Some(now);
        let (name, pdd) = (a.trunk.clone(), now.saturating_duration_since(a.sent));
        trunk_stats::record_us(&mut self.trunk_stats.trunk(&name).latency.pdd_us, pdd);
    }

    /// The current attempt ended with `status` (0: no final response); `answered` for 2xx.
    pub(super) fn attempt_final(&mut self, now: Instant, call: Option<Id>, status: u16) {
        let Some(r) = self.record_mut(call) else {
            return;
        };
        if (200..300).contains(&status) && r.answered.is_none() {
            r.answered = Some(now);
            r.status = status;
        }
        let Some(a) = r.attempts.last_mut() else {
            return;
        };
        if a.final_at.is_some() {
            return;
        }
        a.final_at = Some(now);
        a.status = status;
        let (name, since) = (a.trunk.clone(), now.saturating_duration_since(a.sent));
        let s = self.trunk_stats.trunk(&name);
        match status {
            200..=299 => {
                s.counters.answered_out += 1;
                trunk_stats::record_us(&mut s.latency.answer_us, since);
            }
            400..=499 if status != 408 => s.counters.failed_4xx += 1,
            500..=599 => s.counters.failed_5xx += 1,
            600..=699 => s.counters.failed_6xx += 1,
            _ => s.counters.failed_timeout += 1,
        }
    }

    /// The current attempt failed with a response carrying Q.850 `cause` (if any) and the
    /// reason phrase `phrase`.
    pub(super) fn attempt_failure(&mut self, call: Option<Id>, cause: Option<u16>, phrase: &[u8]) {
        let Some(a) = self.record_mut(call).and_then(|r| r.attempts.last_mut()) else {
            return;
        };
        if a.final_at.is_none() {
            a.failure = Some(Box::new(crate::sip::cdr::Failure {
                cause,
                sip_reason: text(phrase).into_boxed_str(),
            }));
        }
    }

    /// The call moves on from its current trunk.
    pub(super) fn attempt_failover(&mut self, call: Option<Id>) {
        let name = self
            .record_mut(call)
            .and_then(|r| r.attempts.last().map(|a| a.trunk.clone()));
        if let Some(name) = name {
            self.trunk_stats.trunk(&name).counters.failovers_from += 1;
        }
    }

    /// Trunk `name` refused a call for its limits.
    pub(super) fn attempt_refused(&mut self, name: &str) {
        self.trunk_stats.trunk(name).counters.refused_limits += 1;
    }

    /// The final status (and junction's reason) the caller gets for the call's INVITE.
    pub(super) fn note_final(&mut self, call: Option<Id>, status: u16, reason: &'static str) {
        if let Some(r) = self.record_mut(call) {
            if r.answered.is_none() {
                r.status = status;
                if r.reason.is_empty() {
                    r.reason = reason;
                }
            }
        }
    }

    /// The call ended: complete its record and queue it for the CDR writer.
    pub(super) fn finish_record(&mut self, now: Instant, call: Id, by: Option<EndedBy>) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        let Some(mut r) = c.record.take() else {
            return;
        };
        r.call_id = text(&c.call_id);
        if r.called_normalized.is_empty() {
            r.called_normalized = r.called.clone();
        }
        if r.calling_normalized.is_empty() {
            r.calling_normalized = r.calling.clone();
        }
        if r.from.is_empty() {
            r.from = r.calling.clone();
        }
        r.ended = now;
        r.ended_by = match (by, r.answered) {
            (Some(b), _) => b,
            (None, None) if c.ended_by == Some(EndedBy::CallerCancel) => EndedBy::CallerCancel,
            (None, None) => EndedBy::NotAnswered,
            (None, Some(_)) => c
                .ended_by
                .filter(|b| *b != EndedBy::CallerCancel)
                .unwrap_or(EndedBy::Expired),
        };
        if let (Some(answered), Some(a)) = (r.answered, r.attempts.last()) {
            let name = a.trunk.clone();
            trunk_stats::record_ms(
                &mut self.trunk_stats.trunk(&name).latency.duration_ms,
                now.saturating_duration_since(answered),
            );
        }
        self.push_record(r);
    }

    fn push_record(&mut self, r: Box<CallRecord>) {
        if self.records.len() >= crate::limits::RECORDS_PENDING_MAX {
            self.records.pop_front();
            self.stats.records_dropped += 1;
        }
        self.records.push_back(r);
    }

    /// An OPTIONS probe of trunk `t` sent at `sent` was answered now.
    pub(super) fn probe_rtt(&mut self, now: Instant, t: TrunkId, sent: Instant) {
        if let Some(name) = self.routing.trunk(t).map(|tr| tr.name.clone()) {
            trunk_stats::record_us(
                &mut self.trunk_stats.trunk(&name).latency.options_rtt_us,
                now.saturating_duration_since(sent),
            );
        }
    }
}
