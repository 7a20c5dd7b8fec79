//! Inter-trunk routing through the core with virtual time: number translation both ways,
//! failover on 503 / translated 486 / progress timeout, stop on 4xx, best response,
//! admission limits.

mod common;

use common::*;
use std::time::Duration;

const GWB: &str = "127.0.0.4:5060";

const ROUTED: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:5060"
trusted = true
inbound = [
  { match = '^(\d{10})$', replace = '+1${1}', number = "called" },
  { match = '^(\d{3})$', replace = '+12125550${1}', number = "calling" },
]

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"
trusted = true
outbound_called = [{ match = '^\+1(\d{10})$', replace = '${1}' }]
response_codes = [{ code = 486, cause = 34, to = 503 }]
progress_timeout_s = 10
max_calls = 1

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:5060"
remove_plus = true

[[route]]
name = "us-primary"
pattern = '^\+1\d{10}$'
trunks = ["gw-a"]
priority = 10

[[route]]
name = "us-backup"
pattern = '^\+1\d{10}$'
trunks = ["gw-b"]
priority = 20
"#;

/// An INVITE from the PBX: extension 100 calls 2125551234.
fn pbx_invite(call_id: &str) -> String {
    msg(
        &[
            "INVITE sip:2125551234@127.0.0.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-1;rport",
            "Max-Forwards: 70",
            "From: \"Ext 100\" <sip:100@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>",
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 INVITE",
            "Contact: <sip:100@127.0.0.2:5060>",
            "P-Asserted-Identity: <sip:100@127.0.0.2>",
            "Content-Type: application/sdp",
        ],
        SDP,
    )
}

fn user_of(header: &str) -> &str {
    let start = header.find("sip:").map_or(0, |i| i + 4);
    let rest = &header[start..];
    &rest[..rest.find('@').unwrap_or(rest.len())]
}

fn invite_to<'a>(out: &'a [Sent], to: &str) -> &'a Sent {
    one(out, &format!("INVITE to {to}"), |s| {
        s.method() == "INVITE" && s.to == addr(to)
    })
}

#[test]
fn numbers_are_translated_per_trunk_and_restored_toward_the_caller() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("tr-1@pbx"));
    let fwd = invite_to(&out, GW).clone();
    // Called: 2125551234 -> +12125551234 (inbound) -> 2125551234 (gw-a outbound).
    assert_eq!(
        fwd.first_line(),
        "INVITE sip:2125551234@127.0.0.3:5060 SIP/2.0"
    );
    // Calling: 100 -> +12125550100 (inbound), untouched by gw-a: From and PAI carry it.
    assert_eq!(user_of(fwd.header("From")), "+12125550100");
    assert_eq!(user_of(fwd.header("P-Asserted-Identity")), "+12125550100");
    assert!(
        fwd.header("From").ends_with(";tag=a1"),
        "tags are never touched"
    );

    // Responses go back with the caller's own From.
    let ok = response_to(&fwd, 200, "OK", Some("ga"), "<sip:gw@127.0.0.3:5060>");
    let out = net.send(GW, &ok);
    let up = one(&out, "200 to the PBX", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });
    assert_eq!(user_of(up.header("From")), "100");

    // BYE from the gateway: its To is the translated caller; the PBX sees its own number.
    let bye = msg(
        &[
            "BYE sip:100@127.0.0.2:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-gw-bye",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: <sip:2125551234@127.0.0.3>;tag=ga",
            "To: <sip:+12125550100@127.0.0.2>;tag=a1",
            "Call-ID: tr-1@pbx",
            "CSeq: 1 BYE",
        ],
        "",
    );
    let out = net.send(GW, &bye);
    let b = one(&out, "BYE to the PBX", |s| {
        s.method() == "BYE" && s.to == addr(PBX)
    });
    assert_eq!(user_of(b.header("To")), "100");
    // The PBX answers with To 100; the gateway gets its own view back.
    let out = net.send(PBX, &response_to(b, 200, "OK", None, ""));
    let r = one(&out, "200 to the gateway", |s| {
        s.is_status(200) && s.to == addr(GW)
    });
    assert_eq!(user_of(r.header("To")), "+12125550100");
}

