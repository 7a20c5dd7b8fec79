//! Issue 19 through real sockets: a running junction (one shard) on loopback between PBXs
//! (127.0.0.2 trusted, 127.0.0.5 untrusted) and gateways (127.0.0.3 a trusted carrier,
//! 127.0.0.4 untrusted, 127.0.0.6 trusted but `forward_pai = false`). The caller's identity
//! (RFC 3325 P-Asserted-Identity, RFC 3323 privacy, RFC 8224 Identity, Diversion,
//! History-Info), per-attempt caller_id, a gateway's 503, number-portability parameters,
//! received/rport on junction's own answers, and the call records. Last, `junction
//! route-test --file` and the live path are fed the same number file and must agree on
//! every attempt of every call.

mod common;

use common::{msg, peer_socket, recv_until, response_to, Sent, SDP};
use junction::config;
use junction::shard::{self, Options, Server};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

const CONFIG: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:LISTEN"

[cdr]
path = "CDR"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:PBX"
trusted = true
inbound = [{ match = '(\d{4})', replace = '+1212555${1}', number = "calling" }]

[[trunk]]
name = "pbx-untrusted"
peers = ["127.0.0.5"]
send_to = "127.0.0.5:PBX2"
route_on = "rn"

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:GWA"
trusted = true
progress_timeout_s = 0
outbound_calling = [{ match = '\+1(\d{10})', replace = '${1}' }]

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:GWB"
progress_timeout_s = 0
diversion = "remove"
history_info = "remove"

[[trunk]]
name = "gw-c"
peers = ["127.0.0.6"]
send_to = "127.0.0.6:GWC"
trusted = true
forward_pai = false
progress_timeout_s = 0
identity = "remove"

[[route]]
name = "to-a"
prefixes = ["1"]
trunks = ["gw-a"]

[[route]]
name = "to-b"
prefixes = ["2"]
trunks = ["gw-b"]

[[route]]
name = "to-c"
prefixes = ["4"]
trunks = ["gw-c"]

[[route]]
name = "fo-first"
prefixes = ["3"]
trunks = ["gw-a"]
priority = 10

[[route]]
name = "fo-second"
prefixes = ["3"]
trunks = ["gw-b"]
priority = 20
caller_id = "+15550001111"

[[route]]
name = "ported"
prefixes = ["+1310555"]
route_on = "rn"
trunks = ["gw-b"]
priority = 10

[[route]]
name = "nanp"
prefixes = ["+1"]
trunks = ["gw-a"]
priority = 20
"#;

