//! The memory cap (`[server] max_memory_mb`): a control-plane thread reads the process's
//! resident memory every `limits::MEMORY_CHECK_INTERVAL` and raises memory pressure above
//! `MEMORY_PRESSURE_ON` of the cap. The shards read the flag once per loop round and, under
//! pressure, answer every new call 503 + Retry-After while serving the calls they have
//! (src/sip/overload.rs). Together with the bounded tables (src/limits.rs) this keeps a
//! flood from growing memory past the cap.
//!
//! Resident memory does not fall when calls end: the tables keep their grown capacity (and
//! reuse it), and the allocator keeps freed pages. So the pressure is released by state,
//! not by RSS: the number of live calls and transactions when memory first neared the cap
//! is what fits, and below `MEMORY_PRESSURE_OFF` of that new calls are admitted again
//! (they reuse the slots, so memory does not grow); at that many again, pressure returns.
//! (Or when RSS itself falls below `MEMORY_PRESSURE_OFF` of the cap.)

use crate::control::exposition::{Exposition, Kind};
use crate::limits;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Shared between the watchdog thread, the shards and /metrics.
#[derive(Debug)]
pub struct MemoryGuard {
    cap_bytes: u64,
    pressure: AtomicBool,
    resident: AtomicU64,
    peak: AtomicU64,
    episodes: AtomicU64,
    /// Live calls + transactions (all shards) that filled memory to the cap, once seen
    /// (0: not yet).
    live_limit: AtomicU64,
}

impl MemoryGuard {
    pub fn new(cap_mb: u64) -> MemoryGuard {
        MemoryGuard {
            cap_bytes: cap_mb.saturating_mul(1 << 20),
            pressure: AtomicBool::new(false),
            resident: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            episodes: AtomicU64::new(0),
            live_limit: AtomicU64::new(0),
        }
    }

    /// Under memory pressure (read by the shards every round: one relaxed load).
    pub fn pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }

    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Take one measurement: resident memory (bytes) and the live calls + transactions of
    /// every shard; update the flag.
    pub fn observe(&self, resident: u64, live: u64) {
        self.resident.store(resident, Ordering::Relaxed);
        self.peak.fetch_max(resident, Ordering::Relaxed);
        let was = self.pressure();
        let limit = self.live_limit.load(Ordering::Relaxed);
        let (now, limit) = next_pressure(was, resident, self.cap_bytes, live, limit);
        self.live_limit.store(limit, Ordering::Relaxed);
        if now != was {
            self.pressure.store(now, Ordering::Relaxed);
            if now {
                self.episodes.fetch_add(1, Ordering::Relaxed);
                crate::log_warn!(
                    "memory pressure: new calls refused",
                    resident_mb = resident >> 20,
                    cap_mb = self.cap_bytes >> 20
                );
            } else {
                crate::log_info!(
                    "memory pressure over",
                    resident_mb = resident >> 20,
                    cap_mb = self.cap_bytes >> 20
                );
            }
        }
    }

    /// The memory families of /metrics.
    pub fn render(&self, out: &mut String) {
        let mut e = Exposition {
            out: std::mem::take(out),
        };
        let rows: [(&str, Kind, &str, u64); 5] = [
            (
                "junction_memory_resident_bytes",
                Kind::Gauge,
                "Resident memory of the process at the last check.",
                self.resident.load(Ordering::Relaxed),
            ),
            (
                "junction_memory_resident_peak_bytes",
                Kind::Gauge,
                "Highest resident memory seen by the checks since start.",
                self.peak.load(Ordering::Relaxed),
            ),
            (
                "junction_memory_cap_bytes",
                Kind::Gauge,
                "The configured memory cap (server.max_memory_mb).",
                self.cap_bytes,
            ),
            (
                "junction_memory_pressure",
                Kind::Gauge,
                "1 while resident memory is near the cap and new calls are refused.",
                u64::from(self.pressure()),
            ),
            (
                "junction_memory_pressure_episodes_total",
                Kind::Counter,
                "Times memory pressure started.",
                self.episodes.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in rows {
            e.family(name, kind, help);
            e.sample(name, &[], value);
        }
        *out = e.out;
    }
}

/// The next pressure flag and live-state limit (0: unknown). Pressure starts when resident
/// memory passes ON x cap (the live state then becomes the limit, or lowers it), or when
/// the live state reaches a known limit; it ends when the live state falls below OFF x the
/// limit, or resident memory below OFF x cap.
pub fn next_pressure(current: bool, resident: u64, cap: u64, live: u64, limit: u64) -> (bool, u64) {
    let near = resident as f64 > cap as f64 * limits::MEMORY_PRESSURE_ON;
    let below = (resident as f64) < cap as f64 * limits::MEMORY_PRESSURE_OFF;
    if current {
        if below {
            // Memory really came back: whatever the limit was learned from is gone.
            return (false, 0);
        }
        let drained = limit > 0 && (live as f64) < limit as f64 * limits::MEMORY_PRESSURE_OFF;
        return (!drained, limit);
    }
    if below {
        return (false, 0);
    }
    let known = limit > 0;
    // With a known limit, memory that stays high (kept capacity) is not new pressure; the
    // live state reaching the limit again is. Memory at the cap itself always is.
    let full = resident >= cap;
    let enter = if known { live >= limit || full } else { near };
    if !enter {
        return (false, limit);
    }
    // Entering without a known limit means memory neared the cap: the live state now is
    // what fits. Memory at the cap with a known limit lowers it.
    let limit = if !known {
        live.max(1)
    } else if full {
        limit.min(live.max(1))
    } else {
        limit
    };
    (true, limit)
}

/// Resident memory of this process in bytes (/proc/self/statm), `None` if unreadable.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok()?))
}

