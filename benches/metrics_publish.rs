//! What publishing its statistics costs a shard (`ShardStats::copy_changed_from`, done at
//! most every `limits::METRICS_PUBLISH_INTERVAL`), and what a scrape's merge costs the
//! control plane, for 10 and 100 trunks:
//!
//! - `unchanged`: nothing recorded since the last publication (only the change checks);
//! - `changed`: every trunk's counters and pdd/answer/duration histograms changed (a busy
//!   shard whose every trunk carried calls in the last 100 ms), plus 6 residence kinds;
//! - `changed_one_round`: what one loop round copies of that (`STATS_COPY_HISTOGRAMS_MAX`);
//! - `full_clone`: what copying everything each time would cost (`TrunkStatsMap::clone`);
//! - `merge_2_shards`: the scrape side, adding two shards' copies;
//! - `scrape_metrics`, `scrape_latency_json`: a whole scrape of a 2-shard hub (merge and
//!   render), on the metrics thread.
//!
//! `cargo bench --bench metrics_publish`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use junction::control::residence::Residence;
use junction::control::stats::ShardStats;
use junction::control::MetricsHub;
use junction::limits;
use junction::sip::trunk_stats::{record_ms, record_us, TrunkStatsMap};
use std::time::Duration;

fn trunks(n: usize) -> TrunkStatsMap {
    let mut map = TrunkStatsMap::default();
    for i in 0..n {
        let t = map.trunk(&format!("trunk-{i:03}"));
        for k in 0..200u64 {
            t.counters.attempts_out += 1;
            record_us(&mut t.latency.pdd_us, Duration::from_millis(50 + k * 20));
            record_us(
                &mut t.latency.answer_us,
                Duration::from_millis(2000 + k * 50),
            );
            record_ms(&mut t.latency.duration_ms, Duration::from_secs(30 + k));
        }
    }
    map
}

/// One more call on every trunk.
fn touch(map: &mut TrunkStatsMap) {
    for t in map.by_trunk.values_mut() {
        t.counters.attempts_out += 1;
        record_us(&mut t.latency.pdd_us, Duration::from_millis(180));
        record_us(&mut t.latency.answer_us, Duration::from_millis(4000));
        record_ms(&mut t.latency.duration_ms, Duration::from_secs(95));
    }
}

fn residence() -> Residence {
    let mut r = Residence::new();
    for kind in [0, 1, 3, 15, 16, 19] {
        r.record(kind, Duration::from_micros(40));
    }
    r
}

fn touch_residence(r: &mut Residence) {
    for kind in [0, 1, 3, 15, 16, 19] {
        r.record(kind, Duration::from_micros(45));
    }
}

fn bench(c: &mut Criterion) {
    for n in [10, 100] {
        let mut group = c.benchmark_group(format!("publish_{n}_trunks"));
        let mut map = trunks(n);
        let mut res = residence();
        let mut slot = ShardStats::default();
        let all = usize::MAX;
        slot.copy_changed_from(&map, &res, all);
        group.bench_function("unchanged", |b| {
            b.iter(|| black_box(slot.copy_changed_from(black_box(&map), black_box(&res), all)))
        });
        group.bench_function("changed", |b| {
            b.iter(|| {
                touch(&mut map);
                touch_residence(&mut res);
                black_box(slot.copy_changed_from(&map, &res, all))
            })
        });
        // One loop round's share: every histogram changed, only the budget is copied.
        group.bench_function("changed_one_round", |b| {
            b.iter(|| {
                touch(&mut map);
                touch_residence(&mut res);
                black_box(slot.copy_changed_from(&map, &res, limits::STATS_COPY_HISTOGRAMS_MAX))
            })
        });
        group.bench_function("full_clone", |b| b.iter(|| black_box(map.clone())));
        group.bench_function("merge_2_shards", |b| {
            b.iter(|| {
                let mut merged = ShardStats::default();
                merged.add(&slot);
                merged.add(&slot);
                black_box(merged)
            })
        });
        let hub = MetricsHub::new(&[0, 1], 4096);
        for shard in 0..2 {
            if let Some(slot) = hub.slot(shard) {
                slot.publish_stats(&map, &res);
            }
        }
        group.bench_function("scrape_metrics", |b| b.iter(|| black_box(hub.render())));
        group.bench_function("scrape_latency_json", |b| {
            b.iter(|| black_box(hub.latency_json(false)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
