//! SIPp scenario files: the accepted subset, the refusals (each naming the element), and the
//! interpreter with virtual time, including its retransmission rules.

use junction_load::scenario::parse::parse;
use junction_load::scenario::run::{Env, ScenarioEngine};
use junction_load::scenario::template::Kw;
use junction_load::scenario::{Expect, Optional, Role, Scenario, Step};
use junction_load::stats::{Fail, Lat};
use junction_load::time::{Micros, Timers, MS, SEC};
use junction_load::ua::out::Out;
use junction_load::ua::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The repository's SIPp scenario files (tests/data/sipp).
fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sipp")
}

fn load(name: &str) -> Scenario {
    junction_load::scenario::load(&sipp_dir().join(name)).unwrap()
}

fn wrap(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n<scenario name=\"t\">\n{body}\n</scenario>\n")
}

const SEND_INVITE: &str = "<send retrans=\"500\"><![CDATA[\nINVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\nCall-ID: [call_id]\nCSeq: [cseq] INVITE\nContent-Length: 0\n]]></send>";

#[test]
fn accepts_the_record_route_scenarios() {
    let uac = load("uac-rr.xml");
    assert_eq!(uac.role, Role::Uac);
    assert_eq!(uac.name, "junction test caller (record-route aware)");
    // send, 4 recv, send ACK, pause, send BYE, recv 200
    assert_eq!(uac.steps.len(), 9);
    assert!(matches!(
        uac.steps[1],
        Step::Recv {
            expect: Expect::Response(100),
            optional: Optional::Global,
            advance: false,
            ..
        }
    ));
    assert!(matches!(
        uac.steps[4],
        Step::Recv {
            expect: Expect::Response(200),
            rrs: true,
            ..
        }
    ));
    assert!(matches!(uac.steps[6], Step::Pause { ms: None, .. }));
    let Step::Send { msg, retrans, .. } = &uac.steps[0] else {
        panic!()
    };
    assert_eq!(*retrans, Some(500 * MS));
    assert!(msg.uses(&Kw::Len) && msg.uses(&Kw::CallId) && msg.uses(&Kw::Branch));
    let Step::Send { msg, .. } = &uac.steps[5] else {
        panic!()
    };
    assert!(msg.uses(&Kw::Routes) && msg.uses(&Kw::NextUrl) && msg.uses(&Kw::PeerTagParam));
    let uas = load("uas-rr.xml");
    assert_eq!(uas.role, Role::Uas);
    assert!(matches!(uas.steps.last(), Some(Step::Timewait { ms }) if *ms == 4 * SEC));
    let Step::Send { msg, .. } = &uas.steps[1] else {
        panic!()
    };
    assert!(msg.uses(&Kw::Last(b"Record-Route".to_vec())));
}

