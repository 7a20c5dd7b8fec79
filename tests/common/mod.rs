//! A virtual network around one sans-IO `Core`: feed datagrams, advance virtual time, and
//! collect what the core sends. No sockets, no sleeps.
#![allow(dead_code)]

use junction::config;
use junction::routing::RoutingTable;
use junction::sip::proxy::{Core, CoreConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PROXY: &str = "127.0.0.1:5060";
pub const PBX: &str = "127.0.0.2:5060";
pub const GW: &str = "127.0.0.3:5060";
pub const GW2: &str = "127.0.0.4:5060";
pub const STRANGER: &str = "127.0.0.9:5060";

pub const CONFIG: &str = r#"
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
# The RFC 3261 timers are tested here: no fast failover.
progress_timeout_s = 0

[[trunk]]
name = "gw2"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:5060"

[[route]]
name = "pbx-numbers"
prefixes = ["1"]
trunks = ["pbx"]

[[route]]
name = "everything-else"
prefixes = [""]
trunks = ["gw"]
"#;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[derive(Clone, Debug)]
pub struct Sent {
    pub to: SocketAddr,
    pub text: String,
}

impl Sent {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
    pub fn is_status(&self, code: u16) -> bool {
        self.first_line().starts_with(&format!("SIP/2.0 {code} "))
    }
    pub fn method(&self) -> &str {
        self.first_line().split(' ').next().unwrap_or("")
    }
    /// All values of a header (by exact name, as junction and these tests write them).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
            })
            .collect()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers(name).first().copied().unwrap_or("")
    }
}

pub struct Net {
    pub core: Core,
    pub t0: Instant,
    pub now: Instant,
}

impl Net {
    pub fn new() -> Net {
        Net::with_config(CONFIG)
    }

    pub fn with_config(text: &str) -> Net {
        let cfg = config::parse(text, "test.toml").expect("test config parses");
        let routing = RoutingTable::compile(&cfg).expect("test config compiles");
        let core = Core::new(
            CoreConfig {
                shard: 0,
                shards: 1,
                advertise: addr(PROXY),
                shard_ports: None,
                wall: junction::sip::oc::WallAnchor::now(),
            },
            Arc::new(routing),
        );
        let t0 = Instant::now();
        Net { core, t0, now: t0 }
    }

    fn drain(&mut self) -> Vec<Sent> {
        let out = self
            .core
            .transmits()
            .map(|(to, b)| Sent {
                to,
                text: String::from_utf8_lossy(b).into_owned(),
            })
            .collect();
        self.core.clear_transmits();
        out
    }

    /// Deliver a datagram from `from` and return what the core sent in response.
    pub fn send(&mut self, from: &str, text: &str) -> Vec<Sent> {
        self.core
            .handle_datagram(self.now, addr(from), text.as_bytes());
        self.drain()
    }

    pub fn send_bytes(&mut self, from: &str, bytes: &[u8]) -> Vec<Sent> {
        self.core.handle_datagram(self.now, addr(from), bytes);
        self.drain()
    }

    /// Advance virtual time by `d`, firing every timer due on the way (each at its own
    /// deadline), and return everything sent meanwhile.
    pub fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let target = self.now + d;
        let mut out = Vec::new();
        while let Some(deadline) = self.core.next_deadline() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.core.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = target;
        self.core.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    /// The shard's socket shows a standing queue of `delay` for `ms` virtual milliseconds
    /// (what the shell reports from kernel receive timestamps).
    pub fn queue_for(&mut self, delay: Duration, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            self.core.observe_queue_delay(self.now, delay);
        }
    }

    /// Seconds since the start, for messages about timing.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

