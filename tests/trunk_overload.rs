//! RFC 7339 toward the trunks junction sends calls to, through the core with virtual time:
//! junction's Via offers overload control (`;oc`) to a trunk with `overload_control` (the
//! default); the share of new calls the trunk asks, in that Via of its responses, to have
//! withheld goes to the route's next trunk instead, or is answered 503 when no trunk is left;
//! the value lapses after its oc-validity; stale, malformed and foreign-algorithm values
//! change nothing.

mod common;

use common::*;
use std::time::Duration;

/// The common configuration (everything else to gw, at the default priority 100) with gw2
/// behind it: every call tries gw first, then gw2.
fn two_gateways() -> String {
    format!(
        "{CONFIG}\n[[route]]\nname = \"backup\"\nprefixes = [\"\"]\ntrunks = [\"gw2\"]\npriority = 200\n"
    )
}

fn invite_n(n: usize) -> String {
    invite(
        &format!("oc-{n}@pbx"),
        &format!("z9hG4bK-oc{n}"),
        "2125551234",
    )
}

/// Place call `n` and return where its INVITE went (GW or GW2), with the INVITE.
fn place(net: &mut Net, n: usize) -> Sent {
    let out = net.send(PBX, &invite_n(n));
    one(&out, "forwarded INVITE", |s| s.method() == "INVITE").clone()
}

/// `response` with our (top) Via's offer, `;oc`, answered with `params` as RFC 7339
/// section 5.2 has a server do: `;oc=20;oc-algo="loss";...` in its place (appended when
/// there was no offer: a trunk that sends feedback unasked).
fn answered(fwd: &Sent, response: String, params: &str) -> String {
    let ours = format!("Via: {}", fwd.headers("Via")[0]);
    let base = ours.strip_suffix(";oc").unwrap_or(&ours);
    let marked = response.replacen(&ours, &format!("{base}{params}"), 1);
    assert_ne!(marked, response, "our Via is in the response");
    marked
}

/// The gateway's 100 Trying to `fwd`, with `params` in our Via.
fn trying_with(fwd: &Sent, params: &str) -> String {
    answered(fwd, response_to(fwd, 100, "Trying", None, ""), params)
}

fn feedback_counts(net: &Net) -> (u64, u64) {
    let s = net.core.stats();
    (s.oc_feedback_applied, s.oc_feedback_ignored)
}

#[test]
fn requests_to_a_trunk_offer_overload_control_unless_it_is_off() {
    let mut net = Net::with_config(&two_gateways());
    let fwd = place(&mut net, 0);
    let ours = fwd.headers("Via")[0];
    assert!(ours.ends_with(";rport;oc"), "{ours}");
    // The PBX's Via, below ours, is untouched: it did not offer overload control.
    assert!(!fwd.headers("Via")[1].contains(";oc"), "{fwd:?}");

    let off = two_gateways().replace(
        "send_to = \"127.0.0.3:5060\"\n",
        "send_to = \"127.0.0.3:5060\"\noverload_control = false\n",
    );
    assert_ne!(off, two_gateways());
    let mut net = Net::with_config(&off);
    let fwd = place(&mut net, 0);
    assert!(fwd.headers("Via")[0].ends_with(";rport"), "{fwd:?}");
    // A trunk that does not support RFC 7339 echoes the bare offer: nothing to read, nothing
    // counted as ignored.
    let mut plain = Net::with_config(&two_gateways());
    let fwd_plain = place(&mut plain, 0);
    plain.send(GW, &response_to(&fwd_plain, 180, "Ringing", Some("g1"), ""));
    assert_eq!(feedback_counts(&plain), (0, 0));
    // With overload control off, what the trunk says is not even read.
    net.send(
        GW,
        &trying_with(&fwd, ";oc=100;oc-validity=5000;oc-seq=1.0"),
    );
    assert_eq!(feedback_counts(&net), (0, 0));
    assert_eq!(place(&mut net, 1).to, addr(GW));
}

