//! The proxy core with virtual time: call flows, every RFC 3261 timer, CANCEL, failures.

mod common;

use common::*;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// INVITE from the PBX; returns (100 Trying to the PBX, INVITE forwarded to the gateway).
fn start_call(net: &mut Net, call_id: &str) -> (Sent, Sent) {
    let out = net.send(PBX, &invite(call_id, "z9hG4bK-pbx-1", "2125551234"));
    let trying = one(&out, "100 Trying", |s| s.is_status(100)).clone();
    assert_eq!(trying.to, addr(PBX));
    let fwd = one(&out, "forwarded INVITE", |s| s.method() == "INVITE").clone();
    assert_eq!(fwd.to, addr(GW));
    assert_eq!(out.len(), 2, "{out:#?}");
    (trying, fwd)
}

#[test]
fn basic_call_flow_with_record_route() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-1@pbx");
    // Request-URI rewritten to the trunk, our Via on top with a fresh RFC 3261 branch,
    // the PBX's Via below it with received/rport filled, Record-Route, Max-Forwards - 1.
    assert_eq!(
        fwd.first_line(),
        "INVITE sip:2125551234@127.0.0.3:5060 SIP/2.0"
    );
    let vias = fwd.headers("Via");
    assert_eq!(vias.len(), 2, "{}", fwd.text);
    assert!(vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert!(vias[1].contains("rport=5060"), "{}", vias[1]);
    assert!(vias[1].contains("received=127.0.0.2"), "{}", vias[1]);
    assert_eq!(fwd.headers("Record-Route"), vec!["<sip:127.0.0.1:5060;lr>"]);
    assert_eq!(fwd.header("Max-Forwards"), "69");
    assert!(fwd.text.ends_with(SDP), "body relayed untouched");

    // 180 and 200 from the gateway go back to the PBX without our Via.
    let ringing = response_to(&fwd, 180, "Ringing", Some("g1"), "<sip:gw@127.0.0.3:5060>");
    let out = net.send(GW, &ringing);
    let r = one(&out, "relayed 180", |s| s.is_status(180));
    assert_eq!(r.to, addr(PBX));
    assert_eq!(r.headers("Via").len(), 1);
    assert!(r.header("Via").contains("branch=z9hG4bK-pbx-1"));
    let ok = response_to(&fwd, 200, "OK", Some("g1"), "<sip:gw@127.0.0.3:5060>");
    let out = net.send(GW, &ok);
    let r = one(&out, "relayed 200", |s| s.is_status(200));
    assert_eq!(r.to, addr(PBX));
    assert_eq!(r.headers("Record-Route"), vec!["<sip:127.0.0.1:5060;lr>"]);

    // ACK for the 2xx follows the route set: to us, then to the gateway's Contact.
    let ack = msg(
        &[
            "ACK sip:gw@127.0.0.3:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-ack;rport",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>;tag=g1",
            "Call-ID: call-1@pbx",
            "CSeq: 1 ACK",
        ],
        "",
    );
    let out = net.send(PBX, &ack);
    let a = one(&out, "forwarded ACK", |s| s.method() == "ACK");
    assert_eq!(a.to, addr(GW));
    assert!(
        a.headers("Route").is_empty(),
        "our Route is popped: {}",
        a.text
    );
    assert_eq!(a.headers("Via").len(), 2);
    // A retransmitted ACK is forwarded again with the same branch (stateless, 16.11).
    let again = net.send(PBX, &ack);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].header("Via"), a.header("Via"));

    // BYE from the gateway side reaches the PBX's Contact; its 200 goes back.
    let bye = gateway_bye("call-1@pbx");
    let out = net.send(GW, &bye);
    let b = one(&out, "forwarded BYE", |s| s.method() == "BYE");
    assert_eq!(b.to, addr(PBX));
    assert_eq!(b.first_line(), "BYE sip:alice@127.0.0.2:5060 SIP/2.0");
    let out = net.send(PBX, &response_to(b, 200, "OK", None, ""));
    let r = one(&out, "relayed 200 for BYE", |s| s.is_status(200));
    assert_eq!(r.to, addr(GW));
    assert!(r.header("CSeq").ends_with("BYE"));
    assert_eq!(net.core.stats().calls_created, 1);
}

