//! Overload control: how many new calls a saturated shard still admits.
//!
//! The signal is queueing delay: how long the oldest datagram of each receive batch waited
//! in the kernel before the shard read it (the shell measures it from kernel receive
//! timestamps). A shard that keeps up reads its socket empty over and over, so the smallest
//! delay seen in an interval is ~0 however bursty the traffic; a standing queue (the
//! smallest delay of a whole interval above `OVERLOAD_DELAY_TARGET`) means more work
//! arrives than the shard can do.
//!
//! The response is an admission fraction for new INVITEs, adjusted once per interval. A
//! standing queue that persists and does not drain cuts it by the excess the queue's growth
//! measures (plus a share of the queue, so that it drains), applied to the admission that
//! let that work in a few intervals earlier, not to the current one: the effect of a cut
//! takes that long to show, and cutting again meanwhile overshoots. Without a standing
//! queue it grows slowly, and faster the more time the shard had to spare (the constants
//! and their measurements are in limits.rs). Time parked is only time to spare on a CPU the
//! shard has to itself: under a CPU quota, or beside another busy process, it parks between
//! its slices however busy it is; so the shard's CPU time is reported too, the share of
//! wall time it runs while backlogged is learnt, and spare time is what it leaves of that.
//! New calls beyond the fraction are shed: answered 503 + Retry-After, or, when even that
//! falls behind (a standing queue above `OVERLOAD_DROP_DELAY`), dropped before parsing; the
//! caller retransmits after T1 and is admitted once there is room. Everything else
//! (responses, ACK, CANCEL, BYE, requests in calls we know) is always served: calls already
//! up are never lost, and goodput does not collapse under the retransmissions of calls that
//! were admitted.
//!
//! A backlog of junk is not overload of the kind shedding cures: when most datagrams of an
//! interval were discarded before parsing (unknown sources, flood-blocked sources), the
//! callers' new calls are not what fills the queue, and refusing them would only hand a
//! flood its win. Such an interval leaves the fraction as it is; the kernel's own drops,
//! which retransmissions recover, are the flood's only effect on calls.
//!
//! Independently, memory pressure (the process near its configured memory cap) sheds every
//! new call with 503 until it clears.
//!
//! Sans-IO: time comes in as arguments, so the behaviour is tested with virtual time.

use crate::limits;
use std::time::{Duration, Instant};

/// What to do with one new call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// 503 + Retry-After.
    Reject,
    /// No answer, not even parsed.
    Drop,
}

#[derive(Debug)]
pub struct OverloadControl {
    interval_start: Option<Instant>,
    /// Smallest queueing delay observed in the current interval, and the standing queue
    /// of the previous one.
    min_delay: Option<Duration>,
    last_standing: Duration,
    /// Fraction of new calls admitted, in [OVERLOAD_ADMIT_MIN, 1].
    fraction: f64,
    /// Admission credit: each new call adds `fraction`; a call is admitted while it is >= 1.
    credit: f64,
    /// Calls not admitted are dropped unparsed rather than answered 503.
    severe: bool,
    /// Consecutive intervals with a standing queue (of work, not junk).
    backlogged: u32,
    /// Datagrams of the current interval that were worked on, and that were discarded
    /// before parsing.
    worked: u64,
    discarded: u64,
    memory_pressure: bool,
    /// Time the shard spent parked (nothing to do) in the current interval.
    idle: Duration,
    /// The shard thread's CPU time in all, as last reported, and as it was when the
    /// current interval began.
    cpu_latest: Option<(Instant, Duration)>,
    cpu_at_start: Option<(Instant, Duration)>,
    /// The share of wall time the shard's thread gets when it has more work than it can do
    /// (1 on a core of its own; less under a CPU quota or beside another busy process).
    saturated_share: Option<f64>,
    /// The admission fraction at the end of each of the last OVERLOAD_LAG_INTERVALS
    /// intervals, oldest first.
    admitted_before: [f64; limits::OVERLOAD_LAG_INTERVALS],
    /// Last time an observation found new calls being shed (RFC 7339 feedback keeps
    /// saying `oc=0` for a validity period after it).
    last_shed: Option<Instant>,
}

