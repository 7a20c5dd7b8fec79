//! Route plans checked at load, through the real junction binary: a carrier trunk (the UAC on
//! 127.0.0.2) sends calls that junction routes to two gateways and a PBX (three named UAS roles
//! in one junction-load process, each on its own loopback address). The calls come from a CSV
//! (a SIPp injection file) and from a generator; `junction route-test --format tsv` turns them
//! into expectations; `--expect` judges every call by what reached which UAS.
//!
//! The junction binary: `JUNCTION_BIN`, or else the newest of `target/debug/junction` and
//! `target/release/junction` (`cargo build -p junction` makes one).

mod common;
use common::{free_tcp, free_udp, junction_bin};
use junction_load::report::Outcome;
use junction_load::{cli, numbers_cmd};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(s, "GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().is_some_and(|l| l.contains(" 200"))
}

struct Junction(Child);

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("jl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The UAS ports of the three egress trunks, and junction's.
struct Ports {
    sip: u16,
    metrics: u16,
    gw_a: u16,
    gw_b: u16,
    pbx: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            sip: free_udp("127.0.0.1"),
            metrics: free_tcp(),
            gw_a: free_udp("127.0.0.3"),
            gw_b: free_udp("127.0.0.4"),
            pbx: free_udp("127.0.0.5"),
        }
    }
}

/// The 3-trunk plan: NANP numbers to gw-a (national numbers), international to gw-b (E.164
/// without the +, a fixed caller id), the PBX's DIDs +1212555xxxx to the PBX (extensions).
/// `nanp_trunk` is the trunk of the NANP route: "gw-a" as planned, "pbx" for a mistake.
fn config(p: &Ports, nanp_trunk: &str) -> String {
    format!(
        r#"[server]
cores = 1
listen = "udp:127.0.0.1:{sip}"
metrics = "127.0.0.1:{metrics}"

[[trunk]]
name = "carrier"
peers = ["127.0.0.2"]
inbound = [
  {{ match = '1?([2-9]\d{{9}})', replace = '+1${{1}}' }},
  {{ match = '011(\d{{7,15}})', replace = '+${{1}}', number = "called" }},
]

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3:{gw_a}"]
send_to = "127.0.0.3:{gw_a}"
outbound_called = [{{ match = '\+1(\d{{10}})', replace = '${{1}}' }}]
outbound_calling = [{{ match = '\+1(\d{{10}})', replace = '${{1}}' }}]

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4:{gw_b}"]
send_to = "127.0.0.4:{gw_b}"
remove_plus = true

[[trunk]]
name = "pbx"
peers = ["127.0.0.5:{pbx}"]
send_to = "127.0.0.5:{pbx}"
outbound_called = [{{ match = '\+1212555(\d{{4}})', replace = '${{1}}' }}]

[[route]]
name = "pbx-dids"
prefixes = ["+1212555"]
trunks = ["pbx"]
priority = 10

[[route]]
name = "nanp"
pattern = '\+1[2-9]\d{{9}}'
trunks = ["{nanp_trunk}"]
priority = 20

[[route]]
name = "international"
prefixes = ["+"]
trunks = ["gw-b"]
caller_id = "+12125550100"
priority = 30
"#,
        sip = p.sip,
        metrics = p.metrics,
        gw_a = p.gw_a,
        gw_b = p.gw_b,
        pbx = p.pbx,
    )
}