#[test]
fn a_503_fails_over_to_the_next_trunk_with_its_own_translation() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-1@pbx"));
    let a = invite_to(&out, GW).clone();
    let out = net.send(
        GW,
        &response_to(&a, 503, "Service Unavailable", Some("x"), ""),
    );
    one(&out, "ACK for the 503", |s| {
        s.method() == "ACK" && s.to == addr(GW)
    });
    assert!(
        out.iter().all(|s| s.to != addr(PBX)),
        "503 is not relayed: {out:#?}"
    );
    let b = invite_to(&out, GWB);
    // gw-b strips the plus.
    assert_eq!(
        b.first_line(),
        "INVITE sip:12125551234@127.0.0.4:5060 SIP/2.0"
    );
    assert_eq!(user_of(b.header("From")), "12125550100");
    assert_ne!(b.headers("Via")[0], a.headers("Via")[0], "a new branch");
    let out = net.send(
        GWB,
        &response_to(b, 200, "OK", Some("gb"), "<sip:gw@127.0.0.4>"),
    );
    one(&out, "200 relayed", |s| {
        s.is_status(200) && s.to == addr(PBX)
    });
    assert_eq!(net.core.stats().failovers, 1);
}

#[test]
fn busy_with_cause_34_is_translated_to_503_and_fails_over() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-2@pbx"));
    let a = invite_to(&out, GW).clone();
    let busy = response_to(&a, 486, "Busy Here", Some("x"), "").replace(
        "Content-Length: 0",
        "Reason: Q.850;cause=34;text=\"no circuit\"\r\nContent-Length: 0",
    );
    let out = net.send(GW, &busy);
    invite_to(&out, GWB);
}

#[test]
fn busy_without_the_cause_is_relayed_and_ends_the_call() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-3@pbx"));
    let a = invite_to(&out, GW).clone();
    let out = net.send(GW, &response_to(&a, 486, "Busy Here", Some("x"), ""));
    one(&out, "486 relayed", |s| {
        s.is_status(486) && s.to == addr(PBX)
    });
    assert!(out.iter().all(|s| s.to != addr(GWB)));
}

#[test]
fn a_404_from_a_gateway_ends_the_call_with_404() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-4@pbx"));
    let a = invite_to(&out, GW).clone();
    let out = net.send(GW, &response_to(&a, 404, "Not Found", Some("x"), ""));
    let r = one(&out, "404 relayed", |s| {
        s.is_status(404) && s.to == addr(PBX)
    });
    assert_eq!(user_of(r.header("From")), "100");
    assert!(out.iter().all(|s| s.to != addr(GWB)));
}

#[test]
fn no_progress_within_the_trunk_timer_moves_to_the_next_trunk() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-5@pbx"));
    let a = invite_to(&out, GW).clone();
    // A 100 Trying is not progress.
    net.send(GW, &response_to(&a, 100, "Trying", None, ""));
    let out = net.advance(Duration::from_millis(9_900));
    assert!(out
        .iter()
        .all(|s| s.method() != "INVITE" && s.method() != "CANCEL"));
    let out = net.advance(Duration::from_millis(200));
    one(&out, "CANCEL to gw-a", |s| {
        s.method() == "CANCEL" && s.to == addr(GW)
    });
    invite_to(&out, GWB);
    // gw-a's late 487 is ACKed and absorbed.
    let out = net.send(
        GW,
        &response_to(&a, 487, "Request Terminated", Some("x"), ""),
    );
    assert!(out.iter().all(|s| s.to != addr(PBX)), "{out:#?}");
}

#[test]
fn no_failover_after_ringing_was_relayed() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-6@pbx"));
    let a = invite_to(&out, GW).clone();
    net.send(GW, &response_to(&a, 180, "Ringing", Some("x"), ""));
    let out = net.send(
        GW,
        &response_to(&a, 503, "Service Unavailable", Some("x"), ""),
    );
    // RFC 3261 16.7: a gateway's 503 reaches the caller as 500.
    one(&out, "503 relayed as 500", |s| {
        s.is_status(500) && s.to == addr(PBX)
    });
    assert!(out.iter().all(|s| s.to != addr(GWB)));
}

#[test]
fn when_every_attempt_fails_the_best_response_is_relayed_with_a_reason() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("fo-7@pbx"));
    let a = invite_to(&out, GW).clone();
    let out = net.send(
        GW,
        &response_to(&a, 503, "Service Unavailable", Some("x"), "")
            .replace("CSeq:", "Retry-After: 30\r\nCSeq:"),
    );
    let b = invite_to(&out, GWB).clone();
    let out = net.send(GWB, &response_to(&b, 502, "Bad Gateway", Some("y"), ""));
    let r = one(&out, "final to the PBX", |s| s.to == addr(PBX));
    // The first of the best class (gw-a's 503) is chosen, and sent as 500 without the
    // gateway's Retry-After (RFC 3261 16.7 step 6).
    assert!(r.is_status(500), "{}", r.first_line());
    assert!(r.headers("Retry-After").is_empty(), "{}", r.text);
    assert!(r.header("To").contains("tag=x"), "{}", r.text);
    assert!(
        r.header("Warning").contains("all-attempts-failed"),
        "{}",
        r.text
    );
}

