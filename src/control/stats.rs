//! The histograms and per-trunk statistics a shard publishes besides its counters, and
//! their merge across shards.
//!
//! A shard copies its core's `TrunkStatsMap` and its shell's `Residence` into its slot's
//! `ShardStats` at most every `limits::METRICS_PUBLISH_INTERVAL`, copying only the trunks
//! whose counters changed and the histograms whose count changed, and at most
//! `limits::STATS_COPY_HISTOGRAMS_MAX` histograms per loop round (the rest in the following
//! rounds). An hdrhistogram of 3 significant digits up to 10 minutes is ~170 KB: copying
//! one takes ~14 µs, copying all of 10 trunks ~2.6 ms (`cargo bench --bench
//! metrics_publish`), which a shard must not spend at once. The control plane adds the
//! shards' copies when it renders.

use super::residence::Residence;
use crate::sip::trunk_stats::{TrunkLatency, TrunkStats, TrunkStatsMap};
use hdrhistogram::Histogram;

#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub trunks: TrunkStatsMap,
    pub residence: Residence,
}

/// What one publication step copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Trunks with a change copied.
    pub trunks: usize,
    pub histograms: usize,
    /// Everything that changed is copied (false: the budget ran out; call again).
    pub complete: bool,
}

impl ShardStats {
    /// Make this a copy of (`trunks`, `residence`), copying only what changed and at most
    /// `budget` histograms (counters do not count: they are small).
    pub fn copy_changed_from(
        &mut self,
        trunks: &TrunkStatsMap,
        residence: &Residence,
        budget: usize,
    ) -> Copied {
        let mut copied = Copied {
            histograms: self.residence.copy_changed_from(residence, budget),
            ..Copied::default()
        };
        if copied.histograms == budget {
            return copied;
        }
        for (name, src) in &trunks.by_trunk {
            if !self.trunks.by_trunk.contains_key(name) {
                // A trunk seen for the first time: one allocation per trunk, ever.
                self.trunks
                    .by_trunk
                    .insert(name.clone(), TrunkStats::default());
            }
            let Some(dst) = self.trunks.by_trunk.get_mut(name) else {
                continue;
            };
            let mut changed = false;
            if dst.counters != src.counters {
                dst.counters.clone_from(&src.counters);
                changed = true;
            }
            for (d, s) in latency_pairs(&mut dst.latency, &src.latency) {
                if d.len() == s.len() {
                    continue;
                }
                if copied.histograms == budget {
                    copied.trunks += usize::from(changed);
                    return copied;
                }
                copy_plain(d, s);
                copied.histograms += 1;
                changed = true;
            }
            copied.trunks += usize::from(changed);
        }
        copied.complete = true;
        copied
    }

    /// Add `other` (another shard's statistics) to these.
    pub fn add(&mut self, other: &ShardStats) {
        self.residence.add(&other.residence);
        for (name, src) in &other.trunks.by_trunk {
            let Some(dst) = self.trunks.by_trunk.get_mut(name) else {
                // The first shard with this trunk: a copy (cheaper than zeroing, then adding).
                self.trunks.by_trunk.insert(name.clone(), src.clone());
                continue;
            };
            add_counters(dst, src);
            for (d, s) in latency_pairs(&mut dst.latency, &src.latency) {
                // Same bounds on both sides (one constructor): cannot fail.
                let _ = d.add(s);
            }
        }
    }
}

impl ShardStats {
    /// Take `earlier` (a copy of these statistics from before) away: what happened since.
    /// Statistics only grow, so every count of `earlier` is covered; a histogram that is
    /// not (never expected) is left whole.
    pub fn subtract(&mut self, earlier: &ShardStats) {
        self.residence.subtract(&earlier.residence);
        for (name, before) in &earlier.trunks.by_trunk {
            let Some(now) = self.trunks.by_trunk.get_mut(name) else {
                continue;
            };
            sub_counters(now, before);
            for (d, s) in latency_pairs(&mut now.latency, &before.latency) {
                let _ = d.subtract(s);
            }
        }
    }
}

fn latency_pairs<'a>(
    dst: &'a mut TrunkLatency,
    src: &'a TrunkLatency,
) -> [(&'a mut Histogram<u64>, &'a Histogram<u64>); 4] {
    [
        (&mut dst.pdd_us, &src.pdd_us),
        (&mut dst.answer_us, &src.answer_us),
        (&mut dst.options_rtt_us, &src.options_rtt_us),
        (&mut dst.duration_ms, &src.duration_ms),
    ]
}

fn copy_plain(dst: &mut Histogram<u64>, src: &Histogram<u64>) {
    if dst.set_to(src).is_err() {
        // Different bounds (never with one constructor): replace it whole.
        *dst = src.clone();
    }
}

fn add_counters(dst: &mut TrunkStats, src: &TrunkStats) {
    let d = &mut dst.counters;
    let s = &src.counters;
    d.calls_in += s.calls_in;
    d.attempts_out += s.attempts_out;
    d.answered_out += s.answered_out;
    d.failed_4xx += s.failed_4xx;
    d.failed_5xx += s.failed_5xx;
    d.failed_6xx += s.failed_6xx;
    d.failed_timeout += s.failed_timeout;
    d.failovers_from += s.failovers_from;
    d.refused_limits += s.refused_limits;
    d.rejected_no_route += s.rejected_no_route;
    d.rejected_no_trunk += s.rejected_no_trunk;
    d.rejected_route += s.rejected_route;
    d.rejected_ingress += s.rejected_ingress;
}

