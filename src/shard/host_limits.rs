//! The process limits junction needs, checked before anything starts: locked memory
//! (`RLIMIT_MEMLOCK`, for each shard's io_uring) and open files (`RLIMIT_NOFILE`). A soft limit
//! below the need is raised to it when the hard limit allows (as any process may); otherwise
//! start-up fails with an error that names the limit, the value needed and how to raise it
//! (`ulimit`, the systemd unit's `LimitMEMLOCK=` / `LimitNOFILE=`).

use crate::limits;

/// glommio refuses to start an executor below this locked-memory limit (its
/// `MIN_MEMLOCK_LIMIT`; the error was `MemLockLimit(current/524288)`).
pub const GLOMMIO_MEMLOCK_MIN: u64 = 512 << 10;

/// Descriptors junction holds besides the shards' and the HTTP connections': stdio, the
/// metrics listener and runtime, the CDR file, the wake-up socket, the configuration file,
/// /proc reads, with margin.
const FDS_BASE: u64 = 64;
/// Descriptors per shard: its socket, its wake-up socket, glommio's rings and eventfds,
/// its blocking thread's pipe, with margin.
const FDS_PER_SHARD: u64 = 16;

/// A limit as getrlimit gives it (`u64::MAX`: unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// Locked memory `shards` need: glommio's minimum, and the io_memory each shard registers.
pub fn memlock_needed(shards: usize) -> u64 {
    (shards as u64)
        .saturating_mul(limits::IO_MEMORY_BYTES as u64)
        .max(GLOMMIO_MEMLOCK_MIN)
}

