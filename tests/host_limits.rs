//! Start-up under low process limits (the binary, started from `sh` with `ulimit`): a
//! locked-memory or open-files limit too low for junction fails the start with an error that
//! names the limit, the value needed and the fix (`ulimit`, the unit's `Limit...=`); a soft
//! limit below the need with a higher hard limit is raised and junction starts.

use std::process::{Command, Stdio};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let file = dir.join("junction.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\ncores = 2\nlisten = \"udp:127.0.0.1:{port}\"\n\n\
             [[trunk]]\nname = \"gw\"\npeers = [\"127.0.0.3\"]\nsend_to = \"127.0.0.3:5060\"\n\n\
             [[route]]\nname = \"all\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n"
        ),
    )
    .expect("write config");
    file
}

/// Run junction under `ulimit ARGS` (hard and soft); its exit code and stderr.
fn run_limited(ulimit: &str, file: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_junction"))
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .expect("run sh");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn low_limits_fail_with_the_limit_and_the_fix() {
    let dir = std::env::temp_dir().join(format!("junction-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = config(&dir);

    let (code, stderr) = run_limited("-l 64", &file);
    assert_eq!(code, Some(1), "{stderr}");
    for part in [
        "locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is 64 KiB",
        // The command line's pre-flight (src/cli/host.rs) answers before the server's own
        // check (shard::host_limits), with the limit and each way to raise it.
        "needs at least 512 KiB per shard",
        "`ulimit -l 65536`",
        "LimitMEMLOCK=64M",
    ] {
        assert!(stderr.contains(part), "{part:?} missing in {stderr}");
    }
    assert!(!stderr.contains("MemLockLimit("), "{stderr}");

    let (code, stderr) = run_limited("-n 20", &file);
    assert_eq!(code, Some(1), "{stderr}");
    for part in [
        "open-files limit (RLIMIT_NOFILE) is 20",
        "`ulimit -n ",
        "LimitNOFILE=",
    ] {
        assert!(stderr.contains(part), "{part:?} missing in {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