struct Rig {
    pbx: UdpSocket,
    pbx2: UdpSocket,
    gw_a: UdpSocket,
    gw_b: UdpSocket,
    gw_c: UdpSocket,
    server: Option<Server>,
    proxy: SocketAddr,
    cdr: PathBuf,
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

fn rig(name: &str) -> Rig {
    let pbx = peer_socket("127.0.0.2");
    let pbx2 = peer_socket("127.0.0.5");
    let gw_a = peer_socket("127.0.0.3");
    let gw_b = peer_socket("127.0.0.4");
    let gw_c = peer_socket("127.0.0.6");
    let listen = port(&peer_socket("127.0.0.1"));
    let dir = std::env::temp_dir().join(format!("junction-identity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cdr = dir.join("cdr.jsonl");
    let text = CONFIG
        .replace("LISTEN", &listen.to_string())
        .replace("CDR", &cdr.display().to_string())
        .replace("PBX2", &port(&pbx2).to_string())
        .replace("PBX", &port(&pbx).to_string())
        .replace("GWA", &port(&gw_a).to_string())
        .replace("GWB", &port(&gw_b).to_string())
        .replace("GWC", &port(&gw_c).to_string());
    let cfg = config::parse(&text, "identity.toml").expect("config");
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy = server.local_addr();
    Rig {
        pbx,
        pbx2,
        gw_a,
        gw_b,
        gw_c,
        server: Some(server),
        proxy,
        cdr,
    }
}

impl Rig {
    /// An INVITE from `sock` (a PBX) for `called`, with this From and extra header lines.
    fn invite(
        &self,
        sock: &UdpSocket,
        call_id: &str,
        called: &str,
        from: &str,
        extra: &[&str],
    ) -> String {
        let me = sock.local_addr().expect("addr");
        let mut lines = vec![
            format!("INVITE sip:{called}@{} SIP/2.0", self.proxy),
            format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id};rport"),
            "Max-Forwards: 70".to_string(),
            format!("From: {from};tag=caller"),
            format!("To: <sip:{called}@{}>", self.proxy),
            format!("Call-ID: {call_id}"),
            "CSeq: 1 INVITE".to_string(),
            format!("Contact: <sip:caller@{me}>"),
        ];
        lines.extend(extra.iter().map(|s| s.to_string()));
        lines.push("Content-Type: application/sdp".to_string());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        msg(&refs, SDP)
    }

    fn send(&self, sock: &UdpSocket, text: &str) {
        sock.send_to(text.as_bytes(), self.proxy).expect("send");
    }

    /// The CDR records, after junction has stopped (the writer flushed).
    fn records(mut self) -> Vec<serde_json::Value> {
        if let Some(server) = self.server.take() {
            server.shutdown().expect("clean shutdown");
        }
        let text = std::fs::read_to_string(&self.cdr).unwrap_or_default();
        if let Some(dir) = self.cdr.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown();
        }
    }
}

fn invite_for(sock: &UdpSocket, call_id: &str) -> Sent {
    recv_until(sock, &format!("INVITE {call_id}"), |s| {
        s.method() == "INVITE" && s.header("Call-ID") == call_id
    })
}

fn user_of(header: &str) -> &str {
    let start = header
        .find("sip:")
        .map(|i| i + 4)
        .or_else(|| header.find("tel:").map(|i| i + 4))
        .unwrap_or(0);
    let rest = &header[start..];
    let end = rest.find(['@', '>', ';']).unwrap_or(rest.len());
    &rest[..end]
}

fn nothing_arrives(sock: &UdpSocket, call_id: &str) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let mut quiet = true;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains(call_id) {
            quiet = false;
        }
    }
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    quiet
}

/// Reject the INVITE at the gateway with `code`. A 5xx moves the call to its next attempt;
/// any other code ends it, and the caller's PBX receiving it shows junction has done so.
fn reject(r: &Rig, gw: &UdpSocket, inv: &Sent, code: u16, reason: &str) {
    gw.send_to(
        response_to(inv, code, reason, Some("gw"), "").as_bytes(),
        r.proxy,
    )
    .expect("send");
    if (500..600).contains(&code) {
        return;
    }
    let call_id = inv.header("Call-ID").to_string();
    let caller = if inv.headers("Via").iter().any(|v| v.contains("127.0.0.5:")) {
        &r.pbx2
    } else {
        &r.pbx
    };
    recv_until(caller, &format!("{code} for {call_id}"), |s| {
        s.is_status(code) && s.header("Call-ID") == call_id
    });
}

const WITHHELD: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

