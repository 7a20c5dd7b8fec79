//! The I/O shell: builds sockets and engines from the `Plan`, runs one pinned worker thread per
//! core, prints the live line from the workers' snapshots, and merges their final numbers.

pub mod net;
pub mod worker;

use crate::cli::{Plan, Role, Transport};
use crate::limits::{DRAIN_SLACK_MS, PORTS_PER_WORKER_MAX};
use crate::rate::Schedule;
use crate::report::{cpu_seconds, live_line, Outcome, Period};
use crate::scenario::{self, Scenario};
use crate::stats::Lat;
use crate::stats::Stats;
use crate::time::{Micros, MS, SEC};
use crate::ua::config::{UacConfig, UasConfig};
use crate::ua::uac::Uac;
use crate::ua::uas::Uas;
use crate::ua::Engine;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Endpoint, Shared, Snapshot, WorkerPlan};

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
}

fn run_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)) & 0xffff_ffff_ffff
}

/// The scenario files of the plan, loaded and checked before anything starts.
pub struct Files {
    pub uac: Option<Arc<Scenario>>,
    pub uas: Option<Arc<Scenario>>,
}

pub fn load_files(plan: &Plan) -> Result<Files, String> {
    let load = |p: &Option<std::path::PathBuf>| -> Result<Option<Arc<Scenario>>, String> {
        match p {
            Some(path) => scenario::load(path).map(|s| Some(Arc::new(s))),
            None => Ok(None),
        }
    };
    let files = Files {
        uac: load(&plan.uac_file)?,
        uas: load(&plan.uas_file)?,
    };
    // [fieldN] in a scenario needs an --inf line with that many fields.
    let inf = plan.numbers.as_ref().and_then(|n| n.inf.as_deref());
    for (sc, path) in [(&files.uac, &plan.uac_file), (&files.uas, &plan.uas_file)] {
        if let (Some(sc), Some(path)) = (sc, path) {
            crate::numbers::check_fields(sc.max_field(), inf)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(files)
}

fn uac_sockets(plan: &Plan, w: usize, workers_n: usize) -> Result<Vec<UdpSocket>, String> {
    match plan.transport {
        Transport::U1 => {
            if w > 0 {
                return Ok(Vec::new());
            }
            let a = SocketAddr::new(plan.local_ip, plan.local_port);
            Ok(vec![
                net::udp_socket(a, false).map_err(|e| format!("bind {a}: {e}"))?
            ])
        }
        Transport::Un => {
            let n = (plan.ports / workers_n + usize::from(w < plan.ports % workers_n))
                .clamp(1, PORTS_PER_WORKER_MAX);
            (0..n)
                .map(|_| {
                    let a = SocketAddr::new(plan.local_ip, 0);
                    net::udp_socket(a, false).map_err(|e| format!("bind {a}: {e}"))
                })
                .collect()
        }
    }
}

fn drain(plan: &Plan) -> Micros {
    let tx = 64 * plan.timers.t1;
    plan.hold + plan.answer_timeout + plan.ring + 2 * tx + DRAIN_SLACK_MS * MS
}

#[allow(clippy::too_many_arguments)]
fn uac_endpoint(
    plan: &Plan,
    files: &Files,
    w: usize,
    uac_workers: usize,
    run: u64,
) -> Result<Option<Endpoint>, String> {
    let socks = uac_sockets(plan, w, uac_workers)?;
    if socks.is_empty() {
        return Ok(None);
    }
    let local: Vec<SocketAddr> = socks
        .iter()
        .map(|s| s.local_addr().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let target = plan.target.ok_or("no --target")?;
    let engine: Box<dyn Engine + Send> = match &files.uac {
        Some(sc) => Box::new(scenario::run::ScenarioEngine::uac(
            sc.clone(),
            scenario::run::Env {
                local,
                remote: Some(target),
                service: plan.number.clone(),
                pause: plan.hold,
                timers: plan.timers,
                run_id: run,
                worker: w as u32,
                quantum: plan.tick(),
                numbers: plan.numbers.clone(),
                workers: uac_workers as u32,
            },
        )),
        None => Box::new(Uac::new(UacConfig {
            scenario: plan.scenario,
            number: plan.number.clone(),
            numbers: plan.numbers.clone(),
            workers: uac_workers as u32,
            target,
            local,
            hold: plan.hold,
            cancel_after: plan.cancel_after,
            answer_timeout: plan.answer_timeout,
            timers: plan.timers,
            run_id: run,
            worker: w as u32,
            quantum: plan.tick(),
            oc: plan.oc,
            trace_err: plan.trace_err.is_some(),
        })),
    };
    let share = plan.rate.share(w, uac_workers);
    let limit = plan.concurrent.map_or(u64::MAX, |c| {
        (c / uac_workers as u64 + u64::from((w as u64) < c % uac_workers as u64)).max(1)
    });
    Ok(Some(Endpoint {
        engine,
        socks,
        schedule: Some(Schedule::new(share)),
        limit,
        drain: drain(plan),
        // --duration bounds the run: calls still in progress then are unfinished.
        end: plan.duration,
    }))
}

fn uas_endpoint(
    record: &Option<crate::ua::config::Record>,
    plan: &Plan,
    files: &Files,
    w: usize,
    workers: usize,
    run: u64,
    (listen, name): (SocketAddr, Option<String>),
) -> Result<Endpoint, String> {
    let sock = net::udp_socket(listen, true).map_err(|e| format!("bind {listen}: {e}"))?;
    let engine: Box<dyn Engine + Send> = match &files.uas {
        Some(sc) => Box::new(scenario::run::ScenarioEngine::uas(
            sc.clone(),
            scenario::run::Env {
                local: vec![listen],
                remote: None,
                service: plan.number.clone(),
                pause: plan.hold,
                timers: plan.timers,
                run_id: run,
                worker: w as u32,
                quantum: plan.tick(),
                numbers: plan.numbers.clone(),
                workers: workers as u32,
            },
        )),
        None => Box::new(Uas::new(UasConfig {
            answer: plan.answer.clone(),
            never: plan.never,
            ring: plan.ring,
            ringing: plan.ringing,
            local: vec![listen],
            dialog_max: 3600 * SEC,
            hangup: plan.uas_hangup,
            oc_reduce: plan.uas_oc_reduce,
            name,
            record: record.clone(),
            timers: plan.timers,
            run_id: run ^ (w as u64) << 40,
        })),
    };
    Ok(Endpoint {
        engine,
        socks: vec![sock],
        schedule: None,
        limit: u64::MAX,
        drain: 0,
        end: None,
    })
}

/// Run the plan to its end; `live` prints the line each second to stderr.
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    let files = load_files(plan)?;
    install_signal_handlers();
    let run = run_id();
    let has_uac = plan.role != Role::Uas;
    let has_uas = plan.role != Role::Uac;
    for &(listen, _) in &plan.listen {
        net::probe_free(listen)
            .map_err(|e| format!("--listen {listen}: {e} (is another process using it?)"))?;
    }
    let record = match &plan.record {
        Some(path) => Some(Arc::new(std::sync::Mutex::new(
            std::fs::File::create(path).map_err(|e| format!("--record {}: {e}", path.display()))?,
        ))),
        None => None,
    };
    let trace_msg = match &plan.trace_msg {
        Some(path) => Some(Arc::new(std::sync::Mutex::new(
            std::fs::File::create(path)
                .map_err(|e| format!("--trace-msg {}: {e}", path.display()))?,
        ))),
        None => None,
    };
    let workers_n = plan.worker_count();
    let uac_workers = if plan.transport == Transport::U1 {
        1
    } else {
        workers_n
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut plans = Vec::new();
    for w in 0..workers_n {
        let mut endpoints = Vec::new();
        if has_uas {
            for l in &plan.listen {
                endpoints.push(uas_endpoint(
                    &record,
                    plan,
                    &files,
                    w,
                    workers_n,
                    run,
                    l.clone(),
                )?);
            }
        }
        if has_uac {
            if let Some(e) = uac_endpoint(plan, &files, w, uac_workers, run)? {
                endpoints.push(e);
            }
        }
        if endpoints.is_empty() {
            continue;
        }
        // Worker i on CPU i (or the i-th of --cpus). A lone worker is pinned too: measured
        // here, an unpinned UAC and UAS cost up to twice the CPU per call, mostly in
        // cross-CPU wake-ups and migrations.
        let core = match &plan.cpus {
            Some(list) if !list.is_empty() => list
                .get(w % list.len())
                .and_then(|&id| cores.iter().find(|c| c.id == id).copied()),
            _ if plan.pin && !cores.is_empty() => cores.get(w % cores.len()).copied(),
            _ => None,
        };
        plans.push(WorkerPlan {
            index: w,
            core,
            endpoints,
            trace_msg: trace_msg.clone(),
        });
    }
    let shared = Arc::new(Shared::new(Duration::from_millis(20), plan.tick()));
    let (tx, rx) = crossbeam_channel::bounded::<Snapshot>(1024);
    let workers = plans.len();
    let started = Instant::now();
    let mut handles = Vec::new();
    for p in plans {
        let (s, t) = (shared.clone(), tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("jl-worker-{}", p.index))
            .spawn(move || worker::run(p, s, t))
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }
    drop(tx);
    let mut csv = match &plan.csv {
        Some(path) => Some(crate::report::Csv::create(path)?),
        None => None,
    };
    let mut latest: Vec<Option<Snapshot>> = (0..workers_n).map(|_| None).collect();
    let mut finished = 0;
    let mut uac_done = 0;
    let mut last_row_at: Micros = 0;
    let mut last_started = 0u64;
    let mut last_answer: Option<hdrhistogram::Histogram<u64>> = None;
    let uas_deadline = if has_uac {
        None
    } else {
        plan.duration.map(|d| started + Duration::from_micros(d))
    };
    while finished < workers {
        if SIGNALLED.load(Ordering::Relaxed) || uas_deadline.is_some_and(|d| Instant::now() >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => {
                let w = s.worker;
                let prev_done = latest
                    .get(w)
                    .and_then(|o| o.as_ref())
                    .is_some_and(|p| p.uac_done);
                if s.uac_done && !prev_done {
                    uac_done += 1;
                }
                if s.last {
                    finished += 1;
                }
                if let Some(slot) = latest.get_mut(w) {
                    *slot = Some(s);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        // Both roles in one process: once every UAC is done, the UAS side stops too.
        if has_uac && has_uas && uac_done >= workers {
            shared.stop.store(true, Ordering::Relaxed);
        }
        // A row once every running worker has reported a later second than the last row,
        // timed by the workers' own clock: a late snapshot is not counted as a second's worth.
        if let Some(at) = round_at(&latest, last_row_at) {
            let dt = secs(at - last_row_at);
            last_row_at = at;
            let (uac, uas) = merge(&latest);
            let now_started = uac.as_ref().map_or(0, |u| u.started);
            let rate = (now_started - last_started.min(now_started)) as f64 / dt;
            last_started = now_started;
            let elapsed = secs(at);
            // The period's INVITE->200 latencies: the totals now less the totals at the last
            // row (histograms only grow).
            let total = uac.as_ref().and_then(|u| u.hist(Lat::Answer));
            let period = total.map(|h| {
                let mut d = h.clone();
                if let Some(prev) = &last_answer {
                    let _ = d.subtract(prev);
                }
                d
            });
            last_answer = total.cloned();
            let p = Period {
                rate,
                total_rate: if elapsed > 0.0 {
                    now_started as f64 / elapsed
                } else {
                    0.0
                },
                answer: period.as_ref(),
            };
            if !plan.quiet {
                eprintln!("{}", live_line(elapsed, uac.as_ref(), &p, uas.as_ref()));
            }
            if let Some(csv) = csv.as_mut() {
                csv.row(elapsed, rate, uac.as_ref(), uas.as_ref(), period.as_ref());
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let (uac, uas) = merge(&latest);
    if let Some(csv) = csv.as_mut() {
        let last_at = latest.iter().flatten().map(|s| s.at).max().unwrap_or(0);
        let elapsed = secs(last_at.max(last_row_at));
        let total = uac.as_ref().map_or(0, |u| u.started);
        let rate = if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        };
        csv.row(elapsed, rate, uac.as_ref(), uas.as_ref(), None);
    }
    if let Some(path) = &plan.trace_err {
        write_trace_err(path, uac.as_ref(), uas.as_ref())?;
    }
    Ok(Outcome {
        uac,
        uas,
        elapsed_s: started.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds(),
        workers,
        offered: has_uac.then(|| offered(plan)),
    })
}

/// The rate asked for, as the summary shows it: what the run offered, not what it achieved
/// over a time that includes waiting for the last calls.
fn offered(plan: &Plan) -> String {
    let r = &plan.rate;
    let mut s = if r.step > 0.0 {
        format!(
            "{:.1} calls/s rising by {:.1} every {} ms to {:.1}",
            r.start,
            r.step,
            r.period / MS,
            r.max
        )
    } else {
        format!("{:.1} calls/s", r.start)
    };
    if let Some(a) = r.alternate {
        s += &format!(" alternating with {a:.1} every {} ms", r.period / MS);
    }
    s
}

/// `--trace-err`: every failed call kept by the workers, each with the message that ended it.
fn write_trace_err(
    path: &std::path::Path,
    uac: Option<&Stats>,
    uas: Option<&Stats>,
) -> Result<(), String> {
    let mut text = format!(
        "# junction-load failed calls, run ended {:.3} (Unix seconds)\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    );
    let mut dropped = 0;
    for s in [uac, uas].into_iter().flatten() {
        for t in &s.trace_err {
            text += "----------------------------------------------------------------\n";
            text += t;
        }
        dropped += s.trace_err_dropped;
    }
    if dropped > 0 {
        text += &format!("# {dropped} more failed calls not traced (limit per worker)\n");
    }
    std::fs::write(path, text).map_err(|e| format!("--trace-err {}: {e}", path.display()))
}

/// The time of a new round of snapshots: every worker has reported, and the running ones all
/// in a later second than `after`; their earliest time, or `None`.
fn round_at(latest: &[Option<Snapshot>], after: Micros) -> Option<Micros> {
    let mut at: Option<Micros> = None;
    for s in latest {
        let s = s.as_ref()?;
        if !s.last {
            at = Some(at.map_or(s.at, |a| a.min(s.at)));
        }
    }
    at.filter(|&a| a / SEC > after / SEC)
}

fn merge(latest: &[Option<Snapshot>]) -> (Option<Stats>, Option<Stats>) {
    let mut uac: Option<Stats> = None;
    let mut uas: Option<Stats> = None;
    for s in latest.iter().flatten() {
        for (src, dst) in [(&s.uac, &mut uac), (&s.uas, &mut uas)] {
            if let Some(x) = src {
                match dst {
                    Some(d) => d.merge(x),
                    None => *dst = Some(x.clone()),
                }
            }
        }
    }
    (uac, uas)
}

/// Elapsed time in a unit for messages.
pub fn secs(us: Micros) -> f64 {
    us as f64 / SEC as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(worker: usize, at: Micros, last: bool) -> Option<Snapshot> {
        Some(Snapshot {
            worker,
            uac: None,
            uas: None,
            uac_done: last,
            last,
            at,
        })
    }

    #[test]
    fn a_row_waits_for_every_running_worker_to_reach_a_later_second() {
        // One worker has not reported yet: no row.
        assert_eq!(round_at(&[snap(0, SEC, false), None], 0), None);
        // Both in second 1: a row at the earlier one's time.
        let both = [snap(0, SEC + 300, false), snap(1, SEC + 40, false)];
        assert_eq!(round_at(&both, 0), Some(SEC + 40));
        // Not again for the same second.
        assert_eq!(round_at(&both, SEC + 40), None);
        // A worker that lags behind holds the row back, however late the other one is.
        let lagging = [snap(0, 3 * SEC, false), snap(1, SEC + 900_000, false)];
        assert_eq!(round_at(&lagging, SEC + 40), None);
        // A finished worker no longer holds rows back.
        let one_done = [snap(0, 3 * SEC, false), snap(1, SEC + 900_000, true)];
        assert_eq!(round_at(&one_done, SEC + 40), Some(3 * SEC));
    }
}