impl Default for OverloadControl {
    fn default() -> Self {
        OverloadControl {
            interval_start: None,
            min_delay: None,
            last_standing: Duration::ZERO,
            fraction: 1.0,
            credit: 0.0,
            severe: false,
            backlogged: 0,
            worked: 0,
            discarded: 0,
            memory_pressure: false,
            idle: Duration::ZERO,
            cpu_latest: None,
            cpu_at_start: None,
            saturated_share: None,
            admitted_before: [1.0; limits::OVERLOAD_LAG_INTERVALS],
            last_shed: None,
        }
    }
}

impl OverloadControl {
    /// The oldest datagram of a receive batch waited `delay` in the kernel (zero when the
    /// socket was found empty).
    pub fn observe(&mut self, now: Instant, delay: Duration) {
        let start = *self.interval_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= limits::OVERLOAD_INTERVAL {
            self.end_interval(now);
        }
        self.min_delay = Some(self.min_delay.map_or(delay, |m| m.min(delay)));
        if self.active() {
            self.last_shed = Some(now);
        }
    }

    /// RFC 7339 loss-based feedback (src/sip/oc.rs): the percentage of new calls a
    /// supporting trunk should withhold: the share we would refuse, while shedding; 0 for
    /// one validity period after shedding ended (trunks resume at once); `None` otherwise
    /// (no feedback sent).
    pub fn feedback(&self, now: Instant) -> Option<u8> {
        if self.active() {
            return Some(100 - self.percent().min(100) as u8);
        }
        let since = now.saturating_duration_since(self.last_shed?);
        (since < Duration::from_millis(limits::OC_VALIDITY_MS)).then_some(0)
    }

    /// When the admission fraction was last re-evaluated (the oc-seq of the feedback).
    pub fn decided_at(&self) -> Option<Instant> {
        self.interval_start
    }

    /// The shard was parked, with nothing to do, for `idle`.
    pub fn idle(&mut self, idle: Duration) {
        self.idle += idle;
    }

    /// The shard's thread had used `cpu` of CPU time in all at `now`.
    pub fn cpu_time(&mut self, now: Instant, cpu: Duration) {
        self.cpu_latest = Some((now, cpu));
    }

    /// One datagram was handled: `discarded` when it was dropped before parsing.
    pub fn count(&mut self, discarded: bool) {
        if discarded {
            self.discarded += 1;
        } else {
            self.worked += 1;
        }
    }