#[test]
fn invite_retransmission_is_absorbed_and_answered_with_the_last_provisional() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-rtx@pbx");
    let out = net.send(PBX, &invite("call-rtx@pbx", "z9hG4bK-pbx-1", "2125551234"));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_status(100));
    let out = net.send(GW, &response_to(&fwd, 180, "Ringing", Some("g"), ""));
    assert!(out[0].is_status(180));
    let out = net.send(PBX, &invite("call-rtx@pbx", "z9hG4bK-pbx-1", "2125551234"));
    assert_eq!(out.len(), 1);
    assert!(out[0].is_status(180), "the latest provisional is resent");
}

#[test]
fn timer_a_doubles_and_timer_b_answers_408() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-b@pbx");
    let mut resent_at = Vec::new();
    let mut final_408 = None;
    for _ in 0..400 {
        for s in net.advance(ms(100)) {
            if s.method() == "INVITE" {
                assert_eq!(s.text, fwd.text, "retransmission is byte-identical");
                resent_at.push(net.elapsed().as_millis() as u64);
            } else if s.is_status(408) && final_408.is_none() {
                assert_eq!(s.to, addr(PBX));
                final_408 = Some(net.elapsed());
            }
        }
    }
    // Timer A: T1, 2T1, 4T1 ... (0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s) rounded to our 100 ms steps.
    let expected = [500u64, 1500, 3500, 7500, 15500, 31500];
    assert_eq!(resent_at.len(), expected.len(), "{resent_at:?}");
    for (got, want) in resent_at.iter().zip(expected) {
        assert!(*got >= want && *got < want + 100, "{resent_at:?}");
    }
    let t = final_408.expect("Timer B produces 408");
    assert!(
        t >= Duration::from_secs(32) && t < Duration::from_millis(32_100),
        "{t:?}"
    );
}

/// A final response junction generates inside a transaction (here Timer B's 408) is
/// retransmitted until the caller's ACK, which the transaction absorbs; an ACK retransmitted
/// after the transaction has ended is absorbed too, never routed.
#[test]
fn the_ack_to_our_own_408_stops_its_retransmissions() {
    let mut net = Net::new();
    start_call(&mut net, "call-b-ack@pbx");
    let mut final_408 = None;
    for _ in 0..330 {
        if let Some(s) = net.advance(ms(100)).into_iter().find(|s| s.is_status(408)) {
            final_408 = Some(s);
            break;
        }
    }
    let r = final_408.expect("Timer B produces 408");
    // Timer G: the 408 again after T1.
    let out = net.advance(ms(600));
    assert_eq!(out.iter().filter(|s| s.is_status(408)).count(), 1);
    let ack = ack_to_final(
        "call-b-ack@pbx",
        "z9hG4bK-pbx-1",
        "2125551234",
        r.header("To"),
    );
    let absorbed = net.core.stats().retransmissions_absorbed;
    assert!(net.send(PBX, &ack).is_empty(), "the ACK went somewhere");
    assert_eq!(net.core.stats().retransmissions_absorbed, absorbed + 1);
    let out = net.advance(Duration::from_secs(10));
    assert!(
        out.iter().all(|s| !s.is_status(408)),
        "no more retransmissions after the ACK: {out:#?}"
    );
    // Long after the transaction ended, a late copy of the ACK goes nowhere either.
    net.advance(Duration::from_secs(40));
    assert!(
        net.send(PBX, &ack).is_empty(),
        "the late ACK went somewhere"
    );
    assert_eq!(net.core.stats().retransmissions_absorbed, absorbed + 2);
}

