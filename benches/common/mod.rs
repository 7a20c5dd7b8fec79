//! Shared by the core benches: one shard's core between a PBX trunk (127.0.0.2) and a
//! gateway trunk (127.0.0.3:5060) that every number routes to.

use junction::config;
use junction::routing::RoutingTable;
use junction::sip::proxy::{Core, CoreConfig};
use std::sync::Arc;

const CONFIG: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:5060"
[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"
[[route]]
name = "all"
prefixes = [""]
trunks = ["gw"]
"#;

/// A core for shard 0 of 1, advertising 127.0.0.1:5060.
pub fn core() -> Core {
    let cfg = config::parse(CONFIG, "bench.toml").expect("config");
    let routing = Arc::new(RoutingTable::compile(&cfg).expect("routing"));
    Core::new(
        CoreConfig {
            shard: 0,
            shards: 1,
            advertise: "127.0.0.1:5060".parse().expect("addr"),
            wall: junction::sip::oc::WallAnchor::now(),
        },
        routing,
    )
}
