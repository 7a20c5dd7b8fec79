//! `GET /metrics/latency.json`: exact percentiles (to the histograms' 3 significant
//! digits) of the merged hdrhistograms, where /metrics only has buckets.
//!
//! ```text
//! {"since_seconds":null,"until_seconds":1795842790.123,
//!  "trunks":{"gw-a":{"pdd_seconds":{"count":120,"p50":0.1802,"p90":..,"p99":..,"p99_9":..,"max":..},
//!                    "answer_seconds":{..},"options_rtt_seconds":{..},
//!                    "call_duration_seconds":{..}}, ...},
//!  "residence_seconds":{"INVITE":{..},"2xx":{..}, ...}}
//! ```
//!
//! One unit throughout: every duration and time is in seconds (`since_seconds` and
//! `until_seconds` are seconds since the Unix epoch, to the ms), like the Prometheus families
//! of the same names. `since_seconds` is null for statistics since start. With `?since=last`
//! the document covers only what happened since the previous `?since=last` request (since
//! start for the first), an interval window for a poller; several pollers of `?since=last`
//! share one window.
//!
//! A histogram with no values has `count` 0 and null percentiles.
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
        *slot = round9(v as f64 * scale);
    }
    json!({
        "count": h.len(),
        "p50": at[0],
        "p90": at[1],
        "p99": at[2],
        "p99_9": at[3],
        "max": round9(h.max() as f64 * scale),
    })
}

/// Round to 9 decimals, the ns (drops float noise such as 0.30000000000000004; the
/// histograms record µs at best).
fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// Epoch milliseconds as seconds (to the ms).
fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1e3
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
                "pdd_seconds": summary(&l.pdd_us, 1e-6),
                "answer_seconds": summary(&l.answer_us, 1e-6),
                "options_rtt_seconds": summary(&l.options_rtt_us, 1e-6),
                "call_duration_seconds": summary(&l.duration_ms, 1e-3),
            }),
        );
    }
    let mut residence = Map::new();
    for (kind, h) in stats.residence.iter() {
        residence.insert(kind.to_string(), summary(h, 1e-6));
    }
    let doc = json!({
        "since_seconds": window.since_ms.map(epoch_seconds),
        "until_seconds": epoch_seconds(window.until_ms),
        "trunks": trunks,
        "residence_seconds": residence,
    });
    let mut text = doc.to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::trunk_stats::{record_ms, record_us};
    use std::time::Duration;

    #[test]
    fn percentiles_are_ordered_and_counted() {
        let mut stats = ShardStats::default();
        let gw = stats.trunks.trunk("gw");
        for ms in 1..=1000 {
            record_us(&mut gw.latency.pdd_us, Duration::from_millis(ms));
        }
        stats.residence.record(0, Duration::from_micros(25));
        record_ms(
            &mut stats.trunks.trunk("gw").latency.duration_ms,
            Duration::from_secs(90),
        );
        let window = Window {
            since_ms: Some(5_500),
            until_ms: 7_250,
        };
        let v: Value = serde_json::from_str(&render(&stats, window)).unwrap();
        assert_eq!(
            (v["since_seconds"].as_f64(), v["until_seconds"].as_f64()),
            (Some(5.5), Some(7.25))
        );
        let pdd = &v["trunks"]["gw"]["pdd_seconds"];
        assert_eq!(pdd["count"], 1000);
        let p = |k: &str| pdd[k].as_f64().unwrap();
        assert!((p("p50") - 0.5).abs() <= 0.0005, "{pdd}");
        assert!((p("p99") - 0.99).abs() <= 0.001, "{pdd}");
        assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p99_9"));
        assert!(p("p99_9") <= p("max") && (p("max") - 1.0).abs() <= 0.001);
        let answer = &v["trunks"]["gw"]["answer_seconds"];
        assert_eq!(answer["count"], 0);
        assert!(answer["p50"].is_null());
        let duration = &v["trunks"]["gw"]["call_duration_seconds"];
        assert!(
            (duration["max"].as_f64().unwrap() - 90.0).abs() <= 0.1,
            "{duration}"
        );
        assert_eq!(v["residence_seconds"]["INVITE"]["count"], 1);
        assert_eq!(v["residence_seconds"]["INVITE"]["max"], 0.000025);
    }
}
