//! RFC 7339 overload control feedback through the core, with virtual time: a trunk that
//! marks its Via with `oc` hears, in every response, the share of new calls to withhold
//! while the shard sheds, and is not shed a second time; other trunks still get 503s;
//! nothing changes for anyone while the shard keeps up.

mod common;

use common::*;
use std::time::Duration;

/// An INVITE from the PBX whose Via asks for overload control (RFC 7339 section 5.1).
fn oc_invite(call_id: &str, branch: &str) -> String {
    let plain = invite(call_id, branch, "2125551234");
    let oc = plain.replacen(";rport", ";rport;oc;oc-algo=\"loss,A\"", 1);
    assert_ne!(oc, plain);
    oc
}

/// The oc parameters of a message's top Via: (oc value, the whole Via).
fn oc_of(s: &Sent) -> (Option<u32>, String) {
    let via = s.header("Via").to_string();
    let value = via
        .split(';')
        .find_map(|p| p.trim().strip_prefix("oc="))
        .map(|v| v.parse().expect("oc is a number"));
    (value, via)
}

fn seq_of(via: &str) -> f64 {
    via.split(';')
        .find_map(|p| p.trim().strip_prefix("oc-seq="))
        .expect("oc-seq")
        .parse()
        .expect("oc-seq is a number")
}

fn trying(out: &[Sent]) -> &Sent {
    one(out, "100 Trying", |s| s.is_status(100) && s.to == addr(PBX))
}

#[test]
fn a_shard_that_keeps_up_sends_no_feedback() {
    let mut net = Net::new();
    net.queue_for(Duration::ZERO, 200);
    let out = net.send(PBX, &oc_invite("a@pbx", "z9hG4bK-a"));
    let (value, via) = oc_of(trying(&out));
    assert_eq!(value, None, "{via}");
    // Untouched but for received/rport, which junction's own responses carry too (RFC 3581).
    assert!(
        via.ends_with(";rport=5060;oc;oc-algo=\"loss,A\";received=127.0.0.2"),
        "{via}"
    );
    // The client's offer travels on below our Via, untouched.
    let fwd = one(&out, "INVITE", |s| s.method() == "INVITE").clone();
    assert!(fwd.headers("Via")[1].contains(";oc;oc-algo=\"loss,A\""));
    assert_eq!(net.core.stats().oc_responses, 0);
}

#[test]
fn an_oc_trunk_hears_the_share_to_withhold_and_is_not_shed_twice() {
    let mut net = Net::new();
    // Two 50 ms intervals with a standing 10 ms queue that does not grow: the least cut
    // (OVERLOAD_CUT_MIN) of new calls is shed.
    net.queue_for(Duration::from_millis(10), 110);
    let least = (junction::limits::OVERLOAD_CUT_MIN * 100.0).round() as u64;
    assert!(least > 0);
    assert_eq!(net.core.stats_snapshot().admission_percent, 100 - least);
    let least = least as u32;

    // Every new call from the oc trunk is routed: it withholds that share itself.
    let mut first_seq = None;
    let mut last = None;
    for n in 0..100 {
        let out = net.send(
            PBX,
            &oc_invite(&format!("oc-{n}@pbx"), &format!("z9hG4bK-oc{n}")),
        );
        let fwd = one(&out, "INVITE", |s| {
            s.method() == "INVITE" && s.to == addr(GW)
        });
        let (value, via) = oc_of(trying(&out));
        assert_eq!(value, Some(least), "{via}");
        // The RFC 7339 section 5.2 form: our value replaces the offer and its algorithm list.
        assert!(
            via.contains(&format!(
                ";oc={least};oc-algo=\"loss\";oc-validity=500;oc-seq="
            )),
            "{via}"
        );
        assert!(!via.contains("loss,A"), "{via}");
        first_seq.get_or_insert(seq_of(&via));
        last = Some(fwd.clone());
    }
    let stats = net.core.stats().clone();
    assert_eq!(stats.rejected_overload, 0);
    // The admission credit would have refused the least cut's share: those were admitted as
    // oc calls.
    assert!(
        (u64::from(least) - 1..=u64::from(least) + 1).contains(&stats.oc_admitted)
            && stats.oc_admitted > 0,
        "{}",
        stats.oc_admitted
    );
    assert_eq!(stats.oc_responses, 100);

    // A response relayed from the gateway carries the feedback too.
    let fwd = last.expect("a routed call");
    let out = net.send(GW, &response_to(&fwd, 180, "Ringing", Some("g1"), ""));
    let r = one(&out, "180 relayed", |s| {
        s.is_status(180) && s.to == addr(PBX)
    });
    assert_eq!(oc_of(r).0, Some(least), "{}", r.text);
    let out = net.send(GW, &response_to(&fwd, 486, "Busy Here", Some("g1"), ""));
    let r = one(&out, "486 relayed", |s| {
        s.is_status(486) && s.to == addr(PBX)
    });
    assert_eq!(oc_of(r).0, Some(least), "{}", r.text);

    // A trunk that does not ask is still shed by 503, and hears nothing of oc.
    let mut shed = 0;
    for n in 0..100 {
        let out = net.send(
            PBX,
            &invite(
                &format!("plain-{n}@pbx"),
                &format!("z9hG4bK-pl{n}"),
                "2125551234",
            ),
        );
        if let Some(r) = out.iter().find(|s| s.is_status(503)) {
            assert_eq!(oc_of(r).0, None, "{}", r.text);
            shed += 1;
        }
    }
    assert!(
        (least - 1..=least + 1).contains(&shed) && shed > 0,
        "{shed} of 100 shed"
    );

    // The backlog grows (10 ms to 30 ms): a larger share to withhold, with a later oc-seq.
    net.queue_for(Duration::from_millis(30), 200);
    let out = net.send(PBX, &oc_invite("later@pbx", "z9hG4bK-later"));
    let (value, via) = oc_of(trying(&out));
    let percent = 100 - net.core.stats_snapshot().admission_percent as u32;
    assert!(percent > 10);
    assert_eq!(value, Some(percent), "{via}");
    assert!(seq_of(&via) > first_seq.unwrap_or(f64::MAX), "{via}");

    // Near the memory cap every new call is refused, oc trunk included: withhold them all.
    net.core.set_memory_pressure(true);
    net.queue_for(Duration::from_millis(10), 1);
    let out = net.send(PBX, &oc_invite("mem@pbx", "z9hG4bK-mem"));
    let r = one(&out, "503", |s| s.is_status(503));
    assert_eq!(oc_of(r).0, Some(100), "{}", r.text);
    net.core.set_memory_pressure(false);

    // The queue is gone: once the shard admits everything again, `oc=0` for one validity
    // period (trunks resume at once), then no feedback at all.
    let mut waited = 0;
    while net.core.stats_snapshot().admission_percent < 100 {
        net.queue_for(Duration::ZERO, 1);
        waited += 1;
        assert!(waited < 10_000, "never recovered");
    }
    let out = net.send(PBX, &oc_invite("resume@pbx", "z9hG4bK-resume"));
    assert_eq!(oc_of(trying(&out)).0, Some(0));
    net.queue_for(Duration::ZERO, 500);
    let out = net.send(PBX, &oc_invite("quiet@pbx", "z9hG4bK-quiet"));
    let (value, via) = oc_of(trying(&out));
    assert_eq!(value, None, "{via}");
}