    fn end_interval(&mut self, now: Instant) {
        // An interval with no observation at all: the shard was idle.
        let standing = self.min_delay.unwrap_or(Duration::ZERO);
        let length = self
            .interval_start
            .map_or(limits::OVERLOAD_INTERVAL, |s| {
                now.saturating_duration_since(s)
            })
            .as_secs_f64()
            .max(1e-3);
        let parked = (std::mem::take(&mut self.idle).as_secs_f64() / length).min(1.0);
        // The share of the interval the thread ran, when its CPU time was reported.
        let running = match (self.cpu_at_start, self.cpu_latest) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => Some(
                c1.saturating_sub(c0).as_secs_f64()
                    / t1.saturating_duration_since(t0).as_secs_f64(),
            ),
            _ => None,
        };
        self.cpu_at_start = self.cpu_latest;
        let junk = self.discarded > self.worked;
        self.worked = 0;
        self.discarded = 0;
        // One interval with a backlog can be a stall of the shard's thread rather than more
        // work than it can do: only a backlog that persists is overload.
        self.backlogged = if standing > limits::OVERLOAD_DELAY_TARGET && !junk {
            self.backlogged.saturating_add(1)
        } else {
            0
        };
        // Time parked is time to spare only on a CPU the shard has to itself: under a CPU
        // quota (or beside a busy process) a shard parks between its slices however close
        // to its capacity it runs. So the share it runs while backlogged is learnt, and the
        // spare time is what it leaves of that share, if that is less.
        let idle = match (running, self.saturated_share) {
            (Some(r), learnt) if self.backlogged > 0 => {
                let r = r.clamp(0.01, 1.0);
                self.saturated_share =
                    Some(learnt.map_or(r, |s| s + (r - s) * limits::OVERLOAD_SATURATION_WEIGHT));
                0.0
            }
            (Some(r), Some(s)) => parked.min((1.0 - r / s).max(0.0)),
            _ => parked,
        };
        // A backlog that drains by at least OVERLOAD_DRAIN_MIN per interval is already being
        // worked off: what arrives is less than the shard does. Cutting admission further
        // would only leave the shard idle once the backlog is gone.
        let draining = standing + limits::OVERLOAD_DRAIN_MIN <= self.last_standing;
        let growth = standing.as_secs_f64() - self.last_standing.as_secs_f64();
        self.last_standing = standing;
        let persistent = self.backlogged >= limits::OVERLOAD_PERSIST_INTERVALS;
        // The admission that let in the work this interval measured (limits.rs).
        let cause = self
            .admitted_before
            .first()
            .copied()
            .unwrap_or(self.fraction);
        self.admitted_before.rotate_left(1);
        if let Some(last) = self.admitted_before.last_mut() {
            *last = self.fraction;
        }
        if persistent && !draining {
            let excess =
                (growth + standing.as_secs_f64() * limits::OVERLOAD_BACKLOG_SHARE) / length;
            let cut = excess.clamp(limits::OVERLOAD_CUT_MIN, limits::OVERLOAD_CUT_MAX);
            self.fraction = (cause * (1.0 - cut))
                .min(self.fraction)
                .max(limits::OVERLOAD_ADMIT_MIN);
        } else if self.backlogged == 0 && !junk {
            self.fraction = (self.fraction
                + limits::OVERLOAD_INCREASE
                + self.fraction * limits::OVERLOAD_IDLE_GAIN * idle)
                .min(1.0);
        }
        // Otherwise hold: a first interval of backlog (maybe a stall), a backlog being
        // worked off, or a backlog of discarded junk (shedding callers would not shorten
        // it).
        // Drop instead of 503 when the backlog is deep and still growing: then the
        // refusals themselves (parse, 503, the caller's ACK) are more than the shard can
        // afford. Not sooner: a dropped INVITE comes back up to six times (the caller's
        // retransmissions), and dropping earlier measured no better than 503s in a steady
        // 2x overload, while a 503 tells the trunk to go elsewhere.
        self.severe = persistent && !draining && standing > limits::OVERLOAD_DROP_DELAY;
        self.min_delay = None;
        self.interval_start = Some(now);
    }

    /// The process is (or no longer is) near its memory cap.
    pub fn set_memory_pressure(&mut self, pressure: bool) {
        self.memory_pressure = pressure;
    }

    pub fn memory_pressure(&self) -> bool {
        self.memory_pressure
    }

    /// Whether any new call may be shed now (checking costs nothing otherwise).
    pub fn active(&self) -> bool {
        self.fraction < 1.0 || self.memory_pressure
    }

    /// The fraction of new calls admitted (1.0 when not overloaded), for metrics.
    pub fn fraction(&self) -> f64 {
        if self.memory_pressure {
            0.0
        } else {
            self.fraction
        }
    }

    /// `fraction` as a whole percentage.
    pub fn percent(&self) -> u64 {
        (self.fraction() * 100.0).round() as u64
    }

    /// Decide one new call.
    pub fn admit(&mut self) -> Admission {
        if self.memory_pressure {
            return Admission::Reject;
        }
        if self.fraction >= 1.0 {
            self.credit = 0.0;
            return Admission::Admit;
        }
        self.credit += self.fraction;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            Admission::Admit
        } else if self.severe {
            Admission::Drop
        } else {
            Admission::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feed `delay` every millisecond for `ms` milliseconds.
    fn run(o: &mut OverloadControl, t: &mut Instant, ms: u32, delay: Duration) {
        for _ in 0..ms {
            *t += MS;
            o.observe(*t, delay);
        }
    }

    fn admitted_of(o: &mut OverloadControl, n: usize) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for _ in 0..n {
            match o.admit() {
                Admission::Admit => counts.0 += 1,
                Admission::Reject => counts.1 += 1,
                Admission::Drop => counts.2 += 1,
            }
        }
        counts
    }

    #[test]
    fn a_shard_that_keeps_up_admits_everything_despite_bursts() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // Bursts: most batches wait 40 ms, but the socket is found empty now and then.
        for _ in 0..100 {
            run(&mut o, &mut t, 9, 40 * MS);
            run(&mut o, &mut t, 1, Duration::ZERO);
        }
        assert!(!o.active());
        assert_eq!(admitted_of(&mut o, 100), (100, 0, 0));
    }

    #[test]
    fn a_standing_queue_sheds_a_growing_share_and_recovery_readmits() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // Two intervals of a 10 ms backlog that does not grow: the least cut of new calls
        // refused with 503.
        run(&mut o, &mut t, 110, 10 * MS);
        assert!(o.active());
        let f = o.fraction();
        assert!((f - (1.0 - limits::OVERLOAD_CUT_MIN)).abs() < 1e-9, "{f}");
        let (a, r, d) = admitted_of(&mut o, 1000);
        assert_eq!(d, 0, "a 10 ms backlog is not severe: 503s, no drops");
        // The admitted share follows the fraction exactly (deterministic credit).
        assert!((a as f64 - 1000.0 * f).abs() <= 1.0, "{a} vs {f}");
        assert_eq!(a + r, 1000);
        // The backlog persists: a growing share is refused, still with 503.
        run(&mut o, &mut t, 1000, 10 * MS);
        // (A queue that stands still is met by the least cut once per lag.)
        assert!(o.fraction() < 0.9, "{}", o.fraction());
        let (a, r, d) = admitted_of(&mut o, 1000);
        assert_eq!(d, 0);
        assert!(a > 0 && r > 100, "{a} {r}");
        // The queue is gone: the fraction climbs back to 1.
        run(&mut o, &mut t, 5_000, Duration::ZERO);
        assert!(!o.active());
        assert_eq!(admitted_of(&mut o, 10), (10, 0, 0));
    }

    #[test]
    fn a_backlog_being_worked_off_holds_the_fraction() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // A growing backlog: admission is cut while it grows ...
        for ms in 10..20u32 {
            run(&mut o, &mut t, 50, ms * 4 * MS);
        }
        let cut = o.fraction();
        assert!(cut < 0.6, "{cut}");
        // ... and held while it shrinks (what arrives is already less than the shard does),
        // even though it is still above the target (the interval at the turn, which mixes
        // both, may cut once more) ...
        for ms in (10..19u32).rev() {
            run(&mut o, &mut t, 50, ms * 4 * MS);
        }
        assert!(o.fraction() >= cut * 0.85 - 1e-9, "{} {cut}", o.fraction());
        let cut = o.fraction();
        // ... with 503s, not drops: a deep backlog that drains is not severe.
        let (_, r, d) = admitted_of(&mut o, 100);
        assert_eq!(d, 0);
        assert!(r > 0);
        // A backlog that stands still is cut again.
        run(&mut o, &mut t, 100, 40 * MS);
        assert!(o.fraction() < cut, "{}", o.fraction());
    }

    #[test]
    fn a_severe_backlog_drops_unparsed_what_it_does_not_admit() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        run(&mut o, &mut t, 300, 400 * MS);
        let (a, r, d) = admitted_of(&mut o, 1000);
        assert_eq!(r, 0);
        assert!(d > 0 && a > 0, "{a} admitted, {d} dropped");
        // Never starved completely: the floor still admits some new calls.
        assert!(o.fraction() >= limits::OVERLOAD_ADMIT_MIN);
    }

    #[test]
    fn the_fraction_is_adjusted_once_per_interval_not_per_observation() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // Many observations within one interval change nothing yet.
        for _ in 0..1000 {
            o.observe(t, 100 * MS);
        }
        assert!(!o.active());
        // The first interval with a backlog may be a stall: held.
        t += limits::OVERLOAD_INTERVAL;
        o.observe(t, 100 * MS);
        assert!(!o.active());
        // The second in a row is overload.
        t += limits::OVERLOAD_INTERVAL;
        o.observe(t, 100 * MS);
        assert!(o.fraction() < 1.0 && o.fraction() >= 1.0 - limits::OVERLOAD_CUT_MAX - 1e-9);
    }

    #[test]
    fn a_cut_waits_for_the_effect_of_the_previous_one() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // A backlog that stands still at 10 ms: each cut is the least one, taken from the
        // admission OVERLOAD_LAG_INTERVALS ago, so the fraction steps down once per that
        // many intervals, not once per interval.
        run(&mut o, &mut t, 101, 10 * MS);
        let first = o.fraction();
        assert!(
            (first - (1.0 - limits::OVERLOAD_CUT_MIN)).abs() < 1e-9,
            "{first}"
        );
        let lag = limits::OVERLOAD_LAG_INTERVALS as u32;
        run(&mut o, &mut t, 50 * lag, 10 * MS);
        assert!(
            (o.fraction() - first).abs() < 1e-9,
            "cut again before the first showed"
        );
        run(&mut o, &mut t, 50, 10 * MS);
        let second = o.fraction();
        assert!(
            (second - first * (1.0 - limits::OVERLOAD_CUT_MIN)).abs() < 1e-9,
            "{second}"
        );
    }

    #[test]
    fn a_fast_growing_backlog_is_cut_by_the_excess_it_measures() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // The queue grows 20 ms per 50 ms interval: 40% more work arrives than the shard
        // does. Once persistent, one cut removes at least that share of the admission.
        run(&mut o, &mut t, 50, 10 * MS);
        run(&mut o, &mut t, 50, 30 * MS);
        run(&mut o, &mut t, 1, 50 * MS);
        let f = o.fraction();
        assert!(
            (1.0 - limits::OVERLOAD_CUT_MAX..=0.6 + 1e-9).contains(&f),
            "{f}"
        );
    }

    #[test]
    fn an_idle_shard_readmits_faster_than_a_busy_one() {
        let cut_down = |o: &mut OverloadControl, t: &mut Instant| {
            run(o, t, 50, 10 * MS);
            run(o, t, 50, 30 * MS);
            run(o, t, 1, 50 * MS);
        };
        let (mut idle, mut busy) = (OverloadControl::default(), OverloadControl::default());
        let start = Instant::now();
        let (mut t, mut u) = (start, start);
        cut_down(&mut idle, &mut t);
        cut_down(&mut busy, &mut u);
        let cut = busy.fraction();
        assert!((idle.fraction() - cut).abs() < 1e-9 && cut <= 0.6);
        // Ten intervals without a queue; one of the shards parked half of each.
        for _ in 0..10 {
            idle.idle(25 * MS);
            run(&mut idle, &mut t, 50, Duration::ZERO);
            run(&mut busy, &mut u, 50, Duration::ZERO);
        }
        // The busy one grew by OVERLOAD_INCREASE per interval; the idle one by more.
        assert_ten_intervals_grew(&busy, &idle, cut);
    }

    /// Ten intervals after a cut to `cut`: `slow` grew by OVERLOAD_INCREASE per interval
    /// only, `fast` by more than 0.2 beyond that.
    fn assert_ten_intervals_grew(slow: &OverloadControl, fast: &OverloadControl, cut: f64) {
        let grown = slow.fraction() - cut;
        let step = limits::OVERLOAD_INCREASE;
        assert!(grown > 8.5 * step && grown < 10.5 * step, "{grown}");
        assert!(
            fast.fraction() > slow.fraction() + 0.2,
            "{} {}",
            fast.fraction(),
            slow.fraction()
        );
    }

    #[test]
    fn a_shard_held_to_part_of_a_cpu_does_not_take_its_parked_time_for_spare() {
        // Each millisecond the thread runs `share` of it (its CPU time is reported).
        let run_at = |o: &mut OverloadControl,
                      t: &mut Instant,
                      cpu: &mut Duration,
                      ms: u32,
                      delay: Duration,
                      share: f64| {
            for _ in 0..ms {
                *t += MS;
                *cpu += MS.mul_f64(share);
                o.cpu_time(*t, *cpu);
                o.observe(*t, delay);
            }
        };
        let (mut held, mut spare) = (OverloadControl::default(), OverloadControl::default());
        let start = Instant::now();
        let (mut t, mut u) = (start, start);
        let (mut c, mut d) = (Duration::ZERO, Duration::ZERO);
        // Backlogged, both get 40% of the CPU (a quota): that is their whole share.
        run_at(&mut held, &mut t, &mut c, 50, 10 * MS, 0.4);
        run_at(&mut held, &mut t, &mut c, 51, 30 * MS, 0.4);
        run_at(&mut spare, &mut u, &mut d, 50, 10 * MS, 0.4);
        run_at(&mut spare, &mut u, &mut d, 51, 30 * MS, 0.4);
        let cut = held.fraction();
        assert!((spare.fraction() - cut).abs() < 1e-9 && cut < 1.0);
        // Ten intervals without a queue, both parked half of each. One still runs its whole
        // 40% (it parks between the quota's slices): nothing to spare. The other runs 20%.
        for _ in 0..10 {
            held.idle(25 * MS);
            spare.idle(25 * MS);
            run_at(&mut held, &mut t, &mut c, 50, Duration::ZERO, 0.4);
            run_at(&mut spare, &mut u, &mut d, 50, Duration::ZERO, 0.2);
        }
        assert_ten_intervals_grew(&held, &spare, cut);
    }

    #[test]
    fn a_stall_of_one_interval_sheds_nothing() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        // The thread was away: one interval whose every batch waited 45 ms, then normal.
        run(&mut o, &mut t, 50, 45 * MS);
        run(&mut o, &mut t, 500, Duration::ZERO);
        assert!(!o.active());
        assert_eq!(admitted_of(&mut o, 100), (100, 0, 0));
    }

    #[test]
    fn a_backlog_of_discarded_junk_sheds_no_callers() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        for _ in 0..1000 {
            t += MS;
            o.observe(t, 50 * MS);
            for _ in 0..30 {
                o.count(true);
            }
            o.count(false);
        }
        assert!(!o.active(), "{}", o.fraction());
        // The same backlog made of real work is overload.
        for _ in 0..1000 {
            t += MS;
            o.observe(t, 50 * MS);
            o.count(true);
            o.count(false);
            o.count(false);
        }
        assert!(o.active());
        assert!(o.fraction() < 0.7, "{}", o.fraction());
    }

    #[test]
    fn feedback_follows_the_refused_share_then_says_zero_for_one_validity() {
        let mut o = OverloadControl::default();
        let mut t = Instant::now();
        run(&mut o, &mut t, 100, Duration::ZERO);
        assert_eq!(o.feedback(t), None, "never overloaded: no feedback at all");
        run(&mut o, &mut t, 110, 10 * MS);
        let least = (limits::OVERLOAD_CUT_MIN * 100.0).round() as u8;
        assert_eq!(o.feedback(t), Some(least), "{}", o.fraction());
        run(&mut o, &mut t, 1000, 10 * MS);
        let f = o.feedback(t).unwrap();
        assert_eq!(u64::from(f), 100 - o.percent());
        assert!(f > 10, "{f}");
        // The queue is gone: the fraction climbs back; once it is 1, `oc=0` for 500 ms.
        while o.active() {
            run(&mut o, &mut t, 1, Duration::ZERO);
        }
        // The last observation that found shedding was 1 ms ago.
        assert_eq!(o.feedback(t), Some(0));
        t += Duration::from_millis(limits::OC_VALIDITY_MS - 2);
        assert_eq!(o.feedback(t), Some(0));
        t += MS;
        assert_eq!(o.feedback(t), None);
        // Memory pressure: withhold every new call.
        o.set_memory_pressure(true);
        assert_eq!(o.feedback(t), Some(100));
    }

    #[test]
    fn memory_pressure_rejects_every_new_call_until_it_clears() {
        let mut o = OverloadControl::default();
        o.set_memory_pressure(true);
        assert!(o.active());
        assert_eq!(admitted_of(&mut o, 10), (0, 10, 0));
        assert_eq!(o.fraction(), 0.0);
        o.set_memory_pressure(false);
        assert_eq!(admitted_of(&mut o, 10), (10, 0, 0));
    }
}