fn sub_counters(dst: &mut TrunkStats, src: &TrunkStats) {
    let d = &mut dst.counters;
    let s = &src.counters;
    for (a, b) in [
        (&mut d.calls_in, s.calls_in),
        (&mut d.attempts_out, s.attempts_out),
        (&mut d.answered_out, s.answered_out),
        (&mut d.failed_4xx, s.failed_4xx),
        (&mut d.failed_5xx, s.failed_5xx),
        (&mut d.failed_6xx, s.failed_6xx),
        (&mut d.failed_timeout, s.failed_timeout),
        (&mut d.failovers_from, s.failovers_from),
        (&mut d.refused_limits, s.refused_limits),
        (&mut d.rejected_no_route, s.rejected_no_route),
        (&mut d.rejected_no_trunk, s.rejected_no_trunk),
        (&mut d.rejected_route, s.rejected_route),
        (&mut d.rejected_ingress, s.rejected_ingress),
    ] {
        *a = a.saturating_sub(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::trunk_stats::record_us;
    use std::time::Duration;

    fn shard_with(calls: u64, pdd_ms: u64) -> (TrunkStatsMap, Residence) {
        let mut map = TrunkStatsMap::default();
        let gw = map.trunk("gw");
        gw.counters.attempts_out = calls;
        gw.counters.answered_out = calls;
        for _ in 0..calls {
            record_us(&mut gw.latency.pdd_us, Duration::from_millis(pdd_ms));
        }
        map.trunk("pbx").counters.calls_in = calls;
        let mut residence = Residence::new();
        residence.record(0, Duration::from_micros(30));
        (map, residence)
    }

    #[test]
    fn publishing_copies_only_changes() {
        let (mut map, residence) = shard_with(3, 100);
        let mut slot = ShardStats::default();
        // gw: counters + pdd; pbx: counters only; residence: INVITE. A budget of one
        // histogram copies the residence histogram first, then the rest.
        let copied = |trunks, histograms, complete| Copied {
            trunks,
            histograms,
            complete,
        };
        let first = slot.copy_changed_from(&map, &residence, 1);
        assert_eq!(first, copied(0, 1, false));
        let rest = slot.copy_changed_from(&map, &residence, 1);
        assert_eq!(rest, copied(2, 1, true));
        let nothing = slot.copy_changed_from(&map, &residence, 1);
        assert_eq!(nothing, copied(0, 0, true));
        record_us(
            &mut map.trunk("gw").latency.answer_us,
            Duration::from_secs(2),
        );
        let again = slot.copy_changed_from(&map, &residence, 8);
        assert_eq!(again, copied(1, 1, true));
        let gw = &slot.trunks.by_trunk["gw"];
        assert_eq!(gw.latency.pdd_us.len(), 3);
        assert_eq!(gw.latency.answer_us.len(), 1);
        assert_eq!(gw.counters.attempts_out, 3);
    }

    #[test]
    fn merging_adds_counters_and_histograms() {
        let (a_map, a_res) = shard_with(3, 100);
        let (b_map, b_res) = shard_with(2, 300);
        let mut a = ShardStats::default();
        a.copy_changed_from(&a_map, &a_res, usize::MAX);
        let mut b = ShardStats::default();
        b.copy_changed_from(&b_map, &b_res, usize::MAX);
        let mut merged = ShardStats::default();
        merged.add(&a);
        merged.add(&b);
        let gw = &merged.trunks.by_trunk["gw"];
        assert_eq!(gw.counters.attempts_out, 5);
        assert_eq!(gw.latency.pdd_us.len(), 5);
        assert!(gw
            .latency
            .pdd_us
            .equivalent(gw.latency.pdd_us.max(), 300_000));
        assert_eq!(merged.trunks.by_trunk["pbx"].counters.calls_in, 5);
        assert_eq!(merged.residence.get(0).map(|h| h.len()), Some(2));
    }

    #[test]
    fn subtracting_an_earlier_copy_leaves_what_happened_since() {
        let (mut map, mut residence) = shard_with(3, 100);
        let mut before = ShardStats::default();
        before.copy_changed_from(&map, &residence, usize::MAX);
        for _ in 0..2 {
            record_us(
                &mut map.trunk("gw").latency.pdd_us,
                Duration::from_millis(700),
            );
        }
        map.trunk("gw").counters.attempts_out += 2;
        map.trunk("new").counters.calls_in = 1;
        residence.record(0, Duration::from_micros(90));
        let mut now = ShardStats::default();
        now.copy_changed_from(&map, &residence, usize::MAX);
        now.subtract(&before);
        let gw = &now.trunks.by_trunk["gw"];
        assert_eq!(gw.counters.attempts_out, 2);
        assert_eq!(gw.counters.answered_out, 0);
        assert_eq!(gw.latency.pdd_us.len(), 2);
        assert!(gw
            .latency
            .pdd_us
            .equivalent(gw.latency.pdd_us.min(), 700_000));
        assert_eq!(now.trunks.by_trunk["new"].counters.calls_in, 1);
        assert_eq!(now.residence.get(0).map(|h| h.len()), Some(1));
    }
}
