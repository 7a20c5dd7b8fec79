//! Observability end to end, in-process over loopback sockets (2 shards): a PBX trunk on
//! 127.0.0.2 calls out through two gateways on 127.0.0.3 (gw-a, primary) and 127.0.0.4
//! (gw-b, backup). N calls are answered by gw-a after a 180, one call is refused by gw-a
//! with 486 (no failover for 4xx), and one fails over from gw-a (503) to gw-b, which hangs
//! up. Then:
//!
//! - `/metrics` parses (tests/prometheus: names, labels, HELP/TYPE, histograms) and its
//!   per-trunk counters are exactly these calls; histogram counts equal the counters;
//! - residence-time counts per kind equal the messages the peers received from junction;
//! - `/metrics/latency.json` (seconds throughout) has the same counts and ordered
//!   percentiles within the histograms' range;
//! - the CDR file has one record per call with the right trunks, numbers, codes and who
//!   hung up, and the failover call has two attempts.

mod common;
mod prometheus;

use common::{http_get, msg, response_to, Sent, SDP};
use junction::config;
use junction::shard::{self, Options, Server};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Answered calls through gw-a.
const N: usize = 25;
/// How long to wait for the shards to publish and the CDR writer to write.
const WAIT_MAX: Duration = Duration::from_secs(10);

/// A test peer that keeps every datagram junction sent it.
struct Peer {
    sock: UdpSocket,
    received: Vec<String>,
}

impl Peer {
    fn bind(ip: &str) -> Peer {
        let sock = UdpSocket::bind((ip, 0)).expect("bind a loopback test peer");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Peer {
            sock,
            received: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().expect("addr").port()
    }

    fn send(&self, text: &str, to: SocketAddr) {
        self.sock.send_to(text.as_bytes(), to).expect("send");
    }

    /// The next datagram satisfying `want` (others, such as 100 Trying, are kept too).
    fn recv_until(&mut self, what: &str, want: impl Fn(&Sent) -> bool) -> Sent {
        let mut buf = vec![0u8; 65_536];
        for _ in 0..20 {
            let (n, from) = self
                .sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
            let s = Sent {
                to: from,
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            };
            self.received.push(s.text.clone());
            if want(&s) {
                return s;
            }
        }
        panic!("never got {what}");
    }

    /// Keep whatever else arrives within a short while.
    fn drain(&mut self) {
        self.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.received
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

fn user_of(header: &str) -> &str {
    let start = header.find("sip:").map_or(0, |i| i + 4);
    let rest = &header[start..];
    &rest[..rest.find('@').unwrap_or(rest.len())]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "junction-observability-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config_text(pbx: u16, a: u16, b: u16, listen: u16, cdr: &Path) -> String {
    format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:9090"

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

[cdr]
path = "{cdr}"

[log]
level = "warn"
"#,
        cdr = cdr.display()
    )
}

struct Call<'a> {
    proxy: SocketAddr,
    pbx: &'a mut Peer,
    call_id: String,
    invite: String,
}

impl<'a> Call<'a> {
    fn start(pbx: &'a mut Peer, proxy: SocketAddr, id: &str) -> Call<'a> {
        let call_id = format!("obs-{id}@127.0.0.2");
        let invite = msg(
            &[
                &format!("INVITE sip:2125551234@{proxy} SIP/2.0"),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-obs-{id};rport",
                    pbx.port()
                ),
                "Max-Forwards: 70",
                "From: <sip:100@127.0.0.2>;tag=caller",
                &format!("To: <sip:2125551234@{proxy}>"),
                &format!("Call-ID: {call_id}"),
                "CSeq: 1 INVITE",
                &format!("Contact: <sip:100@127.0.0.2:{}>", pbx.port()),
                "Content-Type: application/sdp",
            ],
            SDP,
        );
        pbx.send(&invite, proxy);
        Call {
            proxy,
            pbx,
            call_id,
            invite,
        }
    }

