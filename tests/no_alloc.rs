//! The routing calls the proxy core makes per call allocate nothing: `ingress`, `normalize`,
//! `route_with`, `translate`, `translate_response` (once warmed up: the regex engines keep
//! a per-thread scratch cache they create on first use). Measured with a counting allocator
//! on this test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use junction::config;
use junction::routing::{Decision, Number, RoutingTable, TrunkId};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["10.1.0.0/24"]
send_to = "10.1.0.10:5060"
usages = ["local", "national", "international"]
inbound = [
  { match = '9(1\d{10})', replace = '+${1}', number = "called" },
  { match = '(?P<ext>\d{4})', replace = '+1212555${ext}', number = "calling" },
]
outbound_called = [{ match = '\+1212555(\d{4})', replace = '${1}' }]

[[trunk]]
name = "gw-a"
peers = ["198.51.100.10"]
send_to = "198.51.100.10:5060"
usages = ["dids"]
outbound_called = [{ match = '\+1(\d{10})', replace = '${1}' }]
outbound_calling = [{ match = '\+1(\d{10})', replace = '${1}' }]
response_codes = [{ code = 486, cause = 34, to = 503 }, { code = 480, to = 503 }]

[[trunk]]
name = "gw-b"
peers = ["203.0.113.20"]
send_to = "203.0.113.20:5060"
usages = ["dids"]
remove_plus = true

[[route]]
name = "dids"
prefixes = ["+1212555"]
usages = ["dids"]
trunks = ["pbx"]

[[route]]
name = "local"
prefixes = ["+1212", "+1646"]
usages = ["local"]
trunks = ["gw-a", "gw-b"]
weights = [3, 1]

[[route]]
name = "national"
pattern = '\+1[2-9]\d{9}'
usages = ["national"]
trunks = ["gw-b", "gw-a"]

[[route]]
name = "international"
prefixes = ["+"]
usages = ["international"]
trunks = ["gw-b"]
caller_id = "+12125550100"
"#;

#[test]
fn the_per_call_routing_calls_do_not_allocate() {
    let c = config::parse(CONFIG, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
    let src: SocketAddr = "10.1.0.7:5060".parse().unwrap_or_else(|e| panic!("{e}"));
    let calls: [(&[u8], &[u8]); 4] = [
        (b"912125550100", b"2001"),
        (b"913105550100", b"2002"),
        (b"+442071234567", b"2003"),
        (b"12345", b"x"),
    ];
    let gw_a = TrunkId(1);
    let usable = |id: TrunkId| id != TrunkId(99);
    // Buffers the caller owns, big enough for any number.
    let mut called = Vec::with_capacity(64);
    let mut calling = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(64);

    let mut one_round = |rotation: u64| -> usize {
        let mut routed = 0;
        for (dialled, from) in calls {
            let Some(ingress) = t.ingress(src) else {
                panic!("no ingress")
            };
            t.normalize(ingress, Number::Called, dialled, &mut called);
            t.normalize(ingress, Number::Calling, from, &mut calling);
            if let Decision::Route { attempts, .. } =
                t.route_with(ingress, &called, rotation, &usable)
            {
                routed += 1;
                for i in 0..attempts.len() {
                    let Some(trunk) = attempts.get(i) else {
                        continue;
                    };
                    let number = attempts
                        .route(i)
                        .and_then(|r| t.route_caller_id(r))
                        .unwrap_or(&calling);
                    t.translate(trunk, Number::Called, &called, &mut out);
                    t.translate(trunk, Number::Calling, number, &mut out);
                }
            }
            routed += usize::from(t.translate_response(gw_a, 486, Some(34)) == 503);
        }
        routed
    };

    // Warm up (the regex engines' per-thread caches), then count.
    let warm = one_round(0) + one_round(1);
    assert!(warm > 0);
    let before = allocations();
    let mut routed = 0;
    for rotation in 0..1000 {
        routed += one_round(rotation);
    }
    let after = allocations();
    assert_eq!(routed, 1000 * 7, "the calls were routed and translated");
    assert_eq!(
        after - before,
        0,
        "allocations during 1000 rounds of routing"
    );
}
