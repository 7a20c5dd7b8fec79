//! OPTIONS health probing of egress trunks (docs/routing.md "Health"): each trunk with a `probe`
//! is probed by one shard (the owner of its name); a trunk is marked down after
//! `down_after` consecutive failures (no final response in time, 408 or 5xx) and up again
//! after `up_after` successes (any other final response). The state is shared by every
//! shard through `TrunkState`.

use super::Core;
use crate::routing::{Probe, TrunkId};
use crate::shard::owner;
use crate::sip::rewrite;
use crate::sip::timer;
use crate::sip::transaction::{ClientTxn, Id, TimerKey, TimerKind, TimerTarget};
use std::io::Write;
use std::time::Instant;

/// Probing state of one trunk on its owning shard.
#[derive(Clone, Debug, Default)]
pub(super) struct ProbeState {
    /// The deadline of its next probe (a wheel entry with this deadline is current).
    pub next: Option<Instant>,
    pub pending: Option<Id>,
    pub failures: u32,
    pub successes: u32,
    pub cseq: u32,
    /// When the pending probe went out (for the round-trip histogram).
    pub sent: Option<Instant>,
    /// The trunk was up at this shard's last probe result.
    pub seen_up: bool,
}

impl Core {
    /// (Re)build the probe schedule for the current routing table: the trunks this shard
    /// owns get a first probe at `now`.
    pub(super) fn schedule_probes(&mut self, now: Instant) {
        let shards = usize::from(self.config.shards.max(1));
        let me = usize::from(self.config.shard);
        // Probes still out refer to the previous table's trunk numbers: forget them.
        let old = std::mem::take(&mut self.probes);
        for pending in old.iter().filter_map(|p| p.pending) {
            self.txns.clients.remove(pending);
        }
        self.probes = vec![ProbeState::default(); self.routing.trunks.len()];
        let routing = self.routing.clone();
        for (i, t) in routing.trunks.iter().enumerate() {
            if t.probe.is_some() && t.send_to.is_some() && owner(t.name.as_bytes(), shards) == me {
                self.arm_probe(i as u16, now);
            }
        }
    }

    fn arm_probe(&mut self, trunk: u16, at: Instant) {
        if let Some(p) = self.probes.get_mut(trunk as usize) {
            p.next = Some(at);
            self.txns.wheel.insert(
                at,
                TimerKey {
                    target: TimerTarget::Probe(trunk),
                    kind: TimerKind::Timeout,
                    deadline: at,
                },
            );
        }
    }

    /// A probe timer fired: send the next OPTIONS.
    pub(super) fn probe_timer(&mut self, now: Instant, trunk: u16, key: TimerKey) {
        let Some(state) = self.probes.get_mut(trunk as usize) else {
            return;
        };
        if state.next != Some(key.deadline) {
            return;
        }
        state.next = None;
        let t = TrunkId(trunk);
        let Some((probe, dest)) = self
            .routing
            .trunk(t)
            .and_then(|tr| Some((tr.probe?, tr.send_to?)))
        else {
            return;
        };
        self.arm_probe(trunk, now + probe.interval);
        if let Some(previous) = self.probes.get(trunk as usize).and_then(|p| p.pending) {
            // The previous probe got no answer within an interval: a failure.
            self.probe_result(previous, None);
        }
        self.send_probe(now, t, probe, dest);
    }

