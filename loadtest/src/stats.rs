//! What one worker counts and measures: plain counters and HDR histograms (no atomics; each
//! worker owns its `Stats`), merged into one at report time.

use crate::limits::LATENCY_US_MAX;
use crate::time::Micros;
use crate::verify::Verdict;
use hdrhistogram::Histogram;

/// The latencies we measure, each from the *intended* send time of the request (the time the
/// schedule said it should go out, not when the worker got to it): a late worker shows up as
/// latency instead of hiding it (coordinated omission).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lat {
    /// INVITE to the first 100 Trying.
    Trying,
    /// INVITE to the first 18x.
    Ringing,
    /// INVITE to the 2xx.
    Answer,
    /// BYE to its 2xx.
    Bye,
    /// OPTIONS to its final response.
    Options,
}

impl Lat {
    pub const ALL: [Lat; 5] = [
        Lat::Trying,
        Lat::Ringing,
        Lat::Answer,
        Lat::Bye,
        Lat::Options,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Lat::Trying => "invite_to_100",
            Lat::Ringing => "invite_to_18x",
            Lat::Answer => "invite_to_200",
            Lat::Bye => "bye_to_200",
            Lat::Options => "options_to_final",
        }
    }
}

/// Why a call failed, other than a final response code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Timer B: no response at all to the INVITE.
    TimeoutInvite,
    /// Timer F: no final response to the BYE.
    TimeoutBye,
    /// Timer F: no final response to the OPTIONS.
    TimeoutOptions,
    /// Timer F: no final response to the CANCEL.
    TimeoutCancel,
    /// No final response within the answer timeout after a provisional: CANCEL sent.
    NoAnswer,
    /// CANCEL answered, but no final response to the INVITE within 64*T1.
    No487,
    /// The 2xx had no usable Contact / Route address (not an IP literal).
    BadTarget,
    /// No free call slot in the worker (limits::CALLS_PER_WORKER_MAX).
    TableFull,
    /// The UDP send failed (socket buffer full, unreachable).
    SendError,
    /// Scenario file: a message that matches no expected `recv`.
    Unexpected,
    /// Scenario file: a `recv` timed out, or the call ran past its limit.
    ScenarioTimeout,
    /// UAS: no ACK for a final response within 64*T1 (Timer H).
    UasNoAck,
    /// UAS: call table full, answered 503.
    UasTableFull,
    /// UAS: our BYE got a non-2xx final response.
    UasByeRefused,
    /// CANCEL scenario: the UAS answered 2xx before the CANCEL reached it (not an error of the
    /// system under test, but not a cancelled call either).
    AnsweredBeforeCancel,
}

impl Fail {
    pub const ALL: [Fail; 15] = [
        Fail::TimeoutInvite,
        Fail::TimeoutBye,
        Fail::TimeoutOptions,
        Fail::TimeoutCancel,
        Fail::NoAnswer,
        Fail::No487,
        Fail::BadTarget,
        Fail::TableFull,
        Fail::SendError,
        Fail::Unexpected,
        Fail::ScenarioTimeout,
        Fail::UasNoAck,
        Fail::UasTableFull,
        Fail::UasByeRefused,
        Fail::AnsweredBeforeCancel,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Fail::TimeoutInvite => "timeout: no response to INVITE (Timer B)",
            Fail::TimeoutBye => "timeout: no final response to BYE (Timer F)",
            Fail::TimeoutOptions => "timeout: no final response to OPTIONS (Timer F)",
            Fail::TimeoutCancel => "timeout: no final response to CANCEL (Timer F)",
            Fail::NoAnswer => "no answer within the answer timeout (CANCEL sent)",
            Fail::No487 => "no final response to the cancelled INVITE",
            Fail::BadTarget => "no IP address in Contact/Route of the 2xx",
            Fail::TableFull => "local call table full",
            Fail::SendError => "UDP send failed",
            Fail::Unexpected => "scenario: unexpected message",
            Fail::ScenarioTimeout => "scenario: recv timeout",
            Fail::UasNoAck => "uas: no ACK for the final response (Timer H)",
            Fail::UasTableFull => "uas: call table full (503 sent)",
            Fail::UasByeRefused => "uas: our BYE was refused (non-2xx)",
            Fail::AnsweredBeforeCancel => "answered before the CANCEL arrived",
        }
    }
}

