//! The command line: `junction-load uac|uas|both [options]`, parsed by hand into a `Plan`,
//! every mistake reported with the option it concerns.

use crate::limits::{
    DELAY_MS_MAX, PORTS_PER_WORKER_MAX, RATE_MAX, RATE_PER_WORKER, UAC_TICK_US, UAS_TICK_US,
    WORKERS_MAX,
};
use crate::numbers;
use crate::rate::RateConfig;
use crate::time::{Micros, Timers, MS, SEC};
use crate::ua::config::{Answer, UacScenario};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Count(u64),
    Percent(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Many source ports.
    Un,
    /// One 4-tuple.
    U1,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub role: Role,
    /// Worker threads; `None`: sized from the load (see `Plan::worker_count`).
    pub workers: Option<usize>,
    pub pin: bool,
    /// `--cpus`: the CPU of each worker, in order.
    pub cpus: Option<Vec<usize>>,
    pub json: Option<PathBuf>,
    /// `--csv`: one line per second, columns after SIPp's -trace_stat.
    pub csv: Option<PathBuf>,
    /// `--trace-err`: failed calls and the message that ended each.
    pub trace_err: Option<PathBuf>,
    /// `--trace-msg`: every message sent and received.
    pub trace_msg: Option<PathBuf>,
    pub max_failures: Option<Threshold>,
    pub quiet: bool,
    pub timers: Timers,
    pub duration: Option<Micros>,
    /// Least time between network-driven turns of a worker (µs); `None`: by role (see
    /// `Plan::tick`).
    pub tick: Option<Micros>,
    // UAC
    pub target: Option<SocketAddr>,
    pub number: String,
    /// Per-call numbers (`--inf`, `--numbers`, `--calling`, `--expect`); `None`: every call
    /// to `number`.
    pub numbers: Option<std::sync::Arc<numbers::Plan>>,
    /// `--expect FILE`: the route plan checked.
    pub expect: Option<PathBuf>,
    pub scenario: UacScenario,
    pub uac_file: Option<PathBuf>,
    pub rate: RateConfig,
    pub concurrent: Option<u64>,
    pub hold: Micros,
    pub cancel_after: Micros,
    pub answer_timeout: Micros,
    pub transport: Transport,
    pub ports: usize,
    pub local_ip: IpAddr,
    pub local_port: u16,
    /// `--oc`: RFC 7339 overload control client (built-in UAC).
    pub oc: bool,
    // UAS
    /// `--listen` addresses, each with its `--name` (a trunk it plays).
    pub listen: Vec<(SocketAddr, Option<String>)>,
    /// `--record FILE`: the calls that reached the named UASes.
    pub record: Option<PathBuf>,
    pub answer: Vec<Answer>,
    pub never: bool,
    pub ring: Micros,
    pub ringing: bool,
    pub uas_file: Option<PathBuf>,
    /// `--uas-hangup-ms`: the UAS hangs up this long after the ACK.
    pub uas_hangup: Option<Micros>,
    /// `--oc-reduce P`: the UAS answers an `oc` offer with `oc=P` (RFC 7339 server).
    pub uas_oc_reduce: Option<u8>,
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(WORKERS_MAX)
}

impl Plan {
    /// `--tick-us`, or else: a UAC alone batches for 5 ms (its latencies use kernel receive
    /// times and grid-aligned intended times, so batching costs it no accuracy), a process with
    /// a UAS for 1 ms (the UAS's delay in answering is part of what the UAC measures).
    pub fn tick(&self) -> Micros {
        self.tick.unwrap_or(if self.role == Role::Uac {
            UAC_TICK_US
        } else {
            UAS_TICK_US
        })
    }

    /// `--workers`, or else one worker per RATE_PER_WORKER calls per second of the peak rate,
    /// at most one per core (a UAS alone: one; give --workers to spread it over cores).
    pub fn worker_count(&self) -> usize {
        if let Some(n) = self.workers {
            return n;
        }
        if self.role == Role::Uas {
            return 1;
        }
        let peak = self
            .rate
            .max
            .max(self.rate.start)
            .max(self.rate.alternate.unwrap_or(0.0));
        ((peak / RATE_PER_WORKER).ceil() as usize).clamp(1, online_cpus())
    }
}

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{opt}: not a number: {v:?}"))
}

fn delay_ms(opt: &str, v: &str) -> Result<Micros, String> {
    let ms: u64 = num(opt, v)?;
    if ms > DELAY_MS_MAX {
        return Err(format!("{opt}: at most {DELAY_MS_MAX} ms"));
    }
    Ok(ms * MS)
}

fn rate(opt: &str, v: &str) -> Result<f64, String> {
    let r: f64 = num(opt, v)?;
    if !(0.0..=RATE_MAX).contains(&r) || !r.is_finite() {
        return Err(format!("{opt}: between 0 and {RATE_MAX} calls per second"));
    }
    Ok(r)
}

fn addr(opt: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{opt}: not an IP:PORT address: {v:?} (host names are not resolved)"))
}

