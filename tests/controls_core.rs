//! Carrier routing controls (issue 20) in the sans-IO core with virtual time: passive
//! health (attempts that time out, ICMP unreachable handed in by the shell).

mod common;

use common::{addr, invite, msg, Net, Sent};
use junction::trunks::DownCause;
use std::time::Duration;

const CONFIG: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:5060"

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"
progress_timeout_s = 2
down_after_failures = 2
probe = { interval_s = 3600, up_after = 1 }

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:5060"

[[route]]
name = "primary"
prefixes = [""]
trunks = ["gw-a"]
priority = 10

[[route]]
name = "backup"
prefixes = [""]
trunks = ["gw-b"]
priority = 20
"#;

const GW_A: &str = "127.0.0.3:5060";
const GW_B: &str = "127.0.0.4:5060";

fn invites_to<'a>(sent: &'a [Sent], to: &str) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|s| s.to == addr(to) && s.method() == "INVITE")
        .collect()
}

#[test]
fn an_icmp_unreachable_fails_the_attempt_over_at_once_and_counts() {
    let mut net = Net::with_config(CONFIG);
    let out = net.send(
        "127.0.0.2:5060",
        &invite("icmp-1", "z9hG4bK-i1", "+12125551234"),
    );
    let at_a = invites_to(&out, GW_A);
    assert_eq!(at_a.len(), 1, "{out:#?}");
    let quoted = at_a[0].text.clone();
    // The shell reads the ICMP error for that datagram (the first bytes are quoted) and
    // hands it in at the same instant: the call is at gw-b without any timer running.
    let ours = &quoted.as_bytes()[..300.min(quoted.len())];
    assert_eq!(junction::sip::proxy::unreachable_owner(ours), Some(0));
    net.core.handle_unreachable(net.now, addr(GW_A), ours);
    let out: Vec<Sent> = net
        .core
        .transmits()
        .map(|(to, b)| Sent {
            to,
            text: String::from_utf8_lossy(b).into_owned(),
        })
        .collect();
    net.core.clear_transmits();
    assert_eq!(invites_to(&out, GW_B).len(), 1, "{out:#?}");
    assert!(
        out.iter().all(|s| s.method() != "CANCEL"),
        "no CANCEL for a branch that never answered: {out:#?}"
    );
    let a = net.core.trunk_state("gw-a").expect("gw-a");
    assert_eq!(a.unreachable.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(a.failures_in_a_row(), 1);
    assert!(a.is_up(), "one failure of two");
    // An error for an address the branch did not go to, or quoting no branch of ours,
    // changes nothing.
    net.core.handle_unreachable(net.now, addr(GW_B), ours);
    net.core
        .handle_unreachable(net.now, addr(GW_A), b"INVITE sip:x SIP/2.0\r\n");
    assert_eq!(net.core.transmits().count(), 0);
    // The retransmission timer of the failed branch is gone: nothing more goes to gw-a.
    let later = net.advance(Duration::from_secs(3));
    assert!(invites_to(&later, GW_A).is_empty(), "{later:#?}");

    // A second call: unreachable again, and gw-a goes down for it (2 in a row).
    let out = net.send(
        "127.0.0.2:5060",
        &invite("icmp-2", "z9hG4bK-i2", "+12125551234"),
    );
    let at_a = invites_to(&out, GW_A);
    assert_eq!(at_a.len(), 1, "{out:#?}");
    let quoted = at_a[0].text.clone();
    net.core
        .handle_unreachable(net.now, addr(GW_A), &quoted.as_bytes()[..300]);
    let a = net.core.trunk_state("gw-a").expect("gw-a");
    assert!(!a.is_up());
    assert_eq!(a.down_cause(), DownCause::Unreachable);
    let events: Vec<_> = net.core.health_events().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].trunk.as_str(), events[0].up, events[0].cause),
        ("gw-a", false, DownCause::Unreachable)
    );
    net.core.clear_transmits();
    // A down trunk is skipped: the next call goes straight to gw-b.
    let out = net.send(
        "127.0.0.2:5060",
        &invite("icmp-3", "z9hG4bK-i3", "+12125551234"),
    );
    assert!(invites_to(&out, GW_A).is_empty(), "{out:#?}");
    assert_eq!(invites_to(&out, GW_B).len(), 1, "{out:#?}");
}

