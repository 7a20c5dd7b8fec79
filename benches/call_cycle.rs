//! CPU per call of the sans-IO core, with its tables at their steady size: whole calls (INVITE,
//! 100, 200, ACK, BYE, 200) at RATE calls per second of virtual time for SECONDS seconds.
//! junction keeps every finished transaction and call for 32 s (64*T1), so for the first 32
//! virtual seconds the tables only grow; after that, every new call also expires an old one,
//! as on a loaded shard. Prints, per 4 virtual seconds, the wall time spent inside the core
//! per call (building the test's own messages is not counted), the calls and timers it holds.
//!
//! Run: `cargo bench --bench call_cycle` (arguments: RATE SECONDS, default 10000 72).

mod common;

use mimalloc::MiMalloc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let rate = args.next().unwrap_or(10_000).max(1);
    let seconds = args.next().unwrap_or(72).max(1);
    let mut core = common::core();
    let t0 = Instant::now();
    let step = Duration::from_nanos(1_000_000_000 / rate);
    let window = 4 * rate;
    let mut spent = Duration::ZERO;
    let mut now = t0;
    println!("call_cycle: {rate} calls/s of virtual time for {seconds} s");
    println!("  virtual s   core ns/call   calls held   timers held");
    for i in 0..rate * seconds {
        now += step;
        spent += common::whole_call(&mut core, now, i);
        if (i + 1) % window == 0 {
            let s = core.stats_snapshot();
            println!(
                "  {:9}   {:12.0}   {:10}   {:11}",
                (i + 1) / rate,
                spent.as_nanos() as f64 / window as f64,
                s.calls_active,
                s.timers_active
            );
            spent = Duration::ZERO;
        }
    }
    let s = core.stats_snapshot();
    assert_eq!(
        s.calls_created,
        rate * seconds,
        "every call was routed (check the bench's messages)"
    );
}
