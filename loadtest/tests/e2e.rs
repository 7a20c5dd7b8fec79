//! End to end over loopback, in-process: the real workers, sockets and clock, UAC and UAS in
//! one process (`both`), small runs bounded by their call count.

use junction_load::cli::{self, Plan};
use junction_load::report::{self, Outcome};
use junction_load::stats::{CodeOf, Fail, Lat};
use std::net::UdpSocket;
use std::path::PathBuf;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn plan(args: &str) -> Plan {
    let port = free_port();
    let line = format!("{} --quiet", args.replace("PORT", &port.to_string()));
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    cli::parse(&argv).unwrap()
}

fn run(args: &str) -> Outcome {
    junction_load::io::run(&plan(args)).unwrap()
}

/// The repository's SIPp scenario files (tests/data/sipp).
fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sipp")
}

#[test]
fn basic_calls_both_roles_two_workers() {
    let o = run("both --listen 127.0.0.1:PORT --rate 400 --calls 400 --workers 2 --hold-ms 20");
    let uac = o.uac.as_ref().unwrap();
    let uas = o.uas.as_ref().unwrap();
    assert_eq!(uac.started, 400);
    assert_eq!(uac.succeeded, 400, "{:?}", uac.failures());
    assert_eq!(report::failure_total(&o), 0);
    assert_eq!(uas.uas_calls, 400);
    assert_eq!(uas.uas_completed, 400);
    for l in [Lat::Ringing, Lat::Answer, Lat::Bye] {
        assert_eq!(uac.hist(l).unwrap().len(), 400, "{}", l.name());
    }
    let j = report::json(&o);
    assert_eq!(j["uac"]["calls"]["succeeded"], 400);
    assert_eq!(j["failure_total"], 0);
    assert!(
        j["uac"]["latency_us"]["invite_to_200"]["p99"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn uas_hangs_up_over_loopback() {
    let o = run(
        "both --listen 127.0.0.1:PORT --rate 400 --calls 200 --hold-ms 5000 --uas-hangup-ms 20",
    );
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 200, "{:?}", uac.failures());
    // The UAC never sent a BYE: no BYE latency, every call ended by the UAS.
    assert_eq!(uac.hist(Lat::Bye).unwrap().len(), 0);
    assert_eq!(o.uas.as_ref().unwrap().uas_completed, 200);
    assert_eq!(report::failure_total(&o), 0);
}

#[test]
fn ipv6_loopback() {
    let o = run("both --listen [::1]:PORT --rate 400 --calls 100");
    assert_eq!(o.uac.as_ref().unwrap().succeeded, 100);
}

#[test]
fn single_four_tuple_mode() {
    let o = run("both --listen 127.0.0.1:PORT --rate 500 --calls 300 -t u1");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 300, "{:?}", uac.failures());
}

#[test]
fn answer_mix_is_counted_by_code() {
    let o = run("both --listen 127.0.0.1:PORT --rate 500 --calls 200 --answer 200:2,486:1,503:1 --workers 1");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 100);
    assert_eq!(uac.fail_code[CodeOf::Invite as usize][486], 50);
    assert_eq!(uac.fail_code[CodeOf::Invite as usize][503], 50);
    assert_eq!(o.uas.as_ref().unwrap().uas_answered[486], 50);
    // Every non-2xx was ACKed: the UAS saw no Timer H expiry.
    assert_eq!(o.uas.as_ref().unwrap().fail[Fail::UasNoAck as usize], 0);
}

#[test]
fn cancel_before_answer_over_loopback() {
    let o = run("both --listen 127.0.0.1:PORT --rate 300 --calls 150 --scenario cancel --cancel-ms 5 --ring-ms 2000");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 150, "{:?}", uac.failures());
    assert_eq!(o.uas.as_ref().unwrap().uas_answered[487], 150);
}

#[test]
fn options_load_over_loopback_with_csv() {
    let csv = std::env::temp_dir().join(format!("jl-e2e-{}.csv", std::process::id()));
    let o = run(&format!(
        "both --listen 127.0.0.1:PORT --rate 500 --calls 250 --scenario options --csv {}",
        csv.display()
    ));
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 250);
    assert_eq!(uac.hist(Lat::Options).unwrap().len(), 250);
    let text = std::fs::read_to_string(&csv).unwrap();
    let _ = std::fs::remove_file(&csv);
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("ElapsedTime(C);CallRate(P);OutgoingCall(P);OutgoingCall(C);"));
    // The last line holds the totals: 250 calls out, 250 successful, none failed.
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    assert_eq!((last[3], last[6], last[8]), ("250", "250", "0"));
}

#[test]
fn concurrency_limit_and_ramp() {
    let o = run("both --listen 127.0.0.1:PORT --rate 100 --rate-step 200 --rate-period-ms 200 --rate-max 1000 --calls 300 --concurrent 10 --hold-ms 10");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 300, "{:?}", uac.failures());
}

#[test]
fn sipp_scenario_files_against_each_other() {
    let d = sipp_dir();
    let args = format!(
        "both --listen 127.0.0.1:PORT --rate 400 --calls 200 --sf {} --uas-sf {}",
        d.join("uac-rr.xml").display(),
        d.join("uas-rr.xml").display()
    );
    let o = run(&args);
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.succeeded, 200, "{:?}", uac.failures());
    assert_eq!(o.uas.as_ref().unwrap().uas_completed, 200);
    assert_eq!(uac.hist(Lat::Answer).unwrap().len(), 200);
}

#[test]
fn failures_set_the_exit_code() {
    // Nobody listens on the target: every INVITE times out (T1 = 10 ms: Timer B at 640 ms).
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction-load"))
        .args([
            "uac",
            "--target",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "100",
            "--calls",
            "5",
            "--t1-ms",
            "10",
            "--quiet",
            "--max-failures",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 failed"), "{text}");
    // ICMP port unreachable makes the send fail, or the INVITE times out: either is a failure.
    assert!(
        text.contains("Timer B") || text.contains("UDP send failed"),
        "{text}"
    );
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_junction-load"))
        .args([
            "uac",
            "--target",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "100",
            "--calls",
            "5",
            "--t1-ms",
            "10",
            "--quiet",
            "--max-failures",
            "100%",
        ])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn oc_client_through_a_server_without_overload_control() {
    // The UAS echoes the bare `oc` in its responses' Via: no value, so nothing is withheld.
    let o = run("both --listen 127.0.0.1:PORT --rate 400 --calls 200 --hold-ms 10 --oc");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.started, 200);
    assert_eq!(uac.succeeded, 200, "{:?}", uac.failures());
    assert_eq!(uac.throttled, 0);
    assert_eq!(report::json(&o)["uac"]["calls"]["throttled"], 0);
}

#[test]
fn oc_client_through_an_overloaded_server_withholds_its_share() {
    // The UAS answers the UAC's oc offer with oc=40 in every response: after the first
    // response arrives, 40 of every 100 new calls are withheld (throttled), none fail.
    let o =
        run("both --listen 127.0.0.1:PORT --rate 400 --calls 500 --hold-ms 10 --oc --oc-reduce 40");
    let uac = o.uac.as_ref().unwrap();
    assert_eq!(uac.started, 500);
    assert!(
        (180..=200).contains(&uac.throttled),
        "{} of 500 withheld",
        uac.throttled
    );
    assert_eq!(uac.succeeded, 500 - uac.throttled, "{:?}", uac.failures());
    assert_eq!(o.uas.as_ref().unwrap().uas_calls, 500 - uac.throttled);
}
