//! The UAC and UAS state machines with virtual time: every RFC 3261 timer and rule they
//! implement, over an in-memory network that can lose chosen datagrams.

use junction_load::sip::Msg;
use junction_load::stats::{CodeOf, Fail, Lat, Stats};
use junction_load::time::{Micros, Timers, MS, SEC};
use junction_load::ua::config::{Answer, UacConfig, UacScenario, UasConfig};
use junction_load::ua::out::Out;
use junction_load::ua::uac::Uac;
use junction_load::ua::uas::Uas;
use junction_load::ua::Engine;
use std::net::SocketAddr;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn uac_cfg(scenario: UacScenario) -> UacConfig {
    UacConfig {
        scenario,
        number: "2125551234".into(),
        target: a("127.0.0.1:7000"),
        local: vec![a("127.0.0.1:6000")],
        hold: 2 * SEC,
        cancel_after: 100 * MS,
        answer_timeout: 0,
        timers: Timers::default(),
        run_id: 0xabc,
        worker: 0,
        quantum: 0,
        oc: false,
        numbers: None,
        workers: 1,
        trace_err: false,
    }
}

fn uas_cfg() -> UasConfig {
    UasConfig {
        answer: vec![Answer {
            code: 200,
            weight: 1,
        }],
        never: false,
        ring: 0,
        ringing: true,
        local: vec![a("127.0.0.1:7000")],
        dialog_max: 600 * SEC,
        hangup: None,
        oc_reduce: None,
        name: None,
        record: None,
        timers: Timers::default(),
        run_id: 0xdef,
    }
}

/// One datagram on the wire, as seen by the test.
#[derive(Clone, Debug)]
struct Wire {
    at: Micros,
    to_uas: bool,
    dest: SocketAddr,
    text: String,
}

impl Wire {
    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
    fn header(&self, name: &str) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .collect()
    }
}

type Lose = Box<dyn FnMut(usize, &Wire) -> bool>;

/// UAC and UAS joined by a network with a fixed one-way delay; `lose` decides per datagram.
struct Net {
    now: Micros,
    uac: Uac,
    uas: Uas,
    delay: Micros,
    in_flight: Vec<(Micros, bool, SocketAddr, Vec<u8>)>,
    log: Vec<Wire>,
    lose: Lose,
    sent: usize,
}

impl Net {
    fn new(uac: UacConfig, uas: UasConfig) -> Net {
        Net {
            now: 0,
            uac: Uac::new(uac),
            uas: Uas::new(uas),
            delay: MS,
            in_flight: Vec::new(),
            log: Vec::new(),
            lose: Box::new(|_, _| false),
            sent: 0,
        }
    }