#[test]
fn accepts_labels_jumps_nop_and_timeouts() {
    let sc = parse(
        wrap(&format!(
            "{SEND_INVITE}\n<recv response=\"200\" timeout=\"2000\" ontimeout=\"out\"/>\n<nop next=\"out\"/>\n<pause milliseconds=\"5\"/>\n<label id=\"out\"/>\n<nop/>\n<ResponseTimeRepartition value=\"1, 2\"/>"
        ))
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(sc.steps.len(), 5);
    assert!(
        matches!(sc.steps[1], Step::Recv { timeout: Some(t), on_timeout: Some(4), .. } if t == 2 * SEC)
    );
    assert!(matches!(sc.steps[2], Step::Nop { next: Some(4) }));
}

/// Each refused input and a piece of the message it must give.
#[test]
fn refuses_what_is_outside_the_subset_naming_it() {
    let cases: [(&str, &str); 12] = [
        ("<recv request=\"INVITE\"><action><ereg regexp=\"x\" search_in=\"msg\" assign_to=\"v\"/></action></recv>", "<action>"),
        ("<sendCmd><![CDATA[x]]></sendCmd>", "<sendCmd>: element not supported"),
        ("<recvCmd/>", "<recvCmd>"),
        ("<recv request=\".\" regexp_match=\"true\"/>", "regexp_match"),
        ("<nop test=\"v\" next=\"a\"/><label id=\"a\"/>", "attribute test=\"v\""),
        (&format!("{SEND_INVITE}<recv response=\"200\" chance=\"0.5\"/>"), "chance"),
        ("<recv request=\"INVITE\" optional=\"maybe\"/>", "optional=\"maybe\""),
        ("<recv response=\"abc\"/>", "response=\"abc\""),
        (&format!("{SEND_INVITE}<recv response=\"200\" next=\"nowhere\"/>"), "no such label"),
        // [fieldN] is taken (--inf); SIPp's several files or fixed lines are not.
        ("<send><![CDATA[\nINVITE sip:[field0 file=\"b.csv\"] SIP/2.0\n]]></send>", "[field0 file="),
        ("<pause milliseconds=\"soon\"/>", "<pause>"),
        ("<exec command=\"ls\"/>", "<exec>"),
    ];
    for (body, want) in cases {
        let e = parse(wrap(body).as_bytes()).unwrap_err();
        assert!(e.contains(want), "{body}\n  gave: {e}\n  wanted: {want}");
        assert!(e.contains("line "), "no line number in: {e}");
    }
    assert!(parse(b"<notscenario/>").unwrap_err().contains("<scenario>"));
    assert!(parse(b"<scenario><send>")
        .unwrap_err()
        .contains("not well-formed"));
    assert!(parse(wrap("").as_bytes()).unwrap_err().contains("no steps"));
    assert!(parse(wrap("<pause/>").as_bytes())
        .unwrap_err()
        .contains("first step"));
    // A scenario that relies on regular-expression matching (a registrar stand-in): refused,
    // with the file, the line and the attribute named.
    let dir = std::env::temp_dir().join(format!("jl-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("registrar.xml");
    std::fs::write(
        &file,
        "<?xml version=\"1.0\"?>\n<scenario name=\"registrar\">\n  \
         <recv request=\".\" regexp_match=\"true\"/>\n</scenario>\n",
    )
    .unwrap();
    let e = junction_load::scenario::load(&file).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        e.contains("registrar.xml: line 3: <recv>: attribute regexp_match"),
        "{e}"
    );
}

// ---- the interpreter, UAC scenario engine against UAS scenario engine, virtual time ------

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn env(local: &str, remote: Option<&str>) -> Env {
    Env {
        local: vec![a(local)],
        remote: remote.map(a),
        service: "2125551234".into(),
        pause: SEC,
        timers: Timers::default(),
        run_id: 0x77,
        worker: 0,
        quantum: 0,
        numbers: None,
        workers: 1,
    }
}

struct Pair {
    now: Micros,
    uac: ScenarioEngine,
    uas: ScenarioEngine,
    flight: Vec<(Micros, bool, Vec<u8>)>,
    log: Vec<(Micros, bool, String)>,
    lose: Box<dyn FnMut(&str) -> bool>,
}

impl Pair {
    fn new(uac: Scenario, uas: Scenario) -> Pair {
        Pair {
            now: 0,
            uac: ScenarioEngine::uac(Arc::new(uac), env("127.0.0.1:6000", Some("127.0.0.1:7000"))),
            uas: ScenarioEngine::uas(Arc::new(uas), env("127.0.0.1:7000", None)),
            flight: Vec::new(),
            log: Vec::new(),
            lose: Box::new(|_| false),
        }
    }

    fn take(&mut self, out: &mut Out, to_uas: bool) {
        for t in out.list.clone() {
            let b = out.bytes(&t).to_vec();
            let text = String::from_utf8_lossy(&b).into_owned();
            if to_uas {
                assert_eq!(t.dest, a("127.0.0.1:7000"));
            } else {
                assert_eq!(t.dest, a("127.0.0.1:6000"));
            }
            let lost = (self.lose)(&text);
            self.log.push((self.now, to_uas, text));
            if !lost {
                self.flight.push((self.now + MS, to_uas, b));
            }
        }
        out.clear();
    }

    fn run(&mut self, until: Micros) {
        let mut out = Out::default();
        for _ in 0..100_000 {
            let next = [
                self.flight.iter().map(|f| f.0).min(),
                self.uac.next_deadline(),
                self.uas.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(t) = next.filter(|&t| t <= until) else {
                return;
            };
            self.now = self.now.max(t);
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = self.flight.drain(..).partition(|f| f.0 <= now);
            self.flight = rest;
            for (_, to_uas, b) in due {
                if to_uas {
                    self.uas
                        .on_datagram(now, now, 0, a("127.0.0.1:6000"), &b, &mut out);
                    self.take(&mut out, false);
                } else {
                    self.uac
                        .on_datagram(now, now, 0, a("127.0.0.1:7000"), &b, &mut out);
                    self.take(&mut out, true);
                }
            }
            self.uac.on_timeout(now, &mut out);
            self.take(&mut out, true);
            self.uas.on_timeout(now, &mut out);
            self.take(&mut out, false);
        }
        panic!("did not settle");
    }

    fn first_lines(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|(_, up, t)| {
                format!(
                    "{} {}",
                    if *up { ">" } else { "<" },
                    t.lines().next().unwrap_or("")
                )
            })
            .collect()
    }
}

#[test]
fn record_route_scenarios_run_a_call() {
    let mut p = Pair::new(load("uac-rr.xml"), load("uas-rr.xml"));
    let mut out = Out::default();
    assert!(p.uac.start_call(0, 0, &mut out));
    p.take(&mut out, true);
    p.run(60 * SEC);
    assert_eq!(
        p.first_lines(),
        [
            "> INVITE sip:2125551234@127.0.0.1:7000 SIP/2.0",
            "< SIP/2.0 180 Ringing",
            "< SIP/2.0 200 OK",
            "> ACK sip:callee@127.0.0.1:7000;transport=UDP SIP/2.0",
            "> BYE sip:callee@127.0.0.1:7000;transport=UDP SIP/2.0",
            "< SIP/2.0 200 OK",
        ]
    );
    // The pause is the hold time of the environment (1 s), from the ACK.
    assert_eq!(p.log[4].0 - p.log[3].0, SEC);
    let invite = &p.log[0].2;
    let len: usize = invite
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let body = &invite[invite.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(len, body.len());
    assert!(body.starts_with("v=0\r\n"));
    // [peer_tag_param] put the UAS's tag into the ACK's To.
    let to_200 = p.log[2]
        .2
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    let to_ack = p.log[3]
        .2
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    assert!(to_200.contains(";tag="));
    assert_eq!(to_200.split(";tag=").nth(1), to_ack.split(";tag=").nth(1));
    // No Record-Route anywhere: the [last_Record-Route:] and [routes] lines are dropped whole.
    assert!(p
        .log
        .iter()
        .all(|(_, _, t)| !t.contains("Route") && !t.contains("\r\n\r\n\r\n")));
    let s = p.uac.stats();
    assert_eq!((s.started, s.succeeded, s.failed), (1, 1, 0));
    assert_eq!(s.hist(Lat::Answer).unwrap().len(), 1);
    assert_eq!(s.hist(Lat::Bye).unwrap().len(), 1);
    assert_eq!(p.uas.stats().uas_completed, 1);
    // The UAS keeps the call 4 s (timewait) and then forgets it.
    assert_eq!(p.uas.next_deadline(), None);
    assert_eq!(p.uas.active(), 0);
}

#[test]
fn scenario_retransmissions_recover_a_lost_ack() {
    let mut p = Pair::new(load("uac-rr.xml"), load("uas-rr.xml"));
    let mut first = true;
    p.lose = Box::new(move |t| {
        if t.starts_with("ACK") && first {
            first = false;
            return true;
        }
        false
    });
    // Hold 2 s so the lost ACK is recovered before the BYE.
    p.uac = ScenarioEngine::uac(
        Arc::new(load("uac-rr.xml")),
        Env {
            pause: 2 * SEC,
            ..env("127.0.0.1:6000", Some("127.0.0.1:7000"))
        },
    );
    let mut out = Out::default();
    assert!(p.uac.start_call(0, 0, &mut out));
    p.take(&mut out, true);
    p.run(60 * SEC);
    let l = p.first_lines();
    // 200 retransmitted by the UAS (retrans=500) at 500 ms; the UAC answers the copy with
    // its ACK again (the same bytes).
    assert_eq!(l[4], "< SIP/2.0 200 OK");
    assert_eq!(
        l[5],
        "> ACK sip:callee@127.0.0.1:7000;transport=UDP SIP/2.0"
    );
    assert_eq!(p.log[4].0, 2 * MS + 500 * MS - MS);
    assert_eq!(p.log[3].2, p.log[5].2);
    assert_eq!(p.uac.stats().succeeded, 1);
    assert_eq!(p.uas.stats().uas_completed, 1);
}

#[test]
fn scenario_invite_timeout_and_unexpected_message() {
    let sc = parse(wrap(&format!("{SEND_INVITE}<recv response=\"200\"/>")).as_bytes()).unwrap();
    let mut uac = ScenarioEngine::uac(Arc::new(sc), env("127.0.0.1:6000", Some("127.0.0.1:7000")));
    let mut out = Out::default();
    assert!(uac.start_call(0, 0, &mut out));
    let mut sends = vec![0];
    out.clear();
    for _ in 0..100 {
        let Some(t) = uac.next_deadline() else { break };
        uac.on_timeout(t, &mut out);
        if !out.is_empty() {
            sends.push(t / MS);
        }
        out.clear();
    }
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(uac.stats().fail[Fail::TimeoutInvite as usize], 1);

    // A 486 where a 200 is expected fails the call as unexpected.
    let sc = parse(wrap(&format!("{SEND_INVITE}<recv response=\"200\"/>")).as_bytes()).unwrap();
    let mut uac = ScenarioEngine::uac(Arc::new(sc), env("127.0.0.1:6000", Some("127.0.0.1:7000")));
    assert!(uac.start_call(0, 0, &mut out));
    let invite = String::from_utf8_lossy(out.bytes(&out.list[0])).into_owned();
    let cid = invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap()
        .to_string();
    out.clear();
    let busy = format!(
        "SIP/2.0 486 Busy Here\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    uac.on_datagram(MS, MS, 0, a("127.0.0.1:7000"), busy.as_bytes(), &mut out);
    assert_eq!(uac.stats().fail[Fail::Unexpected as usize], 1);
    assert_eq!(uac.active(), 0);
}
