//! `[limits]`: header count, header line length, Request-URI length, message size and Vias.
//! Over a limit a request from a trunk gets a 4xx naming the limit and goes nowhere; a
//! response or anything from an unknown source is dropped; all are counted.

mod common;

use common::*;

fn with_limits(lines: &str) -> Net {
    Net::with_config(&format!("{CONFIG}\n[limits]\n{lines}\n"))
}

fn with_header(call_id: &str, header: &str) -> String {
    invite(call_id, &format!("z9hG4bK-{call_id}"), "2125551234").replacen(
        "Max-Forwards: 70",
        &format!("Max-Forwards: 70\r\n{header}"),
        1,
    )
}

#[test]
fn a_header_line_over_the_default_limit_gets_400_and_goes_nowhere() {
    let mut net = Net::new();
    // Under the default (4096 bytes): routed.
    let ok = with_header("fine", &format!("Subject: {}", "s".repeat(3000)));
    let out = net.send(PBX, &ok);
    one(&out, "INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
    let long = with_header("long", &format!("Subject: {}", "s".repeat(5000)));
    let out = net.send(PBX, &long);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_status(400) && out[0].to == addr(PBX));
    assert!(out[0].header("Warning").contains("header line too long"));
    assert_eq!(net.core.stats().rejected_input_limits, 1);
}

#[test]
fn a_long_request_uri_gets_414() {
    let mut net = Net::new();
    let number = "1".repeat(1100);
    let out = net.send(PBX, &invite("uri@pbx", "z9hG4bK-uri", &number));
    one(&out, "414", |s| s.is_status(414));
    assert!(out.iter().all(|s| s.method() != "INVITE"));
}

#[test]
fn operators_tighten_header_count_size_and_vias() {
    let mut net = with_limits("max_headers = 16\nmax_message_bytes = 1200\nmax_vias = 4");
    // 9 lines + 9 extra = 18 > 16.
    let many = with_header(
        "many",
        &(0..9)
            .map(|i| format!("X-Extra-{i}: {i}"))
            .collect::<Vec<_>>()
            .join("\r\n"),
    );
    let out = net.send(PBX, &many);
    let r = one(&out, "400", |s| s.is_status(400));
    assert!(r.header("Warning").contains("too many headers"));

    let big = with_header("big", &format!("Subject: {}", "b".repeat(900)));
    assert!(big.len() > 1200);
    let out = net.send(PBX, &big);
    one(&out, "513", |s| s.is_status(513));

    let vias = with_header(
        "vias",
        &(0..3)
            .map(|i| format!("Via: SIP/2.0/UDP 192.0.2.{i}:5060;branch=z9hG4bK-v{i}"))
            .collect::<Vec<_>>()
            .join("\r\n"),
    );
    let out = net.send(PBX, &vias);
    one(&out, "483", |s| s.is_status(483));
    assert!(out.iter().all(|s| s.method() != "INVITE"));

    // Within every limit: routed.
    let out = net.send(PBX, &invite("ok@pbx", "z9hG4bK-ok", "2125551234"));
    one(&out, "INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
}

#[test]
fn responses_and_unknown_sources_over_a_limit_are_dropped_silently() {
    let reject = CONFIG.replacen("[server]\n", "[server]\nunknown_source = \"reject\"\n", 1);
    assert_ne!(reject, CONFIG);
    let mut net = Net::with_config(&reject);
    let long = with_header("s", &format!("Subject: {}", "s".repeat(5000)));
    assert!(net.send(STRANGER, &long).is_empty());

    let out = net.send(PBX, &invite("call@pbx", "z9hG4bK-call", "2125551234"));
    let fwd = one(&out, "INVITE", |s| s.method() == "INVITE").clone();
    let ringing = response_to(&fwd, 180, "Ringing", Some("g"), "").replacen(
        "Content-Length",
        &format!("Subject: {}\r\nContent-Length", "r".repeat(5000)),
        1,
    );
    assert!(net.send(GW, &ringing).is_empty(), "not relayed");
    assert_eq!(net.core.stats().rejected_input_limits, 2);
    // The same response within the limit is relayed.
    let out = net.send(GW, &response_to(&fwd, 180, "Ringing", Some("g"), ""));
    one(&out, "180", |s| s.is_status(180) && s.to == addr(PBX));
}
