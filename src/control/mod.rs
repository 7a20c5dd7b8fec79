//! The control plane, off the shard cores: the latest metrics of every shard and the
//! metrics HTTP endpoint. (Configuration loading lives in `config`; reload, which needs the
//! shards, in `shard::reload`.)
//!
//! Shards publish into a `ShardSlot` each (a mutex the shard only `try_lock`s, at most every
//! `limits::METRICS_PUBLISH_INTERVAL`, so a reader can never stall a shard); the control
//! plane reads all slots when asked. Besides its counters a shard publishes its per-trunk
//! statistics and residence histograms (`stats::ShardStats`, a second mutex), which the
//! control plane merges on read, together with the shared trunk state and the CDR writer's
//! counters.
//!
//! Observability: `log` (structured lines on stderr, with syslog priorities under the
//! journal, and the `log` facade's records), `cdr` (the CDR writer thread, with
//! `rotating_file` and `clock`), `exposition` (Prometheus text), `trunk_metrics` and
//! `latency` (what /metrics and /metrics/latency.json show of `stats`), `residence`,
//! `process` (the `process_*` families), `http` (the management endpoint), `notify`
//! (systemd readiness, reload and watchdog notifications). docs/metrics.md lists every
//! family.

pub mod cdr;
pub mod clock;
pub mod exposition;
pub mod http;
pub mod latency;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod process;
pub mod residence;
pub mod rotating_file;
pub mod stats;
pub mod trunk_control;
pub mod trunk_metrics;
pub mod udp_mib;

use crate::sip::trunk_stats::TrunkStatsMap;
use crate::trunks::TrunkState;
use cdr::CdrCounters;
use metrics::{ControlCounters, ShardSnapshot, ShardState, ShardView};
use residence::Residence;
use stats::{Copied, ShardStats};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// One shard's published state: its life-cycle state and its latest snapshot.
#[derive(Debug)]
pub struct ShardSlot {
    state: AtomicU8,
    /// Loop rounds the shard has begun (its heartbeat: the watchdog pings systemd only while
    /// every shard's moves; an idle shard still turns every `limits::SHARD_PARK_MAX`).
    rounds: AtomicU64,
    snapshot: Mutex<ShardSnapshot>,
    stats: Mutex<ShardStats>,
}

impl ShardSlot {
    pub fn new(snapshot: ShardSnapshot) -> ShardSlot {
        ShardSlot {
            state: AtomicU8::new(ShardState::Starting.as_u8()),
            rounds: AtomicU64::new(0),
            snapshot: Mutex::new(snapshot),
            stats: Mutex::new(ShardStats::default()),
        }
    }

    pub fn state(&self) -> ShardState {
        ShardState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: ShardState) {
        self.state.store(state.as_u8(), Ordering::Release);
    }

