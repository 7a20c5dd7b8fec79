//! The process families every Prometheus client library exports (`process_*`, the names of
//! the Prometheus client guidelines): start time, CPU time, resident and virtual memory, open
//! and maximum file descriptors. Read from /proc when /metrics is scraped (a few small
//! reads on the metrics thread), like `memory.rs` and `udp_mib.rs` read theirs: five numbers
//! do not need a /proc parsing crate.

use super::exposition::{Exposition, Kind};

/// What /proc says about this process (`None`: that file could not be read).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub start_time_seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// utime, stime and starttime (clock ticks) from /proc/self/stat's text. The command name
/// (field 2, in parentheses) may hold spaces and parentheses: fields are counted after the
/// last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64, u64)> {
    let after = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)?, field(15)?, field(22)?))
}

/// `btime` (boot time, seconds since the epoch) from /proc/stat's text.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads its argument.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|v| *v > 0)
}

/// Read everything now.
pub fn read() -> ProcessStats {
    let ticks = sysconf(libc::_SC_CLK_TCK).map(|t| t as f64);
    let page = sysconf(libc::_SC_PAGESIZE);
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t));
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_btime(&t));
    let statm: Option<Vec<u64>> = std::fs::read_to_string("/proc/self/statm").ok().map(|t| {
        t.split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    });
    let pages = |i: usize| Some(statm.as_ref()?.get(i)? * page?);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count().saturating_sub(1) as u64); // minus read_dir's own descriptor
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur);
    ProcessStats {
        start_time_seconds: match (stat, ticks, btime) {
            (Some((_, _, start)), Some(ticks), Some(boot)) => {
                Some(boot as f64 + start as f64 / ticks)
            }
            _ => None,
        },
        cpu_seconds: match (stat, ticks) {
            (Some((user, system, _)), Some(ticks)) => Some((user + system) as f64 / ticks),
            _ => None,
        },
        resident_bytes: pages(1),
        virtual_bytes: pages(0),
        open_fds,
        max_fds,
    }
}

/// Append the families (a family whose value could not be read is left out).
pub fn render(stats: &ProcessStats, out: &mut String) {
    let mut e = Exposition {
        out: std::mem::take(out),
    };
    let families: [(&str, Kind, &str, Option<f64>); 6] = [
        (
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since the Unix epoch, in seconds.",
            stats.start_time_seconds,
        ),
        (
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time the process has used, in seconds (all threads).",
            stats.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory of the process, in bytes.",
            stats.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory of the process, in bytes.",
            stats.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            Kind::Gauge,
            "Open file descriptors of the process.",
            stats.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            Kind::Gauge,
            "The process's limit on open file descriptors (RLIMIT_NOFILE, soft).",
            stats.max_fds.map(|v| v as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(value) = value {
            e.family(name, kind, help);
            e.sample_f64(name, &[], value);
        }
    }
    *out = e.out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (junction (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 5 0 123456 1000000 300 18446744073709551615";
        assert_eq!(parse_stat(text), Some((250, 75, 123456)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1795800000\nprocesses 9\n"),
            Some(1795800000)
        );
    }

    #[test]
    fn this_process_is_described() {
        // (Other tests open and close descriptors meanwhile: only bounds hold.)
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let after = read();
        drop(file);
        assert!(
            after.open_fds.unwrap() >= 4,
            "stdio and the file: {after:?}"
        );
        assert!(after.max_fds.unwrap() >= after.open_fds.unwrap());
        assert!(after.resident_bytes.unwrap() > 0);
        assert!(after.virtual_bytes.unwrap() >= after.resident_bytes.unwrap());
        let start = after.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        assert!(after.cpu_seconds.unwrap() >= 0.0);
        let mut text = String::new();
        render(&after, &mut text);
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_open_fds "), "{text}");
        assert_eq!(text.matches("# TYPE ").count(), 6);
    }
}