#[test]
fn a_withheld_number_keeps_its_asserted_identity_toward_a_trusted_trunk_only() {
    let r = rig("withheld");
    let pai = "P-Asserted-Identity: <sip:+12125550100@10.1.0.10>";
    // Trusted egress (gw-a): PAI kept, translated by gw-a's outbound_calling; the
    // anonymous From is never rewritten; Privacy passes.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "wh-1", "1555", WITHHELD, &[pai, "Privacy: id"]),
    );
    let a = invite_for(&r.gw_a, "wh-1");
    assert_eq!(user_of(a.header("From")), "anonymous", "{}", a.text);
    assert_eq!(a.headers("P-Asserted-Identity").len(), 1, "{}", a.text);
    assert_eq!(
        user_of(a.header("P-Asserted-Identity")),
        "2125550100",
        "{}",
        a.text
    );
    assert_eq!(a.header("Privacy"), "id");
    reject(&r, &r.gw_a, &a, 486, "Busy Here");

    // Untrusted egress (gw-b): no PAI at all; From stays anonymous.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "wh-2", "2555", WITHHELD, &[pai, "Privacy: id"]),
    );
    let b = invite_for(&r.gw_b, "wh-2");
    assert!(b.headers("P-Asserted-Identity").is_empty(), "{}", b.text);
    assert_eq!(user_of(b.header("From")), "anonymous", "{}", b.text);
    reject(&r, &r.gw_b, &b, 486, "Busy Here");

    // A caller who asks for privacy with its number in From: toward the untrusted trunk
    // From is anonymized (tag kept), and the caller gets its own From back.
    r.send(
        &r.pbx,
        &r.invite(
            &r.pbx,
            "wh-3",
            "2555",
            "\"Alice\" <sip:2001@127.0.0.2>",
            &[pai, "Privacy: id"],
        ),
    );
    let b = invite_for(&r.gw_b, "wh-3");
    assert_eq!(
        b.header("From"),
        format!("{WITHHELD};tag=caller"),
        "{}",
        b.text
    );
    assert!(b.headers("P-Asserted-Identity").is_empty(), "{}", b.text);
    r.gw_b
        .send_to(
            response_to(&b, 180, "Ringing", Some("gb"), "").as_bytes(),
            r.proxy,
        )
        .expect("send");
    let ringing = recv_until(&r.pbx, "180 at the PBX", |s| s.is_status(180));
    assert_eq!(
        ringing.header("From"),
        "\"Alice\" <sip:2001@127.0.0.2>;tag=caller"
    );
    reject(&r, &r.gw_b, &b, 486, "Busy Here");

    let records = r.records();
    let wh3 = records
        .iter()
        .find(|v| v["call_id"] == "wh-3")
        .expect("record");
    assert_eq!(wh3["privacy"], true);
    assert_eq!(wh3["calling"], "+12125550100", "the asserted number: {wh3}");
    assert_eq!(wh3["from"], "2001");
    assert_eq!(wh3["attempts"][0]["calling"], "anonymous");
    assert!(wh3["attempts"][0]["pai"].is_null());
    let wh1 = records
        .iter()
        .find(|v| v["call_id"] == "wh-1")
        .expect("record");
    assert_eq!(wh1["attempts"][0]["pai"], "2125550100");
}

#[test]
fn from_and_pai_are_translated_each_on_its_own() {
    let r = rig("own");
    // From carries an extension, PAI the full number: each is translated by the rules
    // that apply to the number it carries (the old code wrote From's over PAI).
    r.send(
        &r.pbx,
        &r.invite(
            &r.pbx,
            "own-1",
            "1555",
            "<sip:2001@127.0.0.2>",
            &["P-Asserted-Identity: <sip:+12125550100@10.1.0.10>, <tel:+12125550100>"],
        ),
    );
    let a = invite_for(&r.gw_a, "own-1");
    assert_eq!(user_of(a.header("From")), "2125552001", "{}", a.text);
    assert_eq!(
        a.header("P-Asserted-Identity"),
        "<sip:2125550100@10.1.0.10>, <tel:2125550100>",
        "{}",
        a.text
    );
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
}

#[test]
fn a_pai_from_an_untrusted_pbx_is_dropped_and_not_believed() {
    let r = rig("untrusted");
    r.send(
        &r.pbx2,
        &r.invite(
            &r.pbx2,
            "un-1",
            "1555",
            "<sip:+12125559999@127.0.0.5>",
            &["P-Asserted-Identity: <sip:+12125550100@127.0.0.5>"],
        ),
    );
    let a = invite_for(&r.gw_a, "un-1");
    assert!(a.headers("P-Asserted-Identity").is_empty(), "{}", a.text);
    assert_eq!(user_of(a.header("From")), "2125559999");
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
    let records = r.records();
    let v = records
        .iter()
        .find(|v| v["call_id"] == "un-1")
        .expect("record");
    assert_eq!(v["calling"], "+12125559999", "From, not the PAI: {v}");
    assert_eq!(v["pai"], "+12125550100");
}

