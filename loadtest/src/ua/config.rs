//! What the built-in UAC and UAS do, as plain values (the command line fills them in).

use crate::time::{Micros, Timers};
use std::net::SocketAddr;

/// The built-in UAC scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UacScenario {
    /// INVITE, ACK, hold, BYE.
    Call,
    /// INVITE, then CANCEL `cancel_after` after the first provisional; success is the 487.
    Cancel,
    /// One OPTIONS transaction per "call".
    Options,
}

#[derive(Clone, Debug)]
pub struct UacConfig {
    pub scenario: UacScenario,
    /// The called number: user part of the Request-URI and To (when `numbers` is `None`).
    pub number: String,
    /// Per-call numbers (`--inf`, `--numbers`, `--calling`, `--expect`).
    pub numbers: Option<std::sync::Arc<crate::numbers::Plan>>,
    /// UAC workers in the process (call numbers are interleaved over them).
    pub workers: u32,
    /// Where INVITEs (and CANCELs, OPTIONS, and ACKs for non-2xx) go.
    pub target: SocketAddr,
    /// The local address of each of this engine's sockets (index = socket id).
    pub local: Vec<SocketAddr>,
    /// Time between the 2xx and the BYE.
    pub hold: Micros,
    /// Cancel scenario: time between the first provisional and the CANCEL.
    pub cancel_after: Micros,
    /// After a provisional, how long to wait for a final response before CANCEL (0 = forever,
    /// as RFC 3261 allows; a proxy's Timer C usually fires first).
    pub answer_timeout: Micros,
    pub timers: Timers,
    /// Distinguishes this run's Call-IDs and tags from any earlier run's.
    pub run_id: u64,
    /// This worker's index, written into Call-IDs.
    pub worker: u32,
    /// The worker serves timers on this grid (its tick): a BYE due at the end of the hold is
    /// intended for the grid point after it.
    pub quantum: Micros,
    /// RFC 7339 overload control: `oc` in the Via of every request, and new calls withheld as
    /// the server's `oc` value in the responses' top Via asks (loss-based algorithm).
    pub oc: bool,
    /// `--trace-err`: keep each failed call's reason and the message that ended it.
    pub trace_err: bool,
}

/// One entry of the UAS answer mix: answer `code` to `weight` calls out of every sum of weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct UasConfig {
    /// The final responses, spread deterministically over the calls by weight.
    pub answer: Vec<Answer>,
    /// Send no final response at all (the UAS "never answers").
    pub never: bool,
    /// Time between the INVITE and the final response; 0 answers at once. When non-zero a
    /// 100 Trying goes out first (RFC 3261 8.2.6.1: within 200 ms).
    pub ring: Micros,
    /// Send a 180 Ringing before the final response.
    pub ringing: bool,
    /// The local address of each socket (index = socket id).
    pub local: Vec<SocketAddr>,
    /// How long an answered call may wait for its BYE before it is forgotten.
    pub dialog_max: Micros,
    /// Hang up from the UAS side this long after the ACK (unless the UAC hangs up first).
    pub hangup: Option<Micros>,
    /// RFC 7339 server (a gateway under overload): when the top Via of an INVITE offers
    /// overload control (a valueless `oc`), every response to it answers `oc=P` (loss
    /// algorithm, 500 ms validity) in that Via, asking for P% fewer new calls.
    pub oc_reduce: Option<u8>,
    /// `--name`: the trunk this UAS plays. Every response to an INVITE then says what reached
    /// it (`X-JL-Reached: NAME;called=...;calling=...`), for the UAC's `--expect` check.
    pub name: Option<String>,
    /// `--record FILE` (named UAS): one line per call that reached it,
    /// `name<TAB>Call-ID<TAB>called<TAB>calling`, shared by every UAS of the process.
    pub record: Option<Record>,
    pub timers: Timers,
    pub run_id: u64,
}

impl UasConfig {
    /// The final response for the `n`-th call: weights are laid out in order over each cycle
    /// of `sum(weights)` calls, so any window of that many calls has exactly the mix.
    pub fn code_for(&self, n: u64) -> u16 {
        let total: u64 = self.answer.iter().map(|a| u64::from(a.weight)).sum();
        if total == 0 {
            return 200;
        }
        let mut k = n % total;
        for a in &self.answer {
            let w = u64::from(a.weight);
            if k < w {
                return a.code;
            }
            k -= w;
        }
        200
    }
}

/// The file named UASes record their calls in; each engine buffers its lines and appends them
/// in blocks (under the lock only then), and at its end.
pub type Record = std::sync::Arc<std::sync::Mutex<std::fs::File>>;
