//! Live per-trunk state shared by every shard: health (from OPTIONS probing) and admission
//! counters (concurrent calls, early dialogs, calls per second), and the share of new calls
//! the trunk asked to have withheld (RFC 7339). One atomic operation per call set-up or
//! tear-down, and a few per response that carries a trunk's RFC 7339 feedback; nothing for
//! any other packet. Keyed by trunk name so it survives reloads.

use crate::limits;
use crate::routing::{RoutingTable, Trunk};
use crate::sip::oc::Feedback;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Token-bucket resolution: tokens are counted in 1/16ths so refills at low rates are exact
/// enough; 24 bits hold up to 1,048,575 whole tokens.
const TOKEN_SCALE: u64 = 16;
const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;

/// Why a trunk refused a new call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_calls` concurrent calls already.
    Calls,
    /// `max_cps` new calls in the last second (token bucket empty).
    Rate,
    /// `max_early` calls already waiting for an answer.
    Early,
    /// The trunk asked, by RFC 7339 overload control, for this share of new calls to be
    /// withheld (`overload_control`).
    OverloadControl,
    /// Ingress: `max_calls_in` concurrent calls from the trunk already.
    CallsIn,
    /// Ingress: `max_cps_in` new calls from the trunk in the last second.
    RateIn,
}

impl Refusal {
    /// junction's machine-readable reason for a call refused this way (Warning, CDR).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::CallsIn => "ingress-calls-limit",
            Refusal::RateIn => "ingress-rate-limit",
            _ => "admission-refused",
        }
    }
}

/// Why a trunk is (or last went) down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownCause {
    /// Up, or never down.
    None,
    /// `down_after` OPTIONS probes in a row failed.
    Probe,
    /// `down_after_failures` INVITE attempts in a row timed out without any answer.
    Failures,
    /// As `Failures`, the last of them an ICMP port/host unreachable.
    Unreachable,
}

impl DownCause {
    pub fn as_str(self) -> &'static str {
        match self {
            DownCause::None => "none",
            DownCause::Probe => "probe",
            DownCause::Failures => "failures",
            DownCause::Unreachable => "unreachable",
        }
    }

    fn from_u8(v: u8) -> DownCause {
        match v {
            1 => DownCause::Probe,
            2 => DownCause::Failures,
            3 => DownCause::Unreachable,
            _ => DownCause::None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            DownCause::None => 0,
            DownCause::Probe => 1,
            DownCause::Failures => 2,
            DownCause::Unreachable => 3,
        }
    }
}

/// The shared state of one trunk.
#[derive(Debug)]
pub struct TrunkState {
    pub name: String,
    up: AtomicBool,
    calls: AtomicU32,
    early: AtomicU32,
    /// (milliseconds since `epoch` << 24) | tokens in 1/16ths.
    bucket: AtomicU64,
    epoch: Instant,
    pub refused_calls: AtomicU64,
    pub refused_rate: AtomicU64,
    pub refused_early: AtomicU64,
    pub refused_oc: AtomicU64,
    /// RFC 7339 feedback from the trunk: (ms since `epoch` until which it holds << 8) |
    /// the percentage of new calls to withhold; 0 when none is in force.
    oc: AtomicU64,
    /// The last `oc-seq` accepted (`oc::Feedback::seq`), and when (ms since `epoch`, + 1).
    oc_seq: AtomicU64,
    oc_seq_at: AtomicU64,
    /// New calls decided under a reduction: the loss algorithm's deterministic spread.
    oc_calls: AtomicU64,
    /// Ingress admission (calls the trunk sends junction): concurrent calls, and the
    /// `max_cps_in` token bucket (same layout as `bucket`); calls refused for each.
    calls_in: AtomicU32,
    bucket_in: AtomicU64,
    pub refused_calls_in: AtomicU64,
    pub refused_rate_in: AtomicU64,
    /// Passive health: INVITE attempts in a row that failed without any answer, why the
    /// trunk last went down (`DownCause`), ICMP unreachables received for datagrams sent to
    /// it, and how often it went down for each cause (index `DownCause` - 1) and came up.
    failures_in_a_row: AtomicU32,
    down_cause: AtomicU8,
    pub unreachable: AtomicU64,
    pub downs: [AtomicU64; 3],
    pub ups: AtomicU64,
    /// Taken out of service by an operator (`POST /trunks/NAME/disable`): new calls skip
    /// it; calls up continue. Kept by name across reloads.
    disabled: AtomicBool,
}