fn start_junction(config: &Path, metrics: u16) -> Junction {
    let mut j = Junction(
        Command::new(junction_bin())
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(metrics) {
        assert!(
            j.0.try_wait().unwrap().is_none(),
            "junction exited at start"
        );
        assert!(Instant::now() < deadline, "junction not ready after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    j
}

/// The calls of the plan, as route-test reads them: PBX DIDs and a number with no route from
/// a CSV (SIPp's -inf format, called;calling), NANP and international numbers from a
/// generator.
fn calls(dir: &Dir) -> String {
    let inf = dir.file(
        "plan.csv",
        "SEQUENTIAL\n\
         # called;calling\n\
         2125550100;3105551000;\n\
         12125550199;3105551001;\n\
         3125554567;3105551002;\n\
         999;3105551003;\n",
    );
    let mut out = Vec::new();
    let run = |args: &str, out: &mut Vec<u8>| {
        let argv: Vec<String> = args.split_whitespace().map(String::from).collect();
        assert_eq!(numbers_cmd::run(&argv, out), Ok(true), "{args}");
    };
    run(
        &format!(
            "--count 40 --from carrier --inf {} --number [field0] --calling [field1]",
            inf.display()
        ),
        &mut out,
    );
    run(
        "--count 160 --from carrier --numbers 646555XXXX:3,1310555XXXX:1,01144207946XXXX:1 \
         --calling-numbers 718555XXXX --seed 5",
        &mut out,
    );
    String::from_utf8(out).unwrap()
}

/// `junction route-test CONFIG --file CALLS --format tsv`: the expectations.
fn expectations(config: &Path, calls: &Path) -> String {
    let out = Command::new(junction_bin())
        .args(["route-test"])
        .arg(config)
        .arg("--file")
        .arg(calls)
        .args(["--format", "tsv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "route-test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The three egress trunks played by one junction-load, the UAC on the carrier's address.
fn run_plan(p: &Ports, expect: &Path, record: &Path, calls: u64) -> Outcome {
    let line = format!(
        "both --listen 127.0.0.3:{} --name gw-a --listen 127.0.0.4:{} --name gw-b \
         --listen 127.0.0.5:{} --name pbx --record {} --target 127.0.0.1:{} \
         --local-ip 127.0.0.2 --expect {} --rate 200 --calls {calls} --workers 1 --no-pin --quiet",
        p.gw_a,
        p.gw_b,
        p.pbx,
        record.display(),
        p.sip,
        expect.display()
    );
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap()
}

/// One route plan at a time: each runs junction on a CPU of this small machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_three_trunk_plan_routes_every_call_as_planned() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("route-plan-ok");
    let p = Ports::new();
    let conf = dir.file("junction.toml", &config(&p, "gw-a"));
    let calls_file = dir.file("calls.csv", &calls(&dir));
    let expect_text = expectations(&conf, &calls_file);
    // route-test saw every kind of call: each trunk and a 404.
    for what in ["\tpbx\t", "\tgw-a\t", "\tgw-b\t", "\t404"] {
        assert!(expect_text.contains(what), "{what}: {expect_text}");
    }
    let expect = dir.file("expect.tsv", &expect_text);
    let _j = start_junction(&conf, p.metrics);
    let record = dir.0.join("record.tsv");
    let o = run_plan(&p, &expect, &record, 200);
    let uac = o.uac.as_ref().unwrap();
    let summary = junction_load::report::summary(&o);
    assert_eq!(uac.started, 200, "{summary}");
    assert_eq!(uac.misrouted(), 0, "{summary}");
    // Every call judged, and every one as planned (the 404s included, counted as successes).
    assert_eq!(uac.verdicts.iter().sum::<u64>(), 200, "{summary}");
    assert_eq!(uac.verdicts[0], 200, "{summary}");
    assert_eq!(uac.succeeded, 200, "{summary}");
    assert!(
        summary.contains("route check: 200 calls judged, 0 misrouted"),
        "{summary}"
    );
    // Each trunk got calls, and recorded each one with the translated numbers.
    let uas = o.uas.as_ref().unwrap();
    let by = |n: &str| {
        uas.trunk_calls
            .iter()
            .find(|(m, _)| m == n)
            .map_or(0, |e| e.1)
    };
    assert!(
        by("gw-a") > 0 && by("gw-b") > 0 && by("pbx") > 0,
        "{summary}"
    );
    assert_eq!(by("gw-a") + by("gw-b") + by("pbx"), 190, "{summary}"); // 10 calls to 999: 404
    let rec = std::fs::read_to_string(&record).unwrap();
    assert_eq!(rec.lines().count(), 190);
    // The CSV's PBX DIDs reach the PBX as extensions; its calling numbers in E.164.
    assert!(rec.lines().any(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        f[0] == "pbx" && f[2] == "0100" && f[3] == "+13105551000"
    }));
    // International calls reach gw-b without the +, with the route's caller id.
    assert!(rec.lines().any(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        f[0] == "gw-b" && f[2].starts_with("44207946") && f[3] == "12125550100"
    }));
}

#[test]
fn a_route_changed_by_mistake_is_reported_with_examples() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("route-plan-bad");
    let p = Ports::new();
    // The plan as intended, and junction running with the NANP route pointed at the PBX.
    let planned = dir.file("planned.toml", &config(&p, "gw-a"));
    let running = dir.file("junction.toml", &config(&p, "pbx"));
    let calls_file = dir.file("calls.csv", &calls(&dir));
    let expect = dir.file("expect.tsv", &expectations(&planned, &calls_file));
    let _j = start_junction(&running, p.metrics);
    let record = dir.0.join("record.tsv");
    let o = run_plan(&p, &expect, &record, 200);
    let uac = o.uac.as_ref().unwrap();
    let summary = junction_load::report::summary(&o);
    // 40 CSV calls: 10 go to 3125554567 (NANP); 160 generated: 96 to 646555xxxx and 32 to
    // 1310555xxxx (NANP): 138 NANP calls reach the PBX instead of gw-a.
    assert_eq!(uac.misrouted(), 138, "{summary}");
    assert_eq!(uac.verdicts[2], 138, "wrong trunk: {summary}");
    assert!(summary.contains("138 misrouted"), "{summary}");
    assert!(
        summary.contains("e.g. wrong trunk: called 646555")
            || summary.contains("e.g. wrong trunk: called 3125554567")
            || summary.contains("e.g. wrong trunk: called 1310555"),
        "{summary}"
    );
    assert!(summary.contains("expected gw-a("), "{summary}");
    assert!(summary.contains("got pbx("), "{summary}");
    // The other calls were as planned.
    assert_eq!(uac.verdicts[0], 62, "{summary}");
}
