//! Per-source flood protection, like Kamailio's pike: count the datagrams each source IP
//! sends in one-second windows; a source over its threshold is blocked (its datagrams are
//! dropped before they are even scanned) for a while, and stays blocked while it keeps
//! flooding. Sans-IO: time comes in as `now`. Bounded: at most `limits::FLOOD_SOURCES_MAX`
//! sources are tracked per shard.

use crate::limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// Flood protection settings (`[flood]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodSettings {
    /// Datagrams per second one source address may send (across all shards); 0 disables.
    pub per_source: u32,
    /// The same for a trunk's own peer addresses; 0 exempts trunks.
    pub per_trunk_source: u32,
    /// How long a flooding source stays blocked after its last over-threshold second.
    pub block: Duration,
}

impl Default for FloodSettings {
    fn default() -> Self {
        FloodSettings {
            per_source: 100,
            per_trunk_source: 0,
            block: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the threshold now, or still blocked.
    Block,
}

#[derive(Clone, Copy, Debug)]
struct Source {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// One shard's view. Each shard sees about 1/shards of a source's traffic (ownership is by
/// Call-ID), so each uses threshold / shards.
#[derive(Debug)]
pub struct FloodGuard {
    sources: HashMap<IpAddr, Source>,
    shards: u32,
    /// Sources currently blocked (for metrics).
    pub blocked_sources: u64,
}

impl FloodGuard {
    pub fn new(shards: u16) -> FloodGuard {
        FloodGuard {
            sources: HashMap::new(),
            shards: u32::from(shards.max(1)),
            blocked_sources: 0,
        }
    }

    /// Count one datagram from `ip` against `threshold` (datagrams per second over all
    /// shards; 0: no limit) and say whether to take it.
    pub fn check(&mut self, now: Instant, ip: IpAddr, threshold: u32, block: Duration) -> Verdict {
        if threshold == 0 {
            return Verdict::Allow;
        }
        let per_shard = threshold.div_ceil(self.shards).max(1);
        if !self.sources.contains_key(&ip) && self.sources.len() >= limits::FLOOD_SOURCES_MAX {
            self.sweep(now);
            if self.sources.len() >= limits::FLOOD_SOURCES_MAX {
                // A spoofed-source flood filled the table: new sources go untracked (they
                // still face every other check: unknown sources are never routed).
                return Verdict::Allow;
            }
        }
        let s = self.sources.entry(ip).or_insert(Source {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(s.window_start) >= WINDOW {
            s.window_start = now;
            s.count = 0;
        }
        s.count = s.count.saturating_add(1);
        if s.count > per_shard {
            if s.blocked_until.is_none_or(|u| u <= now) {
                self.blocked_sources += 1;
            }
            s.blocked_until = Some(now + block);
            return Verdict::Block;
        }
        match s.blocked_until {
            Some(until) if until > now => Verdict::Block,
            _ => Verdict::Allow,
        }
    }

    /// Forget sources that are neither counting in a current window nor blocked.
    fn sweep(&mut self, now: Instant) {
        self.sources.retain(|_, s| {
            s.blocked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(s.window_start) < WINDOW
        });
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_over_its_rate_is_blocked_then_released() {
        let t0 = Instant::now();
        let mut g = FloodGuard::new(1);
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert_eq!(g.check(t0, a, 10, BLOCK), Verdict::Allow);
        }
        assert_eq!(g.check(t0, a, 10, BLOCK), Verdict::Block);
        // Blocked even at a polite rate, until the block ends.
        assert_eq!(
            g.check(t0 + Duration::from_secs(30), a, 10, BLOCK),
            Verdict::Block
        );
        assert_eq!(
            g.check(t0 + Duration::from_secs(61), a, 10, BLOCK),
            Verdict::Allow
        );
        // Another source is unaffected.
        assert_eq!(g.check(t0, ip("192.0.2.2"), 10, BLOCK), Verdict::Allow);
    }

    #[test]
    fn a_source_that_keeps_flooding_stays_blocked() {
        let t0 = Instant::now();
        let mut g = FloodGuard::new(1);
        let a = ip("192.0.2.1");
        let mut t = t0;
        for _ in 0..120 {
            for _ in 0..20 {
                g.check(t, a, 10, BLOCK);
            }
            t += Duration::from_secs(1);
        }
        assert_eq!(
            g.check(t + Duration::from_secs(58), a, 10, BLOCK),
            Verdict::Block
        );
        assert_eq!(g.blocked_sources, 1, "one block episode");
    }

    #[test]
    fn the_threshold_is_shared_across_shards() {
        let t0 = Instant::now();
        let mut g = FloodGuard::new(2);
        let a = ip("192.0.2.1");
        let allowed = (0..20)
            .filter(|_| g.check(t0, a, 10, BLOCK) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 5, "each of 2 shards takes half of 10/s");
    }

    #[test]
    fn zero_disables_and_the_table_is_bounded() {
        let t0 = Instant::now();
        let mut g = FloodGuard::new(1);
        assert_eq!(g.check(t0, ip("192.0.2.1"), 0, BLOCK), Verdict::Allow);
        assert_eq!(g.tracked(), 0);
        for i in 0..(limits::FLOOD_SOURCES_MAX as u32 + 10) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.check(t0, a, 10, BLOCK);
        }
        assert!(g.tracked() <= limits::FLOOD_SOURCES_MAX);
        // A second later the table makes room again.
        g.check(t0 + Duration::from_secs(2), ip("192.0.2.9"), 10, BLOCK);
        assert!(g.tracked() <= 1 + 1);
    }
}