    /// The PBX's ACK for the 2xx (end to end, along the Record-Route) and the route set.
    fn ack_2xx(&mut self, ok: &Sent, gw: &Peer, id: &str) -> String {
        let route = ok.header("Record-Route").to_string();
        let to = ok.header("To").to_string();
        let ack = msg(
            &[
                &format!("ACK sip:gw@{}:{} SIP/2.0", gw_ip(gw), gw.port()),
                &format!(
                    "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-obs-ack-{id};rport",
                    self.pbx.port()
                ),
                &format!("Route: {route}"),
                "Max-Forwards: 70",
                "From: <sip:100@127.0.0.2>;tag=caller",
                &format!("To: {to}"),
                &format!("Call-ID: {}", self.call_id),
                "CSeq: 1 ACK",
            ],
            "",
        );
        self.pbx.send(&ack, self.proxy);
        route
    }

    /// The PBX's ACK for a non-2xx final response (hop by hop: the INVITE's branch).
    fn ack_failure(&mut self, response: &Sent) {
        let via = self
            .invite
            .lines()
            .find(|l| l.starts_with("Via: "))
            .unwrap_or("");
        let ack = msg(
            &[
                &format!("ACK sip:2125551234@{} SIP/2.0", self.proxy),
                via,
                "Max-Forwards: 70",
                "From: <sip:100@127.0.0.2>;tag=caller",
                &format!("To: {}", response.header("To")),
                &format!("Call-ID: {}", self.call_id),
                "CSeq: 1 ACK",
            ],
            "",
        );
        self.pbx.send(&ack, self.proxy);
    }
}

fn gw_ip(gw: &Peer) -> String {
    gw.sock.local_addr().expect("addr").ip().to_string()
}

/// An answered call: gw-a rings, answers, the PBX hangs up.
fn answered_call(pbx: &mut Peer, gw: &mut Peer, proxy: SocketAddr, i: usize) {
    let id = format!("ok-{i}");
    let mut call = Call::start(pbx, proxy, &id);
    let inv = gw.recv_until("INVITE at gw-a", |s| s.method() == "INVITE");
    assert!(inv
        .first_line()
        .starts_with("INVITE sip:2125551234@127.0.0.3:"));
    gw.send(&response_to(&inv, 180, "Ringing", Some("ga"), ""), proxy);
    let contact = format!("<sip:gw@127.0.0.3:{}>", gw.port());
    gw.send(&response_to(&inv, 200, "OK", Some("ga"), &contact), proxy);
    let ok = call.pbx.recv_until("200 at the PBX", |s| s.is_status(200));
    let route = call.ack_2xx(&ok, gw, &id);
    gw.recv_until("ACK at gw-a", |s| s.method() == "ACK");
    let bye = msg(
        &[
            &format!("BYE sip:gw@127.0.0.3:{} SIP/2.0", gw.port()),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-obs-bye-{id};rport",
                call.pbx.port()
            ),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: {}", ok.header("To")),
            &format!("Call-ID: {}", call.call_id),
            "CSeq: 2 BYE",
        ],
        "",
    );
    call.pbx.send(&bye, proxy);
    let bye_in = gw.recv_until("BYE at gw-a", |s| s.method() == "BYE");
    gw.send(&response_to(&bye_in, 200, "OK", None, ""), proxy);
    call.pbx
        .recv_until("200 for BYE at the PBX", |s| s.is_status(200));
}

/// gw-a refuses with 486: no failover for a 4xx; the PBX gets the 486.
fn busy_call(pbx: &mut Peer, gw: &mut Peer, proxy: SocketAddr) {
    let mut call = Call::start(pbx, proxy, "busy");
    let inv = gw.recv_until("INVITE at gw-a", |s| s.method() == "INVITE");
    gw.send(&response_to(&inv, 486, "Busy Here", Some("gb"), ""), proxy);
    gw.recv_until("ACK for 486 at gw-a", |s| s.method() == "ACK");
    let busy = call.pbx.recv_until("486 at the PBX", |s| s.is_status(486));
    call.ack_failure(&busy);
}