    fn collect(&mut self, out: &mut Out, to_uas: bool) {
        for t in out.list.clone() {
            let bytes = out.bytes(&t).to_vec();
            let w = Wire {
                at: self.now,
                to_uas,
                dest: t.dest,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let n = self.sent;
            self.sent += 1;
            let lost = (self.lose)(n, &w);
            self.log.push(w);
            if !lost {
                self.in_flight
                    .push((self.now + self.delay, to_uas, t.dest, bytes));
            }
        }
        out.clear();
    }

    fn start(&mut self) {
        let mut out = Out::default();
        let now = self.now;
        assert!(self.uac.start_call(now, now, &mut out));
        self.collect(&mut out, true);
    }

    /// Run until nothing is in flight and no timer is due before `until`.
    fn run_until(&mut self, until: Micros) {
        let mut out = Out::default();
        for _ in 0..1_000_000 {
            let next_msg = self.in_flight.iter().map(|m| m.0).min();
            let next = [next_msg, self.uac.next_deadline(), self.uas.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&t| t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let due: Vec<_> = {
                let (due, rest): (Vec<_>, Vec<_>) =
                    self.in_flight.drain(..).partition(|m| m.0 <= now);
                self.in_flight = rest;
                due
            };
            for (_, to_uas, _, bytes) in due {
                if to_uas {
                    self.uas
                        .on_datagram(now, now, 0, a("127.0.0.1:6000"), &bytes, &mut out);
                    self.collect(&mut out, false);
                } else {
                    self.uac
                        .on_datagram(now, now, 0, a("127.0.0.1:7000"), &bytes, &mut out);
                    self.collect(&mut out, true);
                }
            }
            self.uac.on_timeout(now, &mut out);
            self.collect(&mut out, true);
            self.uas.on_timeout(now, &mut out);
            self.collect(&mut out, false);
        }
        panic!("network did not settle");
    }

    fn lines(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|w| format!("{} {}", if w.to_uas { ">" } else { "<" }, w.first_line()))
            .collect()
    }
}

fn count(h: &Stats, l: Lat) -> u64 {
    h.hist(l).map_or(0, |h| h.len())
}

#[test]
fn basic_call_direct() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    net.start();
    net.run_until(60 * SEC);
    let lines = net.lines();
    assert_eq!(
        lines,
        [
            "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 180 Ringing",
            "< SIP/2.0 200 OK",
            "> ACK sip:127.0.0.1:7000 SIP/2.0",
            "> BYE sip:127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 200 OK",
        ]
    );
    // The BYE left at the end of the 2 s hold, 2 ms after the INVITE (1 ms each way).
    assert_eq!(net.log[4].at, 2 * MS + 2 * SEC);
    let s = net.uac.stats();
    assert_eq!(
        (s.started, s.succeeded, s.failed, s.retransmissions),
        (1, 1, 0, 0)
    );
    assert_eq!(count(s, Lat::Ringing), 1);
    assert_eq!(count(s, Lat::Answer), 1);
    assert_eq!(count(s, Lat::Bye), 1);
    assert_eq!(count(s, Lat::Trying), 0);
    // 2 ms round trip, measured from the intended time.
    assert_eq!(s.hist(Lat::Answer).unwrap().max(), 2000);
    let u = net.uas.stats();
    assert_eq!(
        (u.uas_calls, u.uas_completed, u.uas_answered[200]),
        (1, 1, 1)
    );
    assert_eq!(net.uac.active(), 0);
    assert_eq!(net.uas.active(), 0);
    // Dialog identifiers are consistent: the BYE carries the UAS's To tag.
    let tag_200 = net.log[2].header("To")[0].clone();
    assert!(tag_200.contains(";tag="));
    assert_eq!(net.log[4].header("To")[0], tag_200);
}

#[test]
fn timer_a_doubles_and_timer_b_fails_the_call() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    net.lose = Box::new(|_, w| w.to_uas); // the UAS never hears anything
    net.start();
    net.run_until(120 * SEC);
    let times: Vec<Micros> = net.log.iter().map(|w| w.at / MS).collect();
    // INVITE at 0, then T1, 2T1, 4T1, ... (RFC 3261 17.1.1.2); Timer B at 64*T1 = 32 s.
    assert_eq!(times, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    let s = net.uac.stats();
    assert_eq!(s.retransmissions, 6);
    assert_eq!(s.fail[Fail::TimeoutInvite as usize], 1);
    assert_eq!(net.uac.active(), 0);
}

#[test]
fn timer_e_caps_at_t2_and_timer_f_fails_the_bye() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    net.lose = Box::new(|_, w| w.first_line().starts_with("BYE"));
    net.start();
    net.run_until(120 * SEC);
    let byes: Vec<Micros> = net
        .log
        .iter()
        .filter(|w| w.first_line().starts_with("BYE"))
        .map(|w| (w.at - net.log[4].at) / MS)
        .collect();
    assert_eq!(
        byes,
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let s = net.uac.stats();
    assert_eq!(s.fail[Fail::TimeoutBye as usize], 1);
    assert_eq!(s.succeeded, 0);
}

#[test]
fn uas_retransmits_2xx_until_ack_and_uac_acks_each() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    // Lose the first two ACKs: the UAS retransmits its 200, the UAC ACKs every copy.
    let mut acks = 0;
    net.lose = Box::new(move |_, w| {
        if w.first_line().starts_with("ACK") {
            acks += 1;
            return acks <= 2;
        }
        false
    });
    net.start();
    net.run_until(60 * SEC);
    let oks: Vec<Micros> = net
        .log
        .iter()
        .filter(|w| w.first_line() == "SIP/2.0 200 OK" && w.header("CSeq")[0].ends_with("INVITE"))
        .map(|w| w.at / MS)
        .collect();
    assert_eq!(oks, [1, 501, 1501]);
    let acks: Vec<_> = net
        .log
        .iter()
        .filter(|w| w.first_line().starts_with("ACK"))
        .collect();
    assert_eq!(acks.len(), 3);
    // Each ACK for a 2xx is a new transaction with its own branch, the same for every copy.
    assert_eq!(acks[0].header("Via"), acks[2].header("Via"));
    assert_eq!(net.uac.stats().succeeded, 1);
    assert_eq!(net.uas.stats().retransmissions, 2);
    assert_eq!(net.uas.stats().uas_completed, 1);
}