/// Open files `shards` need at most.
pub fn nofile_needed(shards: usize) -> u64 {
    FDS_BASE + FDS_PER_SHARD * shards as u64 + limits::HTTP_CONNECTIONS_MAX as u64
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// What to do about the locked-memory limit `limit` for `shards`: `Ok(None)` fine,
/// `Ok(Some(raise_to))` raise the soft limit, `Err(message)` it cannot be enough.
pub fn memlock_verdict(limit: Limit, shards: usize) -> Result<Option<u64>, String> {
    let needed = memlock_needed(shards);
    if limit.soft >= needed {
        return Ok(None);
    }
    if limit.hard >= needed {
        return Ok(Some(needed));
    }
    // Root's rings are not charged to the limit (CAP_IPC_LOCK), but glommio checks the limit
    // itself: below its minimum it cannot start whoever runs it. Above it, the kernel decides.
    if limit.hard >= GLOMMIO_MEMLOCK_MIN && limit.soft >= GLOMMIO_MEMLOCK_MIN {
        return Ok(None);
    }
    if limit.hard >= GLOMMIO_MEMLOCK_MIN {
        return Ok(Some(limit.hard.min(needed)));
    }
    let k = kib(needed);
    Err(format!(
        "the locked-memory limit (RLIMIT_MEMLOCK) is {} KiB: junction's io_uring needs {k} KiB \
         ({} KiB per shard, {shards} shard{}, at least {} KiB). Raise it where junction starts: \
         `ulimit -l {k}` (or `ulimit -l unlimited`) in the shell, LimitMEMLOCK={k}K (or \
         LimitMEMLOCK=infinity) in its systemd unit, or a memlock line in \
         /etc/security/limits.conf",
        kib(limit.soft),
        kib(limits::IO_MEMORY_BYTES as u64),
        if shards == 1 { "" } else { "s" },
        kib(GLOMMIO_MEMLOCK_MIN),
    ))
}

/// What to do about the open-files limit `limit` for `shards` (as `memlock_verdict`).
pub fn nofile_verdict(limit: Limit, shards: usize) -> Result<Option<u64>, String> {
    let needed = nofile_needed(shards);
    if limit.soft >= needed {
        return Ok(None);
    }
    if limit.hard >= needed {
        return Ok(Some(needed));
    }
    Err(format!(
        "the open-files limit (RLIMIT_NOFILE) is {}: junction needs {needed} descriptors for \
         {shards} shard{} and {} metrics connections. Raise it where junction starts: \
         `ulimit -n {needed}` (or more) in the shell, LimitNOFILE={needed} (or more) in its \
         systemd unit, or a nofile line in /etc/security/limits.conf",
        limit.soft,
        if shards == 1 { "" } else { "s" },
        limits::HTTP_CONNECTIONS_MAX,
    ))
}

fn get(resource: libc::__rlimit_resource_t) -> Option<Limit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    (unsafe { libc::getrlimit(resource, &mut limit) } == 0).then_some(Limit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

fn raise(resource: libc::__rlimit_resource_t, limit: Limit, to: u64) -> bool {
    let new = libc::rlimit {
        rlim_cur: to,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(resource, &new) == 0 }
}

/// Check (and raise where allowed) both limits for `shards`. Errors name the limit, the
/// value needed and the fix.
pub fn ensure(shards: usize) -> Result<(), String> {
    type Verdict = fn(Limit, usize) -> Result<Option<u64>, String>;
    let checks: [(libc::__rlimit_resource_t, Verdict); 2] = [
        (libc::RLIMIT_MEMLOCK, memlock_verdict),
        (libc::RLIMIT_NOFILE, nofile_verdict),
    ];
    for (resource, verdict) in checks {
        // A limit that cannot be read is left to the kernel to enforce.
        let Some(limit) = get(resource) else {
            continue;
        };
        if let Some(to) = verdict(limit, shards)? {
            if !raise(resource, limit, to) {
                // Could not raise it: say what is needed, as if the hard limit were low.
                verdict(
                    Limit {
                        soft: limit.soft,
                        hard: limit.soft,
                    },
                    shards,
                )?;
            }
        }
    }
    Ok(())
}

/// Add the fix to an error that came from a limit anyway (glommio's `MemLockLimit`, "Too many
/// open files").
pub fn explain(error: String, shards: usize) -> String {
    if error.contains("MemLockLimit(") {
        let soft = get(libc::RLIMIT_MEMLOCK).map_or(0, |l| l.soft);
        let hint = memlock_verdict(Limit { soft, hard: soft }, shards)
            .err()
            .unwrap_or_else(|| {
                format!(
                    "the locked-memory limit (RLIMIT_MEMLOCK) is too low: raise it to {} KiB \
                     or more (`ulimit -l`, LimitMEMLOCK=)",
                    kib(memlock_needed(shards))
                )
            });
        return format!("{error}: {hint}");
    }
    if error.contains("os error 24") || error.contains("Too many open files") {
        return format!(
            "{error}: the open-files limit (RLIMIT_NOFILE) is too low: raise it to {} or more \
             (`ulimit -n`, LimitNOFILE=)",
            nofile_needed(shards)
        );
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn memlock_below_glommio_minimum_is_an_error_with_the_fix() {
        let low = Limit {
            soft: 64 * KIB,
            hard: 64 * KIB,
        };
        let error = memlock_verdict(low, 2).unwrap_err();
        assert!(error.contains("RLIMIT_MEMLOCK) is 64 KiB"), "{error}");
        assert!(error.contains("needs 1024 KiB"), "{error}");
        assert!(error.contains("`ulimit -l 1024`"), "{error}");
        assert!(error.contains("LimitMEMLOCK=1024K"), "{error}");
    }

    #[test]
    fn memlock_soft_limits_are_raised_when_the_hard_limit_allows() {
        let mib8 = 8192 * KIB;
        let limit = |soft, hard| Limit { soft, hard };
        assert_eq!(memlock_verdict(limit(mib8, mib8), 2), Ok(None));
        assert_eq!(
            memlock_verdict(limit(64 * KIB, mib8), 2),
            Ok(Some(1024 * KIB))
        );
        assert_eq!(
            memlock_verdict(limit(64 * KIB, u64::MAX), 1),
            Ok(Some(512 * KIB))
        );
        // Enough for glommio, not for every shard's io_memory: the kernel decides (root is
        // not charged), so no error.
        assert_eq!(memlock_verdict(limit(mib8, mib8), 64), Ok(None));
        assert_eq!(memlock_verdict(limit(64 * KIB, mib8), 64), Ok(Some(mib8)));
    }

    #[test]
    fn nofile_is_checked_and_raised() {
        let needed = nofile_needed(2);
        assert_eq!(
            nofile_verdict(
                Limit {
                    soft: 1024,
                    hard: 1024
                },
                2
            ),
            Ok(None)
        );
        assert_eq!(
            nofile_verdict(
                Limit {
                    soft: 20,
                    hard: 4096
                },
                2
            ),
            Ok(Some(needed))
        );
        let error = nofile_verdict(Limit { soft: 20, hard: 20 }, 2).unwrap_err();
        assert!(error.contains("RLIMIT_NOFILE) is 20"), "{error}");
        assert!(error.contains(&format!("`ulimit -n {needed}`")), "{error}");
        assert!(error.contains(&format!("LimitNOFILE={needed}")), "{error}");
    }

    #[test]
    fn errors_from_limits_get_the_fix() {
        let e = explain(
            "shard 0: IO error occurred: MemLockLimit(65536/524288)".into(),
            2,
        );
        assert!(
            e.contains("RLIMIT_MEMLOCK") && e.contains("ulimit -l"),
            "{e}"
        );
        let e = explain("metrics: Too many open files (os error 24)".into(), 2);
        assert!(
            e.contains("RLIMIT_NOFILE") && e.contains("LimitNOFILE="),
            "{e}"
        );
        assert_eq!(explain("other".into(), 2), "other");
    }
}
