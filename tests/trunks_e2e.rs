//! Real SIP over loopback sockets through a running junction (2 shards): a PBX trunk on
//! 127.0.0.2 calls out through two gateways on 127.0.0.3 and 127.0.0.4. The first answers
//! 503, the call fails over to the second with that trunk's number translation, and BYE
//! from the callee reaches the caller with the caller's own numbers. An unknown source is
//! refused and reaches no trunk. A gateway that asks, by RFC 7339, for half of the new calls
//! to be withheld gets half, from both shards.

mod common;

use common::{msg, peer_socket, recv_until, response_to, SDP};
use junction::config;
use junction::shard::{self, Options};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn nothing_arrives(sock: &UdpSocket) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let quiet = sock.recv_from(&mut buf).is_err();
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    quiet
}

fn user_of(header: &str) -> &str {
    let start = header.find("sip:").map_or(0, |i| i + 4);
    let rest = &header[start..];
    &rest[..rest.find('@').unwrap_or(rest.len())]
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

/// The PBX (127.0.0.2) and the two gateways (127.0.0.3, .4) as loopback peers, and a free
/// port on 127.0.0.1 for junction.
struct Peers {
    pbx: UdpSocket,
    gw_a: UdpSocket,
    gw_b: UdpSocket,
    listen: u16,
}

fn peers() -> Peers {
    Peers {
        pbx: peer_socket("127.0.0.2"),
        gw_a: peer_socket("127.0.0.3"),
        gw_b: peer_socket("127.0.0.4"),
        listen: port(&peer_socket("127.0.0.1")),
    }
}

#[test]
fn a_call_fails_over_between_gateways_and_hangs_up_cleanly() {
    let Peers {
        pbx,
        gw_a,
        gw_b,
        listen,
    } = peers();
    let stranger = peer_socket("127.0.0.9");
    let text = format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:{pbx}"
inbound = [{{ match = '^(\d{{10}})$', replace = '+1${{1}}', number = "called" }}]

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{a}"
outbound_called = [{{ match = '^\+1(\d{{10}})$', replace = '${{1}}' }}]

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:{b}"
outbound_calling = [{{ match = '^(\d{{3}})$', replace = '+12125550${{1}}' }}]

[[route]]
name = "primary"
pattern = '^\+1\d{{10}}$'
trunks = ["gw-a"]
priority = 10

[[route]]
name = "backup"
pattern = '^\+1\d{{10}}$'
trunks = ["gw-b"]
priority = 20
"#,
        pbx = port(&pbx),
        a = port(&gw_a),
        b = port(&gw_b)
    );
    let cfg = config::parse(&text, "e2e.toml").expect("config");
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy: SocketAddr = server.local_addr();
    let proxy_uri = format!("{}:{}", proxy.ip(), proxy.port());

    let invite = msg(
        &[
            &format!("INVITE sip:2125551234@{proxy_uri} SIP/2.0"),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-e2e-1;rport",
                port(&pbx)
            ),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: <sip:2125551234@{proxy_uri}>"),
            "Call-ID: e2e-failover@127.0.0.2",
            "CSeq: 1 INVITE",
            &format!("Contact: <sip:100@127.0.0.2:{}>", port(&pbx)),
            "Content-Type: application/sdp",
        ],
        SDP,
    );
    pbx.send_to(invite.as_bytes(), proxy).expect("send");

    // gw-a: translated number; it answers 503 and gets an ACK.
    let a = recv_until(&gw_a, "INVITE at gw-a", |s| s.method() == "INVITE");
    assert!(a
        .first_line()
        .starts_with("INVITE sip:2125551234@127.0.0.3:"));
    gw_a.send_to(
        response_to(&a, 503, "Service Unavailable", Some("ga"), "").as_bytes(),
        proxy,
    )
    .expect("send");
    recv_until(&gw_a, "ACK at gw-a", |s| s.method() == "ACK");

    // gw-b: the normalized number, and its own calling-number translation.
    let b = recv_until(&gw_b, "INVITE at gw-b", |s| s.method() == "INVITE");
    assert!(
        b.first_line()
            .starts_with("INVITE sip:+12125551234@127.0.0.4:"),
        "{}",
        b.text
    );
    assert_eq!(user_of(b.header("From")), "+12125550100");
    let contact_b = format!("<sip:gw@127.0.0.4:{}>", port(&gw_b));
    gw_b.send_to(
        response_to(&b, 200, "OK", Some("gb"), &contact_b).as_bytes(),
        proxy,
    )
    .expect("send");

    // The PBX gets the 200 with its own From, and the Record-Route to follow.
    let ok = recv_until(&pbx, "200 at the PBX", |s| s.is_status(200));
    assert_eq!(user_of(ok.header("From")), "100");
    let route = ok.header("Record-Route").to_string();
    assert!(route.contains(";lr"), "{}", ok.text);
    let ack = msg(
        &[
            &format!("ACK sip:gw@127.0.0.4:{} SIP/2.0", port(&gw_b)),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-e2e-ack;rport",
                port(&pbx)
            ),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: <sip:2125551234@{proxy_uri}>;tag=gb"),
            "Call-ID: e2e-failover@127.0.0.2",
            "CSeq: 1 ACK",
        ],
        "",
    );
    pbx.send_to(ack.as_bytes(), proxy).expect("send");
    recv_until(&gw_b, "ACK at gw-b", |s| s.method() == "ACK");

    // BYE from the callee: the PBX sees its own number in To.
    let bye = msg(
        &[
            &format!("BYE sip:100@127.0.0.2:{} SIP/2.0", port(&pbx)),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.4:{};branch=z9hG4bK-e2e-bye;rport",
                port(&gw_b)
            ),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:+12125551234@127.0.0.4>;tag=gb",
            "To: <sip:+12125550100@127.0.0.2>;tag=caller",
            "Call-ID: e2e-failover@127.0.0.2",
            "CSeq: 1 BYE",
        ],
        "",
    );
    gw_b.send_to(bye.as_bytes(), proxy).expect("send");
    let bye_in = recv_until(&pbx, "BYE at the PBX", |s| s.method() == "BYE");
    assert_eq!(user_of(bye_in.header("To")), "100");
    pbx.send_to(response_to(&bye_in, 200, "OK", None, "").as_bytes(), proxy)
        .expect("send");
    let done = recv_until(&gw_b, "200 for BYE at gw-b", |s| s.is_status(200));
    assert_eq!(user_of(done.header("To")), "+12125550100");

    // A stranger gets no answer (default unknown_source = "drop") and nothing reaches a
    // trunk.
    let strange = invite
        .replace("127.0.0.2", "127.0.0.9")
        .replace(
            &format!(":{};", port(&pbx)),
            &format!(":{};", port(&stranger)),
        )
        .replace("e2e-failover", "e2e-stranger");
    stranger.send_to(strange.as_bytes(), proxy).expect("send");
    assert!(nothing_arrives(&stranger), "the stranger got an answer");
    assert!(nothing_arrives(&gw_a) && nothing_arrives(&gw_b));
    server.shutdown().expect("clean shutdown");
}