#[test]
fn the_share_a_gateway_asks_to_withhold_goes_to_the_next_trunk_until_it_lapses() {
    let mut net = Net::with_config(&two_gateways());
    let fwd = place(&mut net, 0);
    assert_eq!(fwd.to, addr(GW));
    let out = net.send(
        GW,
        &trying_with(
            &fwd,
            ";oc=40;oc-algo=\"loss\";oc-validity=2000;oc-seq=1700000000.120",
        ),
    );
    // A 100 Trying is not relayed; nothing else happens.
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(feedback_counts(&net), (1, 0));

    // 40 of the next 100 new calls are withheld from gw and go to gw2, spread out.
    let mut to_gw2 = 0;
    for n in 1..=100 {
        let f = place(&mut net, n);
        if f.to == addr(GW2) {
            to_gw2 += 1;
        } else {
            assert_eq!(f.to, addr(GW));
        }
    }
    assert_eq!(to_gw2, 40);
    assert_eq!(net.core.stats().rejected_admission, 40);

    // Two seconds later the value has lapsed: every call goes to gw again.
    net.advance(Duration::from_millis(2000));
    for n in 101..=120 {
        assert_eq!(place(&mut net, n).to, addr(GW), "call {n}");
    }
}

#[test]
fn newer_values_replace_older_ones_and_stale_or_bad_ones_change_nothing() {
    let mut net = Net::with_config(&two_gateways());
    let a = place(&mut net, 0);
    let b = place(&mut net, 1);
    let c = place(&mut net, 2);
    // 100% at seq 5: everything to gw2.
    net.send(GW, &trying_with(&a, ";oc=100;oc-validity=10000;oc-seq=5.0"));
    assert_eq!(feedback_counts(&net), (1, 0));
    // An older value (reordered) and malformed ones are ignored.
    net.send(GW, &trying_with(&b, ";oc=0;oc-validity=10000;oc-seq=4.9"));
    net.send(GW, &trying_with(&c, ";oc=250;oc-validity=10000;oc-seq=6.0"));
    net.send(
        GW,
        &trying_with(&c, ";oc=0;oc-algo=\"rate\";oc-validity=10000;oc-seq=7.0"),
    );
    net.send(GW, &trying_with(&c, ";oc=0;oc-validity=10000"));
    assert_eq!(feedback_counts(&net), (1, 4));
    for n in 3..13 {
        assert_eq!(place(&mut net, n).to, addr(GW2), "call {n}");
    }
    // A newer value of 0 ends it at once.
    net.send(GW, &trying_with(&a, ";oc=0;oc-validity=500;oc-seq=8.0"));
    assert_eq!(feedback_counts(&net), (2, 4));
    assert_eq!(place(&mut net, 13).to, addr(GW));
}

#[test]
fn with_no_trunk_left_the_caller_gets_503_and_the_call_is_not_sent() {
    // The common configuration routes everything else to gw alone.
    let mut net = Net::new();
    let first = invite("first@pbx", "z9hG4bK-first", "2125551234");
    let out = net.send(PBX, &first);
    let fwd = one(&out, "INVITE to gw", |s| s.method() == "INVITE").clone();
    assert!(fwd.headers("Via")[0].ends_with(";oc"), "{fwd:?}");
    net.send(
        GW,
        &trying_with(&fwd, ";oc=100;oc-validity=1000;oc-seq=1.0"),
    );

    let second = invite("second@pbx", "z9hG4bK-second", "2125551234");
    let out = net.send(PBX, &second);
    assert!(
        out.iter().all(|s| s.method() != "INVITE"),
        "withheld from gw: {out:?}"
    );
    let refused = one(&out, "503 to the PBX", |s| {
        s.is_status(503) && s.to == addr(PBX)
    });
    assert!(refused.text.contains("\r\nRetry-After: "), "{refused:?}");

    // The value lapses: the next call goes out.
    net.advance(Duration::from_millis(1000));
    let third = invite("third@pbx", "z9hG4bK-third", "2125551234");
    let out = net.send(PBX, &third);
    one(&out, "INVITE to gw", |s| {
        s.method() == "INVITE" && s.to == addr(GW)
    });
}

#[test]
fn a_final_response_carries_feedback_too_and_only_from_the_trunk_it_was_sent_to() {
    let mut net = Net::with_config(&two_gateways());
    let fwd = place(&mut net, 0);
    // The 200 OK's Via says 50%: applied, and the 200 reaches the PBX without our Via.
    let ok = answered(
        &fwd,
        response_to(&fwd, 200, "OK", Some("g1"), "<sip:gw@127.0.0.3:5060>"),
        ";oc=50;oc-validity=3000;oc-seq=2.0",
    );
    let out = net.send(GW, &ok);
    let up = one(&out, "200 to the PBX", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });
    assert!(!up.text.contains("oc="), "{up:?}");
    assert_eq!(feedback_counts(&net), (1, 0));
    let to_gw2 = (1..=10)
        .filter(|&n| place(&mut net, n).to == addr(GW2))
        .count();
    assert_eq!(to_gw2, 5);
}
