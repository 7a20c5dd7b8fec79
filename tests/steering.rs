//! Per-shard ports (`[server] shard_ports`) over real loopback sockets, 2 shards, one PBX
//! socket and one gateway socket (one 4-tuple each way, so the kernel puts each peer on one
//! shard's socket and only the Call-ID decides the owner). Each call goes through the paths
//! a proxy must keep: basic call, re-INVITE, BYE from either side, a retransmitted 200, and
//! CANCEL. With steering on, junction's Via and Record-Route name the owner's own port, the
//! peers send responses and in-dialog requests there, and nothing but new requests (INVITE,
//! and the CANCEL and ACK of its transaction, which go where the INVITE went) crosses
//! shards. With steering off the same flows work and responses do cross, which is what
//! steering removes.

mod common;

use common::{free_udp_port_pair, http_get, msg, peer_socket, recv_until, response_to, Sent, SDP};
use junction::config;
use junction::shard::{self, Options};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};

const CALLS: usize = 12;
const CANCELLED: usize = 4;

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

/// The host:port of the first `sip:` URI in a header value.
fn uri_addr(value: &str) -> SocketAddr {
    let start = value.find("sip:").expect("a sip: URI") + 4;
    let rest = &value[start..];
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find([';', '>']).unwrap_or(rest.len());
    rest[..end].parse().expect("host:port")
}

/// The sent-by of a Via value ("SIP/2.0/UDP host:port;...").
fn via_addr(via: &str) -> SocketAddr {
    let sent_by = via.split_whitespace().nth(1).expect("sent-by");
    let end = sent_by.find(';').unwrap_or(sent_by.len());
    sent_by[..end].parse().expect("host:port")
}