/// The OPTIONS probe the core sent to gw-a, answered 200 by gw-a.
fn answer_probe(net: &mut Net, sent: &[Sent]) -> Vec<Sent> {
    let probe = sent
        .iter()
        .find(|s| s.to == addr(GW_A) && s.method() == "OPTIONS")
        .unwrap_or_else(|| panic!("no probe to gw-a: {sent:#?}"));
    let ok = msg(
        &[
            "SIP/2.0 200 OK",
            &format!("Via: {}", probe.header("Via")),
            &format!("From: {}", probe.header("From")),
            &format!("To: {};tag=gwa", probe.header("To")),
            &format!("Call-ID: {}", probe.header("Call-ID")),
            &format!("CSeq: {}", probe.header("CSeq")),
        ],
        "",
    );
    net.send(GW_A, &ok)
}

#[test]
fn attempts_that_time_out_mark_the_trunk_down_and_a_probe_brings_it_back() {
    let mut net = Net::with_config(CONFIG);
    let first = net.send(
        "127.0.0.2:5060",
        &invite("t-1", "z9hG4bK-t1", "+12125551234"),
    );
    assert_eq!(invites_to(&first, GW_A).len(), 1);
    // No answer at all within gw-a's progress timer (2 s): failover, one failure.
    // (The OPTIONS probe of gw-a goes out on the first timer round.)
    let probed = net.advance(Duration::from_secs(2));
    assert_eq!(invites_to(&probed, GW_B).len(), 1, "{probed:#?}");
    let a = net.core.trunk_state("gw-a").expect("gw-a");
    assert_eq!((a.failures_in_a_row(), a.is_up()), (1, true));

    // A call gw-a answers (even a provisional 100 would do) ends the run of failures.
    let out = net.send(
        "127.0.0.2:5060",
        &invite("t-2", "z9hG4bK-t2", "+12125551234"),
    );
    let inv = invites_to(&out, GW_A)[0].clone();
    let busy = common::response_to(&inv, 486, "Busy Here", Some("a"), "");
    net.send(GW_A, &busy);
    assert_eq!(
        net.core.trunk_state("gw-a").map(|a| a.failures_in_a_row()),
        Some(0)
    );

    // Two silent attempts in a row: down, cause "failures".
    for i in 3..5 {
        let out = net.send(
            "127.0.0.2:5060",
            &invite(&format!("t-{i}"), &format!("z9hG4bK-t{i}"), "+12125551234"),
        );
        assert_eq!(invites_to(&out, GW_A).len(), 1, "{out:#?}");
        net.advance(Duration::from_secs(2));
    }
    let a = net.core.trunk_state("gw-a").expect("gw-a");
    assert!(!a.is_up());
    assert_eq!(a.down_cause(), DownCause::Failures);
    let events: Vec<_> = net.core.health_events().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].up, events[0].count), (false, 2));
    let out = net.send(
        "127.0.0.2:5060",
        &invite("t-5", "z9hG4bK-t5", "+12125551234"),
    );
    assert!(invites_to(&out, GW_A).is_empty(), "{out:#?}");

    // The probe (sent when the core started) is answered: up again (up_after = 1).
    assert!(invites_to(&first, GW_A).len() == 1);
    answer_probe(&mut net, &probed);
    let a = net.core.trunk_state("gw-a").expect("gw-a");
    assert!(a.is_up());
    assert_eq!(a.down_cause(), DownCause::None);
    let events: Vec<_> = net.core.health_events().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].up);
    let out = net.send(
        "127.0.0.2:5060",
        &invite("t-6", "z9hG4bK-t6", "+12125551234"),
    );
    assert_eq!(invites_to(&out, GW_A).len(), 1, "{out:#?}");
}

