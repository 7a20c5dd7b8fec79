//! The open-loop call schedule: when each call should start, independent of how the system
//! under test responds. A constant rate, a ramp (start, step every period, up to max), or
//! two rates taking turns period by period; a total number of calls and/or a duration.
//! Deterministic: the schedule is a function of the call index and the configuration, and
//! `poll(now)` only reveals the calls due at `now`.

use crate::time::{Micros, SEC};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateConfig {
    /// Calls per second at the start.
    pub start: f64,
    /// Added to the rate every `period` (0: constant rate).
    pub step: f64,
    pub period: Micros,
    /// The rate never goes above this.
    pub max: f64,
    /// Every odd period (the 2nd, 4th, ...) runs at this rate instead: two load levels in
    /// turn, so that a slow drift of the system under test affects both alike.
    pub alternate: Option<f64>,
    /// Stop after this many calls.
    pub calls: Option<u64>,
    /// Stop starting calls this long after the start.
    pub duration: Option<Micros>,
    /// Shift of the whole schedule (to interleave several workers' schedules).
    pub offset: Micros,
}

impl RateConfig {
    pub fn constant(cps: f64) -> RateConfig {
        RateConfig {
            start: cps,
            step: 0.0,
            period: SEC,
            max: cps,
            alternate: None,
            calls: None,
            duration: None,
            offset: 0,
        }
    }

    /// The rate during period `k` (0-based).
    pub fn rate_in(&self, k: u64) -> f64 {
        match self.alternate {
            Some(rate) if k % 2 == 1 => rate.max(0.0),
            _ => (self.start + self.step * k as f64).min(self.max).max(0.0),
        }
    }

    /// The rate changes from one period to the next.
    fn periodic(&self) -> bool {
        (self.step != 0.0 || self.alternate.is_some()) && self.period > 0
    }

    /// The share of worker `w` of `n`: rate and calls divided, schedule offset so that the
    /// workers' calls interleave.
    pub fn share(&self, w: usize, n: usize) -> RateConfig {
        let n = n.max(1);
        let f = n as f64;
        let calls = self
            .calls
            .map(|c| c / n as u64 + u64::from((w as u64) < c % n as u64));
        let offset = if self.start > 0.0 {
            (w as f64 * SEC as f64 / self.start) as Micros
        } else {
            0
        };
        RateConfig {
            start: self.start / f,
            step: self.step / f,
            max: self.max / f,
            alternate: self.alternate.map(|a| a / f),
            calls,
            offset: self.offset + offset,
            ..*self
        }
    }
}

pub struct Schedule {
    cfg: RateConfig,
    /// The period we are in, its start, its rate, and calls started in it.
    period: u64,
    period_start: Micros,
    rate: f64,
    in_period: u64,
    started: u64,
    done: bool,
}

impl Schedule {
    pub fn new(cfg: RateConfig) -> Schedule {
        Schedule {
            rate: cfg.rate_in(0),
            cfg,
            period: 0,
            period_start: 0,
            in_period: 0,
            started: 0,
            done: false,
        }
    }

    /// The intended start time of the next call, or `None` when the schedule is over. Walks
    /// over periods with a zero rate.
    pub fn next_time(&mut self) -> Option<Micros> {
        if self.done {
            return None;
        }
        if self.cfg.calls.is_some_and(|c| self.started >= c) {
            self.done = true;
            return None;
        }
        // A ramp only: bounded walk over periods whose rate gives no call inside them.
        for _ in 0..1_000_000 {
            let t = if self.rate > 0.0 {
                self.period_start + (self.in_period as f64 * SEC as f64 / self.rate) as Micros
            } else {
                Micros::MAX
            };
            let ramping = self.cfg.periodic();
            let period_end = if ramping {
                self.period_start + self.cfg.period
            } else {
                Micros::MAX
            };
            if t < period_end {
                if self.cfg.duration.is_some_and(|d| t >= d) {
                    self.done = true;
                    return None;
                }
                return Some(t + self.cfg.offset);
            }
            if !ramping {
                self.done = true;
                return None;
            }
            self.period += 1;
            self.period_start = period_end;
            self.rate = self.cfg.rate_in(self.period);
            self.in_period = 0;
            if self.cfg.duration.is_some_and(|d| self.period_start >= d) {
                self.done = true;
                return None;
            }
        }
        self.done = true;
        None
    }

    /// If a call is due at `now`, take it and return its intended start time.
    pub fn poll(&mut self, now: Micros) -> Option<Micros> {
        let t = self.next_time()?;
        if t > now {
            return None;
        }
        self.in_period += 1;
        self.started += 1;
        Some(t)
    }

    pub fn is_done(&mut self) -> bool {
        self.next_time().is_none()
    }

    pub fn started(&self) -> u64 {
        self.started
    }

    /// The rate now in force (calls per second).
    pub fn current_rate(&self) -> f64 {
        self.rate
    }
}