#[test]
fn uas_gives_up_without_ack_timer_h() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    net.lose =
        Box::new(|_, w| w.first_line().starts_with("ACK") || w.first_line().starts_with("BYE"));
    net.start();
    net.run_until(200 * SEC);
    let u = net.uas.stats();
    assert_eq!(u.fail[Fail::UasNoAck as usize], 1);
    assert_eq!(net.uas.active(), 0);
}

#[test]
fn retransmitted_invite_gets_the_last_response() {
    let mut net = Net::new(
        uac_cfg(UacScenario::Call),
        UasConfig {
            ring: 10 * SEC,
            ..uas_cfg()
        },
    );
    // Lose the 100 and 180: the UAC keeps retransmitting; each copy is answered with the 180.
    let mut n = 0;
    net.lose = Box::new(move |_, w| {
        if !w.to_uas && (w.first_line().contains(" 100 ") || w.first_line().contains(" 180 ")) {
            n += 1;
            return n <= 2;
        }
        false
    });
    net.start();
    net.run_until(SEC);
    let l = net.lines();
    assert_eq!(l[0], "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0");
    assert_eq!(l[1], "< SIP/2.0 100 Trying");
    assert_eq!(l[2], "< SIP/2.0 180 Ringing");
    assert_eq!(l[3], "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0");
    assert_eq!(l[4], "< SIP/2.0 180 Ringing");
    assert_eq!(l.len(), 5, "{l:?}");
    assert_eq!(net.uas.stats().uas_calls, 1);
    net.run_until(60 * SEC);
    assert_eq!(net.uac.stats().succeeded, 1);
    assert_eq!(count(net.uac.stats(), Lat::Trying), 0);
    assert_eq!(count(net.uac.stats(), Lat::Ringing), 1);
}

#[test]
fn non_2xx_is_acked_hop_by_hop_and_counted() {
    let mut uas = uas_cfg();
    uas.answer = vec![Answer {
        code: 486,
        weight: 1,
    }];
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas);
    // Lose the first ACK: the 486 is retransmitted (Timer G) and ACKed again.
    let mut first = true;
    net.lose = Box::new(move |_, w| {
        if w.first_line().starts_with("ACK") && first {
            first = false;
            return true;
        }
        false
    });
    net.start();
    net.run_until(60 * SEC);
    let l = net.lines();
    assert_eq!(l[2], "< SIP/2.0 486 Busy Here");
    assert_eq!(l[3], "> ACK sip:2125551234@127.0.0.1:7000 SIP/2.0");
    assert_eq!(l[4], "< SIP/2.0 486 Busy Here");
    assert_eq!(l[5], "> ACK sip:2125551234@127.0.0.1:7000 SIP/2.0");
    assert_eq!(l.len(), 6);
    let invite = &net.log[0];
    let ack = &net.log[3];
    // Same branch as the INVITE, To with the tag of the 486, CSeq method ACK.
    assert_eq!(invite.header("Via"), ack.header("Via"));
    assert_eq!(ack.header("To"), net.log[2].header("To"));
    assert_eq!(ack.header("CSeq"), ["1 ACK"]);
    let s = net.uac.stats();
    assert_eq!(s.fail_code[CodeOf::Invite as usize][486], 1);
    assert_eq!(s.failed, 1);
    assert_eq!(net.uas.stats().uas_answered[486], 1);
    assert_eq!(net.uas.active(), 0);
}

/// Drive the UAC alone with hand-written responses.
fn reply(
    uac: &mut Uac,
    now: Micros,
    invite: &str,
    status: &str,
    extra: &str,
    to_tag: &str,
) -> Vec<Wire> {
    let inv = Msg::parse(invite.as_bytes()).unwrap();
    let g = |s| String::from_utf8_lossy(inv.get(s)).into_owned();
    let via: Vec<_> = inv
        .lines_named(b"Via")
        .map(|l| String::from_utf8_lossy(inv.get(l.line)).into_owned())
        .collect();
    let text = format!(
        "SIP/2.0 {status}\r\n{}\r\n{extra}From: {}\r\nTo: {};tag={to_tag}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        via.join("\r\n"),
        g(inv.from),
        g(inv.to),
        g(inv.call_id)
    );
    let mut out = Out::default();
    uac.on_datagram(now, now, 0, a("127.0.0.2:5060"), text.as_bytes(), &mut out);
    out.list
        .iter()
        .map(|t| Wire {
            at: now,
            to_uas: true,
            dest: t.dest,
            text: String::from_utf8_lossy(out.bytes(t)).into_owned(),
        })
        .collect()
}

