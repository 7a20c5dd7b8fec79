//! The memory cap end to end: an in-process junction with `max_memory_mb = 128` measures
//! this test process. When resident memory passes 90% of the cap, new calls get 503 with
//! Retry-After while an established call is still served; below 80% calls route again.

mod common;

use common::*;
use junction::config;
use junction::shard::{self, Options};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn gauge(metrics: SocketAddr, name: &str) -> Option<u64> {
    let text = http_get(metrics, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Poll /metrics until `name` has `value` (the watchdog checks every 100 ms).
fn wait_for(metrics: SocketAddr, name: &str, value: u64) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while gauge(metrics, name) != Some(value) {
        assert!(
            Instant::now() < give_up,
            "{name} never became {value}: resident {:?} bytes",
            gauge(metrics, "junction_memory_resident_bytes")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn invite_to(proxy: SocketAddr, pbx: &UdpSocket, call_id: &str) -> String {
    let uri = format!("{}:{}", proxy.ip(), proxy.port());
    let port = pbx.local_addr().expect("addr").port();
    msg(
        &[
            &format!("INVITE sip:2125551234@{uri} SIP/2.0"),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{port};branch=z9hG4bK-{};rport",
                call_id.replace('@', "-")
            ),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: <sip:2125551234@{uri}>"),
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 INVITE",
            &format!("Contact: <sip:100@127.0.0.2:{port}>"),
            "Content-Type: application/sdp",
        ],
        SDP,
    )
}

#[test]
fn near_the_memory_cap_new_calls_get_503_and_recover_below_it() {
    let pbx = peer_socket("127.0.0.2");
    let gw = peer_socket("127.0.0.3");
    let port = |s: &UdpSocket| s.local_addr().expect("addr").port();
    let listen = port(&peer_socket("127.0.0.1"));
    let text = format!(
        r#"
[server]
cores = 1
listen = "udp:127.0.0.1:{listen}"
max_memory_mb = 128

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:{pbx}"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{gw}"

[[route]]
name = "all"
prefixes = [""]
trunks = ["gw"]
"#,
        pbx = port(&pbx),
        gw = port(&gw),
    );
    let mut cfg = config::parse(&text, "memory.toml").expect("config");
    cfg.server.metrics = Some(([127, 0, 0, 1], 0).into());
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy = server.local_addr();
    let metrics = server.metrics_addr().expect("metrics endpoint");
    wait_for(metrics, "junction_memory_cap_bytes", 128 << 20);
    wait_for(metrics, "junction_memory_pressure", 0);
    let before = gauge(metrics, "junction_memory_resident_bytes").unwrap_or(0);
    eprintln!("resident before: {} MiB", before >> 20);

    // A call set up before the pressure.
    pbx.send_to(invite_to(proxy, &pbx, "up@pbx").as_bytes(), proxy)
        .expect("send");
    let answer = recv_until(&pbx, "100 at the PBX", |s| {
        s.first_line().starts_with("SIP/2.0 ")
    });
    assert!(answer.is_status(100), "{}", answer.text);
    let fwd = recv_until(&gw, "INVITE at gw", |s| s.method() == "INVITE");
    gw.send_to(
        response_to(
            &fwd,
            200,
            "OK",
            Some("g"),
            &format!("<sip:gw@127.0.0.3:{}>", port(&gw)),
        )
        .as_bytes(),
        proxy,
    )
    .expect("send");
    recv_until(&pbx, "200 at the PBX", |s| s.is_status(200));

    // Fill memory past 90% of the cap (pages touched, so they are resident).
    let ballast = vec![1u8; 128 << 20];
    wait_for(metrics, "junction_memory_pressure", 1);
    pbx.send_to(invite_to(proxy, &pbx, "new@pbx").as_bytes(), proxy)
        .expect("send");
    let refused = recv_until(&pbx, "503", |s| s.first_line().starts_with("SIP/2.0 5"));
    assert!(refused.is_status(503), "{}", refused.text);
    assert!(refused.header("Warning").contains("memory-cap"));
    assert_eq!(refused.header("Retry-After"), "5");

    // The established call still hangs up.
    let uri = format!("{}:{}", proxy.ip(), proxy.port());
    let bye = msg(
        &[
            &format!("BYE sip:gw@127.0.0.3:{} SIP/2.0", port(&gw)),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-bye;rport",
                port(&pbx)
            ),
            &format!("Route: <sip:{uri};lr>"),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: <sip:2125551234@{uri}>;tag=g"),
            "Call-ID: up@pbx",
            "CSeq: 2 BYE",
        ],
        "",
    );
    pbx.send_to(bye.as_bytes(), proxy).expect("send");
    recv_until(&gw, "BYE at gw", |s| s.method() == "BYE");

    // Memory released: below 80% the pressure ends and calls route again.
    assert_eq!(
        ballast.iter().map(|&b| u64::from(b)).sum::<u64>(),
        128 << 20
    );
    drop(ballast);
    wait_for(metrics, "junction_memory_pressure", 0);
    pbx.send_to(invite_to(proxy, &pbx, "later@pbx").as_bytes(), proxy)
        .expect("send");
    recv_until(&gw, "INVITE later@pbx at gw", |s| {
        s.method() == "INVITE" && s.header("Call-ID") == "later@pbx"
    });
    assert!(
        gauge(metrics, "junction_memory_resident_peak_bytes").unwrap_or(0) > 115 << 20,
        "the peak saw the ballast"
    );
    server.shutdown().expect("clean shutdown");
}