#[test]
fn busy_here_is_relayed_acked_downstream_and_retransmitted_until_acked() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-486@pbx");
    let busy = response_to(&fwd, 486, "Busy Here", Some("g486"), "");
    let out = net.send(GW, &busy);
    let up = one(&out, "relayed 486", |s| s.is_status(486));
    assert_eq!(up.to, addr(PBX));
    let ack = one(&out, "hop-by-hop ACK", |s| s.method() == "ACK");
    assert_eq!(ack.to, addr(GW));
    assert_eq!(
        ack.first_line(),
        "ACK sip:2125551234@127.0.0.3:5060 SIP/2.0"
    );
    assert!(ack.header("To").ends_with(";tag=g486"));
    assert_eq!(
        ack.header("Via"),
        fwd.headers("Via")[0],
        "ACK reuses the INVITE's branch"
    );
    assert_eq!(ack.header("CSeq"), "1 ACK");

    // The gateway retransmits its 486: we ACK again and do not relay it again.
    let out = net.send(GW, &busy);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].method(), "ACK");

    // Timer G: the 486 is retransmitted to the PBX at T1, 2T1, 4T1 until its ACK.
    let out = net.advance(ms(600));
    assert_eq!(out.iter().filter(|s| s.is_status(486)).count(), 1);
    let out = net.advance(ms(1000));
    assert_eq!(out.iter().filter(|s| s.is_status(486)).count(), 1);
    let pbx_ack = ack_to_final(
        "call-486@pbx",
        "z9hG4bK-pbx-1",
        "2125551234",
        "<sip:2125551234@127.0.0.1>;tag=g486",
    );
    let out = net.send(PBX, &pbx_ack);
    assert!(
        out.is_empty(),
        "ACK for non-2xx is absorbed hop by hop: {out:#?}"
    );
    let out = net.advance(Duration::from_secs(10));
    assert!(
        out.iter().all(|s| !s.is_status(486)),
        "no more retransmissions after ACK"
    );
}

#[test]
fn timer_h_ends_a_server_transaction_whose_ack_never_comes() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-h@pbx");
    net.send(GW, &response_to(&fwd, 603, "Decline", Some("g"), ""));
    let out = net.advance(Duration::from_secs(40));
    let n = out.iter().filter(|s| s.is_status(603)).count();
    // G at 0.5, 1.5, 3.5, 7.5, then every T2=4 s until H at 32 s: 4 + 6 = 10 resends.
    assert!((9..=11).contains(&n), "{n} retransmissions");
    assert!(net.advance(Duration::from_secs(10)).is_empty());
    assert_eq!(net.core.stats_snapshot().transactions_active, 0);
}

#[test]
fn cancel_after_ringing_cancels_the_branch_and_relays_487() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-cancel@pbx");
    net.send(GW, &response_to(&fwd, 180, "Ringing", Some("gc"), ""));
    let cancel = msg(
        &[
            "CANCEL sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-1;rport",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>",
            "Call-ID: call-cancel@pbx",
            "CSeq: 1 CANCEL",
        ],
        "",
    );
    let out = net.send(PBX, &cancel);
    let ok = one(&out, "200 for CANCEL", |s| s.is_status(200));
    assert_eq!(ok.to, addr(PBX));
    assert!(ok.header("CSeq").ends_with("CANCEL"));
    let down = one(&out, "CANCEL downstream", |s| s.method() == "CANCEL").clone();
    assert_eq!(down.to, addr(GW));
    assert_eq!(
        down.first_line(),
        "CANCEL sip:2125551234@127.0.0.3:5060 SIP/2.0"
    );
    assert_eq!(
        down.header("Via"),
        fwd.headers("Via")[0],
        "same branch as the INVITE"
    );
    assert_eq!(down.header("CSeq"), "1 CANCEL");
    // A retransmitted CANCEL gets the same 200 and is not sent downstream again.
    let out = net.send(PBX, &cancel);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_status(200));
    // The gateway answers the CANCEL (absorbed) and the INVITE with 487 (relayed, ACKed).
    let out = net.send(GW, &response_to(&down, 200, "OK", Some("gc"), ""));
    assert!(out.is_empty(), "{out:#?}");
    let out = net.send(
        GW,
        &response_to(&fwd, 487, "Request Terminated", Some("gc"), ""),
    );
    one(&out, "487 upstream", |s| {
        s.is_status(487) && s.to == addr(PBX)
    });
    one(&out, "ACK downstream", |s| {
        s.method() == "ACK" && s.to == addr(GW)
    });
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-early-cancel@pbx");
    let cancel = msg(
        &[
            "CANCEL sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-1;rport",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>",
            "Call-ID: call-early-cancel@pbx",
            "CSeq: 1 CANCEL",
        ],
        "",
    );
    let out = net.send(PBX, &cancel);
    assert_eq!(out.len(), 1, "only the 200 for CANCEL: {out:#?}");
    assert!(out[0].is_status(200));
    // RFC 3261 9.1: the CANCEL goes out once the branch has a provisional response.
    let out = net.send(GW, &response_to(&fwd, 100, "Trying", None, ""));
    one(&out, "CANCEL after the 100", |s| s.method() == "CANCEL");
}