/// A final response that failed a call, by the request it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeOf {
    Invite = 0,
    Bye = 1,
    Options = 2,
}

const CODES: usize = 700;

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits: ~200 KiB; bounds are constants, so this cannot
    // fail; fall back to an auto-resizing histogram if it ever did.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)]
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram refused constant bounds")
}

#[derive(Clone)]
pub struct Stats {
    // UAC side
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// New calls not sent because of RFC 7339 overload control (rejected locally, neither a
    /// success nor a failure; counted in `started`, as the schedule offered them).
    pub throttled: u64,
    pub fail: [u64; Fail::ALL.len()],
    pub fail_code: Vec<[u64; CODES]>,
    // UAS side
    pub uas_calls: u64,
    pub uas_answered: Vec<u64>,
    pub uas_completed: u64,
    // both
    pub sent: u64,
    pub received: u64,
    pub retransmissions: u64,
    pub stray: u64,
    pub parse_errors: u64,
    pub send_errors: u64,
    pub truncated: u64,
    pub active: u64,
    pub lat: Vec<Histogram<u64>>,
    /// `--expect`: calls judged, by verdict (index = `Verdict as usize`).
    pub verdicts: [u64; Verdict::ALL.len()],
    /// A few misrouted calls, described (at most `EXAMPLES_MAX`).
    pub examples: Vec<String>,
    /// Named UAS roles: calls that reached each, by name.
    pub trunk_calls: Vec<(String, u64)>,
    /// `--trace-err`: failed calls, each with the message that ended it (at most
    /// `TRACE_ERR_MAX`).
    pub trace_err: Vec<String>,
    /// Failed calls not traced because `trace_err` was full.
    pub trace_err_dropped: u64,
}

/// Misrouted calls described in the report: enough to see the pattern.
pub const EXAMPLES_MAX: usize = 10;