    fn send_probe(&mut self, now: Instant, t: TrunkId, probe: Probe, dest: std::net::SocketAddr) {
        let shards = usize::from(self.config.shards.max(1));
        let me = usize::from(self.config.shard);
        let Some(state) = self.probes.get_mut(t.0 as usize) else {
            return;
        };
        state.cseq = state.cseq.wrapping_add(1);
        let cseq = state.cseq;
        // A Call-ID this shard owns, so the answer comes back here.
        let mut call_id = Vec::with_capacity(48);
        for salt in 0u32.. {
            call_id.clear();
            let _ = write!(call_id, "probe-{}-{}-{salt}", t.0, cseq);
            rewrite::write_host(&mut call_id, self.config.advertise.ip());
            if owner(&call_id, shards) == me || salt > 10_000 {
                break;
            }
        }
        let ct_id = self
            .txns
            .clients
            .insert(ClientTxn::new(false, dest, None, Some(t)));
        let oc = self.offers_oc(Some(t));
        self.write_via(oc, |v| {
            let _ = write!(v, "{:x}.{:x}", ct_id.idx, ct_id.gen);
        });
        let start = self.out.len();
        self.out.extend_from_slice(b"OPTIONS sip:");
        rewrite::write_hostport(&mut self.out, dest);
        self.out.extend_from_slice(b" SIP/2.0\r\n");
        self.out.extend_from_slice(&self.via_line);
        self.out
            .extend_from_slice(b"Max-Forwards: 70\r\nFrom: <sip:junction@");
        rewrite::write_hostport(&mut self.out, self.config.own_address());
        let _ = write!(self.out, ">;tag=p{cseq:x}\r\nTo: <sip:");
        rewrite::write_hostport(&mut self.out, dest);
        self.out.extend_from_slice(b">\r\nCall-ID: ");
        self.out.extend_from_slice(&call_id);
        let _ = write!(
            self.out,
            "\r\nCSeq: {cseq} OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
        );
        let end = self.out.len();
        let bytes = self.out.get(start..end).unwrap_or(&[]).to_vec();
        if let Some(ct) = self.txns.clients.get_mut(ct_id) {
            ct.request = bytes;
            ct.probe = true;
        }
        if let Some(state) = self.probes.get_mut(t.0 as usize) {
            state.pending = Some(ct_id);
            state.sent = Some(now);
        }
        self.stats.probes_sent += 1;
        self.queue(dest, start..end);
        let target = TimerTarget::Client(ct_id);
        self.txns
            .arm(target, TimerKind::Retransmit, now + timer::T1);
        // No answer within the probe interval (at most 64*T1) is a failure.
        let wait = probe.interval.min(timer::T1_X64);
        self.txns.arm(target, TimerKind::Timeout, now + wait);
    }

    /// A final response to probe `ct_id` arrived at `now`.
    pub(super) fn probe_answered(&mut self, now: Instant, ct_id: Id, code: u16) {
        let sent = self
            .txns
            .clients
            .get(ct_id)
            .and_then(|ct| ct.egress)
            .and_then(|t| Some((t, self.probes.get(t.0 as usize)?.sent?)));
        if let Some((t, sent)) = sent {
            self.probe_rtt(now, t, sent);
        }
        self.probe_result(ct_id, Some(code));
    }

    /// The probe of trunk `t` ended: a final response `code`, or `None` for no answer.
    pub(super) fn probe_result(&mut self, ct_id: Id, code: Option<u16>) {
        let Some(ct) = self.txns.clients.remove(ct_id) else {
            return;
        };
        let Some(t) = ct.egress else {
            return;
        };
        let ok = code.is_some_and(|c| c != 408 && !(500..600).contains(&c));
        let Some(probe) = self.routing.trunk(t).and_then(|tr| tr.probe) else {
            return;
        };
        let Some(state) = self.probes.get_mut(t.0 as usize) else {
            return;
        };
        if state.pending == Some(ct_id) {
            state.pending = None;
        }
        if ok {
            state.failures = 0;
            state.successes = state.successes.saturating_add(1);
        } else {
            state.successes = 0;
            state.failures = state.failures.saturating_add(1);
            self.stats.probe_failures += 1;
        }
        let Some(s) = self.states.get(t.0 as usize) else {
            return;
        };
        // Down since the last probe (passive health, another shard): the probes that
        // bring it back are counted from now.
        let up_now = s.is_up();
        if !up_now && state.seen_up {
            state.successes = u32::from(ok);
        }
        state.seen_up = up_now;
        let (failures, successes) = (state.failures, state.successes);
        let event = if up_now && failures >= probe.down_after {
            s.mark_down(crate::trunks::DownCause::Probe).then_some((
                false,
                crate::trunks::DownCause::Probe,
                failures,
            ))
        } else if !up_now && successes >= probe.up_after {
            s.mark_up()
                .then_some((true, crate::trunks::DownCause::None, successes))
        } else {
            None
        };
        if let Some((up, cause, count)) = event {
            if let Some(state) = self.probes.get_mut(t.0 as usize) {
                state.seen_up = up;
            }
            let trunk = s.name.clone();
            self.health_events.push(super::health::HealthEvent {
                trunk,
                up,
                cause,
                count,
            });
        }
    }
}
