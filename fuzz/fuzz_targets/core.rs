//! The whole sans-IO core with the trunks of tests/common CONFIG. The first byte picks the
//! source (a trunk or an unknown address) and whether to run the timers; the rest is the
//! datagram. Invariants: no panic; every datagram goes to the source's IP or a trunk's;
//! toward an unknown IP only 4xx/5xx responses; a forwarded request keeps the Call-ID and
//! CSeq of its input. (Output size and re-scan are not asserted here: known findings F2-F5
//! in tests/mutation.rs would stop the fuzzer at once.)
#![no_main]

use junction::config;
use junction::routing::RoutingTable;
use junction::sip::proxy::{Core, CoreConfig};
use junction::sip::scan::{self, Message};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:5060"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"

[[route]]
name = "pbx-numbers"
prefixes = ["1"]
trunks = ["pbx"]

[[route]]
name = "everything-else"
prefixes = [""]
trunks = ["gw"]
"#;

fn routing() -> Arc<RoutingTable> {
    static R: OnceLock<Arc<RoutingTable>> = OnceLock::new();
    R.get_or_init(|| {
        let cfg = config::parse(CONFIG, "fuzz.toml").expect("config");
        Arc::new(RoutingTable::compile(&cfg).expect("routing"))
    })
    .clone()
}

fn trunk(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip == IpAddr::from([127, 0, 0, 2]) || ip == IpAddr::from([127, 0, 0, 3])
}

fn check(core: &mut Core, from: SocketAddr, input: Option<&[u8]>) {
    let mut im = Box::<Message>::default();
    let in_ok = input.is_some_and(|i| scan::scan(i, &mut im).is_ok() && im.is_request());
    for (to, out) in core.transmits() {
        let status = out
            .strip_prefix(b"SIP/2.0 ")
            .and_then(|r| std::str::from_utf8(r.get(..3)?).ok()?.parse::<u16>().ok());
        let same = to.ip().to_canonical() == from.ip().to_canonical();
        assert!(
            trunk(to.ip()) || same,
            "sent to {to}, neither source {from} nor a trunk"
        );
        if !trunk(to.ip()) {
            assert!(
                status.is_some_and(|s| (400..600).contains(&s)),
                "not a 4xx/5xx toward unknown {to}"
            );
        }
        if let (true, Some(inp), None) = (in_ok, input, status) {
            let mut om = Box::<Message>::default();
            if scan::scan(out, &mut om).is_ok() {
                assert_eq!(om.call_id.get(out), im.call_id.get(inp), "Call-ID changed");
                assert_eq!(om.cseq, im.cseq, "CSeq changed");
            }
        }
    }
    core.clear_transmits();
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let from: SocketAddr = match sel & 3 {
        0 | 1 => "127.0.0.2:5060",
        2 => "127.0.0.3:5060",
        _ => "127.0.0.9:5070",
    }
    .parse()
    .expect("literal");
    let mut core = Core::new(
        CoreConfig {
            shard: 0,
            shards: 1,
            advertise: "127.0.0.1:5060".parse().expect("literal"),
        },
        routing(),
    );
    let mut now = Instant::now();
    core.handle_datagram(now, from, bytes);
    check(&mut core, from, Some(bytes));
    if sel & 4 != 0 {
        let end = now + Duration::from_secs(70);
        while let Some(d) = core.next_deadline() {
            if d > end {
                break;
            }
            now = now.max(d);
            core.handle_timeout(now);
            check(&mut core, from, None);
        }
    }
});
