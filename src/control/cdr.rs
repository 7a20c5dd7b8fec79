//! The CDR writer: one std thread, off the shard CPUs when a CPU is free of shards, that
//! receives finished calls (`Box<CallRecord>`) from the shards over a bounded channel and
//! appends one JSON object per line to the `[cdr] path` file, rotated by size and/or time
//! (`rotating_file.rs`).
//!
//! A shard never waits: `CdrSink::offer` is a `try_send`; a full queue
//! (`limits::CDR_QUEUE_MAX`) drops the record and counts it. I/O errors are counted and
//! logged at most once per `limits::LOG_REPEAT_INTERVAL`; nothing here panics on them.
//! Buffered lines are written out when the queue runs empty and at least every
//! `limits::CDR_FLUSH_INTERVAL`.
//!
//! One JSON object per line; every field, its meaning and an example are in docs/cdr.md
//! (keep it in step with `Line` and `AttemptLine` below).

use super::clock::{self, WallClock};
use super::rotating_file::{RotatingFile, Rotation};
use crate::config::CdrSettings;
use crate::limits;
use crate::sip::cdr::CallRecord;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer's counters (shared with the shards, which count drops, and /metrics).
#[derive(Debug, Default)]
pub struct CdrCounters {
    /// Records appended to the file.
    pub written: AtomicU64,
    /// Records a shard dropped because the queue was full (or the writer had stopped).
    pub dropped: AtomicU64,
    /// Failed file operations (open, write, flush, rename); the records of a failed write
    /// are lost.
    pub write_errors: AtomicU64,
    /// Files rotated away.
    pub rotations: AtomicU64,
}

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CdrTotals {
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
    pub rotations: u64,
}

impl CdrCounters {
    pub fn totals(&self) -> CdrTotals {
        CdrTotals {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            rotations: self.rotations.load(Ordering::Relaxed),
        }
    }
}

/// A shard's end of the queue.
#[derive(Clone, Debug)]
pub struct CdrSink {
    tx: Sender<Box<CallRecord>>,
    counters: Arc<CdrCounters>,
}

impl CdrSink {
    /// Queue a record without waiting; false (and counted) when it was dropped.
    pub fn offer(&self, record: Box<CallRecord>) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The running writer thread.
pub struct CdrWriter {
    counters: Arc<CdrCounters>,
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
    thread: Option<JoinHandle<()>>,
}

impl CdrWriter {
    pub fn counters(&self) -> Arc<CdrCounters> {
        Arc::clone(&self.counters)
    }

