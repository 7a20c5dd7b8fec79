//! The Prometheus families of the merged `ShardStats` (per-trunk counters and latency
//! histograms, residence time per message kind), of the shared trunk state (active calls,
//! early dialogs, up/down, admission refusals) and of the CDR writer.
//!
//! Every trunk of the current configuration gets every series (zero until it carries a
//! call), plus trunks that still have statistics after a reload removed them. Trunk
//! counters are summed over the shards (the per-shard split is in the shard families).
//! `direction="in"` counts calls the trunk sent us, `direction="out"` calls we sent it:
//! ASR of a trunk is `answered_total / calls_total{direction="out"}`, ACD
//! `call_duration_seconds_sum / call_duration_seconds_count`.

use super::cdr::CdrTotals;
use super::exposition::{Exposition, Kind, Scale};
use super::stats::ShardStats;
use crate::sip::trunk_stats::{TrunkCounters, TrunkStats};
use crate::trunks::TrunkState;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Post-dial delay, time to answer, OPTIONS round trip: 10 ms to 60 s.
pub const DELAY_BOUNDS_SECS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// Call duration: 1 s to 8 h.
pub const DURATION_BOUNDS_SECS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];
/// Residence time: 10 µs to 1 s.
pub const RESIDENCE_BOUNDS_SECS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];

const US: f64 = 1e-6;
const MS: f64 = 1e-3;

type CounterField = fn(&TrunkCounters) -> u64;

/// What the control plane knows besides the shards' statistics.
pub struct Extras<'a> {
    /// The shared state of the current configuration's trunks.
    pub states: &'a [Arc<TrunkState>],
    /// The CDR writer's counters (`None`: CDRs are off; the series are then 0).
    pub cdr: Option<CdrTotals>,
}

/// Append the families to `out`.
pub fn render(stats: &ShardStats, extras: &Extras<'_>, out: &mut String) {
    let mut e = Exposition {
        out: std::mem::take(out),
    };
    let empty = TrunkStats::default();
    let names: BTreeSet<&str> = extras
        .states
        .iter()
        .map(|s| s.name.as_str())
        .chain(stats.trunks.by_trunk.keys().map(String::as_str))
        .collect();
    let trunks: Vec<(&str, &TrunkStats)> = names
        .iter()
        .map(|name| (*name, stats.trunks.by_trunk.get(*name).unwrap_or(&empty)))
        .collect();

    counters(&mut e, &trunks);
    gauges(&mut e, extras.states);
    histograms(&mut e, &trunks);

    let residence = "junction_residence_seconds";
    e.histogram_family(
        residence,
        "Time from receiving a datagram to sending a message it caused, by the kind of the message sent (request method or response class).",
    );
    let scale = Scale {
        unit_secs: US,
        bounds_secs: RESIDENCE_BOUNDS_SECS,
    };
    for (kind, h) in stats.residence.iter() {
        e.histogram(residence, &[("kind", kind)], h, scale);
    }

    let cdr = extras.cdr.unwrap_or_default();
    let cdr_families: [(&str, &str, u64); 4] = [
        (
            "junction_cdr_records_written_total",
            "Call detail records written to the CDR file.",
            cdr.written,
        ),
        (
            "junction_cdr_dropped_total",
            "Call detail records dropped because the CDR writer was behind (its queue was full).",
            cdr.dropped,
        ),
        (
            "junction_cdr_write_errors_total",
            "Failed CDR file operations (open, write, flush, rename).",
            cdr.write_errors,
        ),
        (
            "junction_cdr_rotations_total",
            "CDR files rotated away (by size or time).",
            cdr.rotations,
        ),
    ];
    for (name, help, value) in cdr_families {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], value);
    }
    *out = e.out;
}