/// `200`, `never`, or `200:90,486:5,503:5`.
pub fn parse_answer(v: &str) -> Result<(Vec<Answer>, bool), String> {
    if v == "never" {
        return Ok((
            vec![Answer {
                code: 200,
                weight: 1,
            }],
            true,
        ));
    }
    let mut mix = Vec::new();
    for part in v.split(',') {
        let (code, weight) = match part.split_once(':') {
            Some((c, w)) => (c, num::<u32>("--answer", w)?),
            None => (part, 1),
        };
        let code: u16 = num("--answer", code)?;
        if !(200..700).contains(&code) {
            return Err(format!(
                "--answer: {code} is not a final response code (200-699)"
            ));
        }
        mix.push(Answer { code, weight });
    }
    if mix.iter().all(|a| a.weight == 0) {
        return Err("--answer: the weights add up to 0".into());
    }
    Ok((mix, false))
}

/// One option of the `uac`, `uas` and `both` commands: long name, value name (`None`: a flag),
/// help, and the heading it is listed under.
struct Opt {
    long: &'static str,
    value: Option<&'static str>,
    help: &'static str,
    heading: &'static str,
}

const UAC: &str = "UAC options";
const UAS: &str = "UAS options";
const NUM: &str = "Numbers (number plans and route checks)";
const REP: &str = "Reporting";
const COM: &str = "Common options";

const fn opt(
    long: &'static str,
    value: Option<&'static str>,
    help: &'static str,
    heading: &'static str,
) -> Opt {
    Opt {
        long,
        value,
        help,
        heading,
    }
}

const OPTS: &[Opt] = &[
    opt("target", Some("IP:PORT"), "Where INVITEs go (a proxy, or a UAS); also the positional TARGET, as in SIPp", UAC),
    opt("scenario", Some("NAME"), "call | cancel | options [default: call]", UAC),
    opt("sf", Some("FILE"), "A SIPp XML scenario file instead of a built-in one (SIPp -sf)", UAC),
    opt("rate", Some("CPS"), "Calls per second, open loop (SIPp -r) [default: 10]", UAC),
    opt("rate-step", Some("CPS"), "Ramp: add this to the rate every period [default: 0]", UAC),
    opt("rate-period-ms", Some("MS"), "Ramp period [default: 1000]", UAC),
    opt("rate-max", Some("CPS"), "Ramp: never above this [default: the rate]", UAC),
    opt("rate-alternate", Some("CPS"), "Every other period (2nd, 4th, ...) at this rate instead: two load levels in turn, each --rate-period-ms long", UAC),
    opt("sipp-rate-period-ms", Some("MS"), "SIPp -rp: --rate calls every MS milliseconds", UAC),
    opt("calls", Some("N"), "Stop after N calls (SIPp -m)", UAC),
    opt("duration", Some("S"), "Stop after S seconds: calls still in progress then are counted as unfinished, not waited for (uas: stop after S seconds)", UAC),
    opt("concurrent", Some("N"), "At most N calls in progress at once (SIPp -l)", UAC),
    opt("hold-ms", Some("MS"), "Time between 200 and BYE (SIPp -d) [default: 0]", UAC),
    opt("cancel-ms", Some("MS"), "Cancel scenario: time from the first 1xx to CANCEL [default: 0]", UAC),
    opt("answer-timeout-ms", Some("MS"), "CANCEL when no final response this long after a 1xx [default: 0 = never]", UAC),
    opt("transport", Some("un|u1"), "un: many source ports; u1: a single 4-tuple (SIPp -t) [default: un]", UAC),
    opt("ports", Some("N"), "un: source ports in all, spread over workers [default: 32]", UAC),
    opt("local-ip", Some("IP"), "Source address (SIPp -i; uas: the listen address when --listen is not given) [default: 127.0.0.1, or ::1 for an IPv6 target]", UAC),
    opt("local-port", Some("PORT"), "u1: the source port (SIPp -p; uas: the listen port when --listen is not given) [default: any]", UAC),
    opt("oc", None, "Be an RFC 7339 overload control client (loss-based): a valueless oc parameter in the Via of every request; an oc=P in a response's top Via withholds P% of the new calls for oc-validity ms (counted as throttled: not sent, neither succeeded nor failed). Built-in scenarios only", UAC),
    opt("number", Some("NUM"), "Called number, Request-URI user part (SIPp -s); [fieldN] in it is field N of the call's --inf line [default: 2125551234]", NUM),
    opt("numbers", Some("PATTERNS"), "Called numbers from patterns: P1:W1,P2:W2 (weights default 1, laid out exactly per cycle), X a random digit, [fieldN] a field: '+1212555XXXX:3,+1646555XXXX:1'", NUM),
    opt("calling", Some("NUM"), "Calling number (From user part); [fieldN] works here too [default: junction-load]", NUM),
    opt("calling-numbers", Some("PATTERNS"), "Calling numbers from patterns, as --numbers", NUM),
    opt("inf", Some("FILE"), "SIPp injection file (SIPp -inf): first line SEQUENTIAL, RANDOM or USER, then one call per line, fields separated by ';'; [field0], [field1]... in scenario files, --number and --calling", NUM),
    opt("expect", Some("FILE"), "A route plan: the calls and where each must arrive, as `junction route-test CONFIG --file CALLS --format tsv` writes them; each call's numbers come from it, and the report counts calls that reached the wrong trunk or with the wrong numbers (the UASes must be named: uas --listen ... --name TRUNK). Exit 1 on any misrouted call", NUM),
    opt("listen", Some("IP:PORT"), "Where to answer; several --listen, each followed by its --name, make several UAS roles in one process", UAS),
    opt("name", Some("TRUNK"), "The trunk the preceding --listen plays: its responses say what reached it (X-JL-Reached: TRUNK;called=...;calling=...), for the UAC's --expect, and the report counts calls per name", UAS),
    opt("record", Some("FILE"), "Named UASes write one line per call that reached them: name, Call-ID, called, calling (tab-separated)", UAS),
    opt("answer", Some("MIX"), "Final responses: 200, or a weighted mix such as 200:90,486:5,503:5, or never [default: 200]", UAS),
    opt("ring-ms", Some("MS"), "Delay before the final response (100 and 180 first) [default: 0]", UAS),
    opt("no-ringing", None, "No 180 Ringing", UAS),
    opt("uas-hangup-ms", Some("MS"), "The UAS sends BYE this long after the ACK (give the UAC a longer --hold-ms: whoever's timer ends first hangs up)", UAS),
    opt("uas-sf", Some("FILE"), "A SIPp XML scenario file for the UAS side (uas role: --sf works too)", UAS),
    opt("oc-reduce", Some("P"), "Act as an overloaded RFC 7339 server (a gateway): when an INVITE's top Via offers overload control, every response to it asks for P% fewer new calls (oc=P, loss, oc-validity 500 ms)", UAS),
    opt("json", Some("FILE"), "Write the final report as JSON", REP),
    opt("csv", Some("FILE"), "A line per second (and a last one), ';'-separated, columns named as in SIPp's -trace_stat where they mean the same, the wall clock last (SIPp -stf)", REP),
    opt("stf", Some("FILE"), "The same as --csv (SIPp -stf)", REP),
    opt("trace-stat", None, "Write the per-second CSV to <scenario>_<pid>_.csv, as SIPp -trace_stat does", REP),
    opt("trace-err", None, "Write every failed call (its reason and the message that ended it) to <scenario>_<pid>_errors.log, as SIPp -trace_err", REP),
    opt("error-file", Some("FILE"), "Failed calls' trace to FILE (implies --trace-err)", REP),
    opt("trace-msg", None, "Write every message sent and received to <scenario>_<pid>_messages.log, as SIPp -trace_msg (slow: for small runs)", REP),
    opt("message-file", Some("FILE"), "The message trace to FILE (implies --trace-msg)", REP),
    opt("max-failures", Some("N|P%"), "Exit 1 when failures exceed N, or P percent of the calls", REP),
    opt("quiet", None, "No live line each second", REP),
    opt("workers", Some("N"), "Worker threads, each pinned to a core. Default: one per 20000 calls/s of the peak rate, at most one per core; a UAS alone: 1", COM),
    opt("no-pin", None, "Do not pin workers to cores", COM),
    opt("cpus", Some("LIST"), "Pin worker i to the i-th CPU of LIST (e.g. 1 or 0,1) [default: worker i on CPU i]", COM),
    opt("tick-us", Some("US"), "Batch datagrams for up to US µs between turns, calls and timers served on that grid; 0: no batching [default: uac 5000, uas/both 1000]", COM),
    opt("t1-ms", Some("MS"), "RFC 3261 T1 [default: 500]", COM),
];