/// Build a message from lines (joined with CRLF), with Content-Length computed for `body`.
pub fn msg(lines: &[&str], body: &str) -> String {
    let mut s = lines.join("\r\n");
    s.push_str(&format!(
        "\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    ));
    s
}

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// An INVITE from the PBX trunk for `number`.
pub fn invite(call_id: &str, branch: &str, number: &str) -> String {
    msg(
        &[
            &format!("INVITE sip:{number}@127.0.0.1:5060 SIP/2.0"),
            &format!("Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch};rport"),
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            &format!("To: <sip:{number}@127.0.0.1>"),
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 INVITE",
            "Contact: <sip:alice@127.0.0.2:5060>",
            "Content-Type: application/sdp",
        ],
        SDP,
    )
}

/// The PBX's ACK to a non-2xx final response, `to` being that response's To header, for the
/// INVITE `invite(call_id, branch, number)` sent.
pub fn ack_to_final(call_id: &str, branch: &str, number: &str, to: &str) -> String {
    msg(
        &[
            &format!("ACK sip:{number}@127.0.0.1:5060 SIP/2.0"),
            &format!("Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch};rport"),
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            &format!("To: {to}"),
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 ACK",
        ],
        "",
    )
}

/// The gateway's BYE for the call `call_id` it answered with To tag `g1`, routed back
/// through us (Record-Route) to the PBX's Contact.
pub fn gateway_bye(call_id: &str) -> String {
    msg(
        &[
            "BYE sip:alice@127.0.0.2:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-gw-bye",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: <sip:2125551234@127.0.0.1>;tag=g1",
            "To: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 BYE",
        ],
        "",
    )
}

/// A response to `req` as a UA would write it: Via, Record-Route, From, To (+tag), Call-ID,
/// CSeq copied.
pub fn response_to(
    req: &Sent,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    contact: &str,
) -> String {
    let mut lines = vec![format!("SIP/2.0 {code} {reason}")];
    for v in req.headers("Via") {
        lines.push(format!("Via: {v}"));
    }
    for rr in req.headers("Record-Route") {
        lines.push(format!("Record-Route: {rr}"));
    }
    lines.push(format!("From: {}", req.header("From")));
    let to = req.header("To");
    match to_tag {
        Some(t) if !to.contains(";tag=") => lines.push(format!("To: {to};tag={t}")),
        _ => lines.push(format!("To: {to}")),
    }
    lines.push(format!("Call-ID: {}", req.header("Call-ID")));
    lines.push(format!("CSeq: {}", req.header("CSeq")));
    if !contact.is_empty() {
        lines.push(format!("Contact: {contact}"));
    }
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    msg(&refs, "")
}

/// Exactly one datagram in `sent` satisfying `pred`; panics with the whole list otherwise.
pub fn one<'a>(sent: &'a [Sent], what: &str, pred: impl Fn(&Sent) -> bool) -> &'a Sent {
    let hits: Vec<&Sent> = sent.iter().filter(|s| pred(s)).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected exactly one {what}, got {}: {sent:#?}",
        hits.len()
    );
    hits[0]
}

/// A UDP test peer bound on a loopback address (127.0.0.x), reads time out after 5 s.
pub fn peer_socket(ip: &str) -> std::net::UdpSocket {
    let s = std::net::UdpSocket::bind((ip, 0)).expect("bind a loopback test peer");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

/// The next datagram a test peer receives that satisfies `want` (others, such as 100
/// Trying, are skipped).
pub fn recv_until(sock: &std::net::UdpSocket, what: &str, want: impl Fn(&Sent) -> bool) -> Sent {
    let mut buf = vec![0u8; 65_536];
    for _ in 0..20 {
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        let s = Sent {
            to: from,
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
        };
        if want(&s) {
            return s;
        }
    }
    panic!("never got {what}");
}

/// GET `path` from an HTTP endpoint of junction (metrics); the body of its 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_string()
}

/// Two consecutive free UDP ports on 127.0.0.1 (the first returned), for `shard_ports`.
pub fn free_udp_port_pair() -> u16 {
    for _ in 0..200 {
        let p = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("bind");
        if (1024..u16::MAX).contains(&p) && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no two consecutive free UDP ports");
}