/// gw-a answers 503, the call fails over to gw-b, which answers and later hangs up.
fn failover_call(pbx: &mut Peer, gw_a: &mut Peer, gw_b: &mut Peer, proxy: SocketAddr) {
    let mut call = Call::start(pbx, proxy, "failover");
    let a = gw_a.recv_until("INVITE at gw-a", |s| s.method() == "INVITE");
    gw_a.send(
        &response_to(&a, 503, "Service Unavailable", Some("ga"), ""),
        proxy,
    );
    gw_a.recv_until("ACK for 503 at gw-a", |s| s.method() == "ACK");
    let b = gw_b.recv_until("INVITE at gw-b", |s| s.method() == "INVITE");
    assert!(b
        .first_line()
        .starts_with("INVITE sip:+12125551234@127.0.0.4:"));
    assert_eq!(user_of(b.header("From")), "+12125550100");
    let contact = format!("<sip:gw@127.0.0.4:{}>", gw_b.port());
    gw_b.send(&response_to(&b, 200, "OK", Some("gb"), &contact), proxy);
    let ok = call.pbx.recv_until("200 at the PBX", |s| s.is_status(200));
    let route = call.ack_2xx(&ok, gw_b, "failover");
    gw_b.recv_until("ACK at gw-b", |s| s.method() == "ACK");
    let bye = msg(
        &[
            &format!("BYE sip:100@127.0.0.2:{} SIP/2.0", call.pbx.port()),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.4:{};branch=z9hG4bK-obs-bye-fo;rport",
                gw_b.port()
            ),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:+12125551234@127.0.0.4>;tag=gb",
            "To: <sip:+12125550100@127.0.0.2>;tag=caller",
            &format!("Call-ID: {}", call.call_id),
            "CSeq: 1 BYE",
        ],
        "",
    );
    gw_b.send(&bye, proxy);
    let bye_in = call
        .pbx
        .recv_until("BYE at the PBX", |s| s.method() == "BYE");
    call.pbx
        .send(&response_to(&bye_in, 200, "OK", None, ""), proxy);
    gw_b.recv_until("200 for BYE at gw-b", |s| s.is_status(200));
}