#[test]
fn an_answered_call_is_ended_at_its_maximum_duration_with_a_bye_to_each_side() {
    let text = CONFIG.replace(
        "name = \"gw-b\"\npeers = [\"127.0.0.4\"]",
        "name = \"gw-b\"\npeers = [\"127.0.0.4\"]\nmax_duration_s = 2",
    );
    let mut net = Net::with_config(&text);
    // gw-a is unusable here: send the call to gw-b (route "backup").
    net.core
        .trunk_state("gw-a")
        .expect("gw-a")
        .mark_down(DownCause::Probe);
    let out = net.send(
        "127.0.0.2:5060",
        &invite("cap-1", "z9hG4bK-c1", "+12125551234"),
    );
    let inv = invites_to(&out, GW_B)[0].clone();
    // The gateway answers with a proxy of its own between it and junction: that hop's
    // Record-Route is above junction's.
    let mut ok = common::response_to(&inv, 200, "OK", Some("g1"), "<sip:gw@127.0.0.4:5060>");
    ok = ok.replacen(
        "Record-Route: ",
        "Record-Route: <sip:10.9.9.9;lr>\r\nRecord-Route: ",
        1,
    );
    let relayed = net.send(GW_B, &ok);
    assert!(relayed.iter().any(|s| s.is_status(200)), "{relayed:#?}");
    // A re-INVITE from the caller (CSeq 5) before the cap: the BYE to the callee goes
    // above it.
    let reinvite = msg(
        &[
            "INVITE sip:gw@127.0.0.4:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-c1-re;rport",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@127.0.0.2>;tag=a1",
            "To: <sip:+12125551234@127.0.0.1>;tag=g1",
            "Call-ID: cap-1",
            "CSeq: 5 INVITE",
            "Contact: <sip:alice@127.0.0.2:5060>",
        ],
        "",
    );
    let fwd = net.send("127.0.0.2:5060", &reinvite);
    assert!(fwd.iter().any(|s| s.method() == "INVITE"), "{fwd:#?}");
    let early = net.advance(Duration::from_millis(1900));
    assert!(early.iter().all(|s| s.method() != "BYE"), "{early:#?}");
    let at_cap = net.advance(Duration::from_millis(200));
    let byes: Vec<&Sent> = at_cap.iter().filter(|s| s.method() == "BYE").collect();
    assert_eq!(byes.len(), 2, "{at_cap:#?}");
    let to_callee = byes
        .iter()
        .find(|s| s.first_line() == "BYE sip:gw@127.0.0.4:5060 SIP/2.0")
        .unwrap_or_else(|| panic!("{byes:#?}"));
    assert_eq!(
        to_callee.to,
        addr("10.9.9.9:5060"),
        "the first hop of its route set"
    );
    assert_eq!(to_callee.headers("Route"), ["<sip:10.9.9.9;lr>"]);
    assert!(
        to_callee.header("From").ends_with("tag=a1"),
        "{}",
        to_callee.text
    );
    assert!(
        to_callee.header("To").ends_with("tag=g1"),
        "{}",
        to_callee.text
    );
    assert_eq!(to_callee.header("CSeq"), "6 BYE");
    assert_eq!(to_callee.header("Call-ID"), "cap-1");
    let to_caller = byes
        .iter()
        .find(|s| s.first_line() == "BYE sip:alice@127.0.0.2:5060 SIP/2.0")
        .unwrap_or_else(|| panic!("{byes:#?}"));
    assert_eq!(to_caller.to, addr("127.0.0.2:5060"));
    assert!(to_caller.headers("Route").is_empty(), "{}", to_caller.text);
    assert_eq!(
        to_caller.header("From"),
        "<sip:+12125551234@127.0.0.1>;tag=g1"
    );
    assert_eq!(
        to_caller.header("To"),
        "\"Alice\" <sip:alice@127.0.0.2>;tag=a1"
    );
    assert_eq!(to_caller.header("CSeq"), "1 BYE");
    // Both answer 200; nothing is retransmitted after that.
    for b in &byes {
        let ok = common::response_to(b, 200, "OK", None, "");
        let from = if b.to == addr("127.0.0.2:5060") {
            "127.0.0.2:5060"
        } else {
            "10.9.9.9:5060"
        };
        assert!(net.send(from, &ok).is_empty());
    }
    let after = net.advance(Duration::from_secs(5));
    assert!(after.iter().all(|s| s.method() != "BYE"), "{after:#?}");
    let mut records = Vec::new();
    net.core.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ended_by.as_str(), "limit");
}

#[test]
fn a_reject_route_s_phrase_is_only_its_own_answer_s() {
    let text = r#"
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

[[route]]
name = "na"
prefixes = ["+1"]
trunks = ["gw"]

[[route]]
name = "premium"
prefixes = ["+1900"]
action = "reject"
reason = "Premium rate blocked"
priority = 10
"#;
    let mut net = Net::with_config(text);
    // A CANCEL for an INVITE junction never saw is routed like one: the reject route
    // answers it.
    let cancel = invite("stray-cancel", "z9hG4bK-sc", "+19005551234")
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let out = net.send("127.0.0.2:5060", &cancel);
    assert!(out.iter().any(|s| s.is_status(403)), "{out:#?}");
    // The next refusal, for another reason, has its own phrase.
    let out = net.send(
        "127.0.0.2:5060",
        &invite("uk", "z9hG4bK-uk", "+442071234567"),
    );
    let r = out.iter().find(|s| s.is_status(404)).expect("404");
    assert_eq!(r.first_line(), "SIP/2.0 404 Not Found");
    let out = net.send(
        "127.0.0.2:5060",
        &invite("prem", "z9hG4bK-pr", "+19005551234"),
    );
    let r = out.iter().find(|s| s.is_status(403)).expect("403");
    assert_eq!(r.first_line(), "SIP/2.0 403 Premium rate blocked");
}
