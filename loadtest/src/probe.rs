//! `junction-load probe`: how fast this machine is right now, sampled a few times a second.
//!
//! On a shared or virtual machine the same process doing the same work gets more or less
//! done per CPU second from one few-second stretch to the next (the host's other tenants
//! share its caches, memory bandwidth and clock). An overload ramp that divides its lowest
//! step by its highest cannot tell that apart from what overload costs. The probe runs two
//! fixed pieces of work at each sample and reports the CPU time each took (its own thread's
//! CPU time, so time spent waiting for the CPU is not counted):
//!
//! - `compute`: a chain of dependent integer multiplications and shifts, all in registers:
//!   the core's speed (its clock, and whatever shares the core);
//! - `memory`: a chain of dependent loads through a random cycle over a buffer larger than
//!   the last-level cache: the speed of memory as this process sees it (the shared cache
//!   and memory bandwidth that a proxy's call tables depend on).
//!
//! Each sample is short (about a millisecond of each) and the interval long, so the probe
//! takes about 1% of its CPU. Output: one line per sample, `ms compute_ns memory_ns`: time
//! since the start, then nanoseconds per step of each chain.

use crate::time::{Micros, MS, SEC};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

pub const USAGE: &str = "\
junction-load probe: sample this machine's speed a few times a second

usage:
  junction-load probe [--duration S] [--interval-ms MS] [--buffer-mb MB] [--cpu N]

  --duration S       stop after S seconds                     [run until killed]
  --interval-ms MS   time between samples                     [250]
  --buffer-mb MB     the memory chain's buffer, in MiB (larger than the last-level cache)
                                                              [64]
  --cpu N            pin the probe to CPU N                   [not pinned]

Prints a line per sample: milliseconds since the start, nanoseconds per step of the compute
chain (dependent multiply-shift, in registers), nanoseconds per step of the memory chain
(dependent loads around a random cycle through the buffer). Both are the probe thread's own
CPU time: a probe that waited for its CPU is not counted slower.
";

/// Steps of each chain per sample: about a millisecond each on a current x86 core.
const COMPUTE_STEPS: u64 = 400_000;
const MEMORY_STEPS: usize = 10_000;
const BUFFER_MB_MAX: usize = 4096;
const INTERVAL_MS_MAX: u64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePlan {
    pub duration: Option<Micros>,
    pub interval: Micros,
    pub buffer_mb: usize,
    pub cpu: Option<usize>,
}

/// Parse the options after `probe`; `Err("")` asks for the usage text.
pub fn parse(args: &[String]) -> Result<ProbePlan, String> {
    let mut plan = ProbePlan {
        duration: None,
        interval: 250 * MS,
        buffer_mb: 64,
        cpu: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: a value is missing"))?;
        let number = |max: u64| -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{flag} {value}: must be a whole number from 1 to {max}"))
        };
        match flag.as_str() {
            "--duration" => plan.duration = Some(number(86_400)? * SEC),
            "--interval-ms" => plan.interval = number(INTERVAL_MS_MAX)? * MS,
            "--buffer-mb" => plan.buffer_mb = number(BUFFER_MB_MAX as u64)? as usize,
            "--cpu" => {
                plan.cpu = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("--cpu {value}: must be a CPU number"))?,
                )
            }
            other => return Err(format!("{other}: unknown option")),
        }
    }
    Ok(plan)
}

/// A random cycle through `len` slots (Sattolo's algorithm): following `next` from any slot
/// visits every slot once before it returns, in an order the hardware cannot prefetch.
pub fn random_cycle(len: usize, mut seed: u64) -> Vec<u32> {
    assert!(len > 1 && len <= u32::MAX as usize);
    let mut next: Vec<u32> = (0..len as u32).collect();
    for i in (1..len).rev() {
        // xorshift64: plenty for a shuffle that only has to defeat the prefetcher.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % i as u64) as usize;
        next.swap(i, j);
    }
    next
}

/// The probe thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Nanoseconds per step of the compute chain.
fn compute_sample() -> f64 {
    let start = thread_cpu();
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..COMPUTE_STEPS {
        x = x.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (x >> 29);
    }
    black_box(x);
    (thread_cpu() - start).as_nanos() as f64 / COMPUTE_STEPS as f64
}

/// Nanoseconds per step of the memory chain, continuing from `at`.
fn memory_sample(cycle: &[u32], at: &mut u32) -> f64 {
    let start = thread_cpu();
    let mut i = *at;
    for _ in 0..MEMORY_STEPS {
        // The cycle holds only indices below its length.
        i = cycle.get(i as usize).copied().unwrap_or(0);
    }
    *at = black_box(i);
    (thread_cpu() - start).as_nanos() as f64 / MEMORY_STEPS as f64
}

pub fn run(plan: &ProbePlan) -> Result<(), String> {
    if let Some(cpu) = plan.cpu {
        let core = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.id == cpu)
            .ok_or_else(|| format!("--cpu {cpu}: no such CPU"))?;
        if !core_affinity::set_for_current(core) {
            return Err(format!("--cpu {cpu}: cannot pin to it"));
        }
    }
    let cycle = random_cycle(plan.buffer_mb * (1 << 20) / 4, 0x5eed_1234_abcd_0001);
    let mut at = 0u32;
    let start = Instant::now();
    let interval = Duration::from_micros(plan.interval);
    let mut out = std::io::stdout().lock();
    for n in 1u32.. {
        let compute = compute_sample();
        let memory = memory_sample(&cycle, &mut at);
        let ms = start.elapsed().as_millis();
        writeln!(out, "{ms} {compute:.3} {memory:.1}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write: {e}"))?;
        if plan
            .duration
            .is_some_and(|d| start.elapsed() >= Duration::from_micros(d))
        {
            return Ok(());
        }
        // Samples on a fixed grid, however long each took.
        let due = start + interval * n;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_cycle_visits_every_slot_once() {
        let len = 1000;
        let cycle = random_cycle(len, 7);
        let mut seen = vec![false; len];
        let mut i = 0usize;
        for _ in 0..len {
            assert!(!seen[i], "slot {i} visited twice");
            seen[i] = true;
            i = cycle[i] as usize;
        }
        assert_eq!(i, 0, "back at the start after {len} steps");
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn options_parse_and_bad_values_name_their_option() {
        assert_eq!(
            parse(&args(
                "--duration 10 --interval-ms 100 --buffer-mb 8 --cpu 1"
            )),
            Ok(ProbePlan {
                duration: Some(10 * SEC),
                interval: 100 * MS,
                buffer_mb: 8,
                cpu: Some(1),
            })
        );
        assert_eq!(parse(&args("--help")), Err(String::new()));
        assert!(parse(&args("--interval-ms 0"))
            .unwrap_err()
            .contains("--interval-ms 0"));
        assert!(parse(&args("--buffer-mb 5000"))
            .unwrap_err()
            .contains("--buffer-mb"));
        assert!(parse(&args("--cpu x")).unwrap_err().contains("--cpu x"));
        assert!(parse(&args("--duration")).unwrap_err().contains("missing"));
        assert!(parse(&args("--frobnicate 1"))
            .unwrap_err()
            .contains("unknown"));
    }
}