    /// The shard begins a loop round (one relaxed add).
    pub fn beat(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Loop rounds begun so far; `None` once the shard has stopped.
    pub fn rounds(&self) -> Option<u64> {
        (self.state() != ShardState::Stopped).then(|| self.rounds.load(Ordering::Relaxed))
    }

    /// Publish without ever blocking: false when a reader holds the slot right now (the
    /// shard keeps its changes and tries again later).
    pub fn try_publish(&self, snapshot: &ShardSnapshot) -> bool {
        match self.snapshot.try_lock() {
            Ok(mut slot) => {
                slot.copy_from(snapshot);
                true
            }
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                poisoned.into_inner().copy_from(snapshot);
                true
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    /// Publish, waiting for a reader if needed (used once, when the shard stops).
    pub fn publish(&self, snapshot: &ShardSnapshot) {
        self.lock().copy_from(snapshot);
    }

    pub fn read(&self) -> ShardView {
        ShardView {
            state: self.state(),
            snapshot: self.lock().clone(),
        }
    }

    /// Publish the shard's per-trunk statistics and residence histograms (only what changed,
    /// at most `budget` histograms) without ever blocking: `None` when a reader holds them
    /// right now.
    pub fn try_publish_stats(
        &self,
        trunks: &TrunkStatsMap,
        residence: &Residence,
        budget: usize,
    ) -> Option<Copied> {
        let mut stats = match self.stats.try_lock() {
            Ok(stats) => stats,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(stats.copy_changed_from(trunks, residence, budget))
    }

    /// Publish all the statistics, waiting for a reader if needed (when the shard stops).
    pub fn publish_stats(&self, trunks: &TrunkStatsMap, residence: &Residence) {
        lock(&self.stats).copy_changed_from(trunks, residence, usize::MAX);
    }

    /// Add this shard's latest statistics to `merged`.
    pub fn add_stats_to(&self, merged: &mut ShardStats) {
        merged.add(&lock(&self.stats));
    }

    fn lock(&self) -> MutexGuard<'_, ShardSnapshot> {
        // A shard that panicked while publishing left a complete older or newer copy:
        // either is fine to show.
        self.snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A mutex whose holder panicked still holds a complete value (every writer replaces or
/// adds whole values): use it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The latest state of every shard.
#[derive(Debug)]
pub struct MetricsHub {
    slots: Vec<Arc<ShardSlot>>,
    /// Datagrams one hand-off queue holds at most (rendered as a gauge).
    handoff_capacity: usize,
    /// Reloads refused (the control plane counts them; no shard is involved).
    reload_failures: AtomicU64,
    /// The shared state of the current configuration's trunks (replaced by reloads).
    trunk_states: Mutex<Arc<[Arc<TrunkState>]>>,
    /// The CDR writer's counters, when CDRs are on.
    cdr: Mutex<Option<Arc<CdrCounters>>>,
    /// The statistics at the last `latency.json?since=last` (epoch ms, merged copy).
    latency_mark: Mutex<Option<(i64, ShardStats)>>,
    /// The memory cap's watchdog state, once started.
    memory: Mutex<Option<Arc<memory::MemoryGuard>>>,
    /// Each shard's socket, to read the kernel's drop counter when rendering.
    socket_fds: Mutex<Vec<std::os::fd::RawFd>>,
}

impl MetricsHub {
    /// `cpus[i]` is the CPU shard i is pinned to.
    pub fn new(cpus: &[usize], handoff_capacity: usize) -> MetricsHub {
        let shards = cpus.len();
        let slots = cpus
            .iter()
            .enumerate()
            .map(|(shard, cpu)| Arc::new(ShardSlot::new(ShardSnapshot::new(shard, shards, *cpu))))
            .collect();
        MetricsHub {
            slots,
            handoff_capacity,
            reload_failures: AtomicU64::new(0),
            trunk_states: Mutex::new(Arc::from(Vec::new())),
            cdr: Mutex::new(None),
            latency_mark: Mutex::new(None),
            memory: Mutex::new(None),
            socket_fds: Mutex::new(Vec::new()),
        }
    }

    /// The shards' sockets (index = shard), open for as long as the metrics endpoint is.
    pub fn set_socket_fds(&self, fds: Vec<std::os::fd::RawFd>) {
        *lock(&self.socket_fds) = fds;
    }

    pub fn set_memory(&self, guard: Arc<memory::MemoryGuard>) {
        *lock(&self.memory) = Some(guard);
    }

    /// The trunk states to show (at start and after every reload).
    pub fn set_trunk_states(&self, states: Arc<[Arc<TrunkState>]>) {
        *lock(&self.trunk_states) = states;
    }

    pub fn set_cdr(&self, counters: Arc<CdrCounters>) {
        *lock(&self.cdr) = Some(counters);
    }

    /// Every shard's statistics added up.
    pub fn merged_stats(&self) -> ShardStats {
        let mut merged = ShardStats::default();
        for slot in &self.slots {
            slot.add_stats_to(&mut merged);
        }
        merged
    }

    /// The `/metrics/latency.json` document: since start, or with `since_last` since the
    /// previous such request (which this one replaces as the mark).
    pub fn latency_json(&self, since_last: bool) -> String {
        let until_ms = clock::now_epoch_ms();
        let mut stats = self.merged_stats();
        if !since_last {
            let window = latency::Window {
                since_ms: None,
                until_ms,
            };
            return latency::render(&stats, window);
        }
        let previous = lock(&self.latency_mark).replace((until_ms, stats.clone()));
        let since_ms = match previous {
            Some((at, earlier)) => {
                stats.subtract(&earlier);
                Some(at)
            }
            None => None,
        };
        latency::render(&stats, latency::Window { since_ms, until_ms })
    }

    pub fn shards(&self) -> usize {
        self.slots.len()
    }

    pub fn slot(&self, shard: usize) -> Option<Arc<ShardSlot>> {
        self.slots.get(shard).cloned()
    }

    pub fn views(&self) -> Vec<ShardView> {
        self.slots.iter().map(|s| s.read()).collect()
    }

    /// Every shard's loop rounds (`None`: stopped), for the watchdog.
    pub fn heartbeats(&self) -> Vec<Option<u64>> {
        self.slots.iter().map(|s| s.rounds()).collect()
    }

    /// Every shard is serving.
    pub fn all_running(&self) -> bool {
        self.slots.iter().all(|s| s.state() == ShardState::Running)
    }

    /// Count a refused reload.
    pub fn count_reload_failure(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn control_counters(&self) -> ControlCounters {
        ControlCounters {
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus exposition of the latest snapshots.
    pub fn render(&self) -> String {
        let views = self.views();
        let mut text = metrics::render(&views, self.handoff_capacity);
        metrics::render_config(&views, self.control_counters(), &mut text);
        let states = Arc::clone(&lock(&self.trunk_states));
        let extras = trunk_metrics::Extras {
            states: &states,
            cdr: lock(&self.cdr).as_ref().map(|c| c.totals()),
        };
        trunk_metrics::render(&self.merged_stats(), &extras, &mut text);
        if let Some(memory) = lock(&self.memory).as_ref() {
            memory.render(&mut text);
        }
        metrics::render_socket_drops(&lock(&self.socket_fds), &mut text);
        udp_mib::render(&mut text);
        process::render(&process::read(), &mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_keeps_the_latest_snapshot_and_state() {
        let hub = MetricsHub::new(&[3, 5], 4096);
        assert!(!hub.all_running());
        let slot = hub.slot(1).unwrap();
        let mut snapshot = ShardSnapshot::new(1, 2, 5);
        snapshot.shell.datagrams_received = 42;
        assert!(slot.try_publish(&snapshot));
        snapshot.shell.datagrams_received = 43;
        slot.publish(&snapshot);
        hub.slot(0).unwrap().set_state(ShardState::Running);
        assert!(!hub.all_running());
        slot.set_state(ShardState::Running);
        assert!(hub.all_running());
        let views = hub.views();
        assert_eq!(views[1].snapshot.shell.datagrams_received, 43);
        assert_eq!(views[1].snapshot.cpu, 5);
        assert_eq!(views[0].snapshot.shell.datagrams_received, 0);
        assert!(hub.slot(2).is_none());
    }

    #[test]
    fn latency_since_last_is_an_interval_window() {
        use crate::sip::trunk_stats::record_us;
        use std::time::Duration;
        let hub = MetricsHub::new(&[0, 1], 4096);
        let mut trunks = TrunkStatsMap::default();
        let residence = Residence::new();
        let publish = |trunks: &TrunkStatsMap| {
            hub.slot(1).unwrap().publish_stats(trunks, &residence);
        };
        let pdd_count = |text: &str| -> u64 {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            v["trunks"]["gw"]["pdd_seconds"]["count"].as_u64().unwrap()
        };
        record_us(
            &mut trunks.trunk("gw").latency.pdd_us,
            Duration::from_millis(9),
        );
        publish(&trunks);
        let first = hub.latency_json(true);
        assert_eq!(pdd_count(&first), 1, "the first window starts at start");
        assert!(first.contains("\"since_seconds\":null"));
        for _ in 0..3 {
            record_us(
                &mut trunks.trunk("gw").latency.pdd_us,
                Duration::from_millis(9),
            );
        }
        publish(&trunks);
        let second = hub.latency_json(true);
        assert_eq!(pdd_count(&second), 3);
        assert!(!second.contains("\"since_seconds\":null"));
        assert_eq!(pdd_count(&hub.latency_json(true)), 0);
        assert_eq!(pdd_count(&hub.latency_json(false)), 4, "since start");
    }

    #[test]
    fn heartbeats_count_rounds_until_a_shard_stops() {
        let hub = MetricsHub::new(&[0, 1], 4096);
        let slot = hub.slot(1).unwrap();
        slot.beat();
        slot.beat();
        assert_eq!(hub.heartbeats(), vec![Some(0), Some(2)]);
        slot.set_state(ShardState::Stopped);
        assert_eq!(
            hub.heartbeats(),
            vec![Some(0), None],
            "a stopped shard never beats"
        );
    }

    #[test]
    fn try_publish_never_waits_for_a_reader() {
        let slot = ShardSlot::new(ShardSnapshot::new(0, 1, 0));
        let held = slot.snapshot.lock().unwrap();
        assert!(!slot.try_publish(&ShardSnapshot::new(0, 1, 0)));
        drop(held);
        assert!(slot.try_publish(&ShardSnapshot::new(0, 1, 0)));
    }
}
