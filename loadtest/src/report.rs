//! What the operator sees: a live line per second on stderr, the final summary, the JSON file.

use crate::stats::{Lat, Stats};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// The merged result of a run.
pub struct Outcome {
    pub uac: Option<Stats>,
    pub uas: Option<Stats>,
    /// Wall-clock seconds from the start to the end of the run.
    pub elapsed_s: f64,
    /// CPU seconds of this process (user, system).
    pub cpu_s: (f64, f64),
    pub workers: usize,
    /// The rate asked for (`--rate`, or the ramp), as the summary shows it.
    pub offered: Option<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn pct(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

/// What the live line shows of the last period (SIPp's "periodic" column).
pub struct Period<'a> {
    /// Calls started per second in the period, and since the start.
    pub rate: f64,
    pub total_rate: f64,
    /// INVITE->200 latencies of the period alone.
    pub answer: Option<&'a Histogram<u64>>,
}

/// One line: elapsed, call rate over the last period and since the start, active, ok, failed,
/// retransmissions, calls withheld by overload control (once there are any), p50/p99 of
/// INVITE->200 in the period and since the start, misrouted calls (with --expect), and the
/// UAS counters.
pub fn live_line(elapsed_s: f64, uac: Option<&Stats>, p: &Period, uas: Option<&Stats>) -> String {
    let mut s = format!("[{elapsed_s:6.1}s]");
    if let Some(u) = uac {
        s += &format!(
            " uac: {:7.1} cps (total {:.1}), started {}, active {}, ok {}, failed {}, retrans {}",
            p.rate, p.total_rate, u.started, u.active, u.succeeded, u.failed, u.retransmissions
        );
        if u.throttled > 0 {
            s += &format!(", throttled {}", u.throttled);
        }
        if let Some(h) = u.hist(Lat::Answer).filter(|h| !h.is_empty()) {
            let (p50, p99) = p
                .answer
                .filter(|h| !h.is_empty())
                .map_or((0.0, 0.0), |h| (ms(pct(h, 0.5)), ms(pct(h, 0.99))));
            s += &format!(
                ", 200 p50/p99 {p50:.2}/{p99:.2} ms (total {:.2}/{:.2})",
                ms(pct(h, 0.5)),
                ms(pct(h, 0.99))
            );
        }
        if u.verdicts.iter().any(|&n| n > 0) {
            s += &format!(", misrouted {}", u.misrouted());
        }
        let fails = u.failures();
        if !fails.is_empty() {
            let list: Vec<String> = fails
                .iter()
                .take(3)
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            s += &format!(" [{}]", list.join("; "));
        }
    }
    if let Some(u) = uas {
        s += &format!(
            " | uas: calls {}, active {}, done {}, retrans {}",
            u.uas_calls, u.active, u.uas_completed, u.retransmissions
        );
    }
    s
}

fn hist_text(h: &Histogram<u64>) -> String {
    format!(
        "n={:<8} min {:>8.3}  p50 {:>8.3}  p90 {:>8.3}  p99 {:>8.3}  p99.9 {:>8.3}  max {:>8.3} ms",
        h.len(),
        ms(h.min()),
        ms(pct(h, 0.5)),
        ms(pct(h, 0.9)),
        ms(pct(h, 0.99)),
        ms(pct(h, 0.999)),
        ms(h.max())
    )
}

pub fn summary(o: &Outcome) -> String {
    let mut s = String::new();
    s += &format!(
        "junction-load: {:.2} s wall, {:.2} s CPU (user {:.2}, sys {:.2}), {} worker(s)\n",
        o.elapsed_s,
        o.cpu_s.0 + o.cpu_s.1,
        o.cpu_s.0,
        o.cpu_s.1,
        o.workers
    );
    if let Some(u) = &o.uac {
        let offered = o
            .offered
            .as_ref()
            .map_or(String::new(), |r| format!(", offered {r}"));
        let unfinished = u
            .started
            .saturating_sub(u.succeeded + u.failed + u.throttled);
        s += &format!(
            "UAC: {} calls started{offered}, {} succeeded, {} failed, {} throttled, {unfinished} in flight (unfinished)\n",
            u.started, u.succeeded, u.failed, u.throttled
        );
        if u.throttled > 0 {
            s += "  throttled: withheld by RFC 7339 overload control, never sent (counted in started)\n";
        }
        s += "  latency from the intended send time (coordinated omission corrected):\n";
        for l in Lat::ALL {
            if let Some(h) = u.hist(l).filter(|h| !h.is_empty()) {
                s += &format!("    {:<17} {}\n", l.name(), hist_text(h));
            }
        }
        s += &messages(u);
        s += &route_check(u);
    }
    if let Some(u) = &o.uas {
        s += &format!(
            "UAS: {} calls received, {} ended by BYE\n",
            u.uas_calls, u.uas_completed
        );
        let codes: Vec<String> = u
            .uas_answered
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        if !codes.is_empty() {
            s += &format!("  answered: {}\n", codes.join(", "));
        }
        if !u.trunk_calls.is_empty() {
            let mut by: Vec<&(String, u64)> = u.trunk_calls.iter().collect();
            by.sort();
            let list: Vec<String> = by.iter().map(|(n, c)| format!("{n} {c}")).collect();
            s += &format!("  calls by trunk: {}\n", list.join(", "));
        }
        s += &messages(u);
    }
    let fails = failures(o);
    if fails.is_empty() {
        s += "failures: none\n";
    } else {
        s += "failures by reason:\n";
        for (k, n) in fails {
            s += &format!("  {n:>10}  {k}\n");
        }
    }
    s
}

/// The `--expect` check: calls judged by verdict, and examples of the misrouted ones.
fn route_check(u: &Stats) -> String {
    use crate::verify::Verdict;
    let judged: u64 = u.verdicts.iter().sum();
    if judged == 0 {
        return String::new();
    }
    let by: Vec<String> = Verdict::ALL
        .iter()
        .zip(u.verdicts.iter())
        .filter(|(v, n)| **n > 0 || v.is_misrouted())
        .map(|(v, n)| format!("{} {n}", v.name()))
        .collect();
    let mut s = format!(
        "route check: {judged} calls judged, {} misrouted ({})\n",
        u.misrouted(),
        by.join(", ")
    );
    for x in &u.examples {
        s += &format!("  e.g. {x}\n");
    }
    s
}

fn messages(u: &Stats) -> String {
    format!(
        "  messages: sent {}, received {}, retransmissions {}, stray {}, unparsable {}, send errors {}, truncated {}\n",
        u.sent, u.received, u.retransmissions, u.stray, u.parse_errors, u.send_errors, u.truncated
    )
}

/// Failures by reason over both roles.
pub fn failures(o: &Outcome) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = Vec::new();
    for s in [&o.uac, &o.uas].into_iter().flatten() {
        for (k, n) in s.failures() {
            match all.iter_mut().find(|(x, _)| *x == k) {
                Some(e) => e.1 += n,
                None => all.push((k, n)),
            }
        }
    }
    all
}