/// Finish a call: the gateway answers 200, the PBX ACKs; returns the PBX's Route set.
fn answer(r: &Rig, gw: &UdpSocket, inv: &Sent, call_id: &str) -> String {
    let contact = format!("<sip:callee@{}>", gw.local_addr().expect("addr"));
    gw.send_to(
        response_to(inv, 200, "OK", Some("gw"), &contact).as_bytes(),
        r.proxy,
    )
    .expect("send");
    let ok = recv_until(&r.pbx, "200 at the PBX", |s| {
        s.is_status(200) && s.header("Call-ID") == call_id
    });
    ok.header("Record-Route").to_string()
}

#[test]
fn forward_pai_false_removes_every_pai_line_in_and_out_of_dialog() {
    let r = rig("fwdpai");
    let two = [
        "P-Asserted-Identity: <sip:+12125550100@10.1.0.10>",
        "P-Asserted-Identity: <tel:+12125550100>",
        "Identity: abc.def.ghi;info=<https://cert.example/c.pem>",
    ];
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "fp-1", "4555", "<sip:2001@127.0.0.2>", &two),
    );
    let c = invite_for(&r.gw_c, "fp-1");
    assert!(c.headers("P-Asserted-Identity").is_empty(), "{}", c.text);
    // gw-c removes Identity always.
    assert!(c.headers("Identity").is_empty(), "{}", c.text);
    let route = answer(&r, &r.gw_c, &c, "fp-1");
    // A re-INVITE from the PBX with PAI reaches gw-c without it.
    let me = r.pbx.local_addr().expect("addr");
    let reinvite = msg(
        &[
            &format!(
                "INVITE sip:callee@{} SIP/2.0",
                r.gw_c.local_addr().expect("addr")
            ),
            &format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-fp-re;rport"),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:2001@127.0.0.2>;tag=caller",
            &format!("To: <sip:4555@{}>;tag=gw", r.proxy),
            "Call-ID: fp-1",
            "CSeq: 2 INVITE",
            &format!("Contact: <sip:caller@{me}>"),
            two[0],
            two[1],
            "Content-Type: application/sdp",
        ],
        SDP,
    );
    r.send(&r.pbx, &reinvite);
    let re = recv_until(&r.gw_c, "re-INVITE at gw-c", |s| {
        s.method() == "INVITE" && s.header("CSeq") == "2 INVITE"
    });
    assert!(re.headers("P-Asserted-Identity").is_empty(), "{}", re.text);
    assert!(
        re.header("From").contains("+12125552001"),
        "the caller's translated number, as in the INVITE: {}",
        re.text
    );
}

#[test]
fn identity_diversion_and_history_info_follow_the_egress_trunk() {
    let r = rig("identity");
    let extra = [
        "Identity: abc.def.ghi;info=<https://cert.example/c.pem>",
        "Diversion: <sip:+12125550199@10.1.0.10>;reason=unconditional",
        "History-Info: <sip:+12125550199@10.1.0.10>;index=1",
    ];
    // gw-b (identity = "pass"): the number is sent unchanged, so Identity passes;
    // Diversion and History-Info are removed.
    r.send(
        &r.pbx,
        &r.invite(
            &r.pbx,
            "id-1",
            "2555",
            "<sip:+12125550100@127.0.0.2>",
            &extra,
        ),
    );
    let b = invite_for(&r.gw_b, "id-1");
    assert_eq!(b.headers("Identity").len(), 1, "{}", b.text);
    assert!(b.headers("Diversion").is_empty(), "{}", b.text);
    assert!(b.headers("History-Info").is_empty(), "{}", b.text);
    reject(&r, &r.gw_b, &b, 486, "Busy Here");
    // gw-a changes the number (outbound_calling): the signature would fail, so Identity
    // goes; Diversion and History-Info pass.
    r.send(
        &r.pbx,
        &r.invite(
            &r.pbx,
            "id-2",
            "1555",
            "<sip:+12125550100@127.0.0.2>",
            &extra,
        ),
    );
    let a = invite_for(&r.gw_a, "id-2");
    assert_eq!(user_of(a.header("From")), "2125550100");
    assert!(a.headers("Identity").is_empty(), "{}", a.text);
    assert_eq!(a.headers("Diversion").len(), 1, "{}", a.text);
    assert_eq!(a.headers("History-Info").len(), 1, "{}", a.text);
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
}