/// The kind of a message as /metrics labels residence time: method or response class.
fn kind(text: &str) -> String {
    match text.strip_prefix("SIP/2.0 ") {
        Some(rest) => format!("{}xx", &rest[..1]),
        None => text.split(' ').next().unwrap_or("").to_string(),
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_latency_and_cdrs_account_for_every_call() {
    prometheus::self_test();

    let dir = temp_dir("e2e");
    let cdr_path = dir.join("cdr.jsonl");
    let mut pbx = Peer::bind("127.0.0.2");
    let mut gw_a = Peer::bind("127.0.0.3");
    let mut gw_b = Peer::bind("127.0.0.4");
    let listen = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let text = config_text(pbx.port(), gw_a.port(), gw_b.port(), listen, &cdr_path);
    let mut cfg = config::parse(&text, "observability.toml").expect("config");
    // Any free port (the file format refuses port 0).
    cfg.server.metrics = Some(([127, 0, 0, 1], 0).into());
    let server: Server = shard::start_with(cfg, Options::default()).expect("junction starts");
    let proxy = server.local_addr();
    let metrics_addr = server.metrics_addr().expect("metrics enabled");

    for i in 0..N {
        answered_call(&mut pbx, &mut gw_a, proxy, i);
    }
    busy_call(&mut pbx, &mut gw_a, proxy);
    failover_call(&mut pbx, &mut gw_a, &mut gw_b, proxy);
    for peer in [&mut pbx, &mut gw_a, &mut gw_b] {
        peer.drain();
    }
    let total = N as f64 + 2.0;

    // Residence time: one value per message junction sent because of a datagram, by kind.
    // Junction retransmits nothing here (every peer answers at once), so the messages the
    // peers received, without byte-identical repeats, are exactly those.
    let mut sent_by_kind: BTreeMap<String, f64> = BTreeMap::new();
    for peer in [&pbx, &gw_a, &gw_b] {
        let mut unique: Vec<&String> = peer.received.iter().collect();
        unique.sort();
        unique.dedup();
        for text in unique {
            *sent_by_kind.entry(kind(text)).or_default() += 1.0;
        }
    }
    let residence_of = |m: &prometheus::Exposition| -> BTreeMap<String, f64> {
        m.matching("junction_residence_seconds_count", &[])
            .iter()
            .map(|s| (s.labels["kind"].clone(), s.value))
            .collect()
    };

    // /metrics: wait until both shards have published everything these calls did (a shard
    // publishes within 100 ms, its histograms a few per loop round), then check it all.
    // (After WAIT_MAX the last scrape is checked anyway: the assertions below say what is
    // missing.)
    let deadline = Instant::now() + WAIT_MAX;
    let m = loop {
        let text = http_get(metrics_addr, "/metrics");
        let m = prometheus::check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let count =
            |family: &str, trunk: &str| m.get(&format!("{family}_count"), &[("trunk", trunk)]);
        let done = residence_of(&m) == sent_by_kind
            && count("junction_trunk_call_duration_seconds", "gw-a") == Some(N as f64)
            && count("junction_trunk_call_duration_seconds", "gw-b") == Some(1.0)
            && count("junction_trunk_pdd_seconds", "gw-a") == Some(N as f64)
            && m.get(
                "junction_trunk_calls_total",
                &[("trunk", "pbx"), ("direction", "in")],
            ) == Some(total);
        if done || Instant::now() >= deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let get = |name: &str, labels: &[(&str, &str)]| {
        m.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?}"))
    };
    let calls = "junction_trunk_calls_total";
    assert_eq!(get(calls, &[("trunk", "pbx"), ("direction", "in")]), total);
    assert_eq!(get(calls, &[("trunk", "pbx"), ("direction", "out")]), 0.0);
    assert_eq!(
        get(calls, &[("trunk", "gw-a"), ("direction", "out")]),
        total
    );
    assert_eq!(get(calls, &[("trunk", "gw-a"), ("direction", "in")]), 0.0);
    assert_eq!(get(calls, &[("trunk", "gw-b"), ("direction", "out")]), 1.0);
    let out = |trunk| [("trunk", trunk), ("direction", "out")];
    let answered = "junction_trunk_answered_total";
    assert_eq!(get(answered, &out("gw-a")), N as f64);
    assert_eq!(get(answered, &out("gw-b")), 1.0);
    let failed = "junction_trunk_failed_total";
    for (class, expected) in [("4xx", 1.0), ("5xx", 1.0), ("6xx", 0.0), ("timeout", 0.0)] {
        let labels = [("trunk", "gw-a"), ("direction", "out"), ("class", class)];
        assert_eq!(get(failed, &labels), expected, "gw-a {class}");
    }
    assert_eq!(get("junction_trunk_failovers_total", &out("gw-a")), 1.0);
    assert_eq!(get("junction_trunk_failovers_total", &out("gw-b")), 0.0);
    for trunk in ["pbx", "gw-a", "gw-b"] {
        assert_eq!(get("junction_trunk_calls_active", &[("trunk", trunk)]), 0.0);
        assert_eq!(
            get("junction_trunk_early_dialogs", &[("trunk", trunk)]),
            0.0
        );
        assert_eq!(get("junction_trunk_up", &[("trunk", trunk)]), 1.0);
        for (direction, reason) in [("in", "no_route"), ("in", "no_trunk"), ("out", "limits")] {
            let labels = [
                ("trunk", trunk),
                ("direction", direction),
                ("reason", reason),
            ];
            assert_eq!(get("junction_trunk_rejected_total", &labels), 0.0);
        }
    }
    // Histogram counts follow the counters: a post-dial delay per attempt that got a 180
    // or, without one, a 200 (not the 486 and 503); an answer time per answered attempt;
    // a duration per answered call.
    let count = |family: &str, trunk| get(&format!("{family}_count"), &[("trunk", trunk)]);
    for (trunk, answers) in [("gw-a", N as f64), ("gw-b", 1.0)] {
        assert_eq!(
            count("junction_trunk_pdd_seconds", trunk),
            answers,
            "{trunk}"
        );
        assert_eq!(count("junction_trunk_answer_seconds", trunk), answers);
        assert_eq!(
            count("junction_trunk_call_duration_seconds", trunk),
            answers
        );
        assert_eq!(count("junction_trunk_options_rtt_seconds", trunk), 0.0);
    }
    // Loopback answers come within 10 ms... or at least within the largest bucket.
    let pdd_60s = get(
        "junction_trunk_pdd_seconds_bucket",
        &[("trunk", "gw-a"), ("le", "60")],
    );
    assert_eq!(pdd_60s, N as f64);
    // The shards' own counters agree.
    let created: f64 = m
        .matching("junction_core_calls_created_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(created, total);

    assert_eq!(sent_by_kind.get("INVITE"), Some(&(total + 1.0)));
    assert_eq!(residence_of(&m), sent_by_kind);

    // The JSON endpoint: the same counts, percentiles ordered and within the histogram.
    let json: serde_json::Value =
        serde_json::from_str(&http_get(metrics_addr, "/metrics/latency.json")).expect("JSON");
    // One unit (seconds) throughout, the keys named like the families.
    let families = [
        "junction_trunk_pdd_seconds",
        "junction_trunk_answer_seconds",
        "junction_trunk_options_rtt_seconds",
        "junction_trunk_call_duration_seconds",
    ];
    let to_secs = 1.0;
    assert!(json["until_seconds"].as_f64().is_some(), "{json}");
    for trunk in ["pbx", "gw-a", "gw-b"] {
        for family in families {
            let key = family.trim_start_matches("junction_trunk_");
            let s = &json["trunks"][trunk][key];
            let n = s["count"].as_f64().expect("count");
            assert_eq!(n, count(family, trunk), "{trunk} {key}");
            if n == 0.0 {
                assert!(s["p50"].is_null() && s["max"].is_null(), "{s}");
                continue;
            }
            let p = |q: &str| s[q].as_f64().unwrap_or_else(|| panic!("{q} in {s}"));
            assert!(
                p("p50") <= p("p90")
                    && p("p90") <= p("p99")
                    && p("p99") <= p("p99_9")
                    && p("p99_9") <= p("max"),
                "{trunk} {key}: {s}"
            );
            // The max lies in a bucket no lower than the smallest bucket holding every value.
            let labels = [("trunk", trunk)];
            let all_by = m
                .matching(&format!("{family}_bucket"), &labels)
                .into_iter()
                .filter(|b| b.value == n)
                .filter_map(|b| b.labels["le"].parse::<f64>().ok())
                .fold(f64::INFINITY, f64::min);
            assert!(
                p("max") * to_secs <= all_by * 1.001,
                "{trunk} {key}: max {} s above the bucket {all_by} that holds every value",
                p("max") * to_secs
            );
            let mean = get(&format!("{family}_sum"), &labels) / n;
            assert!(
                mean <= p("max") * to_secs * 1.001,
                "{trunk} {key}: mean {mean}"
            );
        }
    }
    for (kind, n) in &sent_by_kind {
        let s = &json["residence_seconds"][kind.as_str()];
        assert_eq!(s["count"].as_f64(), Some(*n), "residence {kind}");
        let (p50, max) = (s["p50"].as_f64(), s["max"].as_f64());
        assert!(p50.is_some() && p50 <= max, "{s}");
    }

    // An interval window: the first `?since=last` covers everything so far, the next one
    // (nothing happened in between) nothing.
    let window = || -> serde_json::Value {
        serde_json::from_str(&http_get(metrics_addr, "/metrics/latency.json?since=last"))
            .expect("JSON")
    };
    let first = window();
    assert!(first["since_seconds"].is_null());
    assert_eq!(first["trunks"]["gw-a"]["pdd_seconds"]["count"], N);
    let second = window();
    assert!(second["since_seconds"].as_f64() <= second["until_seconds"].as_f64());
    assert_eq!(second["trunks"]["gw-a"]["pdd_seconds"]["count"], 0);
    assert!(second["trunks"]["gw-a"]["pdd_seconds"]["p99"].is_null());

    // CDRs: one record per call, written within a second (the writer flushes when idle).
    let lines = wait_for("every CDR", || {
        let text = std::fs::read_to_string(&cdr_path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (lines.len() >= N + 2).then_some(lines)
    });
    assert_eq!(lines.len(), N + 2);
    let by_id: BTreeMap<String, &serde_json::Value> = lines
        .iter()
        .map(|r| (r["call_id"].as_str().unwrap_or("").to_string(), r))
        .collect();
    assert_eq!(by_id.len(), N + 2, "one record per Call-ID");
    for r in &lines {
        assert_eq!(r["ingress"], "pbx");
        assert_eq!(r["called"], "2125551234");
        assert_eq!(r["called_normalized"], "+12125551234");
        assert_eq!(r["calling"], "100");
        assert!(r["start_ms"].as_i64() <= r["end_ms"].as_i64(), "{r}");
        assert!(r["start"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    }
    for i in 0..N {
        let r = by_id[&format!("obs-ok-{i}@127.0.0.2")];
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["ended_by"], "caller");
        assert_eq!(r["reason"], "");
        let attempts = r["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{r}");
        assert_eq!(attempts[0]["trunk"], "gw-a");
        assert_eq!(attempts[0]["called"], "2125551234");
        assert_eq!(attempts[0]["status"], 200);
        assert!(attempts[0]["pdd_ms"].as_f64().is_some(), "a 180 came: {r}");
        assert!(r["answer_ms"].as_i64().is_some());
    }
    let busy = by_id["obs-busy@127.0.0.2"];
    assert_eq!(busy["status"], 486, "{busy}");
    assert_eq!(busy["ended_by"], "not-answered");
    assert!(busy["answer"].is_null());
    assert_eq!(busy["duration_s"], 0.0);
    let busy_attempts = busy["attempts"].as_array().expect("attempts");
    assert_eq!(busy_attempts.len(), 1, "{busy}");
    assert_eq!(busy_attempts[0]["status"], 486);

    let fo = by_id["obs-failover@127.0.0.2"];
    assert_eq!(fo["status"], 200, "{fo}");
    assert_eq!(fo["ended_by"], "callee");
    let attempts = fo["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{fo}");
    assert_eq!(attempts[0]["trunk"], "gw-a");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["called"], "2125551234");
    assert!(attempts[0]["pdd_ms"].is_null());
    assert_eq!(attempts[1]["trunk"], "gw-b");
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(attempts[1]["called"], "+12125551234");
    assert_eq!(attempts[1]["calling"], "+12125550100");
    assert!(
        attempts[1]["pdd_ms"].as_f64().is_some(),
        "the 200 ends the PDD: {fo}"
    );
    assert!(attempts[0]["sent_ms"].as_i64() <= attempts[1]["sent_ms"].as_i64());

    // The writer's counters, after a clean stop.
    let cdr_metrics = prometheus::check(&http_get(metrics_addr, "/metrics")).expect("parses");
    assert_eq!(
        cdr_metrics.get("junction_cdr_records_written_total", &[]),
        Some(total)
    );
    assert_eq!(
        cdr_metrics.get("junction_cdr_dropped_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        cdr_metrics.get("junction_cdr_write_errors_total", &[]),
        Some(0.0)
    );
    server.shutdown().expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