pub fn failure_total(o: &Outcome) -> u64 {
    failures(o).iter().map(|(_, n)| n).sum()
}

fn hist_json(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "min": h.min(), "mean": h.mean(), "p50": pct(h, 0.5), "p90": pct(h, 0.9),
        "p99": pct(h, 0.99), "p99_9": pct(h, 0.999), "max": h.max(),
    })
}

fn stats_json(u: &Stats) -> Value {
    let mut lat = Map::new();
    for l in Lat::ALL {
        if let Some(h) = u.hist(l).filter(|h| !h.is_empty()) {
            lat.insert(l.name().to_string(), hist_json(h));
        }
    }
    let answered: Map<String, Value> = u
        .uas_answered
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(c, &n)| (c.to_string(), json!(n)))
        .collect();
    let failures: Map<String, Value> = u
        .failures()
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    let verdicts: Map<String, Value> = crate::verify::Verdict::ALL
        .iter()
        .zip(u.verdicts.iter())
        .map(|(v, n)| (v.name().to_string(), json!(n)))
        .collect();
    let trunks: Map<String, Value> = u
        .trunk_calls
        .iter()
        .map(|(n, c)| (n.clone(), json!(c)))
        .collect();
    json!({
        "calls": {"started": u.started, "succeeded": u.succeeded, "failed": u.failed,
            "throttled": u.throttled,
            "unfinished": u.started.saturating_sub(u.succeeded + u.failed + u.throttled)},
        "route_check": {"misrouted": u.misrouted(), "verdicts": verdicts,
            "examples": u.examples},
        "calls_by_trunk": trunks,
        "uas": {"calls": u.uas_calls, "completed": u.uas_completed, "answered": answered},
        "latency_us": lat,
        "failures": failures,
        "messages": {"sent": u.sent, "received": u.received, "retransmissions": u.retransmissions,
            "stray": u.stray, "unparsable": u.parse_errors, "send_errors": u.send_errors,
            "truncated": u.truncated},
    })
}

