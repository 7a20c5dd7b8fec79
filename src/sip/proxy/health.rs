//! Passive health of egress trunks: a trunk is marked down after `down_after_failures`
//! consecutive INVITE attempts that failed without a word from it (Timer B, Timer C or the
//! progress timer with nothing received, or an ICMP port/host unreachable for the INVITE);
//! any response from it resets the count. OPTIONS probing brings it back (probe.rs). The
//! count and the state are shared by every shard (`TrunkState`).
//!
//! ICMP errors: the shell reads them from the socket's error queue (IP_RECVERR) and hands
//! each to `Core::handle_unreachable` with the address the datagram went to and the bytes
//! of it the ICMP message quoted. Junction's own Via comes first in what it sends, so its
//! branch (which names the shard and the client transaction) is among the first bytes
//! quoted; the attempt fails at once and the call moves to its next trunk.

use super::Core;
use crate::routing::TrunkId;
use crate::sip::transaction::{ClientState, Id, TimerKind, TimerTarget};
use crate::trunks::DownCause;
use std::net::SocketAddr;
use std::time::Instant;

/// A trunk changed state: the shell logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    pub trunk: String,
    pub up: bool,
    pub cause: DownCause,
    /// Consecutive failures (attempts or probes) when it went down; successes when up.
    pub count: u32,
}

/// `z9hG4bK` + `jn`: every branch junction writes starts with it, then 8 hex digits of the
/// shard's boot value, the shard number in hex and a dot.
const BRANCH_HEAD: &[u8] = b"z9hG4bKjn";

/// The shard that sent the datagram an ICMP error quotes (`quoted`, its first bytes), read
/// from junction's branch in it; `None` when it carries none.
pub fn unreachable_owner(quoted: &[u8]) -> Option<u16> {
    let at = memchr::memmem::find(quoted, BRANCH_HEAD)? + BRANCH_HEAD.len();
    let rest = quoted.get(at + 8..)?;
    let end = rest.iter().position(|&c| c == b'.')?;
    let hex = rest.get(..end)?;
    if hex.is_empty() || hex.len() > 4 {
        return None;
    }
    let text = std::str::from_utf8(hex).ok()?;
    u16::from_str_radix(text, 16).ok()
}

impl Core {
    /// An ICMP port/host/network unreachable arrived at `now` for a datagram sent to
    /// `dest`, quoting `quoted` (its first bytes). When it was an INVITE attempt of this
    /// shard still waiting for any answer, the attempt fails at once (failover) and counts
    /// as a failure of its trunk; an OPTIONS probe fails at once. Anything else is ignored
    /// (its retransmissions and timers go on).
    pub fn handle_unreachable(&mut self, now: Instant, dest: SocketAddr, quoted: &[u8]) {
        self.start_clock(now);
        let Some(id) = self.quoted_client(quoted) else {
            return;
        };
        let Some(ct) = self.txns.clients.get(id) else {
            return;
        };
        if !super::same_addr(ct.dest, dest) {
            return;
        }
        let (probe, invite, state, egress) = (ct.probe, ct.invite, ct.state, ct.egress);
        if let Some(s) = egress.and_then(|t| self.trunk_state_for(t, dest)) {
            s.count_unreachable();
        }
        if probe {
            self.probe_result(id, None);
            return;
        }
        if !invite || state != ClientState::Calling || ct.abandoned || ct.cancel {
            return;
        }
        // Nothing came back: no CANCEL is owed (RFC 3261 9.1); the transaction stops
        // retransmitting and lingers to absorb anything late.
        if let Some(ct) = self.txns.clients.get_mut(id) {
            ct.abandoned = true;
        }
        let t = TimerTarget::Client(id);
        self.txns.disarm(t, TimerKind::Retransmit);
        self.txns.disarm(t, TimerKind::Progress);
        self.txns.disarm(t, TimerKind::ProxyC);
        if let Some(tr) = egress {
            self.attempt_failed_silently(tr, dest, DownCause::Unreachable);
        }
        match self.routed_invite(id) {
            Some((st, egress)) => self.branch_failed(now, st, egress, 503, None),
            None => self.answer_for_client(now, id, 503, false),
        }
    }

    /// The client transaction junction's branch in `quoted` names, if it is this shard's.
    fn quoted_client(&self, quoted: &[u8]) -> Option<Id> {
        let at = memchr::memmem::find(quoted, &self.branch_prefix)? + self.branch_prefix.len();
        let tail = quoted.get(at..)?;
        let end = tail
            .iter()
            .position(|c| !c.is_ascii_hexdigit() && *c != b'.')
            .unwrap_or(tail.len());
        let mut parts = tail.get(..end)?.splitn(3, |&c| c == b'.');
        let idx = super::parse_hex(parts.next()?)?;
        let gen = super::parse_hex(parts.next()?)?;
        Some(Id { idx, gen })
    }

    /// The shared state of trunk `t` of the current table, if `dest` is still its address
    /// (a reload may have renumbered the trunks since the request went out).
    fn trunk_state_for(
        &self,
        t: TrunkId,
        dest: SocketAddr,
    ) -> Option<&std::sync::Arc<crate::trunks::TrunkState>> {
        let ours = self
            .routing
            .trunk(t)
            .is_some_and(|tr| tr.send_to.is_some_and(|a| super::same_addr(a, dest)));
        self.states.get(t.0 as usize).filter(|_| ours)
    }

    /// An INVITE attempt to trunk `t` at `dest` failed without any answer (`cause`): one
    /// more consecutive failure; at `down_after_failures` the trunk goes down.
    pub(super) fn attempt_failed_silently(
        &mut self,
        t: TrunkId,
        dest: SocketAddr,
        cause: DownCause,
    ) {
        let Some(k) = self.routing.trunk(t).and_then(|tr| tr.down_after_failures) else {
            return;
        };
        let Some(s) = self.trunk_state_for(t, dest) else {
            return;
        };
        let failures = s.attempt_failed();
        if failures >= k && s.mark_down(cause) {
            let trunk = s.name.clone();
            self.health_events.push(HealthEvent {
                trunk,
                up: false,
                cause,
                count: failures,
            });
        }
    }

    /// Trunk `t` answered an INVITE attempt sent to `dest`: its failures in a row end.
    pub(super) fn attempt_answered(&self, t: TrunkId, dest: SocketAddr) {
        if let Some(s) = self.trunk_state_for(t, dest) {
            s.attempt_heard();
        }
    }

    /// Client transaction `id`'s INVITE attempt timed out with nothing at all received
    /// from its trunk: a failure for passive health.
    pub(super) fn attempt_timed_out(&mut self, id: Id) {
        let Some(ct) = self.txns.clients.get(id) else {
            return;
        };
        if !ct.invite || ct.probe || ct.provisional_seen || ct.state != ClientState::Calling {
            return;
        }
        if let Some(t) = ct.egress {
            let dest = ct.dest;
            self.attempt_failed_silently(t, dest, DownCause::Failures);
        }
    }

    /// The shared state of the trunk named `name` in the current table.
    pub fn trunk_state(&self, name: &str) -> Option<&crate::trunks::TrunkState> {
        let t = self.routing.trunk_id(name)?;
        self.states.get(t.0 as usize).map(|s| &**s)
    }

    /// Trunk state changes since the last call, for the shell to log.
    pub fn health_events(&mut self) -> std::vec::Drain<'_, HealthEvent> {
        self.health_events.drain(..)
    }
}