#[test]
fn a_trunk_at_max_calls_is_skipped_until_a_call_ends() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("cap-1@pbx"));
    let a = invite_to(&out, GW).clone();
    net.send(
        GW,
        &response_to(&a, 200, "OK", Some("ga"), "<sip:gw@127.0.0.3:5060>"),
    );
    // gw-a holds its one call: the next call goes to gw-b.
    let out = net.send(
        PBX,
        &pbx_invite("cap-2@pbx").replace("z9hG4bK-pbx-1", "z9hG4bK-pbx-2"),
    );
    invite_to(&out, GWB);
    // The first call ends: gw-a takes calls again.
    let bye = msg(
        &[
            "BYE sip:gw@127.0.0.3:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-bye",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Ext 100\" <sip:100@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>;tag=ga",
            "Call-ID: cap-1@pbx",
            "CSeq: 2 BYE",
        ],
        "",
    );
    let out = net.send(PBX, &bye);
    let b = one(&out, "BYE to gw-a", |s| {
        s.method() == "BYE" && s.to == addr(GW)
    })
    .clone();
    assert_eq!(
        user_of(b.header("From")),
        "+12125550100",
        "caller's number translated"
    );
    net.send(GW, &response_to(&b, 200, "OK", None, ""));
    let out = net.send(
        PBX,
        &pbx_invite("cap-3@pbx").replace("z9hG4bK-pbx-1", "z9hG4bK-pbx-3"),
    );
    invite_to(&out, GW);
}

#[test]
fn every_trunk_full_is_admission_refused_with_retry_after() {
    let cfg = ROUTED.replace("remove_plus = true", "remove_plus = true\nmax_calls = 1");
    let mut net = Net::with_config(&cfg);
    for (i, to) in [(1, GW), (2, GWB)] {
        let out = net.send(
            PBX,
            &pbx_invite(&format!("full-{i}@pbx")).replace("pbx-1", &format!("pbx-{i}")),
        );
        let inv = invite_to(&out, to).clone();
        net.send(
            to,
            &response_to(&inv, 200, "OK", Some("g"), "<sip:gw@127.0.0.9>"),
        );
    }
    let out = net.send(PBX, &pbx_invite("full-3@pbx").replace("pbx-1", "pbx-3"));
    let r = one(&out, "503", |s| s.is_status(503));
    assert!(
        r.header("Warning").contains("admission-refused"),
        "{}",
        r.text
    );
    assert_eq!(r.header("Retry-After"), "5");
}

#[test]
fn unknown_sources_get_no_answer_when_configured_to_drop() {
    let cfg = ROUTED.replace(
        "listen = \"udp:127.0.0.1:5060\"",
        "listen = \"udp:127.0.0.1:5060\"\nunknown_source = \"drop\"",
    );
    let mut net = Net::with_config(&cfg);
    let out = net.send(STRANGER, &pbx_invite("strange@x"));
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(net.core.stats().rejected_unknown_source, 1);
}

#[test]
fn a_trunk_that_stops_answering_options_is_skipped_then_comes_back() {
    let cfg = ROUTED.replace(
        "progress_timeout_s = 10",
        "progress_timeout_s = 10\nprobe = { interval_s = 5, down_after = 2, up_after = 1 }",
    );
    let mut net = Net::with_config(&cfg);
    // The first probe goes out at once; nobody answers two of them.
    let mut probes = 0;
    for _ in 0..120 {
        for s in net.advance(Duration::from_millis(100)) {
            if s.method() == "OPTIONS" && s.to == addr(GW) && !s.text.contains("pbx") {
                assert!(s.first_line().starts_with("OPTIONS sip:127.0.0.3:5060 "));
                probes += 1;
            }
        }
    }
    assert!(probes >= 3, "{probes} probes in 12 s");
    // gw-a is down: a call skips it.
    let out = net.send(PBX, &pbx_invite("down-1@pbx"));
    invite_to(&out, GWB);
    // The next probe is answered: gw-a is up again (up_after = 1).
    let mut answered = false;
    for _ in 0..100 {
        for s in net.advance(Duration::from_millis(100)) {
            if s.method() == "OPTIONS" && s.to == addr(GW) && !answered {
                let ok = response_to(&s, 200, "OK", Some("p"), "");
                assert!(net.send(GW, &ok).is_empty(), "probe answers are absorbed");
                answered = true;
            }
        }
        if answered {
            break;
        }
    }
    assert!(answered);
    let out = net.send(PBX, &pbx_invite("up-1@pbx").replace("pbx-1", "pbx-2"));
    invite_to(&out, GW);
    assert!(net.core.stats().probe_failures >= 2);
}

