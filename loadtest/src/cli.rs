//! The command line: `junction-load uac|uas|both [options]`, parsed by hand into a `Plan`,
//! every mistake reported with the option it concerns.

use crate::limits::{
    DELAY_MS_MAX, PORTS_PER_WORKER_MAX, RATE_MAX, RATE_PER_WORKER, UAC_TICK_US, UAS_TICK_US,
    WORKERS_MAX,
};
use crate::rate::RateConfig;
use crate::time::{Micros, Timers, MS, SEC};
use crate::ua::config::{Answer, UacScenario};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub const USAGE: &str = "\
junction-load: SIP load tester (UDP). junction's bundled UAC and UAS.

usage:
  junction-load uas  --listen IP:PORT [uas options] [common options]
  junction-load uac  --target IP:PORT [uac options] [common options]
  junction-load both --listen IP:PORT [--target IP:PORT] [uac and uas options]
      (both: UAC and UAS in one process; the target defaults to the listen address)
  junction-load flood --target IP:PORT --duration S [flood options]
      (junk and valid requests from many unknown source addresses: junction-load flood --help)
  junction-load probe [--duration S] [--interval-ms MS] [--cpu N]
      (this machine's speed, sampled beside a run: junction-load probe --help)

uac options:
  --target IP:PORT        where INVITEs go (a proxy, or a UAS)
  --number NUM            called number (Request-URI user part)           [2125551234]
  --scenario NAME         call | cancel | options                         [call]
  --sf FILE               a SIPp XML scenario file instead of a built-in one
  --rate CPS              calls per second (open loop)                    [10]
  --rate-step CPS         ramp: add this to the rate every period         [0]
  --rate-period-ms MS     ramp period                                     [1000]
  --rate-max CPS          ramp: never above this                          [rate]
  --rate-alternate CPS    every other period (2nd, 4th, ...) at this rate instead: two
                          load levels in turn, each --rate-period-ms long
  --calls N               stop after N calls
  --duration S            stop starting calls after S seconds (uas: stop after S seconds)
  --concurrent N          at most N calls in progress at once
  --hold-ms MS            time between 200 and BYE                        [0]
  --cancel-ms MS          cancel scenario: time from the first 1xx to CANCEL [0]
  --answer-timeout-ms MS  CANCEL when no final response this long after a 1xx [0 = never]
  --transport un|u1       un: many source ports; u1: a single 4-tuple       [un]
  --ports N               un: source ports in all (spread over workers)   [32]
  --local-ip IP           source address                      [127.0.0.1, or ::1 for an IPv6 target]
  --local-port PORT       u1: the source port                             [any]
  --oc                    be an RFC 7339 overload control client (loss-based): a valueless
                          oc parameter in the Via of every request; an oc=P in a response's
                          top Via withholds P% of the new calls for oc-validity ms (counted
                          as throttled: not sent, neither succeeded nor failed). Built-in
                          scenarios only

uas options:
  --listen IP:PORT        where to answer
  --answer MIX            final responses: 200, or a weighted mix such as 200:90,486:5,503:5,
                          or never                                         [200]
  --ring-ms MS            delay before the final response (100 and 180 first) [0]
  --no-ringing            no 180 Ringing
  --uas-hangup-ms MS      the UAS sends BYE this long after the ACK (give the UAC a longer
                          --hold-ms: whoever's timer ends first hangs up)
  --uas-sf FILE           a SIPp XML scenario file for the UAS side (uas role: --sf works too)
  --oc-reduce P           act as an overloaded RFC 7339 server (a gateway): when an INVITE's
                          top Via offers overload control (a valueless oc), every response to
                          it asks for P% fewer new calls (oc=P, loss, oc-validity 500 ms)

common options:
  --workers N             worker threads, each pinned to a core. Default: one per 20000
                          calls/s of the peak rate, at most one per core; a UAS alone: 1
  --no-pin                do not pin workers to cores
  --cpus LIST             pin worker i to the i-th CPU of LIST (e.g. 1 or 0,1)  [worker i
                          on CPU i]
  --tick-us US            batch datagrams for up to US µs between turns, calls and timers
                          served on that grid (latencies use kernel receive times and the
                          grid's intended times); 0: no batching  [uac: 5000, uas/both: 1000]
  --t1-ms MS              RFC 3261 T1                                     [500]
  --json FILE             write the final report as JSON
  --csv FILE              a line per second (and a last one), ';'-separated, columns
                          named as in SIPp's -trace_stat where they mean the same; the last,
                          ThrottledCall(P), counts the new calls withheld by --oc
  --max-failures N|P%     exit 1 when failures exceed N, or P percent of the calls
  --quiet                 no live line each second
";

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
    pub listen: Option<SocketAddr>,
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

pub fn parse(args: &[String]) -> Result<Plan, String> {
    let mut it = args.iter();
    let role = match it.next().map(String::as_str) {
        Some("uac") => Role::Uac,
        Some("uas") => Role::Uas,
        Some("both") => Role::Both,
        Some(other) => return Err(format!("unknown role {other:?}: uac, uas, both or flood")),
        None => return Err("a role is required: uac, uas or both".into()),
    };
    let mut p = Plan {
        role,
        workers: None,
        pin: true,
        cpus: None,
        json: None,
        csv: None,
        max_failures: None,
        quiet: false,
        timers: Timers::default(),
        duration: None,
        tick: None,
        target: None,
        number: "2125551234".into(),
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
        listen: None,
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
    let mut calls: Option<u64> = None;
    while let Some(opt) = it.next() {
        let opt = opt.as_str();
        let mut val = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{opt}: a value is required"))
        };
        match opt {
            "--target" => p.target = Some(addr(opt, val()?)?),
            "--listen" => p.listen = Some(addr(opt, val()?)?),
            "--number" => p.number = val()?.to_string(),
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
            "--local-port" => p.local_port = num(opt, val()?)?,
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
            "--quiet" | "-q" => p.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
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
        Role::Uac if p.target.is_none() => return Err("uac: --target IP:PORT is required".into()),
        Role::Uas if p.listen.is_none() => return Err("uas: --listen IP:PORT is required".into()),
        Role::Both if p.listen.is_none() => return Err("both: --listen IP:PORT is required".into()),
        Role::Both if p.target.is_none() => p.target = p.listen,
        _ => {}
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
