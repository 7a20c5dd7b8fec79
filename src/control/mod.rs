//! The control plane, off the shard cores: the latest metrics of every shard and the
//! metrics HTTP endpoint. (Configuration loading lives in `config`.)
//!
//! Shards publish into a `ShardSlot` each (a mutex the shard only `try_lock`s, at most every
//! `limits::METRICS_PUBLISH_INTERVAL`, so a reader can never stall a shard); the control
//! plane reads all slots when asked.

pub mod http;
pub mod metrics;

use metrics::{ShardSnapshot, ShardState, ShardView};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One shard's published state: its life-cycle state and its latest snapshot.
#[derive(Debug)]
pub struct ShardSlot {
    state: AtomicU8,
    snapshot: Mutex<ShardSnapshot>,
}

impl ShardSlot {
    pub fn new(snapshot: ShardSnapshot) -> ShardSlot {
        ShardSlot {
            state: AtomicU8::new(ShardState::Starting.as_u8()),
            snapshot: Mutex::new(snapshot),
        }
    }

    pub fn state(&self) -> ShardState {
        ShardState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: ShardState) {
        self.state.store(state.as_u8(), Ordering::Release);
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

    fn lock(&self) -> MutexGuard<'_, ShardSnapshot> {
        // A shard that panicked while publishing left a complete older or newer copy:
        // either is fine to show.
        self.snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The latest state of every shard.
#[derive(Debug)]
pub struct MetricsHub {
    slots: Vec<Arc<ShardSlot>>,
    /// Datagrams one hand-off queue holds at most (rendered as a gauge).
    handoff_capacity: usize,
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
        }
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

    /// Every shard is serving.
    pub fn all_running(&self) -> bool {
        self.slots.iter().all(|s| s.state() == ShardState::Running)
    }

    /// The Prometheus exposition of the latest snapshots.
    pub fn render(&self) -> String {
        metrics::render(&self.views(), self.handoff_capacity)
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
    fn try_publish_never_waits_for_a_reader() {
        let slot = ShardSlot::new(ShardSnapshot::new(0, 1, 0));
        let held = slot.snapshot.lock().unwrap();
        assert!(!slot.try_publish(&ShardSnapshot::new(0, 1, 0)));
        drop(held);
        assert!(slot.try_publish(&ShardSnapshot::new(0, 1, 0)));
    }
}
