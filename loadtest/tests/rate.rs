//! The call schedule against a fake clock: which calls are due at which instant, exactly.

use junction_load::rate::{RateConfig, Schedule};
use junction_load::time::{Micros, MS, SEC};

/// Step a fake clock from 0 to `end` in `tick` steps and record the (now, intended) of each
/// call the schedule releases.
fn run(cfg: RateConfig, tick: Micros, end: Micros) -> Vec<(Micros, Micros)> {
    let mut s = Schedule::new(cfg);
    let mut got = Vec::new();
    let mut now = 0;
    while now <= end {
        while let Some(t) = s.poll(now) {
            got.push((now, t));
            assert!(got.len() < 100_000);
        }
        now += tick;
    }
    got
}

#[test]
fn constant_rate_spaces_calls_evenly() {
    let got = run(RateConfig::constant(10.0), MS, 2 * SEC);
    let intended: Vec<Micros> = got.iter().map(|g| g.1 / MS).take(5).collect();
    assert_eq!(intended, [0, 100, 200, 300, 400]);
    // Released exactly when due with a 1 ms clock.
    assert!(got.iter().all(|(now, t)| now == t));
    assert_eq!(got.len(), 21); // 0, 0.1, ..., 2.0 s
}

#[test]
fn a_late_clock_releases_the_backlog_with_its_intended_times() {
    let mut s = Schedule::new(RateConfig::constant(1000.0));
    // The worker wakes only at 10 ms: ten calls are due (0..9 ms), with their own times.
    let mut due = Vec::new();
    while let Some(t) = s.poll(9_999) {
        due.push(t);
    }
    assert_eq!(due, (0..10).map(|i| i * MS).collect::<Vec<_>>());
    assert_eq!(s.poll(9_999), None);
    assert_eq!(s.poll(10 * MS), Some(10 * MS));
}

#[test]
fn total_calls_and_duration_end_the_schedule() {
    let cfg = RateConfig {
        calls: Some(7),
        ..RateConfig::constant(100.0)
    };
    assert_eq!(run(cfg, MS, 10 * SEC).len(), 7);
    let cfg = RateConfig {
        duration: Some(SEC),
        ..RateConfig::constant(100.0)
    };
    let got = run(cfg, MS, 10 * SEC);
    assert_eq!(got.len(), 100);
    assert_eq!(got.last().map(|g| g.1), Some(990 * MS));
    let mut s = Schedule::new(cfg);
    while s.poll(10 * SEC).is_some() {}
    assert!(s.is_done());
    assert_eq!(s.started(), 100);
}

#[test]
fn ramp_steps_each_period_up_to_max() {
    // 10 cps, +10 every second, at most 30.
    let cfg = RateConfig {
        start: 10.0,
        step: 10.0,
        period: SEC,
        max: 30.0,
        alternate: None,
        calls: None,
        duration: Some(5 * SEC),
        offset: 0,
    };
    let got = run(cfg, MS, 6 * SEC);
    let per_second: Vec<usize> = (0..5)
        .map(|k| got.iter().filter(|g| g.1 / SEC == k).count())
        .collect();
    assert_eq!(per_second, [10, 20, 30, 30, 30]);
    // Within the second period the spacing is 50 ms, starting at the period start.
    let second: Vec<Micros> = got
        .iter()
        .filter(|g| g.1 / SEC == 1)
        .map(|g| g.1 / MS)
        .take(3)
        .collect();
    assert_eq!(second, [1000, 1050, 1100]);
}

#[test]
fn ramp_from_zero_skips_empty_periods() {
    let cfg = RateConfig {
        start: 0.0,
        step: 2.0,
        period: SEC,
        max: 4.0,
        alternate: None,
        calls: Some(5),
        duration: None,
        offset: 0,
    };
    let got: Vec<Micros> = run(cfg, MS, 10 * SEC).iter().map(|g| g.1 / MS).collect();
    assert_eq!(got, [1000, 1500, 2000, 2250, 2500]);
}

#[test]
fn worker_shares_add_up_and_interleave() {
    let cfg = RateConfig {
        calls: Some(1001),
        ..RateConfig::constant(1000.0)
    };
    let shares: Vec<RateConfig> = (0..3).map(|w| cfg.share(w, 3)).collect();
    let counts: Vec<usize> = shares.iter().map(|c| run(*c, MS, 10 * SEC).len()).collect();
    assert_eq!(counts, [334, 334, 333]);
    let mut all: Vec<Micros> = shares
        .iter()
        .flat_map(|c| run(*c, 100, SEC / 100).into_iter().map(|g| g.1))
        .collect();
    all.sort();
    // Together they place a call every millisecond, like one schedule at the full rate.
    assert_eq!(
        all.iter().take(6).copied().collect::<Vec<_>>(),
        [0, 1000, 2000, 3000, 4000, 5000]
    );
}

#[test]
fn two_rates_take_turns_period_by_period() {
    // 10 cps, then 30 for a second, then 10 again...
    let cfg = RateConfig {
        period: SEC,
        alternate: Some(30.0),
        duration: Some(5 * SEC),
        ..RateConfig::constant(10.0)
    };
    let got = run(cfg, MS, 6 * SEC);
    let per_second: Vec<usize> = (0..6)
        .map(|k| got.iter().filter(|g| g.1 / SEC == k).count())
        .collect();
    assert_eq!(per_second, [10, 30, 10, 30, 10, 0]);
    // Shared between workers, the turns stay in step (give or take the one call a worker's
    // offset, a fraction of a call interval, moves across a period boundary).
    let shares: Vec<RateConfig> = (0..2).map(|w| cfg.share(w, 2)).collect();
    let mut all: Vec<Micros> = shares
        .iter()
        .flat_map(|c| run(*c, MS, 6 * SEC).into_iter().map(|g| g.1))
        .collect();
    all.sort();
    let per_second: Vec<usize> = (0..6)
        .map(|k| all.iter().filter(|t| **t / SEC == k).count())
        .collect();
    assert_eq!(all.len(), 90);
    for (got, want) in per_second.iter().zip([10, 30, 10, 30, 10, 0]) {
        assert!(got.abs_diff(want) <= 1, "{per_second:?}");
    }
}
