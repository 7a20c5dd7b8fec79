//! `GET /metrics/latency.json`: exact percentiles (to the histograms' 3 significant
//! digits) of the merged hdrhistograms, where /metrics only has buckets.
//!
//! ```text
//! {"since_ms":null,"until_ms":1795842790123,
//!  "trunks":{"gw-a":{"pdd_ms":{"count":120,"p50":180.2,"p90":..,"p99":..,"p99_9":..,"max":..},
//!                    "answer_ms":{..},"options_rtt_ms":{..},"call_duration_s":{..}}, ...},
//!  "residence_us":{"INVITE":{..},"2xx":{..}, ...}}
//! ```
//!
//! `since_ms` is null for statistics since start. With `?since=last` the document covers
//! only what happened since the previous `?since=last` request (since start for the first),
//! an interval window for a poller; several pollers of `?since=last` share one window.
//!
//! Each key names its unit. A histogram with no values has `count` 0 and null percentiles.
//! Percentiles are the highest value of their hdrhistogram bin, so `p50 <= p90 <= p99 <=
//! p99_9 <= max`, and `max` is the same bin as /metrics' largest value.

use super::stats::ShardStats;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// The percentiles of one histogram; `scale` converts its unit to the one shown.
pub fn summary(h: &Histogram<u64>, scale: f64) -> Value {
    if h.is_empty() {
        return json!({"count": 0, "p50": null, "p90": null, "p99": null, "p99_9": null, "max": null});
    }
    // One pass over the counts for all four.
    let mut at = [0.0f64; 4];
    for (slot, v) in at
        .iter_mut()
        .zip(h.value_at_quantiles([0.5, 0.9, 0.99, 0.999]))
    {
        *slot = round6(v as f64 * scale);
    }
    json!({
        "count": h.len(),
        "p50": at[0],
        "p90": at[1],
        "p99": at[2],
        "p99_9": at[3],
        "max": round6(h.max() as f64 * scale),
    })
}

/// Round to 6 decimals (drops float noise such as 0.30000000000000004).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The period a document covers, in ms since the epoch (`since` `None`: since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since_ms: Option<i64>,
    pub until_ms: i64,
}

/// The whole document for the merged statistics.
pub fn render(stats: &ShardStats, window: Window) -> String {
    let mut trunks = Map::new();
    for (name, s) in &stats.trunks.by_trunk {
        let l = &s.latency;
        trunks.insert(
            name.clone(),
            json!({
                "pdd_ms": summary(&l.pdd_us, 1e-3),
                "answer_ms": summary(&l.answer_us, 1e-3),
                "options_rtt_ms": summary(&l.options_rtt_us, 1e-3),
                "call_duration_s": summary(&l.duration_ms, 1e-3),
            }),
        );
    }
    let mut residence = Map::new();
    for (kind, h) in stats.residence.iter() {
        residence.insert(kind.to_string(), summary(h, 1.0));
    }
    let doc = json!({
        "since_ms": window.since_ms,
        "until_ms": window.until_ms,
        "trunks": trunks,
        "residence_us": residence,
    });
    let mut text = doc.to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::trunk_stats::record_us;
    use std::time::Duration;

    #[test]
    fn percentiles_are_ordered_and_counted() {
        let mut stats = ShardStats::default();
        let gw = stats.trunks.trunk("gw");
        for ms in 1..=1000 {
            record_us(&mut gw.latency.pdd_us, Duration::from_millis(ms));
        }
        stats.residence.record(0, Duration::from_micros(25));
        let window = Window {
            since_ms: Some(5),
            until_ms: 7,
        };
        let v: Value = serde_json::from_str(&render(&stats, window)).unwrap();
        assert_eq!(
            (v["since_ms"].as_i64(), v["until_ms"].as_i64()),
            (Some(5), Some(7))
        );
        let pdd = &v["trunks"]["gw"]["pdd_ms"];
        assert_eq!(pdd["count"], 1000);
        let p = |k: &str| pdd[k].as_f64().unwrap();
        assert!((p("p50") - 500.0).abs() <= 0.5, "{pdd}");
        assert!((p("p99") - 990.0).abs() <= 1.0, "{pdd}");
        assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p99_9"));
        assert!(p("p99_9") <= p("max") && (p("max") - 1000.0).abs() <= 1.0);
        let answer = &v["trunks"]["gw"]["answer_ms"];
        assert_eq!(answer["count"], 0);
        assert!(answer["p50"].is_null());
        assert_eq!(v["residence_us"]["INVITE"]["count"], 1);
        assert_eq!(v["residence_us"]["INVITE"]["max"], 25.0);
    }
}