#[test]
fn each_attempt_takes_the_caller_id_of_its_own_route() {
    let r = rig("callerid");
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "ci-1", "3555", "<sip:2001@127.0.0.2>", &[]),
    );
    let a = invite_for(&r.gw_a, "ci-1");
    assert_eq!(user_of(a.header("From")), "2125552001", "{}", a.text);
    reject(&r, &r.gw_a, &a, 500, "Server Internal Error");
    let b = invite_for(&r.gw_b, "ci-1");
    assert_eq!(user_of(b.header("From")), "+15550001111", "{}", b.text);
    reject(&r, &r.gw_b, &b, 486, "Busy Here");
    let records = r.records();
    let v = records
        .iter()
        .find(|v| v["call_id"] == "ci-1")
        .expect("record");
    assert_eq!(v["attempts"][0]["route"], "fo-first");
    assert_eq!(v["attempts"][1]["route"], "fo-second");
    assert_eq!(v["attempts"][1]["calling"], "+15550001111");
}

#[test]
fn a_gateways_503_reaches_the_pbx_as_500_without_retry_after() {
    let r = rig("503");
    let busy = |inv: &Sent| {
        response_to(inv, 503, "Service Unavailable", Some("gw"), "").replace(
            "CSeq:",
            "Retry-After: 300\r\nReason: Q.850;cause=34\r\nCSeq:",
        )
    };
    // The only attempt.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "su-1", "2555", "<sip:2001@127.0.0.2>", &[]),
    );
    let b = invite_for(&r.gw_b, "su-1");
    r.gw_b.send_to(busy(&b).as_bytes(), r.proxy).expect("send");
    let fin = recv_until(&r.pbx, "final for su-1", |s| {
        s.header("Call-ID") == "su-1" && !s.first_line().starts_with("SIP/2.0 1")
    });
    assert!(fin.is_status(500), "{}", fin.text);
    assert!(fin.headers("Retry-After").is_empty(), "{}", fin.text);
    // The last of two attempts.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "su-2", "3555", "<sip:2001@127.0.0.2>", &[]),
    );
    let a = invite_for(&r.gw_a, "su-2");
    r.gw_a.send_to(busy(&a).as_bytes(), r.proxy).expect("send");
    let b = invite_for(&r.gw_b, "su-2");
    r.gw_b.send_to(busy(&b).as_bytes(), r.proxy).expect("send");
    let fin = recv_until(&r.pbx, "final for su-2", |s| {
        s.header("Call-ID") == "su-2" && !s.first_line().starts_with("SIP/2.0 1")
    });
    assert!(fin.is_status(500), "{}", fin.text);
    assert!(fin.headers("Retry-After").is_empty(), "{}", fin.text);
    let records = r.records();
    let v = records
        .iter()
        .find(|v| v["call_id"] == "su-2")
        .expect("record");
    assert_eq!(v["status"], 500);
    for a in v["attempts"].as_array().expect("attempts") {
        assert_eq!(a["status"], 503, "{v}");
        assert_eq!(a["q850_cause"], 34, "{v}");
        assert_eq!(a["sip_reason"], "Service Unavailable", "{v}");
    }
    assert_eq!(v["ingress"], "pbx");
    assert!(
        v["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.2:")),
        "{v}"
    );
    assert!(
        v["listener"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:")),
        "{v}"
    );
}

