//! systemd service notifications (sd_notify(3), `Type=notify` / `Type=notify-reload`) through
//! the `sd-notify` crate: `READY=1` once every shard serves, `STATUS=` lines, `RELOADING=1`
//! (with `MONOTONIC_USEC=`) then `READY=1` around a reload, `STOPPING=1`, and `WATCHDOG=1`
//! pings from the control thread while every shard makes progress.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, tests) every call does nothing. Sending is
//! best effort: a failure is logged at debug level and junction goes on.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

/// Sends notifications to the service manager, when there is one.
#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (left set: they are read
    /// again by nothing else, and a reload notifies through the same socket).
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0u64;
        let watchdog = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec));
        Notifier { enabled, watchdog }
    }

    /// A notifier that never sends (tests).
    pub fn disabled() -> Notifier {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog timeout systemd set (`WatchdogSec=`), when it watches this process.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            crate::log_debug!("cannot notify the service manager", error = e);
        }
    }

    /// Every shard serves.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload starts (`Type=notify-reload` needs the monotonic time with it).
    pub fn reloading(&self, status: &str) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
            Err(_) => self.send(&[NotifyState::Reloading, NotifyState::Status(status)]),
        }
    }

    /// A reload ended, applied or refused: serving again.
    pub fn reloaded(&self, status: &str) {
        self.ready(status);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog_ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// When to ping the watchdog: every half timeout, and only if every shard has made progress
/// (its loop-round counter moved) since the previous ping. A shard stuck in a loop or
/// stopped stops the pings, and systemd restarts junction after the timeout. An idle shard
/// turns at least every `limits::SHARD_PARK_MAX` (100 ms), so `WatchdogSec=` must be well
/// above that: 1 s or more.
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    last_ping: Instant,
    beats: Vec<u64>,
    /// A stall was reported (logged once until progress resumes).
    stalled: bool,
}

/// What `Watchdog::tick` decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Not due yet.
    Wait,
    /// Due, and every shard progressed: ping.
    Ping,
    /// Due, but these shards made no progress since the last ping: no ping.
    Stalled(Vec<usize>),
}

impl Watchdog {
    /// `timeout` is systemd's `WATCHDOG_USEC`; `beats` the shards' counters now.
    pub fn new(timeout: Duration, now: Instant, beats: Vec<u64>) -> Watchdog {
        Watchdog {
            interval: timeout / 2,
            last_ping: now,
            beats,
            stalled: false,
        }
    }

    /// How often the control loop should call `tick`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Called by the control loop with the shards' counters (`None`: that shard stopped).
    pub fn tick(&mut self, now: Instant, beats: &[Option<u64>]) -> Tick {
        if now.saturating_duration_since(self.last_ping) < self.interval {
            return Tick::Wait;
        }
        let stuck: Vec<usize> = beats
            .iter()
            .enumerate()
            .filter(|(i, beat)| match beat {
                Some(beat) => self.beats.get(*i) == Some(beat),
                None => true,
            })
            .map(|(i, _)| i)
            .collect();
        if !stuck.is_empty() {
            self.stalled = true;
            return Tick::Stalled(stuck);
        }
        self.beats = beats.iter().map(|b| b.unwrap_or(0)).collect();
        self.last_ping = now;
        self.stalled = false;
        Tick::Ping
    }

    /// A stall is being reported (true from the first `Stalled` until the next `Ping`).
    pub fn stalled(&self) -> bool {
        self.stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_every_half_timeout_while_every_shard_progresses() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Watchdog::new(ms(1000), t0, vec![5, 9]);
        assert_eq!(w.interval(), ms(500));
        assert_eq!(w.tick(t0 + ms(499), &[Some(6), Some(10)]), Tick::Wait);
        assert_eq!(w.tick(t0 + ms(500), &[Some(6), Some(10)]), Tick::Ping);
        assert_eq!(w.tick(t0 + ms(700), &[Some(7), Some(11)]), Tick::Wait);
        // Shard 1 made no progress since the last ping: no ping, however long it lasts.
        assert_eq!(
            w.tick(t0 + ms(1000), &[Some(8), Some(10)]),
            Tick::Stalled(vec![1])
        );
        assert!(w.stalled());
        assert_eq!(
            w.tick(t0 + ms(3000), &[Some(9), Some(10)]),
            Tick::Stalled(vec![1])
        );
        // It moves again: pings resume.
        assert_eq!(w.tick(t0 + ms(3100), &[Some(9), Some(12)]), Tick::Ping);
        assert!(!w.stalled());
        // A stopped shard never pings.
        assert_eq!(
            w.tick(t0 + ms(3700), &[Some(10), None]),
            Tick::Stalled(vec![1])
        );
    }

    #[test]
    fn a_disabled_notifier_sends_nothing() {
        let n = Notifier::disabled();
        assert!(!n.enabled() && n.watchdog_timeout().is_none());
        n.ready("x"); // no socket, no panic
    }
}