impl TrunkState {
    pub fn new(name: &str, epoch: Instant) -> TrunkState {
        TrunkState {
            name: name.to_string(),
            up: AtomicBool::new(true),
            calls: AtomicU32::new(0),
            early: AtomicU32::new(0),
            bucket: AtomicU64::new(TOKEN_MASK),
            epoch,
            refused_calls: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
            refused_early: AtomicU64::new(0),
            refused_oc: AtomicU64::new(0),
            oc: AtomicU64::new(0),
            oc_seq: AtomicU64::new(0),
            oc_seq_at: AtomicU64::new(0),
            oc_calls: AtomicU64::new(0),
            calls_in: AtomicU32::new(0),
            bucket_in: AtomicU64::new(TOKEN_MASK),
            refused_calls_in: AtomicU64::new(0),
            refused_rate_in: AtomicU64::new(0),
            failures_in_a_row: AtomicU32::new(0),
            down_cause: AtomicU8::new(0),
            unreachable: AtomicU64::new(0),
            downs: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            ups: AtomicU64::new(0),
            disabled: AtomicBool::new(false),
        }
    }

    /// Whether new calls may be sent to the trunk: up and not disabled.
    pub fn usable(&self) -> bool {
        self.is_up() && !self.disabled()
    }

    /// Whether an operator took the trunk out of service.
    pub fn disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Take the trunk out of service (or back); true when that changed something.
    pub fn set_disabled(&self, disabled: bool) -> bool {
        self.disabled.swap(disabled, Ordering::Relaxed) != disabled
    }

    /// An ICMP unreachable came back for a datagram sent to the trunk.
    pub fn count_unreachable(&self) {
        self.unreachable.fetch_add(1, Ordering::Relaxed);
    }

