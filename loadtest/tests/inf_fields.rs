//! SIPp scenario files that take their numbers from an injection file (`-inf`, `[field0]` to
//! `[field3]`) run unmodified: tests/sipp/uac-fields.xml with tests/sipp/fields.csv, given to
//! junction-load with SIPp's own options, and to a real SIPp, against one named junction-load
//! UAS that records what reached it. Without SIPp the second test fails, saying how to
//! install it.

use junction_load::cli;
use junction_load::numbers::{Inf, Plan};
use junction_load::scenario::{self, run::Env, run::ScenarioEngine};
use junction_load::time::Timers;
use junction_load::ua::out::Out;
use junction_load::ua::Engine;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ROWS: [[&str; 4]; 3] = [
    ["2125550100", "3105551000", "Alice", "acct-1"],
    ["2125550101", "3105551001", "Bob", "acct-2"],
    ["2125550102", "3105551002", "Carol", "acct-3"],
];

/// The INVITEs the scenario engine writes: every field of the call's line, in order of calls.
#[test]
fn invites_carry_the_fields_of_their_line() {
    let sc = Arc::new(scenario::load(&data("uac-fields.xml")).unwrap());
    assert_eq!(sc.max_field(), Some(3));
    let inf = Inf::load(&data("fields.csv")).unwrap();
    let mut plan = Plan::fixed("2125551234");
    plan.inf = Some(Arc::new(inf));
    let mut e = ScenarioEngine::uac(
        sc,
        Env {
            local: vec!["127.0.0.1:6000".parse().unwrap()],
            remote: Some("127.0.0.1:7000".parse().unwrap()),
            service: "2125551234".into(),
            pause: 0,
            timers: Timers::default(),
            run_id: 1,
            worker: 0,
            quantum: 0,
            numbers: Some(Arc::new(plan)),
            workers: 1,
        },
    );
    for k in 0..6 {
        let mut out = Out::default();
        assert!(e.start_call(0, 0, &mut out));
        let t = out.list.first().unwrap();
        let invite = String::from_utf8(out.bytes(t).to_vec()).unwrap();
        let [called, calling, name, account] = ROWS[k % 3];
        assert!(
            invite.starts_with(&format!("INVITE sip:{called}@127.0.0.1:7000 SIP/2.0\r\n")),
            "{invite}"
        );
        assert!(
            invite.contains(&format!("From: \"{name}\" <sip:{calling}@127.0.0.1:6000>")),
            "{invite}"
        );
        assert!(
            invite.contains(&format!("To: <sip:{called}@127.0.0.1:7000>\r\n")),
            "{invite}"
        );
        assert!(
            invite.contains(&format!("Subject: account {account}\r\n")),
            "{invite}"
        );
    }
}

/// The recorded calls: (called, calling) per line of the --record file.
fn recorded(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "{l}");
            assert_eq!(f[0], "gw");
            (f[2].to_string(), f[3].to_string())
        })
        .collect()
}

#[test]
fn sipp_scenarios_with_inf_fields_run_unmodified_in_junction_load_and_in_sipp() {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "sipp is not installed: apt-get install -y sip-tester (.ci/run does)"
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("jl-inf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("record.tsv");
    let mut uas = Command::new(env!("CARGO_BIN_EXE_junction-load"))
        .args([
            "uas",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--name",
            "gw",
        ])
        .arg("--record")
        .arg(&record)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (sf, inf) = (data("uac-fields.xml"), data("fields.csv"));

    // junction-load, with the command line a SIPp user types.
    let line = format!(
        "uac -sf {} -inf {} -m 9 -r 50 -d 10 -q 127.0.0.1:{port}",
        sf.display(),
        inf.display()
    );
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    let o = junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap();
    let uac = o.uac.unwrap();
    assert_eq!(uac.succeeded, 9, "{:?}", uac.failures());

    // SIPp itself, with the same two files.
    let sipp_port = free_port().to_string();
    let mut sipp = Command::new("sipp")
        .arg("-sf")
        .arg(&sf)
        .arg("-inf")
        .arg(&inf)
        .args([
            "-m",
            "9",
            "-r",
            "50",
            "-d",
            "10",
            "-i",
            "127.0.0.1",
            "-p",
            &sipp_port,
        ])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-nostdin", "-timeout", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = sipp.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > Duration::from_secs(40) {
            let _ = sipp.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGTERM: the UAS ends, writing the rest of its record.
    unsafe {
        libc::kill(uas.id() as i32, libc::SIGTERM);
    }
    let _ = uas.wait();
    assert_eq!(code, Some(0), "SIPp did not complete its 9 calls");
    let calls = recorded(&record);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(calls.len(), 18);
    // Each tool placed 3 calls per line, with the line's called and calling numbers.
    let (ours, theirs) = calls.split_at(9);
    for set in [ours, theirs] {
        for [called, calling, _, _] in ROWS {
            let n = set
                .iter()
                .filter(|(a, b)| a == called && b == calling)
                .count();
            assert_eq!(n, 3, "{called} {calling}: {set:?}");
        }
    }
}