/// The watchdog thread: measures until `stop` is set. `live` sums the shards' live calls
/// and transactions (from their published snapshots).
pub fn spawn(
    guard: Arc<MemoryGuard>,
    stop: Arc<AtomicBool>,
    live: impl Fn() -> u64 + Send + 'static,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("junction-memory".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if let Some(resident) = resident_bytes() {
                    guard.observe(resident, live());
                }
                std::thread::sleep(limits::MEMORY_CHECK_INTERVAL);
            }
        })
        .map_err(|e| format!("cannot start the memory watchdog thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn pressure_has_hysteresis_on_memory() {
        let cap = 1000 * MB;
        assert_eq!(next_pressure(false, 900 * MB, cap, 10, 0), (false, 0));
        assert_eq!(next_pressure(false, 901 * MB, cap, 10, 0), (true, 10));
        assert_eq!(next_pressure(true, 850 * MB, cap, 10, 10), (true, 10));
        // Memory came back: the limit learned from it is forgotten.
        assert_eq!(next_pressure(true, 799 * MB, cap, 10, 10), (false, 0));
    }

    #[test]
    fn memory_that_stays_high_is_released_by_live_state() {
        let cap = 1000 * MB;
        // 1,000,000 calls and transactions filled memory to the cap.
        let (on, limit) = next_pressure(false, 950 * MB, cap, 1_000_000, 0);
        assert!(on);
        assert_eq!(limit, 1_000_000);
        // Calls end; resident memory stays (kept capacity) but the live state drains.
        assert_eq!(
            next_pressure(true, 950 * MB, cap, 850_000, limit),
            (true, limit)
        );
        assert_eq!(
            next_pressure(true, 950 * MB, cap, 790_000, limit),
            (false, limit)
        );
        // Admitting again while memory stays high: pressure only at the limit.
        assert_eq!(
            next_pressure(false, 950 * MB, cap, 990_000, limit),
            (false, limit)
        );
        assert_eq!(
            next_pressure(false, 950 * MB, cap, 1_000_000, limit),
            (true, limit)
        );
        // Memory at the cap itself is pressure whatever the count, and lowers the limit.
        assert_eq!(
            next_pressure(false, 1000 * MB, cap, 600_000, limit),
            (true, 600_000)
        );
    }

    #[test]
    fn observations_drive_the_flag_peak_and_metrics() {
        let g = MemoryGuard::new(100);
        g.observe(50 * MB, 100);
        assert!(!g.pressure());
        g.observe(95 * MB, 100);
        assert!(g.pressure());
        g.observe(85 * MB, 90);
        assert!(g.pressure());
        g.observe(70 * MB, 90);
        assert!(!g.pressure());
        let mut text = String::new();
        g.render(&mut text);
        assert!(text.contains(&format!("junction_memory_resident_peak_bytes {}", 95 * MB)));
        assert!(text.contains(&format!("junction_memory_cap_bytes {}", 100 * MB)));
        assert!(text.contains("junction_memory_pressure 0"));
        assert!(text.contains("junction_memory_pressure_episodes_total 1"));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_bytes().is_some_and(|b| b > MB));
    }
}