fn counters(e: &mut Exposition, trunks: &[(&str, &TrunkStats)]) {
    let calls = "junction_trunk_calls_total";
    e.family(
        calls,
        Kind::Counter,
        "Calls by trunk: direction=\"in\" received from the trunk, direction=\"out\" INVITE attempts sent to it.",
    );
    for (trunk, s) in trunks {
        let c = &s.counters;
        e.sample(calls, &[("trunk", trunk), ("direction", "in")], c.calls_in);
        e.sample(
            calls,
            &[("trunk", trunk), ("direction", "out")],
            c.attempts_out,
        );
    }

    let simple: [(&str, &str, CounterField); 2] = [
        (
            "junction_trunk_answered_total",
            "Attempts sent to the trunk that it answered (2xx).",
            |c| c.answered_out,
        ),
        (
            "junction_trunk_failovers_total",
            "Calls that moved on from this trunk to their next attempt (5xx, 408, no answer).",
            |c| c.failovers_from,
        ),
    ];
    for (name, help, field) in simple {
        e.family(name, Kind::Counter, help);
        for (trunk, s) in trunks {
            e.sample(
                name,
                &[("trunk", trunk), ("direction", "out")],
                field(&s.counters),
            );
        }
    }

    let failed = "junction_trunk_failed_total";
    e.family(
        failed,
        Kind::Counter,
        "Attempts sent to the trunk that failed, by class of the final response (timeout: none in time).",
    );
    let classes: [(&str, CounterField); 4] = [
        ("4xx", |c| c.failed_4xx),
        ("5xx", |c| c.failed_5xx),
        ("6xx", |c| c.failed_6xx),
        ("timeout", |c| c.failed_timeout),
    ];
    for (trunk, s) in trunks {
        for (class, field) in classes {
            e.sample(
                failed,
                &[("trunk", trunk), ("direction", "out"), ("class", class)],
                field(&s.counters),
            );
        }
    }

    let rejected = "junction_trunk_rejected_total";
    e.family(
        rejected,
        Kind::Counter,
        "Calls refused: direction=\"in\" calls from the trunk with no route, no usable trunk, answered by a reject route (route_reject), or over the trunk's ingress limits (ingress_limit); direction=\"out\" calls the trunk's admission limits refused.",
    );
    let reasons: [(&str, &str, CounterField); 5] = [
        ("in", "no_route", |c| c.rejected_no_route),
        ("in", "no_trunk", |c| c.rejected_no_trunk),
        ("in", "route_reject", |c| c.rejected_route),
        ("in", "ingress_limit", |c| c.rejected_ingress),
        ("out", "limits", |c| c.refused_limits),
    ];
    for (trunk, s) in trunks {
        for (direction, reason, field) in reasons {
            e.sample(
                rejected,
                &[
                    ("trunk", trunk),
                    ("direction", direction),
                    ("reason", reason),
                ],
                field(&s.counters),
            );
        }
    }
}