#[test]
fn cancel_for_an_unknown_invite_is_forwarded_statelessly() {
    let mut net = Net::new();
    let cancel = msg(
        &[
            "CANCEL sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-unknown;rport",
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>",
            "Call-ID: never-seen@pbx",
            "CSeq: 1 CANCEL",
        ],
        "",
    );
    let out = net.send(PBX, &cancel);
    let c = one(&out, "stateless CANCEL", |s| s.method() == "CANCEL");
    assert_eq!(c.to, addr(GW));
    // Its response comes back through our stateless Via and goes to the PBX.
    let out = net.send(
        GW,
        &response_to(c, 481, "Call/Transaction Does Not Exist", Some("x"), ""),
    );
    one(&out, "relayed 481", |s| {
        s.is_status(481) && s.to == addr(PBX)
    });
}

#[test]
fn a_lost_200_is_retransmitted_by_the_uas_and_relayed_each_time() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-lost200@pbx");
    let ok = response_to(&fwd, 200, "OK", Some("g2"), "<sip:gw@127.0.0.3:5060>");
    for _ in 0..3 {
        let out = net.send(GW, &ok);
        one(&out, "relayed 200", |s| {
            s.is_status(200) && s.to == addr(PBX)
        });
        net.advance(ms(500));
    }
    // After Timer M/L (64*T1) the transaction is gone: a late 2xx is a stray.
    net.advance(Duration::from_secs(33));
    let out = net.send(GW, &ok);
    assert!(out.is_empty(), "{out:#?}");
}

/// Nothing for 180 s more, then Timer C: CANCEL downstream and 408 upstream.
fn timer_c_fires_181_s_on(net: &mut Net) {
    let out = net.advance(Duration::from_secs(180));
    assert!(out.is_empty(), "{out:#?}");
    let out = net.advance(Duration::from_millis(1100));
    one(&out, "CANCEL on Timer C", |s| {
        s.method() == "CANCEL" && s.to == addr(GW)
    });
    one(&out, "408 upstream", |s| {
        s.is_status(408) && s.to == addr(PBX)
    });
}

#[test]
fn timer_c_cancels_a_branch_that_rings_forever() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-c@pbx");
    net.send(GW, &response_to(&fwd, 180, "Ringing", Some("gr"), ""));
    timer_c_fires_181_s_on(&mut net);
}

#[test]
fn timer_c_restarts_on_each_provisional_without_a_timer_of_its_own() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-c2@pbx");
    net.send(GW, &response_to(&fwd, 180, "Ringing", Some("gr"), ""));
    // A provisional every 100 s keeps the branch alive ...
    for n in 0..2 {
        let out = net.advance(Duration::from_secs(100));
        assert!(out.is_empty(), "{out:#?}");
        let before = net.core.stats_snapshot().timers_active;
        let out = net.send(
            GW,
            &response_to(&fwd, 183, "Session Progress", Some("gr"), ""),
        );
        one(&out, "183 relayed", |s| {
            s.is_status(183) && s.to == addr(PBX)
        });
        // ... and restarting Timer C adds no timer to the wheel.
        assert_eq!(net.core.stats_snapshot().timers_active, before, "183 #{n}");
    }
    // 181 s after the last one, Timer C fires (not 181 s after the first).
    timer_c_fires_181_s_on(&mut net);
}