#[test]
fn npdi_and_rn_route_on_rn_and_stay_on_the_request_uri() {
    let r = rig("rn");
    // Route level: "ported" (route_on = "rn") matches rn=+13105550000 and goes first.
    let called = "+14155551234;npdi;rn=+13105550000";
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "rn-1", called, "<sip:2001@127.0.0.2>", &[]),
    );
    let b = invite_for(&r.gw_b, "rn-1");
    assert!(
        b.first_line()
            .starts_with(&format!("INVITE sip:{called}@127.0.0.4:")),
        "{}",
        b.text
    );
    reject(&r, &r.gw_b, &b, 500, "Server Internal Error");
    // Then the called number's own route (nanp), parameters still on the Request-URI.
    let a = invite_for(&r.gw_a, "rn-1");
    assert!(
        a.first_line()
            .starts_with(&format!("INVITE sip:{called}@127.0.0.3:")),
        "{}",
        a.text
    );
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
    // Without rn, the same called number routes on itself: nanp first; ;npdi is kept.
    r.send(
        &r.pbx,
        &r.invite(
            &r.pbx,
            "rn-2",
            "+14155551234;npdi",
            "<sip:2001@127.0.0.2>",
            &[],
        ),
    );
    let a = invite_for(&r.gw_a, "rn-2");
    assert!(
        a.first_line()
            .starts_with("INVITE sip:+14155551234;npdi@127.0.0.3:"),
        "{}",
        a.text
    );
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
    // Trunk level: pbx-untrusted has route_on = "rn": a 2... number whose rn is 1...
    // routes as 1... (to-a).
    r.send(
        &r.pbx2,
        &r.invite(
            &r.pbx2,
            "rn-3",
            "2555;rn=1555",
            "<sip:+12125559999@127.0.0.5>",
            &[],
        ),
    );
    let a = invite_for(&r.gw_a, "rn-3");
    assert!(
        a.first_line()
            .starts_with("INVITE sip:2555;rn=1555@127.0.0.3:"),
        "{}",
        a.text
    );
    reject(&r, &r.gw_a, &a, 486, "Busy Here");
}

/// `received` and `rport` as RFC 3581 4 requires, in the top Via of `s`, for a client at
/// `me`.
fn via_has_received_rport(s: &Sent, me: SocketAddr) -> bool {
    let via = s.headers("Via").first().copied().unwrap_or("");
    via.contains(&format!("rport={}", me.port())) && via.contains("received=127.0.0.2")
}

#[test]
fn junctions_own_answers_carry_received_and_rport_and_cancel_is_told_from_487() {
    let r = rig("via");
    let me = r.pbx.local_addr().expect("addr");
    // 100 Trying.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "cx-1", "2555", "<sip:2001@127.0.0.2>", &[]),
    );
    let trying = recv_until(&r.pbx, "100 Trying", |s| s.is_status(100));
    assert!(via_has_received_rport(&trying, me), "{}", trying.text);
    let b = invite_for(&r.gw_b, "cx-1");
    r.gw_b
        .send_to(
            response_to(&b, 180, "Ringing", Some("gb"), "").as_bytes(),
            r.proxy,
        )
        .expect("send");
    recv_until(&r.pbx, "180", |s| s.is_status(180));
    // The caller cancels: 200 to CANCEL from junction.
    let cancel = msg(
        &[
            &format!("CANCEL sip:2555@{} SIP/2.0", r.proxy),
            &format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-cx-1;rport"),
            "Max-Forwards: 70",
            "From: <sip:2001@127.0.0.2>;tag=caller",
            &format!("To: <sip:2555@{}>", r.proxy),
            "Call-ID: cx-1",
            "CSeq: 1 CANCEL",
        ],
        "",
    );
    r.send(&r.pbx, &cancel);
    let ok = recv_until(&r.pbx, "200 to CANCEL", |s| {
        s.is_status(200) && s.header("CSeq") == "1 CANCEL"
    });
    assert!(via_has_received_rport(&ok, me), "{}", ok.text);
    let c = recv_until(&r.gw_b, "CANCEL at gw-b", |s| s.method() == "CANCEL");
    r.gw_b
        .send_to(response_to(&c, 200, "OK", None, "").as_bytes(), r.proxy)
        .expect("send");
    reject(&r, &r.gw_b, &b, 487, "Request Terminated");
    recv_until(&r.pbx, "487", |s| s.is_status(487));

    // The callee's own 487 (no CANCEL): not the caller's doing.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "cx-2", "2555", "<sip:2001@127.0.0.2>", &[]),
    );
    let b = invite_for(&r.gw_b, "cx-2");
    reject(&r, &r.gw_b, &b, 487, "Request Terminated");
    recv_until(&r.pbx, "487 for cx-2", |s| {
        s.is_status(487) && s.header("Call-ID") == "cx-2"
    });

    // 404 no-route.
    r.send(
        &r.pbx,
        &r.invite(&r.pbx, "cx-3", "9555", "<sip:2001@127.0.0.2>", &[]),
    );
    let nf = recv_until(&r.pbx, "404", |s| s.is_status(404));
    assert!(via_has_received_rport(&nf, me), "{}", nf.text);
    assert!(nothing_arrives(&r.gw_a, "cx-3"));

    let records = r.records();
    let by = |id: &str| {
        records
            .iter()
            .find(|v| v["call_id"] == id)
            .unwrap_or_else(|| panic!("no record of {id}: {records:?}"))
            .clone()
    };
    assert_eq!(by("cx-1")["ended_by"], "caller-cancel");
    assert_eq!(by("cx-2")["ended_by"], "not-answered");
    assert_eq!(by("cx-3")["reason"], "no-route");
}

