//! kill -9 and restart during a call: the new process knows nothing of the call, yet the
//! BYE that ends it (with its Route set) still reaches the other side, and its 200 comes back.

mod common;

use common::{msg, response_to, Sent, SDP};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bind(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind a loopback test peer");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

fn recv_until(sock: &UdpSocket, what: &str, want: impl Fn(&Sent) -> bool) -> Sent {
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

fn ready(metrics: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", metrics)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.starts_with("HTTP/1.1 200")
}

fn start(config: &std::path::Path, metrics: u16) -> (Child, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start junction");
    while !ready(metrics) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("junction exited: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "junction never became ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, t0.elapsed())
}

#[test]
fn a_call_survives_a_kill_9_and_restart() {
    let pbx = bind("127.0.0.2");
    let gw = bind("127.0.0.3");
    let port = |s: &UdpSocket| s.local_addr().expect("addr").port();
    let listen = port(&bind("127.0.0.1"));
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = std::env::temp_dir().join(format!("junction-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let config = dir.join("junction.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:{metrics}"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:{p}"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{g}"

[[route]]
name = "out"
prefixes = ["2"]
trunks = ["gw"]
"#,
            p = port(&pbx),
            g = port(&gw)
        ),
    )
    .expect("write config");
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{listen}").parse().expect("addr");

    let (mut first, _) = start(&config, metrics);
    let invite = msg(
        &[
            &format!("INVITE sip:2125551234@127.0.0.1:{listen} SIP/2.0"),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.2:{};branch=z9hG4bK-r1;rport",
                port(&pbx)
            ),
            "Max-Forwards: 70",
            "From: <sip:100@127.0.0.2>;tag=caller",
            &format!("To: <sip:2125551234@127.0.0.1:{listen}>"),
            "Call-ID: restart@127.0.0.2",
            "CSeq: 1 INVITE",
            &format!("Contact: <sip:100@127.0.0.2:{}>", port(&pbx)),
            "Content-Type: application/sdp",
        ],
        SDP,
    );
    pbx.send_to(invite.as_bytes(), proxy).expect("send");
    let inv = recv_until(&gw, "INVITE at the gateway", |s| s.method() == "INVITE");
    let contact = format!("<sip:gw@127.0.0.3:{}>", port(&gw));
    gw.send_to(
        response_to(&inv, 200, "OK", Some("gw"), &contact).as_bytes(),
        proxy,
    )
    .expect("send");
    let ok = recv_until(&pbx, "200 at the PBX", |s| s.is_status(200));
    let route = ok.header("Record-Route").to_string();

    // kill -9, and back.
    first.kill().expect("kill -9");
    let _ = first.wait();
    let (mut second, took) = start(&config, metrics);
    eprintln!("restarted and ready in {took:?}");

    // The gateway hangs up: the new process has no state for the call, but the BYE's
    // Route set and Request-URI (the PBX, a trunk) carry it.
    let bye = msg(
        &[
            &format!("BYE sip:100@127.0.0.2:{} SIP/2.0", port(&pbx)),
            &format!(
                "Via: SIP/2.0/UDP 127.0.0.3:{};branch=z9hG4bK-r2;rport",
                port(&gw)
            ),
            &format!("Route: {route}"),
            "Max-Forwards: 70",
            "From: <sip:2125551234@127.0.0.3>;tag=gw",
            "To: <sip:100@127.0.0.2>;tag=caller",
            "Call-ID: restart@127.0.0.2",
            "CSeq: 1 BYE",
        ],
        "",
    );
    gw.send_to(bye.as_bytes(), proxy).expect("send");
    let b = recv_until(&pbx, "BYE at the PBX", |s| s.method() == "BYE");
    pbx.send_to(response_to(&b, 200, "OK", None, "").as_bytes(), proxy)
        .expect("send");
    recv_until(&gw, "200 for the BYE at the gateway", |s| s.is_status(200));
    let _ = second.kill();
    let _ = second.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