#[test]
fn a_failover_call_leaves_one_record_with_both_attempts() {
    use junction::sip::cdr::EndedBy;
    let mut net = Net::with_config(ROUTED);
    let out = net.send(PBX, &pbx_invite("cdr-1@pbx"));
    let a = invite_to(&out, GW).clone();
    net.advance(Duration::from_millis(120));
    let out = net.send(
        GW,
        &response_to(&a, 503, "Service Unavailable", Some("x"), ""),
    );
    let b = invite_to(&out, GWB).clone();
    net.advance(Duration::from_millis(300));
    net.send(GWB, &response_to(&b, 180, "Ringing", Some("gb"), ""));
    net.advance(Duration::from_millis(2000));
    net.send(
        GWB,
        &response_to(&b, 200, "OK", Some("gb"), "<sip:gw@127.0.0.4:5060>"),
    );
    net.advance(Duration::from_secs(30));
    let bye = msg(
        &[
            "BYE sip:gw@127.0.0.4:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pbx-bye",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            "From: \"Ext 100\" <sip:100@127.0.0.2>;tag=a1",
            "To: <sip:2125551234@127.0.0.1>;tag=gb",
            "Call-ID: cdr-1@pbx",
            "CSeq: 2 BYE",
        ],
        "",
    );
    let out = net.send(PBX, &bye);
    let fwd = one(&out, "BYE to gw-b", |s| s.method() == "BYE").clone();
    let mut records = Vec::new();
    net.core.drain_records(&mut records);
    assert!(
        records.is_empty(),
        "the call ends with the BYE's final response"
    );
    net.send(GWB, &response_to(&fwd, 200, "OK", None, ""));
    net.core.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.call_id, "cdr-1@pbx");
    assert_eq!(r.ingress, "pbx");
    assert_eq!(
        (r.called.as_str(), r.calling.as_str()),
        ("2125551234", "100")
    );
    assert_eq!(r.called_normalized, "+12125551234");
    assert_eq!(r.calling_normalized, "+12125550100");
    assert_eq!(r.attempts.len(), 2);
    assert_eq!(
        (r.attempts[0].trunk.as_str(), r.attempts[0].status),
        ("gw-a", 503)
    );
    assert_eq!(
        (r.attempts[1].trunk.as_str(), r.attempts[1].status),
        ("gw-b", 200)
    );
    assert_eq!(r.attempts[1].called, "12125551234");
    let pdd = r.attempts[1].progress.unwrap() - r.attempts[1].sent;
    assert_eq!(pdd, Duration::from_millis(300));
    assert_eq!((r.status, r.ended_by), (200, EndedBy::Caller));
    assert_eq!(r.duration_secs(), 30.0);
    let stats = net.core.trunk_stats();
    let a = &stats.by_trunk["gw-a"].counters;
    let b = &stats.by_trunk["gw-b"];
    assert_eq!((a.attempts_out, a.failed_5xx, a.failovers_from), (1, 1, 1));
    assert_eq!((b.counters.attempts_out, b.counters.answered_out), (1, 1));
    assert_eq!(b.latency.pdd_us.len(), 1);
    assert_eq!(b.latency.duration_ms.len(), 1);
    assert_eq!(stats.by_trunk["pbx"].counters.calls_in, 1);
}

#[test]
fn a_call_with_no_route_is_recorded_with_its_reason() {
    let mut net = Net::with_config(ROUTED);
    let out = net.send(
        PBX,
        &pbx_invite("cdr-2@pbx").replace("2125551234@", "44207@"),
    );
    let r = one(&out, "404", |s| s.is_status(404));
    assert!(r.header("Warning").contains("no-route"));
    let mut records = Vec::new();
    net.core.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].status, records[0].reason), (404, "no-route"));
    assert!(records[0].attempts.is_empty());
}
