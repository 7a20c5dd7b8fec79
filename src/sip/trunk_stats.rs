//! Per-trunk statistics one shard keeps (plain counters and hdrhistogram histograms, no
//! atomics), keyed by trunk name so they survive reloads. The control plane merges the
//! shards' copies (`Histogram::add`, counter sums) when it renders /metrics.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Histogram precision: 3 significant digits.
const SIGFIG: u8 = 3;
/// Largest post-dial delay / answer time / OPTIONS round trip recorded: 10 minutes in µs.
const DELAY_US_MAX: u64 = 600_000_000;
/// Largest call duration recorded: 48 hours in ms.
const DURATION_MS_MAX: u64 = 48 * 3600 * 1000;

fn histogram(max: u64) -> Histogram<u64> {
    // Our own constants: 1 <= low, max >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, max, SIGFIG).expect("constant histogram bounds are valid")
}

/// Counters by trunk and direction (out = calls we sent to the trunk, in = calls it sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrunkCounters {
    /// Calls received from this trunk (ingress).
    pub calls_in: u64,
    /// INVITE attempts sent to this trunk (egress).
    pub attempts_out: u64,
    pub answered_out: u64,
    pub failed_4xx: u64,
    pub failed_5xx: u64,
    pub failed_6xx: u64,
    /// No final response (timer B, progress timer, Timer C).
    pub failed_timeout: u64,
    /// Calls that moved on from this trunk to the next.
    pub failovers_from: u64,
    /// Refused by this trunk's admission limits.
    pub refused_limits: u64,
    /// Calls from this trunk refused: no route / no usable trunk.
    pub rejected_no_route: u64,
    pub rejected_no_trunk: u64,
    /// Calls from this trunk a reject route (`action = "reject"`) answered.
    pub rejected_route: u64,
    /// Calls from this trunk refused for its ingress limits (`max_calls_in`, `max_cps_in`).
    pub rejected_ingress: u64,
}

/// Latency histograms of one trunk (as egress).
#[derive(Clone, Debug)]
pub struct TrunkLatency {
    /// INVITE sent to first 18x, µs.
    pub pdd_us: Histogram<u64>,
    /// INVITE sent to 200, µs.
    pub answer_us: Histogram<u64>,
    /// OPTIONS probe round trip, µs.
    pub options_rtt_us: Histogram<u64>,
    /// Answered call duration (200 to end), ms.
    pub duration_ms: Histogram<u64>,
}

impl Default for TrunkLatency {
    fn default() -> Self {
        TrunkLatency {
            pdd_us: histogram(DELAY_US_MAX),
            answer_us: histogram(DELAY_US_MAX),
            options_rtt_us: histogram(DELAY_US_MAX),
            duration_ms: histogram(DURATION_MS_MAX),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrunkStats {
    pub counters: TrunkCounters,
    pub latency: TrunkLatency,
}

/// Record `d` in `h` in µs (saturating at the histogram's top).
pub fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let v = (d.as_micros() as u64).clamp(1, h.high().max(1));
    let _ = h.record(v);
}

/// Record `d` in `h` in ms (saturating).
pub fn record_ms(h: &mut Histogram<u64>, d: Duration) {
    let v = (d.as_millis() as u64).clamp(1, h.high().max(1));
    let _ = h.record(v);
}

/// Every trunk's statistics on one shard, by trunk name.
#[derive(Clone, Debug, Default)]
pub struct TrunkStatsMap {
    pub by_trunk: BTreeMap<String, TrunkStats>,
}

impl TrunkStatsMap {
    /// The statistics of trunk `name` (created empty on first use; once per call event,
    /// never per packet).
    pub fn trunk(&mut self, name: &str) -> &mut TrunkStats {
        self.by_trunk.entry(name.to_string()).or_default()
    }
}