    /// One more INVITE attempt failed without any answer; the count in a row now.
    pub fn attempt_failed(&self) -> u32 {
        self.failures_in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// The trunk answered an INVITE attempt: the failures in a row end (a load and, only
    /// after failures, a store).
    pub fn attempt_heard(&self) {
        if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
            self.failures_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// INVITE attempts in a row that failed without any answer.
    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row.load(Ordering::Relaxed)
    }

    /// Mark the trunk down for `cause`; true when it was up (exactly one caller, over all
    /// shards, sees true for one transition: it logs it).
    pub fn mark_down(&self, cause: DownCause) -> bool {
        if self
            .up
            .compare_exchange(true, false, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.down_cause.store(cause.to_u8(), Ordering::Relaxed);
        let slot = usize::from(cause.to_u8()).saturating_sub(1);
        if let Some(n) = self.downs.get(slot) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Mark the trunk up again (probing); true when it was down.
    pub fn mark_up(&self) -> bool {
        if self
            .up
            .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.failures_in_a_row.store(0, Ordering::Relaxed);
        self.ups.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Why the trunk went down last (`None` while up).
    pub fn down_cause(&self) -> DownCause {
        if self.is_up() {
            DownCause::None
        } else {
            DownCause::from_u8(self.down_cause.load(Ordering::Relaxed))
        }
    }

    /// Calls from the trunk in progress (ingress slots held).
    pub fn calls_in(&self) -> u32 {
        self.calls_in.load(Ordering::Relaxed)
    }

    /// Admit one new call the trunk sends junction at `now` (`max_calls_in`, `max_cps_in`):
    /// takes an ingress slot and a token, or nothing. `Ok(true)`: a slot was taken, release
    /// it with `ended_in`; `Ok(false)`: the trunk has no ingress limits (two branches).
    pub fn admit_in(&self, trunk: &Trunk, now: Instant) -> Result<bool, Refusal> {
        if trunk.max_calls_in.is_none() && trunk.max_cps_in.is_none() {
            return Ok(false);
        }
        if !take(&self.calls_in, trunk.max_calls_in) {
            self.refused_calls_in.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::CallsIn);
        }
        if let Some(rate) = trunk.max_cps_in {
            if !take_token(&self.bucket_in, self.epoch, rate, now) {
                release(&self.calls_in);
                self.refused_rate_in.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::RateIn);
            }
        }
        Ok(true)
    }

    /// A call `admit_in` admitted ended: its ingress slot is free.
    pub fn ended_in(&self) {
        release(&self.calls_in);
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The trunk's RFC 7339 feedback arrived at `now` (in a response to a request junction
    /// sent it). Returns whether it was applied: a value older (lower `oc-seq`) than the
    /// last one accepted, within `OC_SEQ_MEMORY_MS` of it, is a reordered response and is
    /// ignored.
    pub fn oc_update(&self, now: Instant, fb: &Feedback) -> bool {
        let now_ms = self.ms(now);
        let last = self.oc_seq.load(Ordering::Relaxed);
        let at = self.oc_seq_at.load(Ordering::Relaxed);
        // `oc_seq_at` holds the acceptance's ms + 1, so that 0 means "never".
        let remembered = at != 0 && (now_ms + 1).saturating_sub(at) < limits::OC_SEQ_MEMORY_MS;
        if remembered && fb.seq < last {
            return false;
        }
        self.oc_seq.store(fb.seq, Ordering::Relaxed);
        self.oc_seq_at.store(now_ms + 1, Ordering::Relaxed);
        let value = if fb.reduction == 0 || fb.validity_ms == 0 {
            0
        } else {
            (now_ms.saturating_add(fb.validity_ms) << 8) | u64::from(fb.reduction.min(100))
        };
        self.oc.store(value, Ordering::Relaxed);
        true
    }

    /// The percentage of new calls the trunk asked to have withheld, in force at `now`.
    pub fn oc_reduction(&self, now: Instant) -> u8 {
        let v = self.oc.load(Ordering::Relaxed);
        if v >> 8 > self.ms(now) {
            (v & 0xff) as u8
        } else {
            0
        }
    }

    /// Whether to withhold this new call from the trunk (RFC 7339 loss algorithm): under a
    /// reduction of r%, exactly r of every 100 consecutive new calls (over all shards) are
    /// withheld, spread evenly rather than in a burst.
    fn oc_withholds(&self, now: Instant) -> bool {
        let r = u64::from(self.oc_reduction(now));
        if r == 0 {
            return false;
        }
        if r >= 100 {
            return true;
        }
        let n = self.oc_calls.fetch_add(1, Ordering::Relaxed);
        let keep = 100 - r;
        // Call n is sent when it completes another whole call's worth of `keep` per 100.
        (n + 1).wrapping_mul(keep) / 100 == n.wrapping_mul(keep) / 100
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn early(&self) -> u32 {
        self.early.load(Ordering::Relaxed)
    }

    /// Whether a new call would be refused right now (for skipping full trunks while
    /// routing; `admit` is the authoritative, atomic check).
    pub fn full(&self, trunk: &Trunk) -> bool {
        trunk.max_calls.is_some_and(|m| self.calls() >= m)
            || trunk.max_early.is_some_and(|m| self.early() >= m)
    }

    /// Admit one new call at `now`: takes a concurrent-call slot, an early-dialog slot and a
    /// rate token, or nothing. Release with `answered`/`ended`.
    pub fn admit(&self, trunk: &Trunk, now: Instant) -> Result<(), Refusal> {
        if trunk.overload_control && self.oc_withholds(now) {
            self.refused_oc.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::OverloadControl);
        }
        if !take(&self.calls, trunk.max_calls) {
            self.refused_calls.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Calls);
        }
        if !take(&self.early, trunk.max_early) {
            self.calls.fetch_sub(1, Ordering::Relaxed);
            self.refused_early.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Early);
        }
        if let Some(rate) = trunk.max_cps {
            if !self.take_token(rate, now) {
                self.calls.fetch_sub(1, Ordering::Relaxed);
                self.early.fetch_sub(1, Ordering::Relaxed);
                self.refused_rate.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::Rate);
            }
        }
        Ok(())
    }

    /// The call was answered (or failed): it no longer counts as an early dialog.
    pub fn answered(&self) {
        release(&self.early);
    }

    /// The call ended: its concurrent-call slot is free.
    pub fn ended(&self) {
        release(&self.calls);
    }

    fn take_token(&self, rate: u32, now: Instant) -> bool {
        take_token(&self.bucket, self.epoch, rate, now)
    }
}