/// SIPp's single-dash options and what they are here. clap's short options are one
/// character, so `-rp`, `-sf`, `-inf` or `-trace_err` cannot be declared to it: they are
/// rewritten to their long names before clap parses (SIPp users type them by habit).
const SIPP_ALIASES: &[(&str, &str)] = &[
    ("-r", "--rate"),
    ("-rp", "--sipp-rate-period-ms"),
    ("-m", "--calls"),
    ("-l", "--concurrent"),
    ("-d", "--hold-ms"),
    ("-sf", "--sf"),
    ("-inf", "--inf"),
    ("-s", "--number"),
    ("-t", "--transport"),
    ("-i", "--local-ip"),
    ("-p", "--local-port"),
    ("-trace_stat", "--trace-stat"),
    ("-stf", "--stf"),
    ("-trace_err", "--trace-err"),
    ("-error_file", "--error-file"),
    ("-trace_msg", "--trace-msg"),
    ("-message_file", "--message-file"),
    ("-q", "--quiet"),
];

/// The top level's help.
pub const ABOUT: &str = "\
junction-load: SIP load tester (UDP). junction's bundled UAC and UAS.

usage:
  junction-load uas  --listen IP:PORT [--name TRUNK] [--listen IP:PORT [--name TRUNK]]... [options]
  junction-load uac  --target IP:PORT [options]        (or SIPp style: uac -sf FILE -r 10 -m 100 HOST:PORT)
  junction-load both --listen IP:PORT [--target IP:PORT] [uac and uas options]
      (both: UAC and UAS in one process; the target defaults to the first listen address)
  junction-load flood --target IP:PORT --duration S [flood options]
      (junk and valid requests from many unknown source addresses)
  junction-load probe [--duration S] [--interval-ms MS] [--cpu N]
      (this machine's speed, sampled beside a run)
  junction-load numbers --count N [number options] [--from TRUNK]
      (a number plan's calls, one per line, as `junction route-test --file` reads them)

Each command has --help. SIPp's options work with one dash as SIPp spells them: -r -rp -m -l
-d -sf -inf -s -t -i -p -trace_stat -stf -trace_err -trace_msg, and a positional HOST:PORT.
";

fn role_command(name: &'static str, about: &'static str) -> clap::Command {
    use clap::{Arg, ArgAction};
    let mut c = clap::Command::new(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .max_term_width(100);
    for o in OPTS {
        let mut a = Arg::new(o.long)
            .long(o.long)
            .help(o.help)
            .help_heading(o.heading);
        if o.long == "sipp-rate-period-ms" {
            a = a.hide(true);
        }
        a = match o.value {
            Some(v) => a
                .value_name(v)
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append),
            None => a.action(ArgAction::Count),
        };
        c = c.arg(a);
    }
    c.arg(
        Arg::new("TARGET")
            .help("HOST:PORT the calls go to, as SIPp takes it (the same as --target)")
            .num_args(1)
            .action(ArgAction::Append),
    )
}

/// The whole command line, for clap: the three call roles with their options; `flood`,
/// `probe` and `numbers` have parsers of their own and are dispatched before this.
pub fn command() -> clap::Command {
    clap::Command::new("junction-load")
        .version(env!("CARGO_PKG_VERSION"))
        .override_help(ABOUT)
        .subcommand_required(true)
        .subcommand(role_command("uac", "junction-load uac: place calls"))
        .subcommand(role_command("uas", "junction-load uas: answer calls"))
        .subcommand(role_command(
            "both",
            "junction-load both: a UAC and UAS in one process",
        ))
}

/// Why parsing stopped without a plan.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// --help or --version: print this on stdout, exit 0.
    Info(String),
    /// A mistake: one line for stderr, exit 2.
    Usage(String),
}

/// Rewrite SIPp's single-dash options to their long names (see `SIPP_ALIASES`).
pub fn sipp_aliases(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| {
            SIPP_ALIASES
                .iter()
                .find(|(short, _)| short == a)
                .map_or_else(|| a.clone(), |(_, long)| long.to_string())
        })
        .collect()
}

