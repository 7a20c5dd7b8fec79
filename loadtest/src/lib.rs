//! junction-load: the SIP load tester bundled with junction.
//!
//! Layers, inside out: `sip` (reading and writing SIP text), `ua` (the sans-IO UAC and UAS,
//! driven by `now`), `scenario` (SIPp XML scenario files, interpreted by another sans-IO engine),
//! `rate` (the open-loop call schedule), `stats` and `report` (counters, HDR histograms, the
//! live line, the summary), and `io` (worker threads, sockets, the clock) around them.
//! `flood` is apart: the `flood` subcommand, junk and valid requests from unknown sources.
//! So is `probe`: the machine's speed, sampled beside a load run.

pub mod cli;
pub mod flood;
pub mod io;
pub mod limits;
pub mod numbers;
pub mod numbers_cmd;
pub mod probe;
pub mod rate;
pub mod report;
pub mod scenario;
pub mod sip;
pub mod stats;
pub mod time;
pub mod timer;
pub mod ua;
pub mod verify;
