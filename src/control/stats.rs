//! The histograms and per-trunk statistics a shard publishes besides its counters, and
//! their merge across shards.
//!
//! A shard copies its core's `TrunkStatsMap` and its shell's `Residence` into its slot's
//! `ShardStats` at most every `limits::METRICS_PUBLISH_INTERVAL`, copying only the trunks
//! whose counters changed and the histograms whose count changed (an hdrhistogram of 3
//! significant digits up to 10 minutes is ~170 KB: copying every one every time would cost
//! a busy shard more than the rest of its metrics together). The control plane adds the
//! shards' copies when it renders.

use super::residence::Residence;
use crate::sip::trunk_stats::{TrunkLatency, TrunkStats, TrunkStatsMap};
use hdrhistogram::Histogram;

#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub trunks: TrunkStatsMap,
    pub residence: Residence,
}

/// What one publication copied (to measure it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub trunks: usize,
    pub histograms: usize,
}

impl ShardStats {
    /// Make this a copy of (`trunks`, `residence`), copying only what changed.
    pub fn copy_changed_from(&mut self, trunks: &TrunkStatsMap, residence: &Residence) -> Copied {
        let mut copied = Copied {
            histograms: self.residence.copy_changed_from(residence),
            ..Copied::default()
        };
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
                if copy_plain_if_changed(d, s) {
                    copied.histograms += 1;
                    changed = true;
                }
            }
            copied.trunks += usize::from(changed);
        }
        copied
    }

    /// Add `other` (another shard's statistics) to these.
    pub fn add(&mut self, other: &ShardStats) {
        self.residence.add(&other.residence);
        for (name, src) in &other.trunks.by_trunk {
            let dst = self.trunks.trunk(name);
            add_counters(dst, src);
            for (d, s) in latency_pairs(&mut dst.latency, &src.latency) {
                // Same bounds on both sides (one constructor): cannot fail.
                let _ = d.add(s);
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

fn copy_plain_if_changed(dst: &mut Histogram<u64>, src: &Histogram<u64>) -> bool {
    if dst.len() == src.len() {
        return false;
    }
    if dst.set_to(src).is_err() {
        // Different bounds (never with one constructor): replace it whole.
        *dst = src.clone();
    }
    true
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
        let first = slot.copy_changed_from(&map, &residence);
        // gw: counters + pdd; pbx: counters only; residence: INVITE.
        assert_eq!(
            first,
            Copied {
                trunks: 2,
                histograms: 2
            }
        );
        assert_eq!(slot.copy_changed_from(&map, &residence), Copied::default());
        record_us(
            &mut map.trunk("gw").latency.answer_us,
            Duration::from_secs(2),
        );
        let again = slot.copy_changed_from(&map, &residence);
        assert_eq!(
            again,
            Copied {
                trunks: 1,
                histograms: 1
            }
        );
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
        a.copy_changed_from(&a_map, &a_res);
        let mut b = ShardStats::default();
        b.copy_changed_from(&b_map, &b_res);
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
}
