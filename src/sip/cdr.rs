//! Call detail records as the core produces them: one per call attempt chain, when the call
//! ends. Times are `Instant`s (the core has no wall clock); the CDR writer in the control
//! plane turns them into wall-clock times and JSON lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who or what ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The calling side sent BYE.
    Caller,
    /// The called side sent BYE.
    Callee,
    /// Never answered: failed or rejected (the callee's 487 included).
    NotAnswered,
    /// Never answered: the caller cancelled it (CANCEL) before an answer.
    CallerCancel,
    /// Forgotten after `limits::CALL_IDLE_MAX` without a BYE.
    Expired,
    /// Ended by junction at its maximum duration (`max_duration_s`), with a BYE to each
    /// side.
    Limit,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Callee => "callee",
            EndedBy::NotAnswered => "not-answered",
            EndedBy::CallerCancel => "caller-cancel",
            EndedBy::Expired => "expired",
            EndedBy::Limit => "limit",
        }
    }
}

/// One attempt of a call on one egress trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub trunk: String,
    /// The route that offered this trunk (shared with the routing table).
    pub route: Option<Arc<str>>,
    /// Numbers as sent to this trunk (after its outbound translation): the called number,
    /// From's user part, and the first P-Asserted-Identity number (None: no PAI sent).
    pub called: String,
    pub calling: String,
    pub pai: Option<Box<str>>,
    /// Of a failed attempt's final response: its Q.850 cause and reason phrase (boxed:
    /// most attempts answer, and a call up keeps its record).
    pub failure: Option<Box<Failure>>,
    /// When the INVITE went out, its first 18x (post-dial delay), its final response.
    pub sent: Instant,
    pub progress: Option<Instant>,
    pub final_at: Option<Instant>,
    /// The final status from the trunk (after response-code translation); 0 for none
    /// (timeout, abandoned).
    pub status: u16,
}

/// What a failed attempt's final response said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `Reason: Q.850;cause=N`, if present.
    pub cause: Option<u16>,
    /// The reason phrase of its status line.
    pub sip_reason: Box<str>,
}

/// The record of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    pub ingress: String,
    /// Where the INVITE came from, and the address junction received it on.
    pub source: Option<SocketAddr>,
    pub listener: Option<SocketAddr>,
    /// Numbers as received from the ingress trunk, and after its normalization. The
    /// calling number is the caller's identity: the P-Asserted-Identity number from a
    /// trusted trunk, else From's user part.
    pub called: String,
    pub calling: String,
    /// From's user part and the first P-Asserted-Identity number as received.
    pub from: String,
    pub pai: Option<Box<str>>,
    /// The caller asked for privacy (`Privacy: id`, `user` or `header`).
    pub privacy: bool,
    pub called_normalized: String,
    pub calling_normalized: String,
    pub attempts: Vec<AttemptRecord>,
    pub started: Instant,
    pub answered: Option<Instant>,
    pub ended: Instant,
    pub ended_by: EndedBy,
    /// The final status the caller got (200 for an answered call).
    pub status: u16,
    /// junction's machine-readable reason when it decided the outcome ("no-route",
    /// "no-usable-trunk", "admission-refused", "all-attempts-failed"), else "".
    pub reason: &'static str,
}

impl CallRecord {
    /// Seconds from answer to end (0 for unanswered calls).
    pub fn duration_secs(&self) -> f64 {
        self.answered.map_or(0.0, |a| {
            self.ended.saturating_duration_since(a).as_secs_f64()
        })
    }
}