    /// The CPU the thread is pinned to (`None`: every CPU has a shard).
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Write what is queued, close the file and end the thread. Call after the shards
    /// have stopped (records they queue later are dropped and counted).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Open the CDR file and start the writer, pinned to the first CPU not in `shard_cpus`.
/// Fails (before any shard starts) when the file cannot be opened.
pub fn spawn(
    settings: &CdrSettings,
    clock: WallClock,
    shard_cpus: &[usize],
) -> Result<(CdrSink, CdrWriter), String> {
    let rotation = Rotation {
        bytes: settings.rotate_bytes,
        secs: settings.rotate_secs,
    };
    let file = RotatingFile::open(&settings.path, rotation, clock::now_epoch_ms())
        .map_err(|e| format!("cdr.path {}: cannot open: {e}", settings.path.display()))?;
    let (tx, rx) = crossbeam_channel::bounded(limits::CDR_QUEUE_MAX);
    let counters = Arc::new(CdrCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let spare = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|core| !shard_cpus.contains(&core.id));
    let thread = {
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("junction-cdr".to_string())
            .spawn(move || {
                if let Some(core) = spare {
                    core_affinity::set_for_current(core);
                }
                Writer {
                    file,
                    clock,
                    counters: &counters,
                    line: Vec::with_capacity(1024),
                    errors: Repeats::default(),
                    drops: Repeats::default(),
                    dropped_seen: 0,
                }
                .run(&rx, &stop);
            })
            .map_err(|e| format!("cdr: cannot start the writer thread: {e}"))?
    };
    Ok((
        CdrSink {
            tx,
            counters: Arc::clone(&counters),
        },
        CdrWriter {
            counters,
            stop,
            cpu: spare.map(|core| core.id),
            thread: Some(thread),
        },
    ))
}

/// A repeating problem, logged at most once per `limits::LOG_REPEAT_INTERVAL`.
#[derive(Default)]
struct Repeats {
    last_logged: Option<Instant>,
    /// Occurrences not logged yet.
    pending: u64,
}

impl Repeats {
    /// Count `n` more; true (and the count is taken) when it is time to log them.
    fn due(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.pending += n;
        let quiet = self
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= limits::LOG_REPEAT_INTERVAL);
        if self.pending == 0 || !quiet {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

struct Writer<'a> {
    file: RotatingFile,
    clock: WallClock,
    counters: &'a CdrCounters,
    line: Vec<u8>,
    errors: Repeats,
    drops: Repeats,
    dropped_seen: u64,
}

impl Writer<'_> {
    fn run(&mut self, rx: &Receiver<Box<CallRecord>>, stop: &AtomicBool) {
        let mut last_flush = Instant::now();
        let mut dirty = false;
        loop {
            let wait = limits::CDR_FLUSH_INTERVAL.saturating_sub(last_flush.elapsed());
            let disconnected = match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(record) => {
                    self.write(&record);
                    dirty = true;
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let idle = rx.is_empty();
            if last_flush.elapsed() >= limits::CDR_FLUSH_INTERVAL {
                // Once a second: time rotation, reopening after errors, reporting drops.
                let now_ms = clock::now_epoch_ms();
                match self.file.tick(now_ms) {
                    Ok(Some(rotated)) => self.rotated(&rotated),
                    Ok(None) => {}
                    Err(e) => self.error("rotate or reopen", &e),
                }
                self.report_drops(false);
            }
            if dirty && (idle || last_flush.elapsed() >= limits::CDR_FLUSH_INTERVAL) {
                if let Err(e) = self.file.flush() {
                    self.error("flush", &e);
                }
                dirty = false;
                last_flush = Instant::now();
            } else if !dirty && last_flush.elapsed() >= limits::CDR_FLUSH_INTERVAL {
                last_flush = Instant::now();
            }
            if disconnected || (idle && stop.load(Ordering::Acquire)) {
                break;
            }
        }
        if let Err(e) = self.file.flush() {
            self.error("flush", &e);
        }
        self.report_drops(true);
        self.report_errors(true);
    }

    fn write(&mut self, record: &CallRecord) {
        self.line.clear();
        if let Err(e) = write_json(&mut self.line, record, &self.clock) {
            // Our own types always serialize; count it rather than stop.
            self.error("encode", &std::io::Error::other(e));
            return;
        }
        self.line.push(b'\n');
        match self.file.write_line(&self.line, clock::now_epoch_ms()) {
            Ok(rotated) => {
                self.counters.written.fetch_add(1, Ordering::Relaxed);
                if let Some(rotated) = rotated {
                    self.rotated(&rotated);
                }
            }
            Err(e) => self.error("write", &e),
        }
    }

    fn rotated(&self, to: &std::path::Path) {
        self.counters.rotations.fetch_add(1, Ordering::Relaxed);
        crate::log_info!(
            "cdr file rotated",
            path = self.file.path().display(),
            rotated_to = to.display()
        );
    }

    fn error(&mut self, what: &str, e: &std::io::Error) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(count) = self.errors.due(1, Instant::now()) {
            crate::log_error!(
                "cdr write failed",
                operation = what,
                path = self.file.path().display(),
                error = e,
                errors = count
            );
        }
    }

    fn report_errors(&mut self, last: bool) {
        if last && self.errors.pending > 0 {
            let count = std::mem::take(&mut self.errors.pending);
            crate::log_error!(
                "cdr write failed",
                path = self.file.path().display(),
                errors = count
            );
        }
    }