/// The next INVITE that reaches either gateway (retransmissions of earlier ones skipped by
/// Call-ID): which gateway (0 or 1), and the INVITE.
fn next_invite(gws: [&UdpSocket; 2], call_id: &str) -> (usize, common::Sent) {
    let mut buf = vec![0u8; 65_536];
    for g in gws {
        g.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
    }
    for _ in 0..250 {
        for (i, g) in gws.iter().enumerate() {
            if let Ok((n, from)) = g.recv_from(&mut buf) {
                let s = common::Sent {
                    to: from,
                    text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                };
                if s.method() == "INVITE" && s.header("Call-ID") == call_id {
                    return (i, s);
                }
            }
        }
    }
    panic!("{call_id} reached no gateway");
}

/// RFC 7339 toward the gateways, across two shards: gw-a's 180 says "withhold 50%", and of
/// the next 20 new calls, whichever shard owns each, exactly 10 go to gw-a and 10 fail over
/// to gw-b (the reduction lives in the trunk's state, shared by the shards).
#[test]
fn a_gateway_asking_for_half_gets_half_of_the_calls_of_every_shard() {
    let Peers {
        pbx,
        gw_a,
        gw_b,
        listen,
    } = peers();
    let text = format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:{pbx}"

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{a}"

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:{b}"

[[route]]
name = "primary"
prefixes = [""]
trunks = ["gw-a"]
priority = 10

[[route]]
name = "backup"
prefixes = [""]
trunks = ["gw-b"]
priority = 20
"#,
        pbx = port(&pbx),
        a = port(&gw_a),
        b = port(&gw_b)
    );
    let cfg = config::parse(&text, "e2e.toml").expect("config");
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy: SocketAddr = server.local_addr();
    let invite = |call_id: &str| {
        msg(
            &[
                &format!("INVITE sip:2125551234@{proxy} SIP/2.0"),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-{call_id};rport",
                    port(&pbx)
                ),
                "Max-Forwards: 70",
                "From: <sip:100@127.0.0.2>;tag=caller",
                &format!("To: <sip:2125551234@{proxy}>"),
                &format!("Call-ID: {call_id}"),
                "CSeq: 1 INVITE",
                &format!("Contact: <sip:100@127.0.0.2:{}>", port(&pbx)),
                "Content-Type: application/sdp",
            ],
            SDP,
        )
    };

    pbx.send_to(invite("oc-first").as_bytes(), proxy)
        .expect("send");
    let (gw, first) = next_invite([&gw_a, &gw_b], "oc-first");
    assert_eq!(gw, 0, "before any feedback, calls go to gw-a");
    let ours = format!("Via: {}", first.headers("Via")[0]);
    let offer = ours
        .strip_suffix(";oc")
        .unwrap_or_else(|| panic!("our Via offers overload control: {ours}"));
    let ringing = response_to(&first, 180, "Ringing", Some("ga"), "").replacen(
        &ours,
        &format!("{offer};oc=50;oc-algo=\"loss\";oc-validity=30000;oc-seq=1.0"),
        1,
    );
    gw_a.send_to(ringing.as_bytes(), proxy).expect("send");
    // The 180 reaching the PBX shows junction has read the feedback.
    recv_until(&pbx, "180 at the PBX", |s| s.is_status(180));

    let mut to = [0usize; 2];
    let mut owners = [0usize; 2];
    for n in 0..20 {
        let call_id = format!("oc-{n}");
        owners[server.owner_of(call_id.as_bytes()) % 2] += 1;
        pbx.send_to(invite(&call_id).as_bytes(), proxy)
            .expect("send");
        let (gw, _) = next_invite([&gw_a, &gw_b], &call_id);
        to[gw] += 1;
    }
    assert!(
        owners[0] > 0 && owners[1] > 0,
        "both shards own calls: {owners:?}"
    );
    assert_eq!(to, [10, 10], "calls to gw-a and gw-b");
    server.shutdown().expect("clean shutdown");
}
