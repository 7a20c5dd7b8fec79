//! Time as the core sees it: microseconds since the worker's epoch, passed in by the caller.
//! The RFC 3261 timer values for UDP.

/// Microseconds since an epoch chosen by the I/O layer (or a test).
pub type Micros = u64;

pub const MS: Micros = 1_000;
pub const SEC: Micros = 1_000_000;

/// RFC 3261 timer values (17.1.1.1, table 4), all configurable through `Timers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// T1: RTT estimate, first retransmission interval.
    pub t1: Micros,
    /// T2: cap of the non-INVITE and 2xx retransmission interval.
    pub t2: Micros,
    /// T4: how long a message may stay in the network (Timer I, K).
    pub t4: Micros,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: 500 * MS,
            t2: 4 * SEC,
            t4: 5 * SEC,
        }
    }
}

impl Timers {
    /// Timer B / F / H / J: 64*T1.
    pub fn transaction_timeout(&self) -> Micros {
        64 * self.t1
    }
    /// The next retransmission interval after `current`: doubled, capped at T2 when `capped`
    /// (non-INVITE requests, 2xx and non-2xx responses), uncapped for INVITE (Timer A).
    pub fn next_interval(&self, current: Micros, capped: bool) -> Micros {
        let next = current.saturating_mul(2);
        if capped {
            next.min(self.t2)
        } else {
            next
        }
    }
}

/// `t` rounded down to a multiple of `q` (q = 0: unchanged).
pub fn grid_down(t: Micros, q: Micros) -> Micros {
    match t.checked_div(q) {
        Some(n) => n * q,
        None => t,
    }
}

/// `t` rounded up to a multiple of `q` (q = 0: unchanged).
pub fn grid_up(t: Micros, q: Micros) -> Micros {
    if q == 0 {
        t
    } else {
        t.div_ceil(q).saturating_mul(q)
    }
}
