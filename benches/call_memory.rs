//! Memory held per established call: drive calls through a core to the confirmed state
//! (INVITE, 200) at 1000 calls/s of virtual time, so transactions come and go as in a real
//! run while calls accumulate, and count heap bytes with a counting allocator. The figure is
//! the marginal cost: (bytes at N calls - bytes at N/2 calls) / (N/2), which includes the
//! amortised growth of the tables and excludes the fixed cost of in-flight transactions.
//!
//! Run: `cargo bench --bench call_memory` (or with an argument: number of calls).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut core = common::core();
    let pbx = common::PBX.parse().expect("addr");
    let gw = common::GW.parse().expect("addr");
    let t0 = Instant::now();
    core.handle_timeout(t0);
    let mut now = t0;
    let mut half = (0usize, 0u64);
    for i in 0..calls {
        if i == calls / 2 {
            half = (
                ALLOCATED.load(Ordering::Relaxed),
                core.stats_snapshot().calls_active,
            );
        }
        now += Duration::from_millis(1);
        core.handle_timeout(now);
        core.clear_transmits();
        let (call_id, invite) = common::invite(i as u64);
        core.handle_datagram(now, pbx, invite.as_bytes());
        // Answer the forwarded INVITE with a 200 (its Vias copied).
        let ok = common::answer(i as u64, &call_id, &common::vias_sent_to(&core, gw), "");
        core.clear_transmits();
        core.handle_datagram(now, gw, ok.as_bytes());
        core.clear_transmits();
    }
    let stats = core.stats_snapshot();
    let after = ALLOCATED.load(Ordering::Relaxed);
    assert_eq!(stats.calls_active as usize, calls);
    let added = stats.calls_active - half.1;
    let per_call = after.saturating_sub(half.0) as f64 / added as f64;
    println!(
        "call_memory: {calls} established calls ({} transactions in flight), \
         {per_call:.0} heap bytes per established call (marginal over the last {added})",
        stats.transactions_active
    );
}