pub fn json(o: &Outcome) -> Value {
    let failures: Map<String, Value> = failures(o)
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    json!({
        "elapsed_s": o.elapsed_s,
        "cpu_s": {"user": o.cpu_s.0, "system": o.cpu_s.1, "total": o.cpu_s.0 + o.cpu_s.1},
        "workers": o.workers,
        "offered": o.offered,
        "uac": o.uac.as_ref().map(stats_json),
        "uas": o.uas.as_ref().map(stats_json),
        "failures": failures,
        "failure_total": failure_total(o),
    })
}

/// CPU time of this process (user, system) in seconds.
pub fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage fills a zeroed rusage struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// The per-second CSV: SIPp's -trace_stat column names where the meaning is the same
/// ((P) since the previous line, (C) since the start), then our latency columns (ms), then
/// ThrottledCall(P), the new calls withheld by RFC 7339 overload control, then the period's
/// INVITE->200 p50 and p99, then CurrentTime(C), the wall clock (Unix seconds, as SIPp's
/// CurrentTime column gives it, to line rows up with Prometheus samples); each added last so
/// that the earlier columns keep their positions.
pub struct Csv {
    file: std::io::BufWriter<std::fs::File>,
    prev_started: u64,
    prev_ok: u64,
    prev_failed: u64,
    prev_throttled: u64,
}

impl Csv {
    pub fn create(path: &std::path::Path) -> Result<Csv, String> {
        use std::io::Write;
        let f =
            std::fs::File::create(path).map_err(|e| format!("--csv {}: {e}", path.display()))?;
        let mut file = std::io::BufWriter::new(f);
        let _ = writeln!(
            file,
            "ElapsedTime(C);CallRate(P);OutgoingCall(P);OutgoingCall(C);CurrentCall;SuccessfulCall(P);\
             SuccessfulCall(C);FailedCall(P);FailedCall(C);Retransmissions(C);IncomingCall(C);\
             Invite200_p50(C);Invite200_p99(C);Bye200_p99(C);ThrottledCall(P);\
             Invite200_p50(P);Invite200_p99(P);CurrentTime(C)"
        );
        Ok(Csv {
            file,
            prev_started: 0,
            prev_ok: 0,
            prev_failed: 0,
            prev_throttled: 0,
        })
    }

