//! The memory cap (`[server] max_memory_mb`): a control-plane thread reads the process's
//! resident memory every `limits::MEMORY_CHECK_INTERVAL` and raises memory pressure above
//! `MEMORY_PRESSURE_ON` of the cap, clearing it below `MEMORY_PRESSURE_OFF`. The shards
//! read the flag once per loop round and, under pressure, answer every new call 503 +
//! Retry-After while serving the calls they have (src/sip/overload.rs). Together with the
//! bounded tables (src/limits.rs) this keeps a flood from growing memory past the cap.

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
}

impl MemoryGuard {
    pub fn new(cap_mb: u64) -> MemoryGuard {
        MemoryGuard {
            cap_bytes: cap_mb.saturating_mul(1 << 20),
            pressure: AtomicBool::new(false),
            resident: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            episodes: AtomicU64::new(0),
        }
    }

    /// Under memory pressure (read by the shards every round: one relaxed load).
    pub fn pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }

    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Take one measurement of resident memory (bytes) and update the flag.
    pub fn observe(&self, resident: u64) {
        self.resident.store(resident, Ordering::Relaxed);
        self.peak.fetch_max(resident, Ordering::Relaxed);
        let was = self.pressure();
        let now = next_pressure(was, resident, self.cap_bytes);
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

/// Hysteresis: pressure starts above ON x cap and ends below OFF x cap.
pub fn next_pressure(current: bool, resident: u64, cap: u64) -> bool {
    let cap = cap as f64;
    let resident = resident as f64;
    if current {
        resident >= cap * limits::MEMORY_PRESSURE_OFF
    } else {
        resident > cap * limits::MEMORY_PRESSURE_ON
    }
}

/// Resident memory of this process in bytes (/proc/self/statm), `None` if unreadable.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok()?))
}

/// The watchdog thread: measures until `stop` is set.
pub fn spawn(guard: Arc<MemoryGuard>, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("junction-memory".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if let Some(resident) = resident_bytes() {
                    guard.observe(resident);
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
    fn pressure_has_hysteresis() {
        let cap = 1000 * MB;
        assert!(!next_pressure(false, 900 * MB, cap));
        assert!(next_pressure(false, 901 * MB, cap));
        assert!(next_pressure(true, 850 * MB, cap), "stays on above 80%");
        assert!(!next_pressure(true, 799 * MB, cap));
    }

    #[test]
    fn observations_drive_the_flag_peak_and_metrics() {
        let g = MemoryGuard::new(100);
        g.observe(50 * MB);
        assert!(!g.pressure());
        g.observe(95 * MB);
        assert!(g.pressure());
        g.observe(85 * MB);
        assert!(g.pressure());
        g.observe(70 * MB);
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