const AGREEMENT: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:LISTEN"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:PBX"
trusted = true
inbound = [
  { match = '9(\d{10})', replace = '+1${1}', number = "called" },
  { match = '(\d{4})', replace = '+1212555${1}', number = "calling" },
]

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:GWA"
progress_timeout_s = 0
outbound_called = [{ match = '\+1(\d{10})', replace = '${1}' }]
outbound_calling = [{ match = '\+1(\d{10})', replace = '${1}' }]

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:GWB"
progress_timeout_s = 0
remove_plus = true

[[trunk]]
name = "gw-c"
peers = ["127.0.0.6"]
send_to = "127.0.0.6:GWC"
progress_timeout_s = 0

[[route]]
name = "nyc"
prefixes = ["+1212"]
trunks = ["gw-a", "gw-b"]
weights = [2, 1]
priority = 10

[[route]]
name = "nanp"
prefixes = ["+1"]
trunks = ["gw-c", "gw-a"]
priority = 20
caller_id = "+18005550100"

[[route]]
name = "ported"
prefixes = ["+1310555"]
route_on = "rn"
trunks = ["gw-b"]
priority = 5

[[route]]
name = "intl"
pattern = '\+44\d+'
trunks = ["gw-b", "gw-c"]
"#;

const CALLS: &str = "\
# from,called,calling
pbx,92125551234,2001
pbx,92125551234,2002
pbx,92125551234,anonymous
pbx,+12125551234;npdi,2003
pbx,+14155551234;npdi;rn=+13105550000,2004
pbx,+14155551234,+15105550000
pbx,+442071234567,2005
pbx,+442071234567,2006
pbx,5555,2007
pbx,92125559876,2008
";

/// One attempt as seen on the wire or printed by route-test: trunk, called, calling.
type Attempt = (String, String, String);

/// The attempts of the call `call_id` as the gateways receive them (each answers 503 so
/// the call moves on), until the PBX gets its final answer (returned with them).
fn live_attempts(
    pbx: &UdpSocket,
    gws: &[(&str, &UdpSocket)],
    call_id: &str,
) -> (Vec<Attempt>, u16) {
    let mut out = Vec::new();
    let mut branches = Vec::new();
    let mut buf = vec![0u8; 65_536];
    for (_, g) in gws {
        g.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
    }
    pbx.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    for _ in 0..500 {
        for (name, g) in gws {
            let Ok((n, from)) = g.recv_from(&mut buf) else {
                continue;
            };
            let s = Sent {
                to: from,
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            };
            let branch = s.headers("Via").first().copied().unwrap_or("").to_string();
            if s.method() != "INVITE"
                || s.header("Call-ID") != call_id
                || branches.contains(&branch)
            {
                continue;
            }
            branches.push(branch);
            let uri = s.first_line().split(' ').nth(1).unwrap_or("");
            let user = uri
                .strip_prefix("sip:")
                .and_then(|u| u.split('@').next())
                .unwrap_or("");
            let number = user.split(';').next().unwrap_or("");
            out.push((
                name.to_string(),
                number.to_string(),
                user_of(s.header("From")).to_string(),
            ));
            g.send_to(
                response_to(&s, 503, "Service Unavailable", Some("gw"), "").as_bytes(),
                from,
            )
            .expect("send");
        }
        if let Ok((n, _)) = pbx.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let s = Sent {
                to: pbx.local_addr().expect("addr"),
                text,
            };
            let code: u16 = s
                .first_line()
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if s.header("Call-ID") == call_id && code >= 200 {
                return (out, code);
            }
        }
    }
    panic!("{call_id}: no final answer at the PBX; attempts so far {out:?}");
}