/// clap's error as one line: the option it concerns and, for a misspelt one, the nearest.
fn one_line(e: &clap::Error, cmd: &str) -> String {
    use clap::error::{ContextKind, ErrorKind};
    let ctx = |k| e.get(k).map(|v| v.to_string());
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = ctx(ContextKind::InvalidArg).unwrap_or_default();
            match ctx(ContextKind::SuggestedArg) {
                Some(s) => format!(
                    "{cmd}: unknown option {arg}; did you mean {s}? ({cmd} --help lists them)"
                ),
                None => format!("{cmd}: unknown option {arg} ({cmd} --help lists them)"),
            }
        }
        ErrorKind::InvalidSubcommand => {
            let arg = ctx(ContextKind::InvalidSubcommand).unwrap_or_default();
            match ctx(ContextKind::SuggestedSubcommand) {
                Some(s) => format!("unknown command {arg}; did you mean {s}? (uac, uas, both, flood, probe, numbers)"),
                None => format!("unknown command {arg}: uac, uas, both, flood, probe or numbers"),
            }
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            format!("{cmd}: {first}")
        }
    }
}

/// `args` (the role first) into the options in command-line order, as (`--long`, value).
/// Options in command-line order: (`--long`, value).
type Tokens = Vec<(String, Option<String>)>;

fn tokens(args: &[String]) -> Result<(Role, Tokens), Stop> {
    use clap::error::ErrorKind;
    let mut argv = vec!["junction-load".to_string()];
    argv.extend(sipp_aliases(args));
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Stop::Info(e.to_string()),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => Stop::Usage(
                    "a command is required: uac, uas, both, flood, probe or numbers (junction-load --help)"
                        .into(),
                ),
                _ => {
                    let cmd = match args.first().map(String::as_str) {
                        Some(r @ ("uac" | "uas" | "both")) => format!("junction-load {r}"),
                        _ => "junction-load".into(),
                    };
                    Stop::Usage(one_line(&e, &cmd))
                }
            })
        }
    };
    let (role, m) = match matches.subcommand() {
        Some(("uac", m)) => (Role::Uac, m),
        Some(("uas", m)) => (Role::Uas, m),
        Some(("both", m)) => (Role::Both, m),
        _ => {
            return Err(Stop::Usage(
                "a command is required: uac, uas or both".into(),
            ))
        }
    };
    let mut list: Vec<(usize, String, Option<String>)> = Vec::new();
    for o in OPTS {
        // Flags count from 0 by default: only those on the command line.
        if m.value_source(o.long) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let Some(idx) = m.indices_of(o.long) else {
            continue;
        };
        match o.value {
            Some(_) => {
                let vals = m.get_many::<String>(o.long).into_iter().flatten();
                for (i, v) in idx.zip(vals) {
                    list.push((i, format!("--{}", o.long), Some(v.clone())));
                }
            }
            None => {
                for i in idx {
                    list.push((i, format!("--{}", o.long), None));
                }
            }
        }
    }
    if let (Some(idx), Some(vals)) = (m.indices_of("TARGET"), m.get_many::<String>("TARGET")) {
        for (i, v) in idx.zip(vals) {
            list.push((i, "TARGET".into(), Some(v.clone())));
        }
    }
    list.sort_by_key(|(i, _, _)| *i);
    Ok((role, list.into_iter().map(|(_, k, v)| (k, v)).collect()))
}

