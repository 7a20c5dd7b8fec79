//! The sans-IO user agents. An `Engine` is fed datagrams and the time, and leaves the
//! datagrams it wants sent in an `Out`; it never touches a socket or a clock, so every timer and
//! every race is testable with virtual time.

pub mod config;
pub mod oc;
pub mod out;
pub mod text;
pub mod uac;
pub mod uas;

use crate::stats::Stats;
use crate::time::Micros;
use out::Out;
use std::net::SocketAddr;

pub trait Engine {
    /// A datagram arrived on socket `sock` from `from`. `now` is when it is processed (timers
    /// count from it); `rx` when the kernel received it (latencies end there, so that the
    /// worker's batching delay is not counted against the system under test).
    fn on_datagram(
        &mut self,
        now: Micros,
        rx: Micros,
        sock: u16,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Out,
    );
    /// Fire every timer due at `now`.
    fn on_timeout(&mut self, now: Micros, out: &mut Out);
    /// Start one call that the schedule wanted started at `intended` (<= now). UAC only.
    fn start_call(&mut self, now: Micros, intended: Micros, out: &mut Out) -> bool;
    /// The earliest time `on_timeout` has something to do.
    fn next_deadline(&self) -> Option<Micros>;
    /// Calls in progress (the concurrency limit counts these).
    fn active(&self) -> u64;
    fn stats(&self) -> &Stats;
    fn stats_mut(&mut self) -> &mut Stats;
}