/// route-test's compact line: `INPUT => ingress called calling => t(called,calling) ...`.
fn printed_attempts(line: &str) -> Option<Vec<Attempt>> {
    let tail = line.rsplit(" => ").next()?;
    if tail.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(Vec::new());
    }
    tail.split(' ')
        .map(|t| {
            let (name, rest) = t.split_once('(')?;
            let (called, calling) = rest.strip_suffix(')')?.split_once(',')?;
            Some((name.to_string(), called.to_string(), calling.to_string()))
        })
        .collect()
}

/// Issue 19: what `junction route-test --file` prints for a file of calls is what the live
/// path does with the same calls, attempt by attempt (trunk, called and calling numbers as
/// sent): caller_id per attempt, weights and round robin, remove_plus, user-part
/// parameters, rn, anonymous.
#[test]
fn route_test_and_the_live_path_agree_on_every_call_of_a_number_file() {
    let pbx = peer_socket("127.0.0.2");
    let gw_a = peer_socket("127.0.0.3");
    let gw_b = peer_socket("127.0.0.4");
    let gw_c = peer_socket("127.0.0.6");
    let listen = port(&peer_socket("127.0.0.1"));
    let text = AGREEMENT
        .replace("LISTEN", &listen.to_string())
        .replace("PBX", &port(&pbx).to_string())
        .replace("GWA", &port(&gw_a).to_string())
        .replace("GWB", &port(&gw_b).to_string())
        .replace("GWC", &port(&gw_c).to_string());
    let dir = std::env::temp_dir().join(format!("junction-agreement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config_path = dir.join("agreement.toml");
    let calls_path = dir.join("calls.csv");
    std::fs::write(&config_path, &text).expect("write");
    std::fs::write(&calls_path, CALLS).expect("write");

    // route-test: the first call the live shard routes uses rotation 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
        .args([
            "route-test",
            &config_path.display().to_string(),
            "--file",
            &calls_path.display().to_string(),
            "--rotation",
            "1",
        ])
        .output()
        .expect("run route-test");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<&str> = printed.lines().collect();

    let cfg = config::parse(&text, "agreement.toml").expect("config");
    let server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy = server.local_addr();
    let me = pbx.local_addr().expect("addr");
    let gws = [("gw-a", &gw_a), ("gw-b", &gw_b), ("gw-c", &gw_c)];
    let lines: Vec<&str> = CALLS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), printed.len(), "{printed:#?}");
    let mut routed = 0;
    for (i, (line, shown)) in lines.iter().zip(&printed).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let (called, calling) = (fields[1], fields[2]);
        let call_id = format!("agree-{i}");
        let invite = msg(
            &[
                &format!("INVITE sip:{called}@{proxy} SIP/2.0"),
                &format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id};rport"),
                "Max-Forwards: 70",
                &format!("From: <sip:{calling}@127.0.0.2>;tag=caller"),
                &format!("To: <sip:{called}@{proxy}>"),
                &format!("Call-ID: {call_id}"),
                "CSeq: 1 INVITE",
                &format!("Contact: <sip:caller@{me}>"),
                "Content-Type: application/sdp",
            ],
            SDP,
        );
        pbx.send_to(invite.as_bytes(), proxy).expect("send");
        let (live, code) = live_attempts(&pbx, &gws, &call_id);
        let expected = printed_attempts(shown).unwrap_or_else(|| panic!("unparsed: {shown}"));
        assert_eq!(live, expected, "call {i} ({line}): route-test said {shown}");
        if live.is_empty() {
            assert!(shown.ends_with("404 no route"), "{shown}");
            assert_eq!(code, 404, "{line}");
        } else {
            routed += 1;
            assert_eq!(code, 500, "{line}: every attempt answered 503");
        }
    }
    assert!(routed >= 8, "the file exercises routed calls: {routed}");
    server.shutdown().expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