fn gauges(e: &mut Exposition, states: &[Arc<TrunkState>]) {
    let mut states: Vec<&TrunkState> = states.iter().map(|s| &**s).collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    type Gauge = fn(&TrunkState) -> f64;
    let gauges: [(&str, &str, Gauge); 6] = [
        (
            "junction_trunk_calls_active",
            "Calls in progress on the trunk (both directions, all shards).",
            |s| f64::from(s.calls()),
        ),
        (
            "junction_trunk_ingress_calls_active",
            "Calls the trunk sent junction that hold one of its max_calls_in slots (all shards; 0 without ingress limits).",
            |s| f64::from(s.calls_in()),
        ),
        (
            "junction_trunk_failures_in_a_row",
            "INVITE attempts to the trunk in a row that failed without any answer (timeouts, ICMP unreachable); down_after_failures marks it down.",
            |s| f64::from(s.failures_in_a_row()),
        ),
        (
            "junction_trunk_early_dialogs",
            "Calls sent to the trunk that wait for an answer.",
            |s| f64::from(s.early()),
        ),
        (
            "junction_trunk_up",
            "1 while the trunk is usable (its OPTIONS probes succeed, or it is not probed), else 0.",
            |s| f64::from(u8::from(s.is_up())),
        ),
        (
            "junction_trunk_overload_reduction_ratio",
            "Share (0 to 1) of new calls the trunk asked junction to withhold (RFC 7339 oc, overload_control), in force now; withheld calls go to the route's next trunk.",
            |s| f64::from(s.oc_reduction(std::time::Instant::now())) / 100.0,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        for s in &states {
            e.sample_f64(name, &[("trunk", &s.name)], value(s));
        }
    }
    let unreachable = "junction_trunk_unreachable_total";
    e.family(
        unreachable,
        Kind::Counter,
        "ICMP port/host/network unreachable errors for datagrams sent to the trunk (IP_RECVERR); an INVITE attempt waiting for any answer fails at once.",
    );
    for s in &states {
        e.sample(
            unreachable,
            &[("trunk", &s.name)],
            s.unreachable.load(Ordering::Relaxed),
        );
    }
    let downs = "junction_trunk_down_total";
    e.family(
        downs,
        Kind::Counter,
        "Times the trunk was marked down, by cause (probe: OPTIONS probes failed; failures: down_after_failures INVITE attempts in a row failed without an answer; unreachable: the same, the last an ICMP unreachable).",
    );
    for s in &states {
        for (i, cause) in ["probe", "failures", "unreachable"].into_iter().enumerate() {
            let n = s.downs.get(i).map_or(0, |n| n.load(Ordering::Relaxed));
            e.sample(downs, &[("trunk", &s.name), ("cause", cause)], n);
        }
    }
    let ups = "junction_trunk_up_total";
    e.family(
        ups,
        Kind::Counter,
        "Times the trunk came back up (its OPTIONS probes succeeded again).",
    );
    for s in &states {
        e.sample(ups, &[("trunk", &s.name)], s.ups.load(Ordering::Relaxed));
    }
    let refused = "junction_trunk_admission_refused_total";
    e.family(
        refused,
        Kind::Counter,
        "Calls the trunk's limits refused, by limit (max_calls, max_cps, max_early; overload_control: withheld because the trunk asked, RFC 7339; max_calls_in, max_cps_in: calls the trunk sent junction, over its ingress limits).",
    );
    for s in &states {
        for (limit, counter) in [
            ("max_calls", &s.refused_calls),
            ("max_cps", &s.refused_rate),
            ("max_early", &s.refused_early),
            ("overload_control", &s.refused_oc),
            ("max_calls_in", &s.refused_calls_in),
            ("max_cps_in", &s.refused_rate_in),
        ] {
            e.sample(
                refused,
                &[("trunk", &s.name), ("limit", limit)],
                counter.load(Ordering::Relaxed),
            );
        }
    }
}

fn histograms(e: &mut Exposition, trunks: &[(&str, &TrunkStats)]) {
    type Pick = fn(&TrunkStats) -> &hdrhistogram::Histogram<u64>;
    let delay = |bounds_secs| Scale {
        unit_secs: US,
        bounds_secs,
    };
    let families: [(&str, &str, Scale, Pick); 4] = [
        (
            "junction_trunk_pdd_seconds",
            "Post-dial delay of attempts sent to the trunk: INVITE sent to the first 18x (or to the 2xx when none came first).",
            delay(DELAY_BOUNDS_SECS),
            |s| &s.latency.pdd_us,
        ),
        (
            "junction_trunk_answer_seconds",
            "Time to answer of attempts sent to the trunk: INVITE sent to 200.",
            delay(DELAY_BOUNDS_SECS),
            |s| &s.latency.answer_us,
        ),
        (
            "junction_trunk_options_rtt_seconds",
            "Round trip of OPTIONS health probes sent to the trunk.",
            delay(DELAY_BOUNDS_SECS),
            |s| &s.latency.options_rtt_us,
        ),
        (
            "junction_trunk_call_duration_seconds",
            "Duration of answered calls sent to the trunk, answer to end.",
            Scale {
                unit_secs: MS,
                bounds_secs: DURATION_BOUNDS_SECS,
            },
            |s| &s.latency.duration_ms,
        ),
    ];
    for (name, help, scale, pick) in families {
        e.histogram_family(name, help);
        for (trunk, s) in trunks {
            e.histogram(name, &[("trunk", trunk)], pick(s), scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::trunk_stats::{record_ms, record_us};
    use std::time::{Duration, Instant};

    #[test]
    fn trunks_of_the_configuration_and_of_the_statistics_are_rendered() {
        let mut stats = ShardStats::default();
        let gw = stats.trunks.trunk("gw");
        gw.counters.attempts_out = 4;
        gw.counters.answered_out = 3;
        gw.counters.failed_5xx = 1;
        gw.counters.failovers_from = 1;
        record_us(&mut gw.latency.pdd_us, Duration::from_millis(40));
        record_ms(&mut gw.latency.duration_ms, Duration::from_secs(90));
        stats.trunks.trunk("gone").counters.calls_in = 2;
        stats.residence.record(16, Duration::from_micros(20));
        let now = Instant::now();
        let pbx = Arc::new(TrunkState::new("pbx", now));
        pbx.set_up(false);
        let states = vec![pbx, Arc::new(TrunkState::new("gw", now))];
        let extras = Extras {
            states: &states,
            cdr: Some(CdrTotals {
                written: 7,
                dropped: 1,
                write_errors: 0,
                rotations: 2,
            }),
        };
        let mut out = String::new();
        render(&stats, &extras, &mut out);
        for line in [
            "junction_trunk_calls_total{trunk=\"gw\",direction=\"out\"} 4",
            "junction_trunk_calls_total{trunk=\"gone\",direction=\"in\"} 2",
            "junction_trunk_calls_total{trunk=\"pbx\",direction=\"in\"} 0",
            "junction_trunk_answered_total{trunk=\"gw\",direction=\"out\"} 3",
            "junction_trunk_failed_total{trunk=\"gw\",direction=\"out\",class=\"5xx\"} 1",
            "junction_trunk_failovers_total{trunk=\"gw\",direction=\"out\"} 1",
            "junction_trunk_up{trunk=\"pbx\"} 0",
            "junction_trunk_up{trunk=\"gw\"} 1",
            "junction_trunk_admission_refused_total{trunk=\"gw\",limit=\"max_cps\"} 0",
            "junction_trunk_pdd_seconds_bucket{trunk=\"gw\",le=\"0.025\"} 0",
            "junction_trunk_pdd_seconds_bucket{trunk=\"gw\",le=\"0.05\"} 1",
            "junction_trunk_pdd_seconds_count{trunk=\"gw\"} 1",
            "junction_trunk_pdd_seconds_count{trunk=\"pbx\"} 0",
            "junction_trunk_call_duration_seconds_bucket{trunk=\"gw\",le=\"60\"} 0",
            "junction_trunk_call_duration_seconds_bucket{trunk=\"gw\",le=\"120\"} 1",
            "junction_residence_seconds_bucket{kind=\"2xx\",le=\"0.000025\"} 1",
            "junction_residence_seconds_count{kind=\"2xx\"} 1",
            "junction_cdr_records_written_total 7",
            "junction_cdr_dropped_total 1",
            "junction_cdr_rotations_total 2",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
        // The gone trunk has statistics but no state: no gauges.
        assert!(!out.contains("junction_trunk_up{trunk=\"gone\"}"));
    }
}