/// Failed calls traced per worker (`--trace-err`): the file shows what went wrong without
/// growing with a run that fails every call.
pub const TRACE_ERR_MAX: usize = 1000;

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: 0,
            succeeded: 0,
            failed: 0,
            throttled: 0,
            fail: [0; Fail::ALL.len()],
            fail_code: vec![[0; CODES]; 3],
            uas_calls: 0,
            uas_answered: vec![0; CODES],
            uas_completed: 0,
            sent: 0,
            received: 0,
            retransmissions: 0,
            stray: 0,
            parse_errors: 0,
            send_errors: 0,
            truncated: 0,
            active: 0,
            lat: Lat::ALL.iter().map(|_| new_histogram()).collect(),
            verdicts: [0; Verdict::ALL.len()],
            examples: Vec::new(),
            trunk_calls: Vec::new(),
            trace_err: Vec::new(),
            trace_err_dropped: 0,
        }
    }

    /// Count a verdict of the route check; `describe` is only called for a misrouted call
    /// while there is room for another example.
    pub fn check(&mut self, v: Verdict, describe: impl FnOnce() -> String) {
        if let Some(c) = self.verdicts.get_mut(v as usize) {
            *c += 1;
        }
        if (v.is_misrouted() || v == Verdict::NotDelivered) && self.examples.len() < EXAMPLES_MAX {
            // Distinct examples only: the same plan line misrouted again shows nothing new.
            let x = format!("{}: {}", v.name(), describe());
            if !self.examples.contains(&x) {
                self.examples.push(x);
            }
        }
    }

    /// Calls judged misrouted (wrong trunk, wrong numbers, wrong answer).
    pub fn misrouted(&self) -> u64 {
        Verdict::ALL
            .iter()
            .zip(self.verdicts.iter())
            .filter(|(v, _)| v.is_misrouted())
            .map(|(_, n)| n)
            .sum()
    }

    /// Keep a failed call's trace (`--trace-err`).
    pub fn trace_failure(&mut self, text: impl FnOnce() -> String) {
        if self.trace_err.len() < TRACE_ERR_MAX {
            self.trace_err.push(text());
        } else {
            self.trace_err_dropped += 1;
        }
    }

    /// Count a call that reached the UAS named `name`.
    pub fn trunk_call(&mut self, name: &str) {
        match self.trunk_calls.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 += 1,
            None => self.trunk_calls.push((name.to_string(), 1)),
        }
    }

    /// Record a latency measured from the intended send time `from` to `now`.
    pub fn record(&mut self, lat: Lat, from: Micros, now: Micros) {
        let us = now.saturating_sub(from).clamp(1, LATENCY_US_MAX);
        if let Some(h) = self.lat.get_mut(lat as usize) {
            let _ = h.record(us);
        }
    }

    pub fn hist(&self, lat: Lat) -> Option<&Histogram<u64>> {
        self.lat.get(lat as usize)
    }

    pub fn fail(&mut self, why: Fail) {
        self.failed += 1;
        if let Some(c) = self.fail.get_mut(why as usize) {
            *c += 1;
        }
    }

    /// Count a UAS-side problem: not a UAC call failure, but a failure of the run all the same.
    pub fn uas_fail(&mut self, why: Fail) {
        if let Some(c) = self.fail.get_mut(why as usize) {
            *c += 1;
        }
    }

    pub fn fail_code(&mut self, of: CodeOf, code: u16) {
        self.failed += 1;
        if let Some(c) = self
            .fail_code
            .get_mut(of as usize)
            .and_then(|a| a.get_mut(code as usize))
        {
            *c += 1;
        }
    }

    pub fn uas_answer(&mut self, code: u16) {
        if let Some(c) = self.uas_answered.get_mut(code as usize) {
            *c += 1;
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.started += o.started;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.throttled += o.throttled;
        for (a, b) in self.fail.iter_mut().zip(o.fail.iter()) {
            *a += b;
        }
        for (a, b) in self.fail_code.iter_mut().zip(o.fail_code.iter()) {
            for (x, y) in a.iter_mut().zip(b.iter()) {
                *x += y;
            }
        }
        self.uas_calls += o.uas_calls;
        for (a, b) in self.uas_answered.iter_mut().zip(o.uas_answered.iter()) {
            *a += b;
        }
        self.uas_completed += o.uas_completed;
        self.sent += o.sent;
        self.received += o.received;
        self.retransmissions += o.retransmissions;
        self.stray += o.stray;
        self.parse_errors += o.parse_errors;
        self.send_errors += o.send_errors;
        self.truncated += o.truncated;
        self.active += o.active;
        for (a, b) in self.lat.iter_mut().zip(o.lat.iter()) {
            let _ = a.add(b);
        }
        for (a, b) in self.verdicts.iter_mut().zip(o.verdicts.iter()) {
            *a += b;
        }
        for x in &o.examples {
            if self.examples.len() < EXAMPLES_MAX && !self.examples.contains(x) {
                self.examples.push(x.clone());
            }
        }
        for (name, n) in &o.trunk_calls {
            match self.trunk_calls.iter_mut().find(|(m, _)| m == name) {
                Some(e) => e.1 += n,
                None => self.trunk_calls.push((name.clone(), *n)),
            }
        }
        self.trace_err.extend(o.trace_err.iter().cloned());
        self.trace_err_dropped += o.trace_err_dropped;
    }

    /// Failures by reason, as (name, count), non-zero only, UAC and UAS alike.
    pub fn failures(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (i, f) in Fail::ALL.iter().enumerate() {
            let n = self.fail.get(i).copied().unwrap_or(0);
            if n > 0 {
                out.push((f.name().to_string(), n));
            }
        }
        for (of, name) in [
            (CodeOf::Invite, "INVITE"),
            (CodeOf::Bye, "BYE"),
            (CodeOf::Options, "OPTIONS"),
        ] {
            if let Some(codes) = self.fail_code.get(of as usize) {
                for (code, &n) in codes.iter().enumerate() {
                    if n > 0 {
                        out.push((format!("{name} answered {code}"), n));
                    }
                }
            }
        }
        out
    }

    /// Every failure counted, UAC calls plus UAS-side problems.
    pub fn failure_total(&self) -> u64 {
        self.failures().iter().map(|(_, n)| n).sum()
    }
}