#[test]
fn non_invite_timer_e_caps_at_t2_and_timer_f_answers_408() {
    let mut net = Net::new();
    let options = msg(
        &[
            "OPTIONS sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-opt",
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.2>;tag=o1",
            "To: <sip:2125551234@127.0.0.1>",
            "Call-ID: opt-1@pbx",
            "CSeq: 7 OPTIONS",
        ],
        "",
    );
    let out = net.send(PBX, &options);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, addr(GW));
    let mut at = Vec::new();
    let mut got_408 = None;
    for _ in 0..340 {
        for s in net.advance(ms(100)) {
            if s.method() == "OPTIONS" {
                at.push(net.elapsed().as_millis() as u64);
            }
            if s.is_status(408) {
                got_408 = Some(net.elapsed());
                // No Via port and no rport: sent-by port 5060 (RFC 3261 18.2.2).
                assert_eq!(s.to, addr(PBX));
            }
        }
    }
    // E: 0.5, 1.5, 3.5, 7.5 then every 4 s: 11.5, 15.5, ... 31.5.
    let expected = [
        500u64, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ];
    assert_eq!(at.len(), expected.len(), "{at:?}");
    for (g, w) in at.iter().zip(expected) {
        assert!(*g >= w && *g < w + 100, "{at:?}");
    }
    let t = got_408.expect("Timer F");
    assert!(t >= Duration::from_secs(32) && t < Duration::from_millis(32_100));
}

#[test]
fn non_invite_final_is_relayed_once_and_retransmissions_absorbed() {
    let mut net = Net::new();
    let options = msg(
        &[
            "OPTIONS sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-opt2",
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.2>;tag=o1",
            "To: <sip:2125551234@127.0.0.1>",
            "Call-ID: opt-2@pbx",
            "CSeq: 7 OPTIONS",
        ],
        "",
    );
    let out = net.send(PBX, &options);
    let fwd = out[0].clone();
    let ok = response_to(&fwd, 200, "OK", Some("x"), "");
    assert_eq!(net.send(GW, &ok).len(), 1);
    assert!(
        net.send(GW, &ok).is_empty(),
        "Timer K absorbs the retransmission"
    );
    // The PBX retransmits its request: the 200 is resent from the server transaction (J).
    let out = net.send(PBX, &options);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_status(200));
    net.advance(Duration::from_secs(33));
    assert_eq!(net.core.stats_snapshot().transactions_active, 0);
}

#[test]
fn validation_rejects_before_routing() {
    let mut net = Net::new();
    let mut zero = invite("v-1@pbx", "z9hG4bK-v1", "2125551234");
    zero = zero.replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = net.send(PBX, &zero);
    one(&out, "483", |s| s.is_status(483) && s.to == addr(PBX));
    assert_eq!(out.len(), 1);

    let scheme = invite("v-2@pbx", "z9hG4bK-v2", "2125551234")
        .replace("INVITE sip:2125551234@127.0.0.1:5060", "INVITE foo:bar");
    let out = net.send(PBX, &scheme);
    one(&out, "416", |s| s.is_status(416));

    let ext = invite("v-3@pbx", "z9hG4bK-v3", "2125551234")
        .replace("Max-Forwards: 70", "Max-Forwards: 70\r\nProxy-Require: foo");
    let out = net.send(PBX, &ext);
    let r = one(&out, "420", |s| s.is_status(420));
    assert_eq!(r.header("Unsupported"), "foo");
    assert!(
        r.header("To").contains(";tag="),
        "final responses carry a To tag"
    );
}

