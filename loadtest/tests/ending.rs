//! How a run ends: `--duration` ends it whatever is in progress (those calls are in flight,
//! not waited out for Timer B), and Ctrl-C ends it with the report printed and the calls in
//! progress counted as such. The target is a UDP socket that never answers.

use junction_load::cli;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn duration_ends_the_run_with_the_calls_in_progress_counted_in_flight() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap();
    let argv: Vec<String> =
        format!("uac --target {target} --rate 20 --duration 1 --quiet --workers 1 --no-pin")
            .split_whitespace()
            .map(String::from)
            .collect();
    let o = junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap();
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.started, 20);
    // Not waited out: no call reached Timer B (32 s) and failed; all 20 are in flight.
    assert_eq!((uac.succeeded, uac.failed), (0, 0), "{:?}", uac.failures());
    assert_eq!(uac.active, 20);
    let s = junction_load::report::summary(&o);
    assert!(
        s.contains("20 calls started, offered 20.0 calls/s, 0 succeeded, 0 failed, 0 throttled, 20 in flight (unfinished)"),
        "{s}"
    );
    let j = junction_load::report::json(&o);
    assert_eq!(j["uac"]["calls"]["unfinished"], 20);
    assert_eq!(j["offered"], "20.0 calls/s");
}

#[test]
fn ctrl_c_prints_the_report_with_the_calls_in_flight() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_junction-load"))
        .args(["uac", "--target", &target.to_string(), "--rate", "50"])
        .args(["--calls", "100000", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has sent INVITEs, then interrupt it.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        silent.recv_from(&mut buf).unwrap();
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("UAC: "))
        .unwrap_or_else(|| panic!("no report: {text}"));
    // "UAC: N calls started, offered 50.0 calls/s, 0 succeeded, 0 failed, 0 throttled, N in flight"
    let started: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(started >= 5, "{line}");
    assert!(
        line.contains(&format!(
            "0 succeeded, 0 failed, 0 throttled, {started} in flight (unfinished)"
        )),
        "{line}"
    );
}

/// `--error-file` (SIPp's -trace_err with a file name): every failed call with its reason
/// and the response that failed it.
#[test]
fn failed_calls_are_traced_with_the_message_that_ended_them() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = std::env::temp_dir().join(format!("jl-errors-{}.log", std::process::id()));
    let argv: Vec<String> = format!(
        "both --listen 127.0.0.1:{port} --answer 200:1,486:1 --rate 100 --calls 10 --quiet \
         --workers 1 --no-pin --error-file {}",
        path.display()
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    let o = junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap();
    let uac = o.uac.as_ref().unwrap();
    assert_eq!((uac.succeeded, uac.failed), (5, 5));
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        text.matches("failed: failure response").count(),
        5,
        "{text}"
    );
    assert_eq!(
        text.matches("SIP/2.0 486 Busy Here\r\n").count(),
        5,
        "{text}"
    );
    assert!(text.contains("(called 2125551234, calling -)"), "{text}");
}