/// SIPp's default file names: `<scenario>_<pid>_<suffix>` in the current directory.
fn sipp_file(p: &Plan, suffix: &str) -> PathBuf {
    let scenario = p
        .uac_file
        .as_ref()
        .or(p.uas_file.as_ref())
        .and_then(|f| f.file_stem())
        .map_or_else(
            || match p.role {
                Role::Uas => "uas".to_string(),
                _ => "uac".to_string(),
            },
            |s| s.to_string_lossy().into_owned(),
        );
    PathBuf::from(format!("{scenario}_{}_{suffix}", std::process::id()))
}

/// Parse `role [options]` (the arguments after the program name); mistakes as one line.
pub fn parse(args: &[String]) -> Result<Plan, String> {
    parse_cli(args).map_err(|s| match s {
        Stop::Info(_) => String::new(),
        Stop::Usage(e) => e,
    })
}

/// Parse `role [options]`: a plan, or what to print instead.
pub fn parse_cli(args: &[String]) -> Result<Plan, Stop> {
    let (role, opts) = tokens(args)?;
    build(role, &opts).map_err(Stop::Usage)
}

fn build(role: Role, opts: &[(String, Option<String>)]) -> Result<Plan, String> {
    let mut p = Plan {
        role,
        workers: None,
        pin: true,
        cpus: None,
        json: None,
        csv: None,
        trace_err: None,
        trace_msg: None,
        max_failures: None,
        quiet: false,
        timers: Timers::default(),
        duration: None,
        tick: None,
        target: None,
        number: "2125551234".into(),
        numbers: None,
        expect: None,
        scenario: UacScenario::Call,
        uac_file: None,
        rate: RateConfig::constant(10.0),
        concurrent: None,
        hold: 0,
        cancel_after: 0,
        answer_timeout: 0,
        transport: Transport::Un,
        ports: 32,
        local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        local_port: 0,
        oc: false,
        listen: Vec::new(),
        record: None,
        answer: vec![Answer {
            code: 200,
            weight: 1,
        }],
        never: false,
        ring: 0,
        ringing: true,
        uas_file: None,
        uas_hangup: None,
        uas_oc_reduce: None,
    };
    let mut rate_max: Option<f64> = None;
    let mut local_ip_given = false;
    let mut local_port_given = false;
    let mut calls: Option<u64> = None;
    let mut sipp_period: Option<Micros> = None;
    let (mut trace_stat, mut trace_err, mut trace_msg) = (false, false, false);
    let mut called: Option<numbers::Spec> = None;
    let mut calling: Option<numbers::Spec> = None;
    let mut inf: Option<PathBuf> = None;
    let mut expect: Option<PathBuf> = None;
    for (opt, v) in opts {
        let opt = opt.as_str();
        let val = || {
            v.as_deref()
                .ok_or_else(|| format!("{opt}: a value is required"))
        };
        match opt {
            "--target" | "TARGET" => {
                let v = val()?;
                // SIPp's remote host may leave out the port: 5060.
                let a = match v.parse::<IpAddr>() {
                    Ok(ip) => SocketAddr::new(ip, 5060),
                    Err(_) => addr("--target", v)?,
                };
                p.target = Some(a);
            }
            "--listen" => p.listen.push((addr(opt, val()?)?, None)),
            "--name" => {
                let name = val()?;
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    return Err(format!(
                        "--name {name:?}: a trunk name (letters, digits, _ . -)"
                    ));
                }
                match p.listen.last_mut() {
                    Some((_, n @ None)) => *n = Some(name.to_string()),
                    Some((a, Some(_))) => {
                        return Err(format!("--name {name}: --listen {a} already has a name"))
                    }
                    None => return Err(format!("--name {name}: give it after its --listen")),
                }
            }
            "--number" => {
                p.number = val()?.to_string();
                called = Some(numbers::Spec::single(opt, val()?)?);
            }
            "--numbers" => called = Some(numbers::Spec::generator(opt, val()?)?),
            "--calling" => calling = Some(numbers::Spec::single(opt, val()?)?),
            "--calling-numbers" => calling = Some(numbers::Spec::generator(opt, val()?)?),
            "--inf" => inf = Some(PathBuf::from(val()?)),
            "--record" => p.record = Some(PathBuf::from(val()?)),
            "--expect" => expect = Some(PathBuf::from(val()?)),
            "--sipp-rate-period-ms" => sipp_period = Some(delay_ms("-rp", val()?)?.max(MS)),
            "--stf" => p.csv = Some(PathBuf::from(val()?)),
            "--trace-stat" => trace_stat = true,
            "--trace-err" => trace_err = true,
            "--trace-msg" => trace_msg = true,
            "--error-file" => p.trace_err = Some(PathBuf::from(val()?)),
            "--message-file" => p.trace_msg = Some(PathBuf::from(val()?)),
            "--scenario" => {
                p.scenario = match val()? {
                    "call" => UacScenario::Call,
                    "cancel" => UacScenario::Cancel,
                    "options" => UacScenario::Options,
                    v => return Err(format!("--scenario: {v:?} is not call, cancel or options")),
                }
            }
            "--sf" => p.uac_file = Some(PathBuf::from(val()?)),
            "--uas-sf" => p.uas_file = Some(PathBuf::from(val()?)),
            "--rate" => p.rate.start = rate(opt, val()?)?,
            "--rate-step" => p.rate.step = rate(opt, val()?)?,
            "--rate-period-ms" => p.rate.period = delay_ms(opt, val()?)?.max(MS),
            "--rate-max" => rate_max = Some(rate(opt, val()?)?),
            "--rate-alternate" => p.rate.alternate = Some(rate(opt, val()?)?),
            "--calls" => calls = Some(num(opt, val()?)?),
            "--duration" => {
                p.duration = Some(num::<u64>(opt, val()?)?.min(DELAY_MS_MAX / 1000) * SEC)
            }
            "--concurrent" => p.concurrent = Some(num(opt, val()?)?),
            "--hold-ms" => p.hold = delay_ms(opt, val()?)?,
            "--cancel-ms" => p.cancel_after = delay_ms(opt, val()?)?,
            "--answer-timeout-ms" => p.answer_timeout = delay_ms(opt, val()?)?,
            "--transport" | "-t" => {
                p.transport = match val()? {
                    "un" => Transport::Un,
                    "u1" => Transport::U1,
                    v => return Err(format!("{opt}: {v:?} is not un or u1")),
                }
            }
            "--ports" => {
                p.ports = num(opt, val()?)?;
                if p.ports == 0 || p.ports > PORTS_PER_WORKER_MAX * WORKERS_MAX {
                    return Err(format!(
                        "--ports: 1 to {}",
                        PORTS_PER_WORKER_MAX * WORKERS_MAX
                    ));
                }
            }
            "--local-ip" => {
                local_ip_given = true;
                p.local_ip = val()?
                    .parse()
                    .map_err(|_| "--local-ip: not an IP address".to_string())?
            }
            "--local-port" => {
                local_port_given = true;
                p.local_port = num(opt, val()?)?
            }
            "--oc" => p.oc = true,
            "--answer" => (p.answer, p.never) = parse_answer(val()?)?,
            "--ring-ms" => p.ring = delay_ms(opt, val()?)?,
            "--no-ringing" => p.ringing = false,
            "--uas-hangup-ms" => p.uas_hangup = Some(delay_ms(opt, val()?)?),
            "--oc-reduce" => {
                let v = val()?;
                p.uas_oc_reduce = Some(
                    v.parse::<u8>()
                        .ok()
                        .filter(|&r| r <= 100)
                        .ok_or_else(|| format!("--oc-reduce {v}: a percentage from 0 to 100"))?,
                );
            }
            "--workers" => {
                let n: usize = num(opt, val()?)?;
                p.workers = Some(n);
                if n == 0 || n > WORKERS_MAX {
                    return Err(format!("--workers: 1 to {WORKERS_MAX}"));
                }
            }
            "--no-pin" => p.pin = false,
            "--cpus" => {
                let list: Result<Vec<usize>, String> =
                    val()?.split(',').map(|c| num(opt, c.trim())).collect();
                p.cpus = Some(list?);
            }
            "--tick-us" => {
                let t: Micros = num(opt, val()?)?;
                p.tick = Some(t);
                if t > 100_000 {
                    return Err("--tick-us: at most 100000".into());
                }
            }
            "--t1-ms" => p.timers.t1 = delay_ms(opt, val()?)?.max(MS),
            "--json" => p.json = Some(PathBuf::from(val()?)),
            "--csv" => p.csv = Some(PathBuf::from(val()?)),
            "--max-failures" => {
                let v = val()?;
                p.max_failures = Some(match v.strip_suffix('%') {
                    Some(pc) => Threshold::Percent(num(opt, pc)?),
                    None => Threshold::Count(num(opt, v)?),
                });
            }
            "--quiet" => p.quiet = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if let Some(period) = sipp_period {
        // SIPp: -r N calls every -rp MS milliseconds.
        p.rate.start = p.rate.start * SEC as f64 / period as f64;
    }
    // SIPp's UAS listens on -i and -p.
    if p.role == Role::Uas && p.listen.is_empty() && local_port_given {
        p.listen
            .push((SocketAddr::new(p.local_ip, p.local_port), None));
    }
    if trace_stat && p.csv.is_none() {
        p.csv = Some(sipp_file(&p, ".csv"));
    }
    if trace_err && p.trace_err.is_none() {
        p.trace_err = Some(sipp_file(&p, "errors.log"));
    }
    if trace_msg && p.trace_msg.is_none() {
        p.trace_msg = Some(sipp_file(&p, "messages.log"));
    }
    let inf = match &inf {
        Some(path) => Some(std::sync::Arc::new(numbers::Inf::load(path)?)),
        None => None,
    };
    let expectations = match &expect {
        Some(path) => Some(std::sync::Arc::new(numbers::load_expectations(path)?)),
        None => None,
    };
    if expectations.is_some() && (called.is_some() || calling.is_some()) {
        return Err(
            "--expect gives every call's numbers: no --number, --numbers, --calling with it".into(),
        );
    }
    if called.is_some() || calling.is_some() || inf.is_some() || expectations.is_some() {
        let plan = numbers::Plan {
            inf,
            called: called.unwrap_or_else(|| numbers::Plan::fixed(&p.number).called),
            calling,
            expect: expectations,
        };
        plan.check()?;
        if !plan.is_fixed() || plan.inf.is_some() {
            p.numbers = Some(std::sync::Arc::new(plan));
        }
    }
    p.expect = expect;
    if p.record.is_some() && !p.listen.iter().any(|l| l.1.is_some()) {
        return Err(
            "--record: the UASes that record are the named ones (--listen ... --name TRUNK)".into(),
        );
    }
    if p.role == Role::Uas && p.uas_file.is_none() {
        p.uas_file = p.uac_file.take();
    }
    p.rate.max = rate_max.unwrap_or(if p.rate.step > 0.0 {
        RATE_MAX
    } else {
        p.rate.start
    });
    p.rate.calls = calls;
    p.rate.duration = p.duration;
    match p.role {
        Role::Uac if p.target.is_none() => {
            return Err("uac: --target IP:PORT (or a positional HOST:PORT) is required".into())
        }
        Role::Uas if p.listen.is_empty() => {
            return Err("uas: --listen IP:PORT (or -i IP -p PORT) is required".into())
        }
        Role::Both if p.listen.is_empty() => {
            return Err("both: --listen IP:PORT is required".into())
        }
        Role::Both if p.target.is_none() => p.target = p.listen.first().map(|l| l.0),
        _ => {}
    }
    if p.role == Role::Uac && !p.listen.is_empty() {
        return Err("uac: --listen is for uas and both".into());
    }
    // Without --local-ip, the loopback address of the target's family.
    if !local_ip_given && p.target.is_some_and(|t| t.is_ipv6()) {
        p.local_ip = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    }
    if p.role != Role::Uas && calls.is_none() && p.duration.is_none() {
        return Err("uac: give --calls N or --duration S (a run must end)".into());
    }
    if p.oc && p.uac_file.is_some() {
        return Err("--oc: the built-in UAC scenarios only, not with --sf".into());
    }
    if p.role != Role::Uas
        && p.rate.start == 0.0
        && p.rate.step == 0.0
        && p.rate.alternate.unwrap_or(0.0) == 0.0
    {
        return Err("--rate: 0 with no --rate-step or --rate-alternate never places a call".into());
    }
    Ok(p)
}

/// For the subcommands with parsers of their own (flood, probe, numbers): the first `--option`
/// of `args` that their usage text does not list, as one line with the nearest one listed.
pub fn unknown_option(args: &[String], usage: &str) -> Option<String> {
    let known: Vec<&str> = usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .chain(["--help", "--version"])
        .collect();
    let bad = args
        .iter()
        .find(|a| a.starts_with("--") && !known.iter().any(|k| k == a))?;
    let nearest = known
        .iter()
        .map(|k| (strsim::levenshtein(bad, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 3))
        .min();
    Some(match nearest {
        Some((_, k)) => format!("unknown option {bad}; did you mean {k}? (--help lists them)"),
        None => format!("unknown option {bad} (--help lists them)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_uac_run() {
        let p = parse(&args("uac --target 127.0.0.1:5060 --number 2125551234 --rate 1000 --calls 20000 --concurrent 500 -t u1 --hold-ms 100")).unwrap();
        assert_eq!(p.role, Role::Uac);
        assert_eq!(p.rate.start, 1000.0);
        assert_eq!(p.rate.calls, Some(20000));
        assert_eq!(p.concurrent, Some(500));
        assert_eq!(p.transport, Transport::U1);
        assert_eq!(p.hold, 100 * MS);
        assert!(!p.oc);
        let p = parse(&args("uac --target 127.0.0.1:5060 --calls 1 --oc")).unwrap();
        assert!(p.oc);
        assert_eq!(p.rate.alternate, None);
        let p = parse(&args(
            "uac --target 127.0.0.1:5060 --duration 9 --rate 0 --rate-alternate 24000 --rate-period-ms 8000",
        ))
        .unwrap();
        assert_eq!(p.rate.alternate, Some(24000.0));
        assert_eq!(p.rate.rate_in(0), 0.0);
        assert_eq!(p.rate.rate_in(1), 24000.0);
        assert_eq!(p.worker_count(), 2.min(online_cpus()));
    }

    #[test]
    fn sipp_options_mean_what_they_mean_in_sipp() {
        let p = parse(&args(
            "uac -sf x.xml -r 10 -rp 2000 -m 5 -l 3 -d 100 -s 123 -t u1 -i 127.0.0.1 -p 5099 127.0.0.9:5070",
        ))
        .unwrap();
        assert_eq!(p.uac_file, Some(PathBuf::from("x.xml")));
        assert_eq!(p.rate.start, 5.0); // 10 calls every 2000 ms
        assert_eq!(p.rate.calls, Some(5));
        assert_eq!(p.concurrent, Some(3));
        assert_eq!(p.hold, 100 * MS);
        assert_eq!(p.number, "123");
        assert_eq!(p.transport, Transport::U1);
        assert_eq!(p.local_port, 5099);
        assert_eq!(p.target, Some("127.0.0.9:5070".parse().unwrap()));
        // A host without a port: 5060, as SIPp.
        let p = parse(&args("uac -m 1 127.0.0.9")).unwrap();
        assert_eq!(p.target, Some("127.0.0.9:5060".parse().unwrap()));
        // SIPp's UAS listens on -i and -p; -trace_stat, -trace_err and -trace_msg name
        // their files after the scenario and the pid, as SIPp does.
        let p = parse(&args(
            "uas -i 127.0.0.1 -p 5098 -trace_stat -trace_err -trace_msg",
        ))
        .unwrap();
        assert_eq!(p.listen, vec![("127.0.0.1:5098".parse().unwrap(), None)]);
        let pid = std::process::id();
        assert_eq!(p.csv, Some(PathBuf::from(format!("uas_{pid}_.csv"))));
        assert_eq!(
            p.trace_err,
            Some(PathBuf::from(format!("uas_{pid}_errors.log")))
        );
        assert_eq!(
            p.trace_msg,
            Some(PathBuf::from(format!("uas_{pid}_messages.log")))
        );
        let p = parse(&args("uac -m 1 -stf s.csv 127.0.0.1:5060")).unwrap();
        assert_eq!(p.csv, Some(PathBuf::from("s.csv")));
    }

    #[test]
    fn help_version_and_one_line_errors() {
        for a in [
            "--help",
            "uac --help",
            "uas -h",
            "both --help",
            "--version",
            "uac --version",
        ] {
            match parse_cli(&args(a)) {
                Err(Stop::Info(text)) => assert!(!text.is_empty(), "{a}"),
                other => panic!("{a}: {other:?}"),
            }
        }
        let e = parse(&args("uac --target 127.0.0.1:5060 --calls 1 --rat 10")).unwrap_err();
        assert_eq!(
            e,
            "junction-load uac: unknown option --rat; did you mean --rate? (junction-load uac --help lists them)"
        );
        let e = parse(&args("uacc")).unwrap_err();
        assert!(e.starts_with("unknown command uacc; did you mean"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse(&args("uac --calls")).unwrap_err();
        assert!(!e.contains('\n') && e.contains("--calls"), "{e}");
        // The subcommands with their own parsers.
        let usage = "  --duration S   x\n  --rate N  y\n";
        let e = unknown_option(&args("--duraton 3"), usage).unwrap();
        assert_eq!(
            e,
            "unknown option --duraton; did you mean --duration? (--help lists them)"
        );
        assert_eq!(unknown_option(&args("--rate 3 --help"), usage), None);
    }

    #[test]
    fn named_uas_roles() {
        let p = parse(&args(
            "uas --listen 127.0.0.3:5060 --name gw-a --listen 127.0.0.4:5060 --name gw-b --listen 127.0.0.5:5060",
        ))
        .unwrap();
        let names: Vec<Option<&str>> = p.listen.iter().map(|l| l.1.as_deref()).collect();
        assert_eq!(names, [Some("gw-a"), Some("gw-b"), None]);
        for bad in [
            "uas --name gw-a --listen 127.0.0.3:5060",
            "uas --listen 127.0.0.3:5060 --name a --name b",
            "uas --listen 127.0.0.3:5060 --name 'x y'",
            "uas --listen 127.0.0.3:5060 --record r.tsv",
            "uac --target 127.0.0.1:5060 --calls 1 --listen 127.0.0.3:5060",
            "uac --target 127.0.0.1:5060 --calls 1 --number [field0]",
            "uac --target 127.0.0.1:5060 --calls 1 --numbers 12XX:0",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        let p = parse(&args(
            "both --listen 127.0.0.3:5060 --name gw --calls 1 --numbers 1212555XXXX:2,1646555XXXX --calling 3105550000",
        ))
        .unwrap();
        assert_eq!(p.target, Some("127.0.0.3:5060".parse().unwrap()));
        assert!(p.numbers.is_some());
    }

    #[test]
    fn answer_mix() {
        let (mix, never) = parse_answer("200:90,486:5,503:5").unwrap();
        assert_eq!(mix.len(), 3);
        assert!(!never);
        assert!(parse_answer("180").is_err());
        assert!(parse_answer("200:0").is_err());
        assert!(parse_answer("never").unwrap().1);
    }

    #[test]
    fn refuses_mistakes() {
        for bad in [
            "",
            "uac --calls 1",
            "uas",
            "uac --target x:1 --calls 1",
            "uac --target 127.0.0.1:5060",
            "uas --listen 127.0.0.1:1 --bogus",
            "uac --target 127.0.0.1:1 --calls 1 --rate -3",
            "uac --target 127.0.0.1:1 --calls 1 --rate 0 --rate-alternate 0",
            "uac --target 127.0.0.1:1 --calls 1 --rate-alternate x",
            "uac --target 127.0.0.1:1 --calls 1 --oc --sf x.xml",
            "uas --listen 127.0.0.1:1 --oc-reduce 101",
            "uas --listen 127.0.0.1:1 --oc-reduce -1",
            "uas --listen 127.0.0.1:1 --oc-reduce",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        let p = parse(&args("uas --listen 127.0.0.1:1 --oc-reduce 100")).unwrap();
        assert_eq!(p.uas_oc_reduce, Some(100));
        let e = parse(&args("uas --listen 127.0.0.1:1 --oc-reduce 250")).unwrap_err();
        assert!(e.contains("--oc-reduce 250"), "{e}");
    }
}
