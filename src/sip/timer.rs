//! RFC 3261 timer values and the per-shard hashed timing wheel that drives them.
//!
//! Timers are deadlines: whoever arms one keeps the deadline it expects, and an entry that
//! fires with a different deadline (re-armed or cancelled since) is ignored by the owner.
//! So cancelling costs nothing and the wheel never searches.

use std::time::{Duration, Instant};

/// RFC 3261 17.1.1.1: RTT estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 17.1.2.2: maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// RFC 3261 17.1.2.2: maximum time a message remains in the network.
pub const T4: Duration = Duration::from_secs(5);
/// 64*T1: Timers B, F, H, J (UDP), L and M (RFC 6026).
pub const T1_X64: Duration = Duration::from_secs(32);
/// Timer D (UDP): at least 32 s.
pub const TIMER_D: Duration = Duration::from_secs(32);
/// Timer C (RFC 3261 16.6 step 11): a proxied INVITE with no final response for this long
/// is cancelled. "MUST be larger than 3 minutes".
pub const TIMER_C: Duration = Duration::from_secs(181);

/// Long timers (Timer C, a server transaction's safety timeout) are armed in steps of at
/// most this (`Transactions::arm_long`): a cancelled one then leaves its wheel entry for
/// at most this long. 64*T1: no longer than the transactions' own lingering.
pub const LONG_TIMER_STEP: Duration = T1_X64;

/// Wheel resolution. Timers fire up to one tick late, never early. 4 ms is far below T1.
const TICK: Duration = Duration::from_millis(4);
const TICK_NANOS: u128 = TICK.as_nanos();
/// Slots per revolution (a power of two): 2048 x 4 ms = 8.2 s. Longer timers wait in their
/// slot for later revolutions.
const SLOTS: usize = 2048;
const WORDS: usize = SLOTS / 64;

struct Entry<K> {
    tick: u64,
    key: K,
}

/// A hashed timing wheel holding keys of type `K`.
pub struct TimerWheel<K> {
    origin: Instant,
    /// Ticks up to and including this one have been fired.
    fired_through: u64,
    slots: Vec<Vec<Entry<K>>>,
    /// Bit i set = slot i non-empty.
    occupied: [u64; WORDS],
    len: usize,
}

impl<K: Copy> TimerWheel<K> {
    pub fn new(origin: Instant) -> TimerWheel<K> {
        TimerWheel {
            origin,
            fired_through: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn tick_of(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() / TICK_NANOS) as u64
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos(tick.saturating_mul(TICK_NANOS as u64))
    }

    /// Arm `key` to fire at or after `deadline`.
    pub fn insert(&mut self, deadline: Instant, key: K) {
        // Round up so a timer never fires early; never schedule into the already-fired past.
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos();
        let tick = (nanos.div_ceil(TICK_NANOS) as u64).max(self.fired_through + 1);
        let slot = (tick as usize) & (SLOTS - 1);
        if let Some(s) = self.slots.get_mut(slot) {
            s.push(Entry { tick, key });
            if let Some(w) = self.occupied.get_mut(slot / 64) {
                *w |= 1 << (slot % 64);
            }
            self.len += 1;
        }
    }

    /// Move every key whose deadline is at or before `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<K>) {
        let now_tick = self.tick_of(now);
        if now_tick <= self.fired_through {
            return;
        }
        let span = now_tick - self.fired_through;
        let first = self.fired_through + 1;
        // Visit each slot at most once: a gap longer than a revolution visits all of them.
        let visits = span.min(SLOTS as u64);
        let mut t = first;
        while t < first + visits {
            let slot = (t as usize) & (SLOTS - 1);
            let word = self.occupied.get(slot / 64).copied().unwrap_or(0) >> (slot % 64);
            if word == 0 {
                // Skip to the next word boundary.
                t += (64 - (slot % 64)) as u64;
                continue;
            }
            let skip = word.trailing_zeros() as u64;
            if skip > 0 {
                t += skip;
                continue;
            }
            self.fire_slot(slot, now_tick, out);
            t += 1;
        }
        self.fired_through = now_tick;
    }

    fn fire_slot(&mut self, slot: usize, now_tick: u64, out: &mut Vec<K>) {
        let Some(entries) = self.slots.get_mut(slot) else {
            return;
        };
        let before = entries.len();
        entries.retain(|e| {
            if e.tick <= now_tick {
                out.push(e.key);
                false
            } else {
                true
            }
        });
        self.len -= before - entries.len();
        if entries.is_empty() {
            if let Some(w) = self.occupied.get_mut(slot / 64) {
                *w &= !(1 << (slot % 64));
            }
        }
    }

    /// When `expire` next has something to do (possibly early for timers several revolutions
    /// away: the caller then finds nothing due and asks again).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let start = ((self.fired_through + 1) as usize) & (SLOTS - 1);
        for i in 0..=WORDS {
            let w_idx = (start / 64 + i) % WORDS;
            let mut word = self.occupied.get(w_idx).copied().unwrap_or(0);
            if i == 0 {
                word &= u64::MAX << (start % 64);
            } else if i == WORDS {
                // Wrapped all the way round: only the bits before `start` in the first word.
                word &= !(u64::MAX << (start % 64));
            }
            if word != 0 {
                let slot = w_idx * 64 + word.trailing_zeros() as usize;
                let ahead = (slot + SLOTS - start) % SLOTS;
                let tick = self.fired_through + 1 + ahead as u64;
                return Some(self.instant_of(tick));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_or_after_deadline_never_before() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.insert(t0 + Duration::from_millis(500), 1u32);
        w.insert(t0 + Duration::from_millis(10), 2u32);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(9), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(12), &mut out);
        assert_eq!(out, vec![2]);
        out.clear();
        assert!(w.next_deadline().unwrap() >= t0 + Duration::from_millis(500));
        w.expire(t0 + Duration::from_millis(499), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(504), &mut out);
        assert_eq!(out, vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn timers_longer_than_a_revolution_wait_their_turn() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.insert(t0 + TIMER_C, 7u32);
        let mut out = Vec::new();
        let mut t = t0;
        // Walk forward in 1 s steps as a shard would, honouring next_deadline.
        while t < t0 + TIMER_C - Duration::from_millis(10) {
            t += Duration::from_secs(1);
            w.expire(t.min(t0 + TIMER_C - Duration::from_millis(10)), &mut out);
            assert!(out.is_empty(), "fired early at {:?}", t - t0);
        }
        w.expire(t0 + TIMER_C + TICK, &mut out);
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn a_long_idle_gap_fires_everything_due() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        for i in 0..100u32 {
            w.insert(t0 + Duration::from_millis(37 * i as u64), i);
        }
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_secs(60), &mut out);
        out.sort();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn next_deadline_finds_wrapped_slots() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(8000), &mut out);
        // This lands in a slot before the current position (wrapped).
        let d = t0 + Duration::from_millis(8000) + Duration::from_millis(500);
        w.insert(d, 1u32);
        let nd = w.next_deadline().unwrap();
        assert!(nd >= d && nd <= d + TICK, "{:?}", nd - t0);
    }
}