/// Take one token from a bucket of `rate` tokens per second (a burst of one second's
/// worth), refilled since its last use: (ms since `epoch` << 24) | tokens in 1/16ths.
fn take_token(bucket: &AtomicU64, epoch: Instant, rate: u32, now: Instant) -> bool {
    let now_ms = now.saturating_duration_since(epoch).as_millis() as u64;
    let cap = (rate as u64 * TOKEN_SCALE).min(TOKEN_MASK);
    let mut cur = bucket.load(Ordering::Relaxed);
    loop {
        let last_ms = cur >> TOKEN_BITS;
        let tokens = if cur == TOKEN_MASK {
            cap // never used: full
        } else {
            let refill = now_ms.saturating_sub(last_ms) * rate as u64 * TOKEN_SCALE / 1000;
            ((cur & TOKEN_MASK) + refill).min(cap)
        };
        if tokens < TOKEN_SCALE {
            return false;
        }
        let next = (now_ms.max(last_ms) << TOKEN_BITS) | (tokens - TOKEN_SCALE);
        match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => cur = seen,
        }
    }
}

fn take(counter: &AtomicU32, max: Option<u32>) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| match max {
            Some(m) if n >= m => None,
            _ => Some(n + 1),
        })
        .is_ok()
}

fn release(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// Every trunk's state, by name; lives as long as the process, across reloads.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    by_name: Mutex<HashMap<String, Arc<TrunkState>>>,
}

impl Registry {
    pub fn new(epoch: Instant) -> Registry {
        Registry {
            epoch,
            by_name: Mutex::new(HashMap::new()),
        }
    }

    /// The states for a routing table's trunks, indexed like `RoutingTable::trunks`:
    /// existing trunks keep their state (health, counters), new ones start up and empty.
    /// Called off the shard cores when a table is compiled.
    pub fn states_for(&self, table: &RoutingTable) -> Arc<[Arc<TrunkState>]> {
        let mut map = match self.by_name.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        table
            .trunks
            .iter()
            .map(|t| {
                Arc::clone(
                    map.entry(t.name.clone())
                        .or_insert_with(|| Arc::new(TrunkState::new(&t.name, self.epoch))),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn trunk(max_calls: Option<u32>, max_cps: Option<u32>, max_early: Option<u32>) -> Trunk {
        let mut limits = String::new();
        for (key, value) in [
            ("max_calls", max_calls),
            ("max_cps", max_cps),
            ("max_early", max_early),
        ] {
            if let Some(v) = value {
                limits.push_str(&format!("{key} = {v}\n"));
            }
        }
        let text = format!(
            "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:5060\"\n\
             [[trunk]]\nname = \"t\"\npeers = [\"127.0.0.2\"]\nsend_to = \"127.0.0.2:5060\"\n{limits}"
        );
        let cfg = crate::config::parse(&text, "test.toml").expect("test config");
        let table = RoutingTable::compile(&cfg).expect("compiles");
        table.trunks[0].clone()
    }

    fn fb(reduction: u8, validity_ms: u64, seq: u64) -> Feedback {
        Feedback {
            reduction,
            validity_ms,
            seq,
        }
    }

    #[test]
    fn a_trunk_under_overload_control_gets_its_share_of_new_calls_spread_evenly() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let tr = trunk(None, None, None);
        assert!(tr.overload_control, "on by default");
        assert!(s.oc_update(t0, &fb(30, 1000, 10)));
        assert_eq!(s.oc_reduction(t0), 30);
        // Exactly 30 of every 100, never more than one withheld in a row at 30%.
        let sent: Vec<bool> = (0..200).map(|_| s.admit(&tr, t0).is_ok()).collect();
        assert_eq!(sent.iter().filter(|&&x| !x).count(), 60);
        assert!(sent.windows(2).all(|w| w[0] || w[1]), "{sent:?}");
        assert_eq!(s.refused_oc.load(Ordering::Relaxed), 60);
        assert_eq!(s.calls(), 140, "a withheld call takes no slot");
        // The value lapses after its validity: every call goes out again.
        let later = t0 + Duration::from_millis(1000);
        assert_eq!(s.oc_reduction(later), 0);
        assert!((0..50).all(|_| s.admit(&tr, later).is_ok()));
        // 100% withholds everything; oc=0 or a validity of 0 ends it at once.
        assert!(s.oc_update(later, &fb(100, 500, 11)));
        assert_eq!(s.admit(&tr, later), Err(Refusal::OverloadControl));
        assert!(s.oc_update(later, &fb(100, 0, 12)));
        assert!(s.admit(&tr, later).is_ok());
        assert!(s.oc_update(later, &fb(100, 500, 13)));
        assert!(s.oc_update(later, &fb(0, 500, 14)));
        assert!(s.admit(&tr, later).is_ok());
    }

    #[test]
    fn a_stale_value_is_ignored_until_the_trunk_has_been_quiet_for_a_while() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        assert!(s.oc_update(t0, &fb(50, 5000, 100)));
        // A reordered older response does not undo the newer value ...
        assert!(!s.oc_update(t0, &fb(0, 500, 99)));
        assert_eq!(s.oc_reduction(t0), 50);
        // ... an equal or newer one replaces it ...
        assert!(s.oc_update(t0, &fb(40, 5000, 100)));
        assert_eq!(s.oc_reduction(t0), 40);
        // ... and a trunk that restarted and numbers afresh is heard once the last
        // accepted value is older than OC_SEQ_MEMORY_MS.
        let later = t0 + Duration::from_millis(limits::OC_SEQ_MEMORY_MS);
        assert!(s.oc_update(later, &fb(20, 500, 1)));
        assert_eq!(s.oc_reduction(later), 20);
    }

    #[test]
    fn overload_control_off_ignores_what_the_trunk_asked() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let mut tr = trunk(None, None, None);
        tr.overload_control = false;
        s.oc_update(t0, &fb(100, 1000, 1));
        assert!(s.admit(&tr, t0).is_ok());
    }

    #[test]
    fn concurrent_calls_are_capped_and_released() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let tr = trunk(Some(2), None, None);
        assert!(s.admit(&tr, t0).is_ok());
        assert!(s.admit(&tr, t0).is_ok());
        assert_eq!(s.admit(&tr, t0), Err(Refusal::Calls));
        s.answered();
        s.ended();
        assert!(s.admit(&tr, t0).is_ok());
        assert_eq!(s.calls(), 2);
    }

