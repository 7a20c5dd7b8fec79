//! Call detail records as the core produces them: one per call attempt chain, when the call
//! ends. Times are `Instant`s (the core has no wall clock); the CDR writer in the control
//! plane turns them into wall-clock times and JSON lines.

use std::time::Instant;

/// Who or what ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The calling side sent BYE.
    Caller,
    /// The called side sent BYE.
    Callee,
    /// Never answered: failed, rejected or cancelled.
    NotAnswered,
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
            EndedBy::Expired => "expired",
            EndedBy::Limit => "limit",
        }
    }
}

/// One attempt of a call on one egress trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub trunk: String,
    /// Numbers as sent to this trunk (after its outbound translation).
    pub called: String,
    pub calling: String,
    /// When the INVITE went out, its first 18x (post-dial delay), its final response.
    pub sent: Instant,
    pub progress: Option<Instant>,
    pub final_at: Option<Instant>,
    /// The final status from the trunk (after response-code translation); 0 for none
    /// (timeout, abandoned).
    pub status: u16,
}

/// The record of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    pub ingress: String,
    /// Numbers as received from the ingress trunk, and after its normalization.
    pub called: String,
    pub calling: String,
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
