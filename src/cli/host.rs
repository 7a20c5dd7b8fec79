//! The host against the configuration: `junction check` validates `cores` and `cpus` against
//! the CPUs this process may run on, and `junction doctor` reports the limits and kernel
//! settings junction depends on, each with what to change. Also the pre-flight memlock check
//! and the advice added to a startup error.
//!
//! Everything here reads the host (sched_getaffinity, getrlimit, /proc/sys, /sys); nothing
//! changes it (except one throw-away io_uring and a THP flag on the doctor's own process).

use std::path::Path;
use std::process::ExitCode;

use junction::config::{self, Config, ConfigError};
use junction::limits;

use super::args::DoctorArgs;

// ---- CPUs ------------------------------------------------------------------------------------

/// The CPUs this process may run on (sched_getaffinity), in order; empty when unknown.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data (all zeroes is the empty set); sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it, and CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// "0-3,6,8-9".
fn cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(&first) = cpus.get(i) {
        let mut last = first;
        while cpus.get(i + 1) == Some(&(last + 1)) {
            last += 1;
            i += 1;
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

/// The CPU of each shard as `shard::start` places them: `cpus[i]`, or else the i-th allowed
/// CPU, wrapping around when there are more shards than CPUs.
pub fn placement(config: &Config, allowed: &[usize]) -> Vec<usize> {
    let shards = config.server.cores;
    match &config.server.cpus {
        Some(cpus) => cpus.iter().take(shards).copied().collect(),
        None if allowed.is_empty() => Vec::new(),
        None => (0..shards).map(|i| allowed[i % allowed.len()]).collect(),
    }
}

/// Line numbers of `server.cores` and `server.cpus[i]` in the configuration's text.
struct Lines {
    cores: Option<usize>,
    cpus: Option<usize>,
    cpu: Vec<Option<usize>>,
}

fn lines(text: &str) -> Lines {
    let line = |offset: usize| text.get(..offset).map(|t| t.matches('\n').count() + 1);
    let doc = toml_edit::ImDocument::parse(text).ok();
    let server = doc.as_ref().and_then(|d| d.get("server"));
    let cores = server.and_then(|s| s.get("cores"));
    let cpus = server.and_then(|s| s.get("cpus"));
    Lines {
        cores: cores.and_then(|i| i.span()).and_then(|s| line(s.start)),
        cpus: cpus.and_then(|i| i.span()).and_then(|s| line(s.start)),
        cpu: cpus
            .and_then(|i| i.as_array())
            .map(|a| {
                a.iter()
                    .map(|v| v.span().and_then(|s| line(s.start)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `cores` and `cpus` against the allowed CPUs: errors (a configured CPU this process may not
/// run on: the shard would fail to start) and warnings (shards sharing a CPU).
pub fn cpu_findings(
    config: &Config,
    text: &str,
    allowed: &[usize],
) -> (Vec<ConfigError>, Vec<ConfigError>) {
    let lines = lines(text);
    let finding = |line: Option<usize>, key: String, message: String| ConfigError {
        file: config.source.clone(),
        line,
        key,
        message,
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if allowed.is_empty() {
        return (errors, warnings);
    }
    let shown = cpu_list(allowed);
    if let Some(cpus) = &config.server.cpus {
        for (i, cpu) in cpus.iter().enumerate() {
            if !allowed.contains(cpu) {
                errors.push(finding(
                    lines.cpu.get(i).copied().flatten().or(lines.cpus),
                    format!("server.cpus[{i}]"),
                    format!(
                        "CPU {cpu} is not one this process may run on (CPUs {shown}, {} in all, \
                         as sched_getaffinity reports; lscpu lists the machine's): shard {i} \
                         would fail to start",
                        allowed.len()
                    ),
                ));
            }
        }
        return (errors, warnings);
    }
    let placed = placement(config, allowed);
    if placed.len() > allowed.len() {
        let shared: Vec<String> = allowed
            .iter()
            .filter_map(|cpu| {
                let shards: Vec<String> = placed
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| *c == cpu)
                    .map(|(i, _)| i.to_string())
                    .collect();
                (shards.len() > 1).then(|| format!("shards {} on CPU {cpu}", shards.join(", ")))
            })
            .collect();
        warnings.push(finding(
            lines.cores,
            "server.cores".to_string(),
            format!(
                "{} on {}: {}; shards sharing a CPU take turns, each stalling the other's \
                 calls (set cores to at most {}, leaving one for the control threads on a \
                 busy router)",
                super::count(placed.len(), "shard"),
                super::count(allowed.len(), "CPU"),
                shared.join("; "),
                allowed.len()
            ),
        ));
    }
    (errors, warnings)
}

// ---- memlock ---------------------------------------------------------------------------------

/// Below this glommio refuses to start an executor (`MemLockLimit(limit/524288)`).
const GLOMMIO_MEMLOCK_MIN: u64 = 512 * 1024;

const MEMLOCK_FIX: &str = "raise it: `ulimit -l 65536` (KiB) in the shell that starts \
junction, LimitMEMLOCK=64M in the systemd unit (tuning/junction.service has it), or \
`* - memlock 65536` in /etc/security/limits.d/junction.conf";

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct given.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return None;
    }
    Some((limit.rlim_cur, limit.rlim_max))
}

fn bytes(n: u64) -> String {
    if n == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Before starting: a memlock limit glommio refuses, said with the fix.
pub fn memlock_preflight() -> Result<(), String> {
    match rlimit(libc::RLIMIT_MEMLOCK) {
        Some((soft, _)) if soft < GLOMMIO_MEMLOCK_MIN => Err(format!(
            "the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is {}; io_uring needs at \
             least {} per shard to start: {MEMLOCK_FIX}",
            bytes(soft),
            bytes(GLOMMIO_MEMLOCK_MIN)
        )),
        _ => Ok(()),
    }
}

/// Advice for a startup error that names a limit.
pub fn startup_advice(message: &str) -> Option<String> {
    if message.contains("MemLockLimit") || message.contains("memlock") {
        return Some(format!(
            "the locked-memory limit is too low for io_uring: {MEMLOCK_FIX}"
        ));
    }
    if message.contains("Too many open files") {
        return Some(
            "the open-file limit is too low: `ulimit -n 65536`, or LimitNOFILE=65536 in the \
             systemd unit"
                .to_string(),
        );
    }
    if message.contains("Operation not permitted") && message.contains("executor") {
        return Some(
            "io_uring may be disabled here (sysctl kernel.io_uring_disabled, or a container's \
             seccomp profile): `junction doctor` tells"
                .to_string(),
        );
    }
    None
}

// ---- doctor ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

pub struct Finding {
    pub level: Level,
    pub what: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

fn ok(what: &'static str, detail: String) -> Finding {
    Finding {
        level: Level::Ok,
        what,
        detail,
        fix: None,
    }
}

fn bad(level: Level, what: &'static str, detail: String, fix: String) -> Finding {
    Finding {
        level,
        what,
        detail,
        fix: Some(fix),
    }
}

/// `junction doctor`.
pub fn doctor(args: &DoctorArgs) -> ExitCode {
    let loaded = match &args.config {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| format!("{file}: cannot read the configuration: {e}"))
            .and_then(|text| {
                config::parse(&text, file)
                    .map(|c| (c, text))
                    .map_err(|errors| {
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
            }),
        None => config::parse(config::EMBEDDED_DEFAULT, config::EMBEDDED_SOURCE)
            .map(|c| (c, config::EMBEDDED_DEFAULT.to_string()))
            .map_err(|_| "the embedded default does not load".to_string()),
    };
    let (config, text) = match loaded {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let findings = diagnose(&config, &text);
    print!("{}", report(&config, &findings));
    let worst = findings.iter().map(|f| f.level).max().unwrap_or(Level::Ok);
    match worst {
        Level::Fail => ExitCode::from(1),
        Level::Warn if args.strict => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

pub fn report(config: &Config, findings: &[Finding]) -> String {
    let mut out = format!(
        "junction doctor: this host for {} ({})\n",
        config.source,
        super::count(config.server.cores, "shard")
    );
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        out.push_str(&format!("{tag}  {}: {}\n", f.what, f.detail));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    out.push_str(&match (count(Level::Fail), count(Level::Warn)) {
        (0, 0) => "nothing to change\n".to_string(),
        (0, w) => format!("{}; junction can run\n", super::count(w, "warning")),
        (f, w) => format!(
            "{} (junction cannot run as it is), {}\n",
            super::count(f, "problem"),
            super::count(w, "warning")
        ),
    });
    out
}

/// Every check, in the order printed.
pub fn diagnose(config: &Config, text: &str) -> Vec<Finding> {
    let allowed = allowed_cpus();
    let placed = placement(config, &allowed);
    vec![
        cpus(config, text, &allowed),
        memlock(config.server.cores),
        open_files(config.server.cores),
        socket_buffer("net.core.rmem_max", "receive"),
        socket_buffer("net.core.wmem_max", "send"),
        io_uring(),
        transparent_huge_pages(),
        governor(&placed),
    ]
}

fn cpus(config: &Config, text: &str, allowed: &[usize]) -> Finding {
    const WHAT: &str = "CPUs";
    if allowed.is_empty() {
        return bad(
            Level::Warn,
            WHAT,
            "sched_getaffinity failed: cannot tell which CPUs junction may use".to_string(),
            "none known".to_string(),
        );
    }
    let (errors, warnings) = cpu_findings(config, text, allowed);
    let messages = |list: &[ConfigError]| {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !errors.is_empty() {
        return bad(
            Level::Fail,
            WHAT,
            messages(&errors),
            "list in server.cpus only CPUs this process may run on (taskset -p PID shows \
             them; a container or CPUAffinity= may narrow them)"
                .to_string(),
        );
    }
    if !warnings.is_empty() {
        return bad(
            Level::Warn,
            WHAT,
            messages(&warnings),
            format!("cores = {} or fewer", allowed.len()),
        );
    }
    let placed = placement(config, allowed);
    let spare = allowed.iter().filter(|c| !placed.contains(c)).count();
    let note = if spare == 0 {
        "; no CPU is left for the control threads (metrics HTTP, CDR writer, memory watch): \
         on a busy router leave one (docs/host-tuning.md)"
    } else {
        ""
    };
    ok(
        WHAT,
        format!(
            "{} on CPUs {} of {} allowed ({}){note}",
            super::count(placed.len(), "shard"),
            cpu_list(&{
                let mut p = placed.clone();
                p.sort_unstable();
                p
            }),
            allowed.len(),
            cpu_list(allowed)
        ),
    )
}

/// Locked memory: glommio refuses to start below 512 KiB, and registers each shard's
/// io_memory buffer with its 3 rings (over the limit it logs and goes on without registered
/// buffers, slower); root and CAP_IPC_LOCK are not held to the limit.
fn memlock(shards: usize) -> Finding {
    const WHAT: &str = "memlock limit (ulimit -l)";
    let Some((soft, _)) = rlimit(libc::RLIMIT_MEMLOCK) else {
        return bad(
            Level::Warn,
            WHAT,
            "getrlimit failed".into(),
            MEMLOCK_FIX.into(),
        );
    };
    let want = (shards as u64).saturating_mul(3 * limits::IO_MEMORY_BYTES as u64);
    if soft < GLOMMIO_MEMLOCK_MIN {
        bad(
            Level::Fail,
            WHAT,
            format!(
                "{}: glommio refuses to start below {} (MemLockLimit)",
                bytes(soft),
                bytes(GLOMMIO_MEMLOCK_MIN)
            ),
            MEMLOCK_FIX.into(),
        )
    } else if soft < want && !has_capability(CAP_IPC_LOCK) {
        bad(
            Level::Warn,
            WHAT,
            format!(
                "{}: below the {} the shards' io_uring buffers pin (3 rings x {} per shard); \
                 glommio then runs without registered buffers",
                bytes(soft),
                bytes(want),
                bytes(limits::IO_MEMORY_BYTES as u64)
            ),
            MEMLOCK_FIX.into(),
        )
    } else {
        ok(
            WHAT,
            format!(
                "{} (the shards pin {})",
                bytes(soft),
                bytes(want.max(GLOMMIO_MEMLOCK_MIN))
            ),
        )
    }
}

/// Open files: per shard its socket, its rings, wake-up socket and event fds; then the CDR
/// file, the management HTTP connections, the configuration and prefix files at reload.
fn open_files(shards: usize) -> Finding {
    const WHAT: &str = "open-file limit (ulimit -n)";
    let fix = "`ulimit -n 65536`, LimitNOFILE=65536 in the systemd unit (tuning/junction.service \
               has it), or `* - nofile 65536` in /etc/security/limits.d/junction.conf";
    let Some((soft, _)) = rlimit(libc::RLIMIT_NOFILE) else {
        return bad(Level::Warn, WHAT, "getrlimit failed".into(), fix.into());
    };
    let need = 64 + 16 * shards as u64;
    let shown = if soft == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        soft.to_string()
    };
    if soft < need {
        bad(
            Level::Fail,
            WHAT,
            format!("{shown}: {shards} shards and the control threads need about {need}"),
            fix.into(),
        )
    } else if soft < 4096 {
        bad(
            Level::Warn,
            WHAT,
            format!(
                "{shown}: enough to start (about {need} needed), little room for management \
                 connections and reloads with prefix files"
            ),
            fix.into(),
        )
    } else {
        ok(WHAT, format!("{shown} (about {need} needed)"))
    }
}

fn read_sys(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Each shard socket asks for `SOCKET_BUFFER_BYTES` of receive and send buffer; the kernel
/// caps the request at the sysctl unless the process may force it (CAP_NET_ADMIN).
fn socket_buffer(sysctl: &'static str, which: &str) -> Finding {
    let want = limits::SOCKET_BUFFER_BYTES as u64;
    let path = format!("/proc/sys/{}", sysctl.replace('.', "/"));
    let fix = format!(
        "sysctl -w {sysctl}={}; to keep it, tuning/60-junction.conf in /etc/sysctl.d/ (the \
         package installs it as /usr/lib/sysctl.d/60-junction.conf: `sysctl --system`)",
        4 * want
    );
    let Some(value) = read_sys(&path).and_then(|v| v.parse::<u64>().ok()) else {
        return bad(
            Level::Warn,
            sysctl,
            format!("cannot read {path}"),
            "none known (a container may hide it)".into(),
        );
    };
    if value >= want {
        ok(
            sysctl,
            format!("{} (a shard socket asks for {})", bytes(value), bytes(want)),
        )
    } else if has_capability(CAP_NET_ADMIN) {
        ok(
            sysctl,
            format!(
                "{}, below the {} a shard socket asks for, but this process has CAP_NET_ADMIN \
                 and junction run like this forces the size (SO_{}BUFFORCE); the systemd unit \
                 runs without it",
                bytes(value),
                bytes(want),
                if which == "receive" { "RCV" } else { "SND" }
            ),
        )
    } else {
        bad(
            Level::Warn,
            sysctl,
            format!(
                "{}: each shard's {which} buffer is capped there, below the {} asked; \
                 bursts beyond it are dropped by the kernel \
                 (junction_udp_receive_buffer_errors_total)",
                bytes(value),
                bytes(want)
            ),
            fix,
        )
    }
}

/// Capability numbers (linux/capability.h; not in the libc crate).
const CAP_NET_ADMIN: u32 = 12;
const CAP_IPC_LOCK: u32 = 14;

fn has_capability(cap: u32) -> bool {
    let Some(status) = std::fs::read_to_string("/proc/self/status").ok() else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// Set up (and close) a small io_uring, the way glommio will.
fn io_uring() -> Finding {
    const WHAT: &str = "io_uring";
    let kernel = read_sys("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into());
    let disabled = read_sys("/proc/sys/kernel/io_uring_disabled");
    // struct io_uring_params is 120 bytes; all zeroes asks for the defaults.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup reads and writes only the params struct given (120 bytes);
    // the fd it returns is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the fd just returned.
        unsafe { libc::close(fd as libc::c_int) };
        return ok(WHAT, format!("a ring sets up (kernel {kernel})"));
    }
    let err = std::io::Error::last_os_error();
    let (detail, fix) = match err.raw_os_error() {
        Some(libc::ENOSYS) => (
            format!("this kernel ({kernel}) has no io_uring"),
            "Linux 5.8 or later built with CONFIG_IO_URING".to_string(),
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => (
            format!(
                "refused ({err}; kernel.io_uring_disabled = {})",
                disabled.as_deref().unwrap_or("absent")
            ),
            "sysctl -w kernel.io_uring_disabled=0 (or 1 and junction's user in \
             kernel.io_uring_group); in a container, a seccomp profile that allows \
             io_uring_setup, io_uring_enter and io_uring_register (Docker's default blocks \
             them)"
                .to_string(),
        ),
        Some(libc::ENOMEM) => (
            format!("no memory for a ring ({err})"),
            MEMLOCK_FIX.to_string(),
        ),
        _ => (
            format!("io_uring_setup failed: {err} (kernel {kernel})"),
            "see dmesg".to_string(),
        ),
    };
    bad(Level::Fail, WHAT, detail, fix)
}

/// junction turns THP off for itself (PR_SET_THP_DISABLE, see main.rs): check that works.
fn transparent_huge_pages() -> Finding {
    const WHAT: &str = "transparent huge pages";
    let mode = read_sys("/sys/kernel/mm/transparent_hugepage/enabled")
        .and_then(|s| {
            let start = s.find('[')?;
            let end = s.find(']')?;
            s.get(start + 1..end).map(str::to_string)
        })
        .unwrap_or_else(|| "not available".into());
    // SAFETY: prctl with these arguments only sets a flag on this (short-lived) process.
    let opt_out = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
    if opt_out || mode == "never" || mode == "not available" {
        ok(
            WHAT,
            format!("{mode}; junction opts out for itself (prctl PR_SET_THP_DISABLE works)"),
        )
    } else {
        bad(
            Level::Warn,
            WHAT,
            format!("{mode}, and prctl(PR_SET_THP_DISABLE) fails here: first touches of new call state can zero 2 MiB pages inside a datagram's handling"),
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled".into(),
        )
    }
}

/// The frequency governor of the shards' CPUs.
fn governor(cpus: &[usize]) -> Finding {
    const WHAT: &str = "CPU governor";
    let mut cpus = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    let mut slow = Vec::new();
    let mut seen = Vec::new();
    for cpu in &cpus {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        if let Some(g) = read_sys(&path) {
            if g != "performance" {
                slow.push(format!("CPU {cpu}: {g}"));
            }
            seen.push(g);
        }
    }
    if seen.is_empty() {
        return ok(
            WHAT,
            "not exposed (no cpufreq driver: a virtual machine or container, where the \
             hypervisor decides)"
                .into(),
        );
    }
    if slow.is_empty() {
        return ok(WHAT, "performance on every shard CPU".into());
    }
    bad(
        Level::Warn,
        WHAT,
        format!(
            "{}: the clock ramps up only after load arrives, adding latency to bursts",
            slow.join(", ")
        ),
        format!(
            "cpupower -c {} frequency-set -g performance (or the tuned profile \
             network-latency)",
            cpu_list(&cpus)
        ),
    )
}

/// For `check --host`: the doctor's findings on a configuration already loaded.
pub fn check_host(config: &Config, file: &Path) -> (String, Level) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let findings = diagnose(config, &text);
    let worst = findings.iter().map(|f| f.level).max().unwrap_or(Level::Ok);
    (report(config, &findings), worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn cpu_lists_are_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[5]), "5");
        assert_eq!(cpu_list(&[]), "none");
    }

    #[test]
    fn shards_beyond_the_cpus_share_and_are_warned_about() {
        let text = "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 3\n";
        let c = config(text);
        assert_eq!(placement(&c, &[0, 1]), vec![0, 1, 0]);
        let (errors, warnings) = cpu_findings(&c, text, &[0, 1]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(warnings.len(), 1);
        let w = warnings[0].to_string();
        assert!(
            w.starts_with("t.toml:3: server.cores: 3 shards on 2 CPUs"),
            "{w}"
        );
        assert!(w.contains("shards 0, 2 on CPU 0"), "{w}");
        let (errors, warnings) = cpu_findings(&c, text, &[0, 1, 2]);
        assert!(errors.is_empty() && warnings.is_empty());
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_is_an_error_at_its_line() {
        let text =
            "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 2\ncpus = [\n  1,\n  5,\n]\n";
        let c = config(text);
        let (errors, warnings) = cpu_findings(&c, text, &[0, 1]);
        assert!(warnings.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = errors[0].to_string();
        assert!(
            e.starts_with("t.toml:6: server.cpus[1]: CPU 5 is not one"),
            "{e}"
        );
        assert!(e.contains("CPUs 0-1"), "{e}");
        let (errors, _) = cpu_findings(&c, text, &[0, 1, 5]);
        assert!(errors.is_empty());
    }

    #[test]
    fn inline_server_tables_have_lines_too() {
        let text = "\nserver = { listen = \"udp:127.0.0.1:5060\", cores = 1, cpus = [7] }\n";
        let c = config(text);
        let (errors, _) = cpu_findings(&c, text, &[0]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(2));
    }

    #[test]
    fn the_host_has_an_affinity_and_the_doctor_reports_every_check() {
        assert!(!allowed_cpus().is_empty());
        let text = "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 1\n";
        let findings = diagnose(&config(text), text);
        let what: Vec<&str> = findings.iter().map(|f| f.what).collect();
        assert_eq!(
            what,
            [
                "CPUs",
                "memlock limit (ulimit -l)",
                "open-file limit (ulimit -n)",
                "net.core.rmem_max",
                "net.core.wmem_max",
                "io_uring",
                "transparent huge pages",
                "CPU governor"
            ]
        );
        assert!(findings
            .iter()
            .all(|f| (f.level == Level::Ok) == f.fix.is_none()));
    }

    #[test]
    fn startup_errors_that_name_a_limit_get_the_fix() {
        let advice = startup_advice(
            "shard 0 on CPU 0 failed to start: ReactorError { kind: MemLockLimit(65536/524288) }",
        );
        assert!(advice.is_some_and(|a| a.contains("ulimit -l") && a.contains("LimitMEMLOCK=")));
        assert_eq!(startup_advice("address in use"), None);
    }
}
