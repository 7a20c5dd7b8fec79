//! SIPp XML scenario files, the common subset: `send` (retrans), `recv` (request/response,
//! optional true/global, rrs, advance_state, timeout/ontimeout), `pause`, `nop`, `label` and
//! `next` jumps, `timewait`, and the statistics-only elements and attributes SIPp scenarios
//! carry (rtd, crlf, ResponseTimeRepartition...). Anything else is refused when the file is
//! loaded, with the element (and attribute) named and its line, never ignored silently: a
//! scenario that relies on `action`, `ereg` or a conditional jump would run wrong.

pub mod parse;
pub mod run;
pub mod template;

use crate::time::Micros;
use std::path::Path;
use template::Template;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optional {
    No,
    /// May be skipped when the message matches a later step.
    Yes,
    /// May match at any point of the scenario (stray provisionals, late ACKs).
    Global,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Request(Vec<u8>),
    Response(u16),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Send {
        msg: Template,
        /// First retransmission interval (SIPp `retrans`); `None`: never retransmitted.
        retrans: Option<Micros>,
        next: Option<usize>,
    },
    Recv {
        expect: Expect,
        optional: Optional,
        rrs: bool,
        advance: bool,
        timeout: Option<Micros>,
        on_timeout: Option<usize>,
        next: Option<usize>,
    },
    /// `None`: the hold time from the command line (SIPp `-d`).
    Pause {
        ms: Option<Micros>,
        next: Option<usize>,
    },
    Nop {
        next: Option<usize>,
    },
    /// The call has succeeded; it stays this long to answer retransmissions.
    Timewait {
        ms: Micros,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Starts with `send`: calls are placed by the schedule.
    Uac,
    /// Starts with `recv`: calls are created by the first message.
    Uas,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Step>,
    pub role: Role,
}

/// Read and check a scenario file.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

impl Scenario {
    /// The highest `[fieldN]` its messages use, if any.
    pub fn max_field(&self) -> Option<usize> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { msg, .. } => msg.max_field(),
                _ => None,
            })
            .max()
    }
}
