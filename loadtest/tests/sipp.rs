//! Interoperation with a real SIPp (Debian package sip-tester) over loopback, both ways, with
//! the Record-Route-aware scenarios of tests/data/sipp and SIPp's own stock scenarios.
//! Without SIPp these tests fail, saying how to install it.

use junction_load::cli;
use junction_load::report::Outcome;
use junction_load::scenario::{self, Role};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sipp() -> &'static str {
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
    "sipp"
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's SIPp scenario files (tests/data/sipp).
fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sipp")
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Wait for the exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Proc {
    Proc(
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A SIPp UAS on a free port answering `calls` calls with `scenario` (`-sf FILE` or `-sn uas`).
fn sipp_uas(scenario: &[&str], calls: u32) -> (Proc, u16) {
    let port = free_port();
    let mut args: Vec<String> = scenario.iter().map(|s| s.to_string()).collect();
    let p = port.to_string();
    let m = calls.to_string();
    args.extend(
        [
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            &m,
            "-nostdin",
            "-timeout",
            "60s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = spawn(sipp(), &argv);
    std::thread::sleep(Duration::from_millis(300));
    (proc, port)
}

fn our_uac(args: &str, port: u16) -> Outcome {
    let line = format!("uac --target 127.0.0.1:{port} --quiet {args}");
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap()
}

#[test]
fn our_uac_against_sipp_uas_record_route_scenario() {
    let d = sipp_dir();
    let uas = d.join("uas-rr.xml");
    let (mut p, port) = sipp_uas(&["-sf", uas.to_str().unwrap()], 300);
    let o = our_uac("--rate 300 --calls 300", port);
    let uac = o.uac.unwrap();
    assert_eq!(uac.succeeded, 300, "{:?}", uac.failures());
    // SIPp counted 300 successful calls and exited 0.
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0));
}

#[test]
fn our_uac_single_four_tuple_against_sipp_uas() {
    let d = sipp_dir();
    let uas = d.join("uas-rr.xml");
    let (mut p, port) = sipp_uas(&["-sf", uas.to_str().unwrap()], 200);
    let o = our_uac("--rate 400 --calls 200 -t u1", port);
    assert_eq!(o.uac.unwrap().succeeded, 200);
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0));
}

#[test]
fn our_uac_runs_uac_rr_xml_against_sipp_stock_uas() {
    let d = sipp_dir();
    let (mut p, port) = sipp_uas(&["-sn", "uas"], 200);
    let o = our_uac(
        &format!(
            "--rate 300 --calls 200 --sf {}",
            d.join("uac-rr.xml").display()
        ),
        port,
    );
    let uac = o.uac.unwrap();
    assert_eq!(uac.succeeded, 200, "{:?}", uac.failures());
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0));
}

/// Our UAS (the binary) on a free port, stopped with SIGTERM; its JSON report is returned.
fn with_our_uas(
    extra: &[&str],
    client: impl FnOnce(u16) -> Option<i32>,
) -> (Option<i32>, serde_json::Value) {
    let port = free_port();
    let json = std::env::temp_dir().join(format!("jl-uas-{port}-{}.json", std::process::id()));
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "uas",
        "--listen",
        &listen,
        "--duration",
        "60",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut uas = spawn(env!("CARGO_BIN_EXE_junction-load"), &args);
    std::thread::sleep(Duration::from_millis(300));
    let code = client(port);
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(uas.0.id() as i32, libc::SIGTERM) };
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        Some(0),
        "our UAS did not stop on SIGTERM"
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let _ = std::fs::remove_file(&json);
    (code, serde_json::from_str(&text).unwrap())
}

#[test]
fn sipp_uac_record_route_scenario_against_our_uas() {
    let d = sipp_dir();
    let uac = d.join("uac-rr.xml");
    let (code, j) = with_our_uas(&[], |port| {
        let target = format!("127.0.0.1:{port}");
        let mut p = spawn(
            sipp(),
            &[
                "-sf",
                uac.to_str().unwrap(),
                "-s",
                "2125551234",
                &target,
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-r",
                "300",
                "-m",
                "300",
                "-d",
                "0",
                "-nostdin",
                "-timeout",
                "60s",
            ],
        );
        p.wait(Duration::from_secs(60))
    });
    assert_eq!(code, Some(0), "SIPp UAC reported failed calls");
    assert_eq!(j["uas"]["uas"]["calls"], 300);
    assert_eq!(j["uas"]["uas"]["completed"], 300);
    assert_eq!(j["failure_total"], 0);
}

#[test]
fn sipp_stock_uac_against_our_uas_running_uas_rr_xml() {
    let d = sipp_dir();
    let uas = d.join("uas-rr.xml");
    let (code, j) = with_our_uas(&["--sf", uas.to_str().unwrap()], |port| {
        let target = format!("127.0.0.1:{port}");
        let mut p = spawn(
            sipp(),
            &[
                "-sn",
                "uac",
                "-s",
                "2125551234",
                &target,
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-r",
                "300",
                "-m",
                "200",
                "-d",
                "0",
                "-nostdin",
                "-timeout",
                "60s",
            ],
        );
        p.wait(Duration::from_secs(60))
    });
    assert_eq!(code, Some(0), "SIPp UAC reported failed calls");
    assert_eq!(j["uas"]["uas"]["calls"], 200);
    assert_eq!(j["uas"]["uas"]["completed"], 200);
}

#[test]
fn sipp_stock_scenarios_are_accepted() {
    for (name, role) in [("uac", Role::Uac), ("uas", Role::Uas)] {
        let out = Command::new(sipp()).args(["-sd", name]).output().unwrap();
        let sc =
            scenario::parse::parse(&out.stdout).unwrap_or_else(|e| panic!("stock {name}: {e}"));
        assert_eq!(sc.role, role);
    }
}