    pub fn row(
        &mut self,
        elapsed_s: f64,
        rate: f64,
        uac: Option<&Stats>,
        uas: Option<&Stats>,
        period: Option<&Histogram<u64>>,
    ) {
        use std::io::Write;
        let (started, ok, failed, active, retrans, throttled) =
            uac.map_or((0, 0, 0, 0, 0, 0), |u| {
                (
                    u.started,
                    u.succeeded,
                    u.failed,
                    u.active,
                    u.retransmissions,
                    u.throttled,
                )
            });
        let incoming = uas.map_or(0, |u| u.uas_calls);
        let p = |l: Lat, q: f64| uac.and_then(|u| u.hist(l)).map_or(0.0, |h| ms(pct(h, q)));
        let _ = writeln!(
            self.file,
            "{elapsed_s:.3};{rate:.1};{};{started};{active};{};{ok};{};{failed};{retrans};{incoming};{:.3};{:.3};{:.3};{};{:.3};{:.3};{:.6}",
            started - self.prev_started.min(started),
            ok - self.prev_ok.min(ok),
            failed - self.prev_failed.min(failed),
            p(Lat::Answer, 0.5),
            p(Lat::Answer, 0.99),
            p(Lat::Bye, 0.99),
            throttled - self.prev_throttled.min(throttled),
            period.map_or(0.0, |h| ms(pct(h, 0.5))),
            period.map_or(0.0, |h| ms(pct(h, 0.99))),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        let _ = self.file.flush();
        (
            self.prev_started,
            self.prev_ok,
            self.prev_failed,
            self.prev_throttled,
        ) = (started, ok, failed, throttled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(throttled: u64) -> Outcome {
        let mut u = Stats::new();
        (u.started, u.succeeded, u.throttled) = (10, 4, throttled);
        u.fail(crate::stats::Fail::TimeoutInvite);
        Outcome {
            uac: Some(u),
            uas: None,
            elapsed_s: 1.0,
            cpu_s: (0.0, 0.0),
            workers: 1,
            offered: Some("10.0 calls/s".into()),
        }
    }

    #[test]
    fn throttled_calls_are_reported_apart_from_failures() {
        let o = outcome(5);
        let s = summary(&o);
        assert!(
            s.contains("10 calls started, offered 10.0 calls/s, 4 succeeded, 1 failed, 5 throttled, 0 in flight (unfinished)\n"),
            "{s}"
        );
        let j = json(&o);
        assert_eq!(j["uac"]["calls"]["throttled"], 5);
        assert_eq!(j["uac"]["calls"]["failed"], 1);
        // --max-failures counts this: throttled calls are not failures.
        assert_eq!(failure_total(&o), 1);
        let p = Period {
            rate: 10.0,
            total_rate: 10.0,
            answer: None,
        };
        let live = live_line(1.0, o.uac.as_ref(), &p, None);
        assert!(live.contains(", throttled 5"), "{live}");
        let quiet = live_line(1.0, outcome(0).uac.as_ref(), &p, None);
        assert!(!quiet.contains("throttled"), "{quiet}");
    }

    #[test]
    fn csv_appends_throttled_per_second_as_the_last_column() {
        let path = std::env::temp_dir().join(format!("jl-report-{}.csv", std::process::id()));
        let mut csv = Csv::create(&path).unwrap();
        let mut u = outcome(0).uac.unwrap();
        csv.row(1.0, 10.0, Some(&u), None, None);
        u.throttled = 7;
        u.started = 20;
        csv.row(2.0, 10.0, Some(&u), None, None);
        u.throttled = 9;
        csv.row(3.0, 0.0, Some(&u), None, None);
        drop(csv);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
        // The earlier columns keep their positions (overload.sh reads 1, 2, 6 and 8).
        assert_eq!(
            (rows[0][0], rows[0][1], rows[0][5], rows[0][7]),
            (
                "ElapsedTime(C)",
                "CallRate(P)",
                "SuccessfulCall(P)",
                "FailedCall(P)"
            )
        );
        assert_eq!(rows[0].len(), 18);
        assert_eq!(rows[0][14], "ThrottledCall(P)");
        assert_eq!(rows[0][17], "CurrentTime(C)");
        let last: Vec<&str> = rows[1..].iter().map(|r| r[14]).collect();
        assert_eq!(last, ["0", "7", "2"]);
        assert!(rows.iter().all(|r| r.len() == 18));
        // The wall clock: Unix seconds of when the row was written.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let t: f64 = rows[1][17].parse().unwrap();
        assert!(t > 1.0e9 && t <= now + 1.0, "{t}");
        assert_eq!(rows[2][2], "10"); // OutgoingCall(P): throttled calls are offered calls
    }
}