    fn report_drops(&mut self, last: bool) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        let new = dropped.saturating_sub(self.dropped_seen);
        self.dropped_seen = dropped;
        let due = if last {
            self.drops.pending += new;
            Some(std::mem::take(&mut self.drops.pending)).filter(|n| *n > 0)
        } else {
            self.drops.due(new, Instant::now())
        };
        if let Some(count) = due {
            crate::log_warn!(
                "cdr records dropped: the writer is behind (queue full)",
                dropped = count,
                dropped_total = dropped,
                queue = limits::CDR_QUEUE_MAX
            );
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    call_id: &'a str,
    ingress: &'a str,
    source: Option<String>,
    listener: Option<String>,
    called: &'a str,
    calling: &'a str,
    from: &'a str,
    pai: Option<&'a str>,
    privacy: bool,
    called_normalized: &'a str,
    calling_normalized: &'a str,
    attempts: Vec<AttemptLine<'a>>,
    start: String,
    start_ms: i64,
    answer: Option<String>,
    answer_ms: Option<i64>,
    end: String,
    end_ms: i64,
    duration_s: f64,
    ended_by: &'static str,
    status: u16,
    reason: &'a str,
}

#[derive(Serialize)]
struct AttemptLine<'a> {
    trunk: &'a str,
    route: &'a str,
    called: &'a str,
    calling: &'a str,
    pai: Option<&'a str>,
    status: u16,
    q850_cause: Option<u16>,
    sip_reason: &'a str,
    sent: String,
    sent_ms: i64,
    /// Milliseconds (µs precision) from the INVITE to the first 18x (or 2xx).
    pdd_ms: Option<f64>,
    #[serde(rename = "final")]
    final_at: Option<String>,
    final_ms: Option<i64>,
}

/// Round to 3 decimals (ms of a duration in s, µs of one in ms).
fn thousandths(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Append the JSON object of `record` (without the newline) to `out`.
pub fn write_json(
    out: &mut Vec<u8>,
    record: &CallRecord,
    clock: &WallClock,
) -> serde_json::Result<()> {
    let time = |t: Instant| {
        let ms = clock.epoch_ms(t);
        (clock::rfc3339_ms(ms), ms)
    };
    let attempts = record
        .attempts
        .iter()
        .map(|a| {
            let (sent, sent_ms) = time(a.sent);
            let final_time = a.final_at.map(time);
            AttemptLine {
                trunk: &a.trunk,
                route: a.route.as_deref().unwrap_or(""),
                called: &a.called,
                calling: &a.calling,
                pai: a.pai.as_deref(),
                status: a.status,
                q850_cause: a.failure.as_ref().and_then(|f| f.cause),
                sip_reason: a.failure.as_ref().map_or("", |f| &f.sip_reason),
                sent,
                sent_ms,
                pdd_ms: a.progress.map(|p| {
                    thousandths(p.saturating_duration_since(a.sent).as_secs_f64() * 1000.0)
                }),
                final_ms: final_time.as_ref().map(|(_, ms)| *ms),
                final_at: final_time.map(|(text, _)| text),
            }
        })
        .collect();
    let (start, start_ms) = time(record.started);
    let answer = record.answered.map(time);
    let (end, end_ms) = time(record.ended);
    let line = Line {
        call_id: &record.call_id,
        ingress: &record.ingress,
        source: record.source.map(|a| a.to_string()),
        listener: record.listener.map(|a| a.to_string()),
        called: &record.called,
        calling: &record.calling,
        from: &record.from,
        pai: record.pai.as_deref(),
        privacy: record.privacy,
        called_normalized: &record.called_normalized,
        calling_normalized: &record.calling_normalized,
        attempts,
        start,
        start_ms,
        answer_ms: answer.as_ref().map(|(_, ms)| *ms),
        answer: answer.map(|(text, _)| text),
        end,
        end_ms,
        duration_s: thousandths(record.duration_secs()),
        ended_by: record.ended_by.as_str(),
        status: record.status,
        reason: record.reason,
    };
    serde_json::to_writer(out, &line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::cdr::{AttemptRecord, EndedBy};
    use std::path::PathBuf;
    use std::time::{SystemTime, UNIX_EPOCH};

    const T0_MS: u64 = 1_795_842_790_123; // 2026-11-28T05:13:10.123Z

    fn record(base: Instant, call_id: &str) -> CallRecord {
        let ms = Duration::from_millis;
        CallRecord {
            call_id: call_id.to_string(),
            ingress: "pbx".to_string(),
            source: Some("192.0.2.10:5060".parse().unwrap()),
            listener: Some("192.0.2.1:5060".parse().unwrap()),
            called: "2125551234".to_string(),
            calling: "100".to_string(),
            from: "100".to_string(),
            pai: None,
            privacy: false,
            called_normalized: "+12125551234".to_string(),
            calling_normalized: "100".to_string(),
            attempts: vec![
                AttemptRecord {
                    trunk: "gw-a".to_string(),
                    route: Some(Arc::from("primary")),
                    called: "2125551234".to_string(),
                    calling: "100".to_string(),
                    pai: None,
                    failure: Some(Box::new(crate::sip::cdr::Failure {
                        cause: Some(34),
                        sip_reason: "Service Unavailable".into(),
                    })),
                    sent: base + ms(2),
                    progress: None,
                    final_at: Some(base + ms(40)),
                    status: 503,
                },
                AttemptRecord {
                    trunk: "gw-b".to_string(),
                    route: Some(Arc::from("backup")),
                    called: "+12125551234".to_string(),
                    calling: "+12125550100".to_string(),
                    pai: Some("+12125550100".into()),
                    failure: None,
                    sent: base + ms(41),
                    progress: Some(base + ms(41) + Duration::from_micros(1_500)),
                    final_at: Some(base + ms(3041)),
                    status: 200,
                },
            ],
            started: base,
            answered: Some(base + ms(3041)),
            ended: base + ms(65_452),
            ended_by: EndedBy::Callee,
            status: 200,
            reason: "",
        }
    }

    fn clock(base: Instant) -> WallClock {
        WallClock::from_pair(base, UNIX_EPOCH + Duration::from_millis(T0_MS))
    }

    #[test]
    fn json_shape() {
        let base = Instant::now();
        let mut out = Vec::new();
        write_json(&mut out, &record(base, "c1@x"), &clock(base)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "call_id",
            "ingress",
            "source",
            "listener",
            "called",
            "calling",
            "from",
            "pai",
            "privacy",
            "called_normalized",
            "calling_normalized",
            "attempts",
            "start",
            "start_ms",
            "answer",
            "answer_ms",
            "end",
            "end_ms",
            "duration_s",
            "ended_by",
            "status",
            "reason",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(v["call_id"], "c1@x");
        assert_eq!(v["ingress"], "pbx");
        assert_eq!(v["called_normalized"], "+12125551234");
        assert_eq!(v["start"], "2026-11-28T05:13:10.123Z");
        assert_eq!(v["start_ms"], T0_MS);
        assert_eq!(v["answer"], "2026-11-28T05:13:13.164Z");
        assert_eq!(v["end_ms"], T0_MS + 65_452);
        assert_eq!(v["duration_s"], 62.411);
        assert_eq!(v["ended_by"], "callee");
        assert_eq!(v["status"], 200);
        assert_eq!(v["reason"], "");
        let attempts = v["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        let a = &attempts[0];
        assert_eq!(a["trunk"], "gw-a");
        assert_eq!(a["route"], "primary");
        assert_eq!(a["status"], 503);
        assert_eq!(a["q850_cause"], 34);
        assert_eq!(a["sip_reason"], "Service Unavailable");
        assert!(a["pai"].is_null());
        assert_eq!(v["source"], "192.0.2.10:5060");
        assert_eq!(v["listener"], "192.0.2.1:5060");
        assert_eq!(v["privacy"], false);
        assert_eq!(a["sent"], "2026-11-28T05:13:10.125Z");
        assert_eq!(a["sent_ms"], T0_MS + 2);
        assert!(a["pdd_ms"].is_null());
        assert_eq!(a["final"], "2026-11-28T05:13:10.163Z");
        let b = &attempts[1];
        assert_eq!(b["trunk"], "gw-b");
        assert_eq!(b["route"], "backup");
        assert_eq!(b["pai"], "+12125550100");
        assert!(b["q850_cause"].is_null());
        assert_eq!(b["called"], "+12125551234");
        assert_eq!(b["calling"], "+12125550100");
        assert_eq!(b["pdd_ms"], 1.5);
        assert_eq!(b["final_ms"], T0_MS + 3041);
    }

    #[test]
    fn unanswered_calls_have_null_answer_and_zero_duration() {
        let base = Instant::now();
        let mut r = record(base, "c2");
        r.answered = None;
        r.attempts.truncate(1);
        r.attempts[0].final_at = None;
        r.attempts[0].status = 0;
        r.ended_by = EndedBy::NotAnswered;
        r.status = 408;
        r.reason = "all-attempts-failed";
        let mut out = Vec::new();
        write_json(&mut out, &r, &clock(base)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["answer"].is_null() && v["answer_ms"].is_null());
        assert_eq!(v["duration_s"], 0.0);
        assert_eq!(v["ended_by"], "not-answered");
        assert_eq!(v["reason"], "all-attempts-failed");
        assert!(v["attempts"][0]["final"].is_null());
        assert_eq!(v["attempts"][0]["status"], 0);
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "junction-cdr-{}-{name}-{}",
            std::process::id(),
            clock::now_epoch_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("cdr.jsonl")
    }

    #[test]
    fn the_writer_writes_every_queued_record_then_stops() {
        let path = temp_path("writer");
        let settings = CdrSettings {
            path: path.clone(),
            rotate_bytes: None,
            rotate_secs: None,
        };
        let base = Instant::now();
        let wall = WallClock::from_pair(base, SystemTime::now());
        let (sink, writer) = spawn(&settings, wall, &[]).unwrap();
        for i in 0..100 {
            assert!(sink.offer(Box::new(record(base, &format!("call-{i}")))));
        }
        let counters = writer.counters();
        drop(sink);
        writer.shutdown();
        let totals = counters.totals();
        assert_eq!(
            (totals.written, totals.dropped, totals.write_errors),
            (100, 0, 0)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["call_id"].as_str().unwrap().to_string()
            })
            .collect();
        let expected: Vec<String> = (0..100).map(|i| format!("call-{i}")).collect();
        assert_eq!(ids, expected);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = crossbeam_channel::bounded(2);
        let counters = Arc::new(CdrCounters::default());
        let sink = CdrSink {
            tx,
            counters: Arc::clone(&counters),
        };
        let base = Instant::now();
        assert!(sink.offer(Box::new(record(base, "a"))));
        assert!(sink.offer(Box::new(record(base, "b"))));
        assert!(!sink.offer(Box::new(record(base, "c"))));
        assert_eq!(counters.totals().dropped, 1);
    }

    #[test]
    fn an_unwritable_path_fails_at_start() {
        let settings = CdrSettings {
            path: PathBuf::from("/nonexistent-dir-for-junction-tests/cdr.jsonl"),
            rotate_bytes: None,
            rotate_secs: None,
        };
        let err = spawn(&settings, WallClock::now(), &[]).err().unwrap();
        assert!(err.contains("cannot open"), "{err}");
    }

    #[test]
    fn repeats_are_logged_once_per_interval() {
        let mut r = Repeats::default();
        let t = Instant::now();
        assert_eq!(r.due(1, t), Some(1));
        assert_eq!(r.due(1, t + Duration::from_secs(1)), None);
        assert_eq!(r.due(3, t + Duration::from_secs(2)), None);
        assert_eq!(r.due(0, t + limits::LOG_REPEAT_INTERVAL), Some(4));
        assert_eq!(r.due(0, t + 3 * limits::LOG_REPEAT_INTERVAL), None);
    }
}