#[test]
fn ack_and_bye_follow_the_record_route_set() {
    let mut cfg = uac_cfg(UacScenario::Call);
    cfg.target = a("127.0.0.2:5060");
    let mut uac = Uac::new(cfg);
    let mut out = Out::default();
    assert!(uac.start_call(0, 0, &mut out));
    let invite = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    assert_eq!(out.list[0].dest, a("127.0.0.2:5060"));
    let rr = "Record-Route: <sip:127.0.0.2:5060;lr>\r\nRecord-Route: <sip:127.0.0.3:5062;lr;ftag=x>\r\nContact: <sip:uas@127.0.0.9:7000>\r\n";
    let sent = reply(&mut uac, 3 * MS, &invite, "200 OK", rr, "uas1");
    assert_eq!(sent.len(), 1);
    let ack = &sent[0];
    assert_eq!(ack.first_line(), "ACK sip:uas@127.0.0.9:7000 SIP/2.0");
    // The route set is the Record-Route reversed; the ACK goes to its first entry.
    assert_eq!(
        ack.header("Route"),
        ["<sip:127.0.0.3:5062;lr;ftag=x>", "<sip:127.0.0.2:5060;lr>"]
    );
    assert_eq!(ack.dest, a("127.0.0.3:5062"));
    assert!(ack.header("To")[0].ends_with(";tag=uas1"));
    // A retransmitted 2xx is ACKed again, identically.
    let again = reply(&mut uac, 600 * MS, &invite, "200 OK", rr, "uas1");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].text, ack.text);
    // After the hold, the BYE takes the same route.
    let mut out = Out::default();
    uac.on_timeout(3 * MS + 2 * SEC, &mut out);
    assert_eq!(out.list.len(), 1);
    let bye = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    assert!(bye.starts_with("BYE sip:uas@127.0.0.9:7000 SIP/2.0\r\n"));
    assert!(
        bye.contains("Route: <sip:127.0.0.3:5062;lr;ftag=x>\r\nRoute: <sip:127.0.0.2:5060;lr>\r\n")
    );
    assert!(bye.contains("CSeq: 2 BYE\r\n"));
    assert_eq!(out.list[0].dest, a("127.0.0.3:5062"));
}

#[test]
fn two_xx_without_usable_contact_fails_the_call() {
    let mut uac = Uac::new(uac_cfg(UacScenario::Call));
    let mut out = Out::default();
    assert!(uac.start_call(0, 0, &mut out));
    let invite = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    let sent = reply(
        &mut uac,
        MS,
        &invite,
        "200 OK",
        "Contact: <sip:uas@gateway.example>\r\n",
        "t",
    );
    assert!(sent.is_empty());
    assert_eq!(uac.stats().fail[Fail::BadTarget as usize], 1);
}

#[test]
fn cancel_before_answer() {
    let mut net = Net::new(
        uac_cfg(UacScenario::Cancel),
        UasConfig {
            ring: 10 * SEC,
            ..uas_cfg()
        },
    );
    net.start();
    net.run_until(60 * SEC);
    let l = net.lines();
    assert_eq!(
        l,
        [
            "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 100 Trying",
            "< SIP/2.0 180 Ringing",
            "> CANCEL sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 200 OK",
            "< SIP/2.0 487 Request Terminated",
            "> ACK sip:2125551234@127.0.0.1:7000 SIP/2.0",
        ]
    );
    // The CANCEL has the INVITE's branch and CSeq number (RFC 3261 9.1).
    assert_eq!(net.log[3].header("Via"), net.log[0].header("Via"));
    assert_eq!(net.log[3].header("CSeq"), ["1 CANCEL"]);
    assert_eq!(net.log[3].at, 2 * MS + 100 * MS); // provisional back at 2 ms
    assert_eq!(net.uac.stats().succeeded, 1);
    assert_eq!(net.uas.stats().uas_answered[487], 1);
    assert_eq!((net.uac.active(), net.uas.active()), (0, 0));
}