fn samples(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn sum(m: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

fn send(sock: &UdpSocket, to: SocketAddr, text: &str) {
    sock.send_to(text.as_bytes(), to).expect("send");
}

struct Rig {
    server: shard::Server,
    pbx: UdpSocket,
    gw: UdpSocket,
    proxy: SocketAddr,
    shard_ports: Option<u16>,
}

fn rig(steering: bool) -> Rig {
    let pbx = peer_socket("127.0.0.2");
    let gw = peer_socket("127.0.0.3");
    let listen = port(&peer_socket("127.0.0.1"));
    let shard_ports = steering.then(free_udp_port_pair);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let steer = shard_ports.map_or(String::new(), |b| format!("shard_ports = {b}\n"));
    let text = format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:{metrics}"
{steer}
[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:{p}"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{g}"

[[route]]
name = "all"
prefixes = [""]
trunks = ["gw"]
"#,
        p = port(&pbx),
        g = port(&gw)
    );
    let cfg = config::parse(&text, "steering.toml").expect("config");
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy = server.local_addr();
    Rig {
        server,
        pbx,
        gw,
        proxy,
        shard_ports,
    }
}

impl Rig {
    fn invite(&self, call: usize, cseq: u32, route: Option<&str>) -> String {
        let uri = if cseq == 1 {
            format!("sip:2125550{call:03}@{}", self.proxy)
        } else {
            format!("sip:gw@127.0.0.3:{}", port(&self.gw))
        };
        let mut lines = vec![
            format!("INVITE {uri} SIP/2.0"),
            format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-st-{call}-{cseq};rport",
                port(&self.pbx)
            ),
            "Max-Forwards: 70".into(),
            format!("From: <sip:alice@127.0.0.2>;tag=a{call}"),
        ];
        if let Some(route) = route {
            lines.push(format!("Route: {route}"));
        }
        lines.push(if cseq == 1 {
            format!("To: <sip:2125550{call:03}@{}>", self.proxy)
        } else {
            format!("To: <sip:2125550{call:03}@{}>;tag=g{call}", self.proxy)
        });
        lines.push(format!("Call-ID: steer-{call}@127.0.0.2"));
        lines.push(format!("CSeq: {cseq} INVITE"));
        lines.push(format!(
            "Contact: <sip:alice@127.0.0.2:{}>",
            port(&self.pbx)
        ));
        lines.push("Content-Type: application/sdp".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        msg(&refs, SDP)
    }

    /// An in-dialog request from the PBX to the gateway (ACK, BYE), along `route`.
    fn pbx_request(
        &self,
        call: usize,
        method: &str,
        cseq: u32,
        branch: &str,
        route: &str,
    ) -> String {
        msg(
            &[
                &format!("{method} sip:gw@127.0.0.3:{} SIP/2.0", port(&self.gw)),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-{branch};rport",
                    port(&self.pbx)
                ),
                &format!("Route: {route}"),
                "Max-Forwards: 70",
                &format!("From: <sip:alice@127.0.0.2>;tag=a{call}"),
                &format!("To: <sip:2125550{call:03}@{}>;tag=g{call}", self.proxy),
                &format!("Call-ID: steer-{call}@127.0.0.2"),
                &format!("CSeq: {cseq} {method}"),
            ],
            "",
        )
    }

    /// Where junction's own address in a message should be: the owner's port with steering
    /// (one of the two), else the shared port.
    fn check_own(&self, addr: SocketAddr, what: &str) {
        match self.shard_ports {
            Some(base) => assert!(
                addr.port() == base || addr.port() == base + 1,
                "{what}: {addr} is not a shard port ({base}, {})",
                base + 1
            ),
            None => assert_eq!(addr, self.proxy, "{what}"),
        }
    }

    /// The gateway's copy of what junction relayed: checks our Via, Record-Route and the
    /// source agree (the owner's port with steering).
    fn at_gw(&self, what: &str, want: impl Fn(&Sent) -> bool) -> Sent {
        let got = recv_until(&self.gw, what, want);
        let via = via_addr(got.headers("Via")[0]);
        self.check_own(via, what);
        // With steering, requests leave from the owner's port (a peer that answers to the
        // source port, RFC 3581, reaches the owner too).
        if self.shard_ports.is_some() {
            assert_eq!(got.to, via, "{what}: source and Via differ");
        }
        got
    }

    fn answered_call(&self, call: usize) -> (Sent, String) {
        send(&self.pbx, self.proxy, &self.invite(call, 1, None));
        let inv = self.at_gw("INVITE", |s| s.first_line().starts_with("INVITE"));
        let rr = inv.headers("Record-Route");
        assert_eq!(rr.len(), 1, "one Record-Route: {}", inv.text);
        self.check_own(uri_addr(rr[0]), "Record-Route");
        let contact = format!("<sip:gw@127.0.0.3:{}>", port(&self.gw));
        let via = via_addr(inv.headers("Via")[0]);
        send(
            &self.gw,
            via,
            &response_to(&inv, 180, "Ringing", Some(&format!("g{call}")), &contact),
        );
        let ok = response_to(&inv, 200, "OK", Some(&format!("g{call}")), &contact);
        send(&self.gw, via, &ok);
        let ok_at_pbx = recv_until(&self.pbx, "200 to INVITE", |s| {
            s.first_line().starts_with("SIP/2.0 200") && s.header("CSeq").ends_with("INVITE")
        });
        let route = ok_at_pbx.headers("Record-Route")[0].to_string();
        // The ACK follows the route set, as a real user agent sends it.
        let next = uri_addr(&route);
        send(
            &self.pbx,
            next,
            &self.pbx_request(call, "ACK", 1, &format!("ack-{call}"), &route),
        );
        self.at_gw("ACK", |s| s.first_line().starts_with("ACK"));
        (inv, route)
    }
}

fn run_flows(rig: &Rig) -> BTreeMap<String, u64> {
    for call in 0..CALLS {
        let (inv, route) = rig.answered_call(call);
        let next = uri_addr(&route);
        let contact = format!("<sip:gw@127.0.0.3:{}>", port(&rig.gw));
        match call % 3 {
            0 => {
                // re-INVITE from the PBX, along the route set.
                send(&rig.pbx, next, &rig.invite(call, 2, Some(&route)));
                let re = rig.at_gw("re-INVITE", |s| {
                    s.first_line().starts_with("INVITE") && s.header("CSeq") == "2 INVITE"
                });
                send(
                    &rig.gw,
                    via_addr(re.headers("Via")[0]),
                    &response_to(&re, 200, "OK", None, &contact),
                );
                recv_until(&rig.pbx, "200 to re-INVITE", |s| {
                    s.first_line().starts_with("SIP/2.0 200") && s.header("CSeq") == "2 INVITE"
                });
                send(
                    &rig.pbx,
                    next,
                    &rig.pbx_request(call, "ACK", 2, &format!("ack2-{call}"), &route),
                );
                rig.at_gw("ACK to re-INVITE", |s| s.first_line().starts_with("ACK"));
                // BYE from the PBX.
                send(
                    &rig.pbx,
                    next,
                    &rig.pbx_request(call, "BYE", 3, &format!("bye-{call}"), &route),
                );
                let bye = rig.at_gw("BYE", |s| s.first_line().starts_with("BYE"));
                send(
                    &rig.gw,
                    via_addr(bye.headers("Via")[0]),
                    &response_to(&bye, 200, "OK", None, ""),
                );
                recv_until(&rig.pbx, "200 to BYE", |s| {
                    s.first_line().starts_with("SIP/2.0 200") && s.header("CSeq").ends_with("BYE")
                });
            }
            1 => {
                // BYE from the gateway, along the route set of the INVITE it got.
                let gw_route = inv.headers("Record-Route")[0].to_string();
                let bye = msg(
                    &[
                        &format!("BYE sip:alice@127.0.0.2:{} SIP/2.0", port(&rig.pbx)),
                        &format!(
                            "Via: SIP/2.0/UDP 127.0.0.3:{};branch=z9hG4bK-gwbye-{call};rport",
                            port(&rig.gw)
                        ),
                        &format!("Route: {gw_route}"),
                        "Max-Forwards: 70",
                        &format!("From: {};tag=g{call}", inv.header("To")),
                        &format!("To: {}", inv.header("From")),
                        &format!("Call-ID: {}", inv.header("Call-ID")),
                        "CSeq: 1 BYE",
                    ],
                    "",
                );
                send(&rig.gw, uri_addr(&gw_route), &bye);
                let at_pbx = recv_until(&rig.pbx, "BYE from the gateway", |s| {
                    s.first_line().starts_with("BYE")
                });
                send(
                    &rig.pbx,
                    via_addr(at_pbx.headers("Via")[0]),
                    &response_to(&at_pbx, 200, "OK", None, ""),
                );
                recv_until(&rig.gw, "200 to the gateway's BYE", |s| {
                    s.first_line().starts_with("SIP/2.0 200") && s.header("CSeq").ends_with("BYE")
                });
            }
            _ => {
                // The gateway's 200 retransmitted (its ACK was late): relayed again.
                send(
                    &rig.gw,
                    via_addr(inv.headers("Via")[0]),
                    &response_to(&inv, 200, "OK", Some(&format!("g{call}")), &contact),
                );
                recv_until(&rig.pbx, "the retransmitted 200", |s| {
                    s.first_line().starts_with("SIP/2.0 200")
                        && s.header("CSeq").ends_with("INVITE")
                });
                send(
                    &rig.pbx,
                    next,
                    &rig.pbx_request(call, "BYE", 2, &format!("bye-{call}"), &route),
                );
                let bye = rig.at_gw("BYE", |s| s.first_line().starts_with("BYE"));
                send(
                    &rig.gw,
                    via_addr(bye.headers("Via")[0]),
                    &response_to(&bye, 200, "OK", None, ""),
                );
                recv_until(&rig.pbx, "200 to BYE", |s| {
                    s.first_line().starts_with("SIP/2.0 200") && s.header("CSeq").ends_with("BYE")
                });
            }
        }
    }
    // Calls the PBX cancels while the gateway rings: CANCEL and the ACK of the 487 go where
    // the INVITE went (RFC 3261 9.1, 17.1.1.3), the shared port.
    for call in CALLS..CALLS + CANCELLED {
        send(&rig.pbx, rig.proxy, &rig.invite(call, 1, None));
        let inv = rig.at_gw("INVITE to cancel", |s| s.first_line().starts_with("INVITE"));
        let via = via_addr(inv.headers("Via")[0]);
        send(
            &rig.gw,
            via,
            &response_to(&inv, 180, "Ringing", Some(&format!("g{call}")), ""),
        );
        recv_until(&rig.pbx, "180", |s| {
            s.first_line().starts_with("SIP/2.0 180")
        });
        let cancel = msg(
            &[
                &format!("CANCEL sip:2125550{call:03}@{} SIP/2.0", rig.proxy),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-st-{call}-1;rport",
                    port(&rig.pbx)
                ),
                "Max-Forwards: 70",
                &format!("From: <sip:alice@127.0.0.2>;tag=a{call}"),
                &format!("To: <sip:2125550{call:03}@{}>", rig.proxy),
                &format!("Call-ID: steer-{call}@127.0.0.2"),
                "CSeq: 1 CANCEL",
            ],
            "",
        );
        send(&rig.pbx, rig.proxy, &cancel);
        let c = rig.at_gw("CANCEL", |s| s.first_line().starts_with("CANCEL"));
        send(&rig.gw, via, &response_to(&c, 200, "OK", None, ""));
        send(
            &rig.gw,
            via,
            &response_to(
                &inv,
                487,
                "Request Terminated",
                Some(&format!("g{call}")),
                "",
            ),
        );
        let t = recv_until(&rig.pbx, "487", |s| {
            s.first_line().starts_with("SIP/2.0 487")
        });
        let ack = msg(
            &[
                &format!("ACK sip:2125550{call:03}@{} SIP/2.0", rig.proxy),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-st-{call}-1;rport",
                    port(&rig.pbx)
                ),
                "Max-Forwards: 70",
                &format!("From: <sip:alice@127.0.0.2>;tag=a{call}"),
                &format!("To: {}", t.header("To")),
                &format!("Call-ID: steer-{call}@127.0.0.2"),
                "CSeq: 1 ACK",
            ],
            "",
        );
        send(&rig.pbx, rig.proxy, &ack);
        // junction acknowledges the 487 itself, hop by hop.
        rig.at_gw("ACK to 487", |s| s.first_line().starts_with("ACK"));
    }
    // Every call ended: wait until the shards published it, then read the counters.
    let metrics = rig.server.metrics_addr().expect("metrics");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let m = samples(&http_get(metrics, "/metrics"));
        // Every call and the last message of each (the gateway's 200 to the PBX's BYE, the
        // ACK of a 487) counted.
        let ended = sum(&m, "junction_core_calls_created_total{") == (CALLS + CANCELLED) as u64
            && sum(&m, "junction_core_responses_forwarded_total{") > 0;
        if ended || std::time::Instant::now() > deadline {
            // Two more publication intervals: the last crossings of each shard are in.
            std::thread::sleep(junction::limits::METRICS_PUBLISH_INTERVAL * 2);
            return samples(&http_get(metrics, "/metrics"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Crossings of one kind, summed over the shards.
fn kind(m: &BTreeMap<String, u64>, kind: &str) -> u64 {
    let label = format!("kind=\"{kind}\"");
    m.iter()
        .filter(|(k, _)| k.starts_with("junction_handoff_kind_total{") && k.contains(&label))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn with_shard_ports_only_new_requests_cross_shards() {
    let rig = rig(true);
    let m = run_flows(&rig);
    let created: Vec<u64> = (0..2)
        .map(|s| m[&format!("junction_core_calls_created_total{{shard=\"{s}\"}}")])
        .collect();
    assert!(
        created.iter().all(|&n| n > 0),
        "one 4-tuple, yet calls on both shards: {created:?}"
    );
    assert_eq!(kind(&m, "response"), 0, "no response crosses");
    assert_eq!(kind(&m, "other_request"), 0, "no BYE crosses");
    // Initial INVITEs only (re-INVITEs go to the owner's port): at most one per call.
    assert!(kind(&m, "invite") <= (CALLS + CANCELLED) as u64);
    // The ACK to a 2xx follows the route set; only ACKs of 487s (where the INVITE went).
    assert!(kind(&m, "ack") <= CANCELLED as u64);
    assert!(kind(&m, "cancel") <= CANCELLED as u64);
    assert!(sum(&m, "junction_datagrams_received_shard_port_total{") > 0);
    rig.server.shutdown().expect("shutdown");
}

#[test]
fn without_shard_ports_the_same_flows_work_and_responses_cross() {
    let rig = rig(false);
    let m = run_flows(&rig);
    // The gateway's 4-tuple lands on one shard; the calls the other owns cross.
    assert!(
        kind(&m, "response") > 0,
        "responses crossed without steering"
    );
    assert_eq!(sum(&m, "junction_datagrams_received_shard_port_total{"), 0);
    rig.server.shutdown().expect("shutdown");
}