    #[test]
    fn early_dialogs_are_capped_until_answered() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let tr = trunk(None, None, Some(1));
        assert!(s.admit(&tr, t0).is_ok());
        assert_eq!(s.admit(&tr, t0), Err(Refusal::Early));
        assert_eq!(s.calls(), 1, "a refused call takes no slot");
        s.answered();
        assert!(s.admit(&tr, t0).is_ok());
    }

    #[test]
    fn ingress_limits_cap_concurrent_calls_and_rate_apart_from_egress() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let mut tr = trunk(Some(1), None, None);
        tr.max_calls_in = Some(2);
        tr.max_cps_in = Some(3);
        assert_eq!(s.admit_in(&tr, t0), Ok(true));
        assert_eq!(s.admit_in(&tr, t0), Ok(true));
        assert_eq!(s.admit_in(&tr, t0), Err(Refusal::CallsIn));
        // Egress slots are counted apart.
        assert!(s.admit(&tr, t0).is_ok());
        s.ended_in();
        assert!(s.admit_in(&tr, t0).is_ok(), "a slot came free");
        s.ended_in();
        // Three tokens in the first second: the fourth call is over the rate.
        assert_eq!(s.admit_in(&tr, t0), Err(Refusal::RateIn));
        assert_eq!(s.calls_in(), 1, "a refused call holds no slot");
        assert_eq!(s.refused_calls_in.load(Ordering::Relaxed), 1);
        assert_eq!(s.refused_rate_in.load(Ordering::Relaxed), 1);
        // A third of a second later one token is back.
        assert!(s.admit_in(&tr, t0 + Duration::from_millis(334)).is_ok());
        assert_eq!(Refusal::RateIn.reason(), "ingress-rate-limit");
        // No ingress limits: always admitted, nothing counted.
        let plain = trunk(None, None, None);
        let p = TrunkState::new("p", t0);
        assert!((0..100).all(|_| p.admit_in(&plain, t0) == Ok(false)));
        assert_eq!(p.calls_in(), 0);
    }

    #[test]
    fn the_rate_bucket_refills_with_time() {
        let t0 = Instant::now();
        let s = TrunkState::new("t", t0);
        let tr = trunk(None, Some(10), None);
        let admitted = (0..20).filter(|_| s.admit(&tr, t0).is_ok()).count();
        assert_eq!(admitted, 10, "a full bucket holds one second of calls");
        assert_eq!(
            s.admit(&tr, t0 + Duration::from_millis(50)),
            Err(Refusal::Rate)
        );
        assert!(s.admit(&tr, t0 + Duration::from_millis(100)).is_ok());
        let later = t0 + Duration::from_secs(5);
        let admitted = (0..20).filter(|_| s.admit(&tr, later).is_ok()).count();
        assert_eq!(admitted, 10, "refill is capped at the bucket size");
    }
}