#[test]
fn never_answering_uas_and_answer_timeout() {
    let mut cfg = uac_cfg(UacScenario::Call);
    cfg.answer_timeout = 5 * SEC;
    let mut net = Net::new(
        cfg,
        UasConfig {
            never: true,
            ..uas_cfg()
        },
    );
    net.start();
    net.run_until(60 * SEC);
    let l = net.lines();
    assert_eq!(l[3], "> CANCEL sip:2125551234@127.0.0.1:7000 SIP/2.0");
    assert_eq!(net.log[3].at, 2 * MS + 5 * SEC);
    assert_eq!(l[5], "< SIP/2.0 487 Request Terminated");
    assert_eq!(net.uac.stats().fail[Fail::NoAnswer as usize], 1);
    assert_eq!(net.uac.stats().succeeded, 0);
}

#[test]
fn answer_mix_is_exact_per_cycle() {
    let mut uas = uas_cfg();
    uas.answer = vec![
        Answer {
            code: 200,
            weight: 2,
        },
        Answer {
            code: 503,
            weight: 1,
        },
        Answer {
            code: 404,
            weight: 1,
        },
    ];
    let codes: Vec<u16> = (0..8).map(|n| uas.code_for(n)).collect();
    assert_eq!(codes, [200, 200, 503, 404, 200, 200, 503, 404]);
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas);
    for i in 0..8 {
        net.now = i * 10 * MS;
        net.start();
        net.run_until(net.now + 5 * MS);
    }
    net.run_until(100 * SEC);
    let s = net.uac.stats();
    assert_eq!(s.succeeded, 4);
    assert_eq!(s.fail_code[CodeOf::Invite as usize][503], 2);
    assert_eq!(s.fail_code[CodeOf::Invite as usize][404], 2);
}

#[test]
fn options_load() {
    let mut net = Net::new(uac_cfg(UacScenario::Options), uas_cfg());
    net.start();
    net.run_until(10 * SEC);
    assert_eq!(
        net.lines(),
        [
            "> OPTIONS sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 200 OK"
        ]
    );
    assert_eq!(net.uac.stats().succeeded, 1);
    assert_eq!(count(net.uac.stats(), Lat::Options), 1);
}

#[test]
fn unknown_dialog_bye_gets_481() {
    let mut uas = Uas::new(uas_cfg());
    let mut out = Out::default();
    let bye = "BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: nope\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    uas.on_datagram(0, 0, 0, a("127.0.0.1:6000"), bye.as_bytes(), &mut out);
    let r = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    assert!(r.starts_with("SIP/2.0 481 "));
    assert!(r.contains("Call-ID: nope\r\n"));
    assert_eq!(out.list[0].dest, a("127.0.0.1:6000"));
}