#[test]
fn unknown_sources_are_never_routed() {
    // By default: no answer at all.
    let mut net = Net::new();
    let out = net.send(STRANGER, &invite("s-1@x", "z9hG4bK-s1", "2125551234"));
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(net.core.stats().rejected_unknown_source, 1);
    // With unknown_source = "reject": a 403 to the stranger, still nothing routed.
    let reject = CONFIG.replacen("[server]\n", "[server]\nunknown_source = \"reject\"\n", 1);
    assert_ne!(reject, CONFIG);
    let mut net = Net::with_config(&reject);
    let out = net.send(STRANGER, &invite("s-1@x", "z9hG4bK-s1", "2125551234"));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_status(403));
    assert_eq!(out[0].to, addr(STRANGER));
    assert_eq!(net.core.stats().rejected_unknown_source, 1);
}

#[test]
fn no_route_is_404_and_a_hairpin_only_route_is_503() {
    let mut net = Net::new();
    // From the gateway, "everything-else" routes back to the gateway itself: skipped.
    let inv = invite("h-1@gw", "z9hG4bK-h1", "2125551234").replace("127.0.0.2", "127.0.0.3");
    let out = net.send(GW, &inv);
    one(&out, "503", |s| s.is_status(503));
    let cfg = CONFIG.replace("prefixes = [\"\"]", "prefixes = [\"44\"]");
    let mut net = Net::with_config(&cfg);
    let out = net.send(PBX, &invite("n-1@pbx", "z9hG4bK-n1", "2125551234"));
    one(&out, "404", |s| s.is_status(404));
    // A number starting with 1 goes to the PBX trunk... which is the ingress: 503.
    let out = net.send(PBX, &invite("n-2@pbx", "z9hG4bK-n2", "15551234"));
    one(&out, "503", |s| s.is_status(503));
}

#[test]
fn options_to_junction_itself_is_answered() {
    let mut net = Net::new();
    let options = msg(
        &[
            "OPTIONS sip:127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-ping",
            "Max-Forwards: 70",
            "From: <sip:ping@127.0.0.2>;tag=p",
            "To: <sip:127.0.0.1>",
            "Call-ID: ping@pbx",
            "CSeq: 1 OPTIONS",
        ],
        "",
    );
    let out = net.send(PBX, &options);
    let r = one(&out, "200", |s| s.is_status(200));
    assert!(r.header("Allow").contains("INVITE"));
}

#[test]
fn stray_responses_are_dropped() {
    let mut net = Net::new();
    let stray = msg(
        &[
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-not-ours",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-x",
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>;tag=2",
            "Call-ID: stray@x",
            "CSeq: 1 INVITE",
        ],
        "",
    );
    assert!(net.send(GW, &stray).is_empty());
    assert_eq!(net.core.stats().dropped_stray, 1);
}

#[test]
fn calls_expire_after_they_end() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-expire@pbx");
    net.send(
        GW,
        &response_to(&fwd, 480, "Temporarily Unavailable", Some("t"), ""),
    );
    assert_eq!(net.core.stats_snapshot().calls_active, 1);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.core.stats_snapshot().calls_active, 0);
    // Nothing of the call is left in the wheel either: no 12 h idle timer, and the long
    // timers that were cancelled (Timer C, the INVITE server transaction's 213 s safety
    // timeout) leave their entries at most one LONG_TIMER_STEP (32 s).
    net.advance(Duration::from_secs(40));
    assert_eq!(net.core.stats_snapshot().timers_active, 0);
}

#[test]
fn an_answered_call_never_ended_is_forgotten_after_twelve_idle_hours() {
    let mut net = Net::new();
    let (_, fwd) = start_call(&mut net, "call-idle@pbx");
    let ok = response_to(&fwd, 200, "OK", Some("g9"), "<sip:gw@127.0.0.3:5060>");
    let out = net.send(GW, &ok);
    one(&out, "200 relayed", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });
    net.advance(Duration::from_secs(12 * 3600 - 60));
    assert_eq!(net.core.stats_snapshot().calls_active, 1);
    // All that time the call held one timer, not one per check.
    assert_eq!(net.core.stats_snapshot().timers_active, 1);
    net.advance(Duration::from_secs(120));
    assert_eq!(net.core.stats_snapshot().calls_active, 0);
    assert_eq!(net.core.stats_snapshot().timers_active, 0);
}
