//! Flood protection through the core: a source over its `[flood]` rate is dropped unscanned
//! and stays blocked; a trunk peer is exempt by default and keeps routing calls.

mod common;

use common::*;
use std::time::Duration;

fn flood_config() -> String {
    // The flood guard bounds the 403s of `unknown_source = "reject"` (with the default
    // "drop" nobody gets an answer anyway).
    let reject = CONFIG.replacen("[server]\n", "[server]\nunknown_source = \"reject\"\n", 1);
    assert_ne!(reject, CONFIG);
    format!("{reject}\n[flood]\nrequests_per_sec = 10\nblock_secs = 30\n")
}

fn options(n: u32) -> String {
    msg(
        &[
            "OPTIONS sip:100@127.0.0.1:5060 SIP/2.0",
            &format!("Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK-scan-{n}"),
            "Max-Forwards: 70",
            "From: <sip:scanner@127.0.0.9>;tag=s",
            "To: <sip:100@127.0.0.1>",
            &format!("Call-ID: scan-{n}@127.0.0.9"),
            "CSeq: 1 OPTIONS",
        ],
        "",
    )
}

#[test]
fn a_flooding_source_is_blocked_and_trunks_keep_working() {
    let mut net = Net::with_config(&flood_config());
    let mut answered = 0;
    for n in 0..200 {
        answered += net.send(STRANGER, &options(n)).len();
    }
    assert_eq!(answered, 10, "only the first second's worth gets its 403");
    assert_eq!(net.core.stats().dropped_flood, 190);
    assert_eq!(net.core.stats().flood_blocks, 1);
    // Meanwhile the PBX trunk (exempt by default) routes a call.
    let out = net.send(PBX, &invite("call@pbx", "z9hG4bK-pbx-1", "2125551234"));
    one(&out, "forwarded INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
    // Still blocked 20 s later even at one request per second; released after the block.
    net.advance(Duration::from_secs(20));
    assert!(net.send(STRANGER, &options(500)).is_empty());
    net.advance(Duration::from_secs(31));
    assert_eq!(net.send(STRANGER, &options(501)).len(), 1);
}

#[test]
fn trunks_can_have_their_own_threshold() {
    let cfg = flood_config().replace(
        "block_secs = 30",
        "block_secs = 30\ntrunk_requests_per_sec = 5",
    );
    let mut net = Net::with_config(&cfg);
    let mut forwarded = 0;
    for n in 0..20 {
        let inv = invite(&format!("c{n}@pbx"), &format!("z9hG4bK-p{n}"), "2125551234");
        forwarded += net
            .send(PBX, &inv)
            .iter()
            .filter(|s| s.method() == "INVITE")
            .count();
    }
    assert_eq!(forwarded, 5);
}

/// A request in the call "up@pbx" from the PBX (the gateway's tag is "g").
fn in_call(method: &str, cseq: u32, branch: &str) -> String {
    msg(
        &[
            &format!("{method} sip:gw@127.0.0.3:5060 SIP/2.0"),
            &format!("Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch}"),
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>;tag=g",
            "Call-ID: up@pbx",
            &format!("CSeq: {cseq} {method}"),
            "Contact: <sip:alice@127.0.0.2:5060>",
        ],
        "",
    )
}

fn bye_up(branch: &str) -> String {
    in_call("BYE", 3, branch)
}

#[test]
fn an_overloaded_shard_sheds_new_calls_and_keeps_calls_in_progress() {
    let mut net = Net::new();
    // A call set up before the overload.
    let out = net.send(PBX, &invite("up@pbx", "z9hG4bK-up", "2125551234"));
    let fwd = one(&out, "INVITE", |s| s.method() == "INVITE").clone();
    net.send(
        GW,
        &response_to(&fwd, 200, "OK", Some("g"), "<sip:gw@127.0.0.3:5060>"),
    );

    // Bursts are not overload: the socket is found empty now and then.
    for _ in 0..100 {
        net.queue_for(Duration::from_millis(40), 9);
        net.queue_for(Duration::ZERO, 1);
    }
    assert_eq!(net.core.stats_snapshot().admission_percent, 100);
    let out = net.send(PBX, &invite("burst@pbx", "z9hG4bK-burst", "2125551234"));
    one(&out, "INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });

    // A standing 10 ms queue for two 50 ms intervals (one could be a stall): a share of new
    // calls gets 503 + Retry-After (OVERLOAD_CUT_MIN), before any routing work.
    net.queue_for(Duration::from_millis(10), 110);
    let (mut shed, mut routed) = (0, 0);
    let mut last_503 = None;
    for n in 0..100 {
        let out = net.send(
            PBX,
            &invite(
                &format!("new-{n}@pbx"),
                &format!("z9hG4bK-new{n}"),
                "2125551234",
            ),
        );
        if out.iter().any(|s| s.method() == "INVITE") {
            routed += 1;
            continue;
        }
        let r = one(&out, "503", |s| s.is_status(503));
        assert!(r.header("Warning").contains("overload"));
        assert_eq!(r.header("Retry-After"), "5");
        last_503 = Some((n, r.clone()));
        shed += 1;
    }
    // The caller's ACK for a 503 we generated without state ends here (RFC 3261 17.2.1):
    // it is neither routed to a trunk nor answered.
    let (n, r) = last_503.expect("some call was refused");
    let ack = ack_to_final(
        &format!("new-{n}@pbx"),
        &format!("z9hG4bK-new{n}"),
        "2125551234",
        r.header("To"),
    );
    assert!(r.header("To").contains(";tag="));
    let absorbed = net.core.stats().retransmissions_absorbed;
    assert!(net.send(PBX, &ack).is_empty(), "the ACK went somewhere");
    assert_eq!(net.core.stats().retransmissions_absorbed, absorbed + 1);
    // A 10 ms queue that does not grow is met by the least cut, OVERLOAD_CUT_MIN: that share
    // of a hundred refused (the admission credit rounds).
    let least = (junction::limits::OVERLOAD_CUT_MIN * 100.0).round() as u64;
    assert!(
        (least - 1..=least + 1).contains(&shed) && shed > 0 && shed + routed == 100,
        "{shed} shed"
    );
    assert_eq!(net.core.stats().rejected_overload, shed);
    assert_eq!(net.core.stats_snapshot().admission_percent, 100 - least);

    // A deep backlog (150 ms standing) that persists: even 503s cost too much, so new calls
    // beyond the admitted share are dropped unparsed, no answer at all, while the call in
    // progress is served: a re-INVITE and its BYE go through.
    net.queue_for(Duration::from_millis(150), 1500);
    let mut silent = 0;
    for n in 0..20 {
        let out = net.send(
            PBX,
            &invite(
                &format!("sev-{n}@pbx"),
                &format!("z9hG4bK-sev{n}"),
                "2125551234",
            ),
        );
        silent += usize::from(out.is_empty());
    }
    assert!(silent >= 18, "{silent} of 20 dropped");
    assert_eq!(net.core.stats().dropped_overload, silent as u64);
    let reinvite = in_call("INVITE", 2, "z9hG4bK-reinv");
    let out = net.send(PBX, &reinvite);
    one(&out, "re-INVITE forwarded", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
    let out = net.send(PBX, &bye_up("z9hG4bK-bye"));
    let b = one(&out, "BYE forwarded", |s| {
        s.method() == "BYE" && s.to == addr(GW)
    })
    .clone();
    let out = net.send(GW, &response_to(&b, 200, "OK", None, ""));
    one(&out, "200 relayed", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });

    // Load gone for five seconds (admission grows back by OVERLOAD_INCREASE, 0.01, per
    // 50 ms interval): new calls are routed again.
    net.queue_for(Duration::ZERO, 5000);
    assert_eq!(net.core.stats_snapshot().admission_percent, 100);
    let out = net.send(PBX, &invite("later@pbx", "z9hG4bK-later", "2125551234"));
    one(&out, "INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
}

#[test]
fn memory_pressure_sheds_new_calls_only() {
    let mut net = Net::new();
    let out = net.send(PBX, &invite("up@pbx", "z9hG4bK-up", "2125551234"));
    let fwd = one(&out, "INVITE", |s| s.method() == "INVITE").clone();
    net.send(
        GW,
        &response_to(&fwd, 200, "OK", Some("g"), "<sip:gw@127.0.0.3:5060>"),
    );
    net.core.set_memory_pressure(true);
    let out = net.send(PBX, &invite("new@pbx", "z9hG4bK-new", "2125551234"));
    one(&out, "503", |s| s.is_status(503));
    assert!(out.iter().all(|s| s.method() != "INVITE"));
    let out = net.send(PBX, &bye_up("z9hG4bK-bye"));
    one(&out, "BYE forwarded", |s| {
        s.method() == "BYE" && s.to == addr(GW)
    });
    net.core.set_memory_pressure(false);
    let out = net.send(PBX, &invite("later@pbx", "z9hG4bK-later", "2125551234"));
    one(&out, "INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
}