#[test]
fn garbage_is_counted_not_fatal() {
    let mut uas = Uas::new(uas_cfg());
    let mut uac = Uac::new(uac_cfg(UacScenario::Call));
    let mut out = Out::default();
    for g in [
        &b""[..],
        b"\x00\xff",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE x SIP/2.0\r\nCall-ID: 1\r\n\r\n",
    ] {
        uas.on_datagram(0, 0, 0, a("127.0.0.1:1"), g, &mut out);
        uac.on_datagram(0, 0, 0, a("127.0.0.1:1"), g, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(uas.stats().parse_errors, 4);
    assert_eq!(uac.stats().parse_errors, 4);
}

#[test]
fn lossy_network_still_completes_every_call() {
    let mut net = Net::new(uac_cfg(UacScenario::Call), uas_cfg());
    net.lose = Box::new(|n, _| n % 5 == 3); // every fifth datagram, of every kind
    for i in 0..50 {
        net.now = i * 20 * MS;
        net.start();
        net.run_until(net.now + 10 * MS);
    }
    net.run_until(300 * SEC);
    let s = net.uac.stats();
    assert_eq!(s.started, 50);
    assert_eq!(s.succeeded, 50, "failures: {:?}", s.failures());
    assert!(s.retransmissions > 0);
    assert_eq!(net.uas.stats().uas_completed, 50);
    assert_eq!((net.uac.active(), net.uas.active()), (0, 0));
}

#[test]
fn uas_hangs_up_first() {
    let mut cfg = uac_cfg(UacScenario::Call);
    cfg.hold = 10 * SEC;
    let mut net = Net::new(
        cfg,
        UasConfig {
            hangup: Some(SEC),
            ..uas_cfg()
        },
    );
    net.start();
    net.run_until(60 * SEC);
    assert_eq!(
        net.lines(),
        [
            "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 180 Ringing",
            "< SIP/2.0 200 OK",
            "> ACK sip:127.0.0.1:7000 SIP/2.0",
            "< BYE sip:junction-load@127.0.0.1:6000 SIP/2.0",
            "> SIP/2.0 200 OK",
        ]
    );
    // One second after the ACK reached the UAS (3 ms), to the UAC's Contact.
    assert_eq!(net.log[4].at, 3 * MS + SEC);
    assert_eq!(net.log[4].dest, a("127.0.0.1:6000"));
    // From/To swapped: the BYE's From is the 200's To (with the UAS tag).
    assert_eq!(net.log[4].header("From"), net.log[2].header("To"));
    assert_eq!(net.log[4].header("To"), net.log[0].header("From"));
    assert_eq!(net.log[4].header("CSeq"), ["1 BYE"]);
    assert_eq!(net.uac.stats().succeeded, 1);
    assert_eq!(net.uas.stats().uas_completed, 1);
    assert_eq!((net.uac.active(), net.uas.active()), (0, 0));
}

#[test]
fn uas_bye_follows_the_record_route_and_is_retransmitted() {
    let mut uas = Uas::new(UasConfig {
        hangup: Some(SEC),
        ..uas_cfg()
    });
    let mut out = Out::default();
    let invite = "INVITE sip:x@127.0.0.1:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKp\r\n\
Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKa\r\nRecord-Route: <sip:127.0.0.2:5060;lr>\r\n\
Record-Route: <sip:127.0.0.5:5064;lr>\r\nFrom: <sip:a@x>;tag=aa\r\nTo: <sip:x@y>\r\nCall-ID: rr-1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:6000>\r\nContent-Length: 0\r\n\r\n";
    uas.on_datagram(0, 0, 0, a("127.0.0.2:5060"), invite.as_bytes(), &mut out);
    let ok = String::from_utf8_lossy(out.bytes(out.list.last().unwrap())).into_owned();
    let to = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    out.clear();
    let ack = format!("ACK sip:x@127.0.0.1:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKq\r\nFrom: <sip:a@x>;tag=aa\r\n{to}\r\nCall-ID: rr-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    uas.on_datagram(MS, MS, 0, a("127.0.0.2:5060"), ack.as_bytes(), &mut out);
    assert!(out.is_empty());
    uas.on_timeout(MS + SEC, &mut out);
    assert_eq!(out.list.len(), 1);
    let bye = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    assert!(
        bye.starts_with("BYE sip:a@127.0.0.1:6000 SIP/2.0\r\n"),
        "{bye}"
    );
    // The UAS's route set is the Record-Route in order; the BYE goes to its first entry.
    assert!(bye.contains("Route: <sip:127.0.0.2:5060;lr>\r\nRoute: <sip:127.0.0.5:5064;lr>\r\n"));
    assert_eq!(out.list[0].dest, a("127.0.0.2:5060"));
    assert!(bye.contains("\r\nTo: <sip:a@x>;tag=aa\r\n"));
    // Unanswered: retransmitted (Timer E), then given up (Timer F).
    out.clear();
    uas.on_timeout(MS + SEC + 500 * MS, &mut out);
    assert_eq!(out.list.len(), 1);
    assert_eq!(String::from_utf8_lossy(out.bytes(&out.list[0])), bye);
    for t in 0..100 {
        uas.on_timeout(MS + SEC + t * SEC, &mut out);
    }
    assert_eq!(uas.stats().fail[Fail::TimeoutBye as usize], 1);
    assert_eq!(uas.active(), 0);
}

// ---- RFC 7339 overload control (--oc) ------------------------------------------------------

fn oc_cfg(scenario: UacScenario) -> UacConfig {
    UacConfig {
        oc: true,
        target: a("127.0.0.2:5060"),
        ..uac_cfg(scenario)
    }
}

/// The request text of the `i`-th datagram in `out`.
fn text(out: &Out, i: usize) -> String {
    String::from_utf8_lossy(out.bytes(&out.list[i])).into_owned()
}

/// `request` as the server would answer it: its top Via with received, rport and the
/// overload-control parameters `oc_params` (e.g. "oc=100;oc-validity=5000;oc-seq=1.0").
fn with_server_via(request: &str, oc_params: &str) -> String {
    request.replacen(
        ";rport;oc\r\n",
        &format!(";rport=6000;received=127.0.0.1;{oc_params}\r\n"),
        1,
    )
}

#[test]
fn oc_puts_a_bare_oc_in_the_via_of_every_request() {
    let mut runs = Vec::new();
    for scenario in [UacScenario::Call, UacScenario::Cancel, UacScenario::Options] {
        let mut uas = uas_cfg();
        if scenario == UacScenario::Cancel {
            uas.ring = 10 * SEC;
        }
        runs.push((scenario, uas));
    }
    let mut busy = uas_cfg();
    busy.answer = vec![Answer {
        code: 486,
        weight: 1,
    }];
    runs.push((UacScenario::Call, busy));
    let mut methods = Vec::new();
    for (i, (scenario, uas)) in runs.into_iter().enumerate() {
        let mut net = Net::new(
            UacConfig {
                oc: true,
                ..uac_cfg(scenario)
            },
            uas,
        );
        net.start();
        net.run_until(60 * SEC);
        // Every call completes (the 486 run: as a failure), none is withheld.
        let s = net.uac.stats();
        assert_eq!(
            (s.succeeded, s.failed, s.throttled),
            (u64::from(i < 3), u64::from(i == 3), 0)
        );
        for w in net.log.iter().filter(|w| w.to_uas) {
            let via = w.header("Via");
            assert_eq!(via.len(), 1, "{}", w.text);
            assert!(via[0].ends_with(";rport;oc"), "{}", w.text);
            methods.push(w.first_line().split(' ').next().unwrap_or("").to_string());
        }
    }
    methods.sort();
    methods.dedup();
    assert_eq!(methods, ["ACK", "BYE", "CANCEL", "INVITE", "OPTIONS"]);
}

#[test]
fn oc_100_withholds_new_calls_but_not_the_requests_of_calls_in_progress() {
    let mut uac = Uac::new(oc_cfg(UacScenario::Call));
    let mut out = Out::default();
    // Two calls out before the server says anything.
    assert!(uac.start_call(0, 0, &mut out));
    assert!(uac.start_call(0, 0, &mut out));
    let (inv_a, inv_b) = (text(&out, 0), text(&out, 1));
    assert!(inv_a.contains(";rport;oc\r\n"), "{inv_a}");
    // Call B is refused 486, and the response says: withhold every new call for 5 s.
    let oc = "oc=100;oc-algo=\"loss\";oc-validity=5000;oc-seq=1732780000.123";
    let sent = reply(
        &mut uac,
        MS,
        &with_server_via(&inv_b, oc),
        "486 Busy Here",
        "",
        "b",
    );
    // Its ACK still goes out, with the INVITE's own Via (a bare oc, not the server's value).
    assert_eq!(sent.len(), 1);
    assert!(sent[0].first_line().starts_with("ACK "));
    let invite_via = inv_b.lines().find_map(|l| l.strip_prefix("Via: ")).unwrap();
    assert_eq!(sent[0].header("Via"), [invite_via]);
    // New calls: none sent, each counted throttled (and started), none failed.
    for t in [2 * MS, 3 * MS, SEC, 4 * SEC] {
        let mut out = Out::default();
        assert!(!uac.start_call(t, t, &mut out));
        assert!(out.list.is_empty());
    }
    let s = uac.stats();
    assert_eq!(
        (s.started, s.throttled, s.failed, s.succeeded),
        (6, 4, 1, 0)
    );
    assert_eq!(uac.active(), 1);
    // Call A, in progress, still retransmits its INVITE (Timer A) ...
    let mut out = Out::default();
    uac.on_timeout(500 * MS, &mut out);
    assert_eq!(out.list.len(), 1);
    assert!(text(&out, 0).starts_with("INVITE "));
    assert_eq!(uac.stats().retransmissions, 1);
    // ... is answered (the 200 repeats the value: same seq, still in force) and ACKed ...
    let contact = "Contact: <sip:uas@127.0.0.9:7000>\r\n";
    let sent = reply(
        &mut uac,
        600 * MS,
        &with_server_via(&inv_a, oc),
        "200 OK",
        contact,
        "a",
    );
    assert_eq!(sent.len(), 1);
    assert!(sent[0]
        .first_line()
        .starts_with("ACK sip:uas@127.0.0.9:7000 "));
    assert!(sent[0].header("Via")[0].ends_with(";rport;oc"));
    // ... and hangs up after the hold.
    let mut out = Out::default();
    uac.on_timeout(600 * MS + 2 * SEC, &mut out);
    assert_eq!(out.list.len(), 1);
    assert!(text(&out, 0).starts_with("BYE "));
    // The reduction ends 5 s after the last value arrived (600 ms): new calls go out again.
    let mut out = Out::default();
    assert!(!uac.start_call(5 * SEC + 599 * MS, 5 * SEC + 599 * MS, &mut out));
    assert!(uac.start_call(5 * SEC + 600 * MS, 5 * SEC + 600 * MS, &mut out));
    assert_eq!(out.list.len(), 1);
    assert!(text(&out, 0).starts_with("INVITE "));
    let s = uac.stats();
    assert_eq!((s.started, s.throttled), (8, 5));
}

#[test]
fn oc_25_withholds_one_new_call_in_four() {
    let mut uac = Uac::new(oc_cfg(UacScenario::Options));
    let mut out = Out::default();
    assert!(uac.start_call(0, 0, &mut out));
    let first = text(&out, 0);
    let via = with_server_via(&first, "OC-SEQ=3.5;OC=25;OC-VALIDITY=60000");
    let m = Msg::parse(via.as_bytes()).unwrap();
    let g = |s| String::from_utf8_lossy(m.get(s)).into_owned();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=x\r\nCall-ID: {}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        g(m.top_via),
        g(m.from),
        g(m.to),
        g(m.call_id)
    );
    let mut out = Out::default();
    uac.on_datagram(MS, MS, 0, a("127.0.0.2:5060"), ok.as_bytes(), &mut out);
    assert!(out.list.is_empty());
    assert_eq!(uac.stats().succeeded, 1);
    let mut out = Out::default();
    let sent = (0..100)
        .filter(|i| uac.start_call(2 * MS + i, 2 * MS + i, &mut out))
        .count();
    assert_eq!(sent, 75);
    assert_eq!(out.list.len(), 75);
    assert_eq!(uac.stats().throttled, 25);
    assert_eq!(uac.stats().started, 101);
}

#[test]
fn without_oc_the_via_is_unchanged_and_oc_values_are_ignored() {
    let mut cfg = uac_cfg(UacScenario::Call);
    cfg.target = a("127.0.0.2:5060");
    let mut uac = Uac::new(cfg);
    let mut out = Out::default();
    assert!(uac.start_call(0, 0, &mut out));
    let invite = text(&out, 0);
    assert!(invite.contains(";rport\r\n"), "{invite}");
    assert!(!invite.contains(";oc"));
    let server = invite.replacen(
        ";rport\r\n",
        ";rport=6000;received=127.0.0.1;oc=100;oc-validity=60000;oc-seq=1.0\r\n",
        1,
    );
    let sent = reply(&mut uac, MS, &server, "503 Service Unavailable", "", "x");
    // The non-2xx ACK copies the response's Via, as before.
    assert!(sent[0].header("Via")[0].ends_with("oc-seq=1.0"));
    let mut out = Out::default();
    for t in 1..=10 {
        assert!(uac.start_call(t * MS, t * MS, &mut out));
    }
    assert_eq!(out.list.len(), 10);
    assert_eq!(uac.stats().throttled, 0);
}

#[test]
fn an_overloaded_uas_answers_the_oc_offer_of_the_top_via_only() {
    use junction_load::ua::uas::answer_oc;
    let answer = |line: &str| {
        let mut out = Vec::new();
        answer_oc(line.as_bytes(), 40, 12 * SEC + 345_678, &mut out);
        String::from_utf8(out).unwrap()
    };
    let stamp = ";oc=40;oc-algo=\"loss\";oc-validity=500;oc-seq=12.34567";
    assert_eq!(
        answer("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKj1;rport;oc"),
        format!("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKj1;rport{stamp}")
    );
    // In the middle, any case; the next via-parm's offer is not ours to answer.
    assert_eq!(
        answer("Via: SIP/2.0/UDP h;OC;branch=z9hG4bKj1, SIP/2.0/UDP g;oc"),
        format!("Via: SIP/2.0/UDP h{stamp};branch=z9hG4bKj1, SIP/2.0/UDP g;oc")
    );
    // No offer (or only oc-algo, or a value already): left as it is.
    for same in [
        "Via: SIP/2.0/UDP h;branch=z9hG4bKj1",
        "Via: SIP/2.0/UDP h;oc-algo=\"loss\";branch=z9hG4bKj1",
        "Via: SIP/2.0/UDP h;oc=20;branch=z9hG4bKj1",
        "Via: SIP/2.0/UDP h;branch=z9hG4bKj1, SIP/2.0/UDP g;oc",
    ] {
        assert_eq!(answer(same), same);
    }
}
