//! Full tables (limits::TableBounds, lowered here so a test can fill them): new calls are
//! refused with 503 and Retry-After, calls already up keep working, nothing grows past the
//! bound, and room comes back as old transactions expire. Virtual time.

mod common;

use common::*;
use junction::limits::TableBounds;
use std::time::Duration;

/// A call from the PBX to the gateway, answered and acknowledged; returns the INVITE as the
/// gateway received it.
fn answered_call(net: &mut Net, call_id: &str, branch: &str) -> Sent {
    let out = net.send(PBX, &invite(call_id, branch, "2125551234"));
    let fwd = one(&out, "forwarded INVITE", |s| s.method() == "INVITE").clone();
    let ok = response_to(&fwd, 200, "OK", Some("g1"), "<sip:gw@127.0.0.3:5060>");
    let out = net.send(GW, &ok);
    one(&out, "relayed 200", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });
    let ack = msg(
        &[
            "ACK sip:gw@127.0.0.3:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-ack-1;rport",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>;tag=g1",
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 ACK",
        ],
        "",
    );
    let out = net.send(PBX, &ack);
    one(&out, "forwarded ACK", |s| {
        s.method() == "ACK" && s.to == addr(GW)
    });
    fwd
}

/// The gateway hangs up `call_id`: its BYE must reach the PBX and the PBX's 200 come back.
fn gateway_hangs_up(net: &mut Net, call_id: &str) {
    let bye = gateway_bye(call_id);
    let out = net.send(GW, &bye);
    let b = one(&out, "forwarded BYE", |s| s.method() == "BYE");
    assert_eq!(b.to, addr(PBX));
    assert_eq!(out.len(), 1, "nothing but the BYE: {out:#?}");
    let b = b.clone();
    let out = net.send(PBX, &response_to(&b, 200, "OK", None, ""));
    let r = one(&out, "relayed 200 for BYE", |s| s.is_status(200));
    assert_eq!(r.to, addr(GW));
    assert!(r.header("CSeq").ends_with("BYE"));
}

/// A new INVITE is answered 503 with Retry-After and a Warning, and nothing else: no 100
/// Trying before it, nothing toward a trunk.
fn refused(net: &mut Net, call_id: &str, branch: &str) {
    let out = net.send(PBX, &invite(call_id, branch, "2125551234"));
    assert_eq!(out.len(), 1, "{out:#?}");
    let r = &out[0];
    assert!(r.is_status(503), "{}", r.text);
    assert_eq!(r.to, addr(PBX));
    assert!(!r.header("Retry-After").is_empty(), "{}", r.text);
    assert!(r.header("Warning").contains("overload"), "{}", r.text);
}

#[test]
fn a_full_transaction_table_refuses_new_calls_and_keeps_calls_already_up() {
    let mut net = Net::new();
    answered_call(&mut net, "up@pbx", "z9hG4bK-up");
    let held = net.core.stats_snapshot().transactions_active as usize;
    assert!(
        held >= 2,
        "the answered call holds its transactions: {held}"
    );
    // Room for no new pair of transactions.
    net.core.set_table_bounds(TableBounds {
        transactions: held + 1,
        ..TableBounds::default()
    });
    let before = net.core.stats_snapshot().rejected_overload;
    for i in 0..5 {
        refused(
            &mut net,
            &format!("new-{i}@pbx"),
            &format!("z9hG4bK-new-{i}"),
        );
    }
    assert_eq!(net.core.stats_snapshot().rejected_overload, before + 5);
    // The call that is up still ends properly: its BYE and the 200 are relayed statelessly.
    gateway_hangs_up(&mut net, "up@pbx");
    let s = net.core.stats_snapshot();
    assert!(
        s.transactions_active as usize <= held,
        "{} transactions held, bound {}",
        s.transactions_active,
        held + 1
    );
    assert_eq!(s.calls_created, 1);
    // Once the finished transactions expire (64*T1), new calls are routed again.
    net.advance(Duration::from_secs(33));
    let out = net.send(PBX, &invite("later@pbx", "z9hG4bK-later", "2125551234"));
    one(&out, "forwarded INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
    one(&out, "100 Trying", |s| s.is_status(100));
}

#[test]
fn a_full_call_table_refuses_new_calls_before_any_provisional() {
    let mut net = Net::new();
    net.core.set_table_bounds(TableBounds {
        calls: 1,
        ..TableBounds::default()
    });
    answered_call(&mut net, "up@pbx", "z9hG4bK-up");
    refused(&mut net, "second@pbx", "z9hG4bK-second");
    // Its retransmission is refused the same way: nothing of it was kept.
    refused(&mut net, "second@pbx", "z9hG4bK-second");
    let s = net.core.stats_snapshot();
    assert_eq!((s.calls_active, s.calls_created), (1, 1));
    // The call that is up is not disturbed.
    gateway_hangs_up(&mut net, "up@pbx");
    // It lingers 32 s after its BYE; then its place is free for a new call.
    net.advance(Duration::from_secs(33));
    assert_eq!(net.core.stats_snapshot().calls_active, 0);
    let out = net.send(PBX, &invite("third@pbx", "z9hG4bK-third", "2125551234"));
    one(&out, "forwarded INVITE", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
}