#[test]
fn feedback_can_be_turned_off_and_never_reaches_unknown_sources() {
    // Off: an oc trunk is shed by 503 like any other and hears no oc value.
    let cfg = CONFIG.replacen("[server]\n", "[server]\noverload_feedback = false\n", 1);
    assert_ne!(cfg, CONFIG);
    let mut net = Net::with_config(&cfg);
    net.queue_for(Duration::from_millis(10), 110);
    let mut shed = 0;
    for n in 0..50 {
        let out = net.send(
            PBX,
            &oc_invite(&format!("off-{n}@pbx"), &format!("z9hG4bK-off{n}")),
        );
        for s in &out {
            assert_eq!(oc_of(s).0, None, "{}", s.text);
        }
        shed += out.iter().filter(|s| s.is_status(503)).count();
    }
    assert!((2..=3).contains(&shed), "{shed} of 50 shed");
    assert_eq!(net.core.stats().oc_responses, 0);

    // On, shedding, unknown_source = "reject": the 403 to a stranger carries no feedback
    // (it would make the answer larger than the request: an amplifier).
    let cfg = CONFIG.replacen("[server]\n", "[server]\nunknown_source = \"reject\"\n", 1);
    let mut net = Net::with_config(&cfg);
    net.queue_for(Duration::from_millis(10), 110);
    let stranger = "127.0.0.9:5060";
    let out = net.send(stranger, &oc_invite("x@evil", "z9hG4bK-x"));
    let r = one(&out, "403", |s| s.is_status(403));
    let (value, via) = oc_of(r);
    assert_eq!(value, None, "{via}");
    assert!(r.text.len() <= oc_invite("x@evil", "z9hG4bK-x").len());
}

/// `[server] retry_after_s` sets the Retry-After of junction's own 503s (here: every new call
/// shed under memory pressure); 0 leaves the header out and keeps the Warning.
#[test]
fn retry_after_follows_the_configuration() {
    for (value, want) in [(None, vec!["5"]), (Some(30), vec!["30"]), (Some(0), vec![])] {
        let cfg = match value {
            Some(v) => {
                CONFIG.replacen("[server]\n", &format!("[server]\nretry_after_s = {v}\n"), 1)
            }
            None => CONFIG.to_string(),
        };
        let mut net = Net::with_config(&cfg);
        net.core.set_memory_pressure(true);
        let out = net.send(PBX, &invite("ra@pbx", "z9hG4bK-ra", "2125551234"));
        let r = one(&out, "503", |s| s.is_status(503));
        assert_eq!(r.headers("Retry-After"), want, "retry_after_s = {value:?}");
        assert!(r.header("Warning").contains("memory-cap"), "{}", r.text);
    }
}
