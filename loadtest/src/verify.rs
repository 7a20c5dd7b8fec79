//! Verification at load: did each call go where the route plan says?
//!
//! A named UAS (`uas --listen ADDR --name TRUNK`, several per process) adds to every response
//! to an INVITE what reached it: `X-JL-Reached: TRUNK;called=USER;calling=USER` (the user
//! parts of the Request-URI and the From). junction, a proxy, relays the response unchanged,
//! so the UAC (`--expect FILE`, the calls and their expected outcome from `junction route-test
//! --format tsv`) compares the first final response of each call with its line of the file.
//! Nothing is shared between the two processes but the messages themselves.

use crate::numbers::{Expectation, Outcome};

/// What became of one call, against its expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As planned: the first attempt's trunk with its numbers, or the expected answer.
    Ok,
    /// A later attempt's trunk with that attempt's numbers (the first was busy, down or at a
    /// limit, or a round-robin route started elsewhere): not an error of the plan.
    LaterAttempt,
    /// A trunk the call has no attempt for (or a call that should have been answered by
    /// junction reached a trunk).
    WrongTrunk,
    /// One of its trunks, but not with the numbers that trunk must receive.
    WrongNumbers,
    /// junction answered with another code than the plan says (a call planned for an answer).
    WrongAnswer,
    /// Planned to reach a trunk, but answered without reaching one (404, 503, timeouts...).
    NotDelivered,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Ok,
        Verdict::LaterAttempt,
        Verdict::WrongTrunk,
        Verdict::WrongNumbers,
        Verdict::WrongAnswer,
        Verdict::NotDelivered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "as planned",
            Verdict::LaterAttempt => "reached a later attempt's trunk",
            Verdict::WrongTrunk => "wrong trunk",
            Verdict::WrongNumbers => "wrong numbers",
            Verdict::WrongAnswer => "wrong answer",
            Verdict::NotDelivered => "not delivered",
        }
    }

    /// Misrouted: a route plan run fails on these.
    pub fn is_misrouted(self) -> bool {
        matches!(
            self,
            Verdict::WrongTrunk | Verdict::WrongNumbers | Verdict::WrongAnswer
        )
    }
}

/// `TRUNK;called=X;calling=Y` split into its parts (calling `None` when absent).
pub struct Reached<'a> {
    pub trunk: &'a str,
    pub called: &'a str,
    pub calling: Option<&'a str>,
}

pub fn parse_reached(v: &[u8]) -> Option<Reached<'_>> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let mut parts = v.split(';');
    let trunk = parts.next()?.trim();
    let mut called = "";
    let mut calling = None;
    for p in parts {
        match p.trim().split_once('=') {
            Some(("called", x)) => called = x,
            Some(("calling", x)) => calling = Some(x),
            _ => {}
        }
    }
    Some(Reached {
        trunk,
        called,
        calling,
    })
}

/// Judge a call from its first final response: `reached` is the X-JL-Reached value, if any.
pub fn judge(e: &Expectation, reached: Option<&[u8]>, code: u16) -> Verdict {
    let reached = reached.and_then(parse_reached);
    match (&e.outcome, reached) {
        (Outcome::Answer(_), Some(_)) => Verdict::WrongTrunk,
        (Outcome::Answer(want), None) if *want == code => Verdict::Ok,
        (Outcome::Answer(_), None) => Verdict::WrongAnswer,
        (Outcome::Route(_), None) => Verdict::NotDelivered,
        (Outcome::Route(attempts), Some(r)) => {
            let Some(i) = attempts.iter().position(|a| a.trunk == r.trunk) else {
                return Verdict::WrongTrunk;
            };
            let Some(a) = attempts.get(i) else {
                return Verdict::WrongTrunk;
            };
            if a.called != r.called || a.calling.as_deref() != r.calling {
                Verdict::WrongNumbers
            } else if i == 0 {
                Verdict::Ok
            } else {
                Verdict::LaterAttempt
            }
        }
    }
}

/// One line for the report: what the call was, what was expected, what happened.
pub fn example(e: &Expectation, reached: Option<&[u8]>, code: u16) -> String {
    let sent = format!(
        "called {} calling {}",
        e.called,
        e.calling.as_deref().unwrap_or("-")
    );
    let want = match &e.outcome {
        Outcome::Answer(0) => "dropped".to_string(),
        Outcome::Answer(c) => format!("answer {c}"),
        Outcome::Route(a) => {
            let list: Vec<String> = a
                .iter()
                .map(|a| {
                    format!(
                        "{}({},{})",
                        a.trunk,
                        a.called,
                        a.calling.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            list.join(" ")
        }
    };
    let got = match reached.and_then(parse_reached) {
        Some(r) => format!(
            "{}({},{}) answered {code}",
            r.trunk,
            r.called,
            r.calling.unwrap_or("-")
        ),
        None => format!("answered {code} without reaching a trunk"),
    };
    format!("{sent}: expected {want}; got {got}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::Attempt;

    fn routed() -> Expectation {
        Expectation {
            from: "carrier".into(),
            called: "2125551234".into(),
            calling: Some("3105550000".into()),
            outcome: Outcome::Route(vec![
                Attempt {
                    trunk: "gw-a".into(),
                    called: "2125551234".into(),
                    calling: Some("3105550000".into()),
                },
                Attempt {
                    trunk: "gw-b".into(),
                    called: "12125551234".into(),
                    calling: None,
                },
            ]),
        }
    }

    #[test]
    fn verdicts() {
        let e = routed();
        let j = |r: &str, code| judge(&e, Some(r.as_bytes()), code);
        assert_eq!(
            j("gw-a;called=2125551234;calling=3105550000", 200),
            Verdict::Ok
        );
        assert_eq!(j("gw-b;called=12125551234", 200), Verdict::LaterAttempt);
        assert_eq!(
            j("gw-b;called=12125551234;calling=1", 200),
            Verdict::WrongNumbers
        );
        assert_eq!(
            j("gw-a;called=1;calling=3105550000", 200),
            Verdict::WrongNumbers
        );
        assert_eq!(j("pbx;called=2125551234", 200), Verdict::WrongTrunk);
        assert_eq!(judge(&e, None, 404), Verdict::NotDelivered);
        let mut a = routed();
        a.outcome = Outcome::Answer(404);
        assert_eq!(judge(&a, None, 404), Verdict::Ok);
        assert_eq!(judge(&a, None, 503), Verdict::WrongAnswer);
        assert_eq!(judge(&a, Some(b"gw-a;called=1"), 200), Verdict::WrongTrunk);
        let x = example(&e, Some(b"pbx;called=2125551234"), 200);
        assert_eq!(
            x,
            "called 2125551234 calling 3105550000: expected gw-a(2125551234,3105550000) \
             gw-b(12125551234,-); got pbx(2125551234,-) answered 200"
        );
    }
}
