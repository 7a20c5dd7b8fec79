//! Shared by the core benches: one shard's core between a PBX trunk (127.0.0.2) and a
//! gateway trunk (127.0.0.3:5060) that every number routes to. Each bench uses a part of it.
#![allow(dead_code)]

use junction::config;
use junction::routing::RoutingTable;
use junction::sip::proxy::{Core, CoreConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The PBX trunk's and the gateway trunk's addresses.
pub const PBX: &str = "127.0.0.2:5060";
pub const GW: &str = "127.0.0.3:5060";

/// A core for shard 0 of 1, advertising 127.0.0.1:5060.
pub fn core() -> Core {
    let cfg = config::parse(CONFIG, "bench.toml").expect("config");
    let routing = Arc::new(RoutingTable::compile(&cfg).expect("routing"));
    Core::new(
        CoreConfig {
            shard: 0,
            shards: 1,
            advertise: "127.0.0.1:5060".parse().expect("addr"),
            shard_ports: None,
            wall: junction::sip::oc::WallAnchor::now(),
        },
        routing,
    )
}

/// Call `i`'s Call-ID and its INVITE from the PBX.
pub fn invite(i: u64) -> (String, String) {
    let call_id = format!("{i:016x}-bench@10.1.2.3");
    let invite = format!(
        "INVITE sip:2125551234@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-{i}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=a{i}\r\n\
         To: <sip:2125551234@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.2:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    (call_id, invite)
}

/// The gateway's 200 to call `i`'s INVITE, with the Vias it received (`vias_sent_to`) and
/// `extra` header lines (each ending in CRLF).
pub fn answer(i: u64, call_id: &str, vias: &str, extra: &str) -> String {
    format!(
        "SIP/2.0 200 OK\r\n{vias}\r\n{extra}From: <sip:alice@127.0.0.2>;tag=a{i}\r\n\
         To: <sip:2125551234@127.0.0.1>;tag=g{i}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.3:5060>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The lines starting with `prefix` (a header name and its colon, or a status line's start)
/// of the last datagram the core queued for `to`, joined by CRLF.
pub fn lines_sent_to(core: &Core, to: SocketAddr, prefix: &str) -> String {
    let mut lines = Vec::new();
    for (dest, bytes) in core.transmits() {
        if dest == to {
            lines = String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| l.starts_with(prefix))
                .map(str::to_owned)
                .collect();
        }
    }
    lines.join("\r\n")
}

/// The Via lines of the last datagram the core queued for `to`.
pub fn vias_sent_to(core: &Core, to: SocketAddr) -> String {
    lines_sent_to(core, to, "Via:")
}

/// Call `i` from the PBX, whole: INVITE, the gateway's 200, ACK, BYE and the gateway's 200,
/// at virtual time `now` (after the core's timers due by then). Returns the wall time spent
/// inside the core; building the messages is not counted.
pub fn whole_call(core: &mut Core, now: Instant, i: u64) -> Duration {
    let pbx: SocketAddr = PBX.parse().expect("addr");
    let gw: SocketAddr = GW.parse().expect("addr");
    let (call_id, invite) = invite(i);
    let start = Instant::now();
    core.handle_timeout(now);
    core.clear_transmits();
    core.handle_datagram(now, pbx, invite.as_bytes());
    let mut spent = start.elapsed();
    let ok = answer(
        i,
        &call_id,
        &vias_sent_to(core, gw),
        "Record-Route: <sip:127.0.0.1:5060;lr>\r\n",
    );
    let dialog = format!(
        "Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=a{i}\r\n\
         To: <sip:2125551234@127.0.0.1>;tag=g{i}\r\nCall-ID: {call_id}\r\n"
    );
    let ack = format!(
        "ACK sip:gw@127.0.0.3:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-ack-{i}\r\n\
         {dialog}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let bye = format!(
        "BYE sip:gw@127.0.0.3:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-bye-{i}\r\n\
         {dialog}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let start = Instant::now();
    core.clear_transmits();
    core.handle_datagram(now, gw, ok.as_bytes());
    core.clear_transmits();
    core.handle_datagram(now, pbx, ack.as_bytes());
    core.clear_transmits();
    core.handle_datagram(now, pbx, bye.as_bytes());
    spent += start.elapsed();
    let bye_ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n\
         From: <sip:alice@127.0.0.2>;tag=a{i}\r\n\
         To: <sip:2125551234@127.0.0.1>;tag=g{i}\r\nCall-ID: {call_id}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        vias_sent_to(core, gw)
    );
    let start = Instant::now();
    core.clear_transmits();
    core.handle_datagram(now, gw, bye_ok.as_bytes());
    core.clear_transmits();
    spent + start.elapsed()
}
