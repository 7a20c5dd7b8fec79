//! The flood end to end: the real junction binary with a pbx trunk (127.0.0.2) and a gw trunk
//! (the UAS on 127.0.0.3), `junction-load flood` sending every kind of datagram from unknown
//! sources, and legitimate calls from the pbx trunk at the same time. Behaviour only: every
//! legitimate call completes (retransmissions allowed), junction stays up, the flood sources
//! get nothing back, and junction's metrics count the flood.
//!
//! The junction binary: `JUNCTION_BIN`, or else the newest of `target/debug/junction` and
//! `target/release/junction` next to this test (`cargo build -p junction` makes one).

mod common;
use common::{free_tcp, free_udp, junction_bin};
use junction_load::{cli, flood};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// GET `path` on the metrics port: (status line, body), or None when nobody answers.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// The sum of a metric family over its samples (every shard).
fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

struct Junction(Child);

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run saw.
struct Run {
    calls: junction_load::report::Outcome,
    flooded: flood::Outcome,
    /// junction's counters, after minus before: (unknown source, flood guard, malformed,
    /// datagrams received).
    counted: (u64, u64, u64, u64, u64),
    /// New INVITEs junction answered 503 because a shard counted as overloaded.
    shed: u64,
    alive: bool,
    ready: bool,
}

/// junction with the pbx and gw trunks; `flood` (junction-load flood options, without
/// --target) from before the first call to after the last; 200 calls at 50/s meanwhile.
fn flood_run(flood_args: &str) -> Run {
    // One flood at a time: two would share the CPUs (and this process's temp directory).
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_udp("127.0.0.1");
    let uas_port = free_udp("127.0.0.3");
    let metrics = free_tcp();
    let dir = std::env::temp_dir().join(format!("jl-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("junction.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
cores = 1
listen = "udp:127.0.0.1:{port}"
metrics = "127.0.0.1:{metrics}"
unknown_source = "drop"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]

[[trunk]]
name = "gw"
peers = ["127.0.0.3:{uas_port}"]
send_to = "127.0.0.3:{uas_port}"

[[route]]
name = "all"
prefixes = [""]
trunks = ["gw"]
"#
        ),
    )
    .unwrap();
    let mut junction = Junction(
        Command::new(junction_bin())
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((status, _)) = http_get(metrics, "/ready") {
            if status.contains(" 200") {
                break;
            }
        }
        assert!(
            junction.0.try_wait().unwrap().is_none(),
            "junction exited at start"
        );
        assert!(Instant::now() < deadline, "junction not ready after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = http_get(metrics, "/metrics").unwrap().1;

    // The flood: every kind, 64 unknown sources, started before the calls and outlasting them.
    let flood_plan = flood::parse(
        &format!("--target 127.0.0.1:{port} --duration 8 --drain-ms 500 --quiet {flood_args}")
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let flooder = std::thread::spawn(move || flood::run(&flood_plan).unwrap());
    std::thread::sleep(Duration::from_millis(500));

    // 200 calls from the pbx trunk to the gw trunk's UAS, in one process; T1 500 ms, so a
    // datagram lost in a full socket buffer is recovered by retransmission.
    let argv: Vec<String> = format!(
        "both --listen 127.0.0.3:{uas_port} --target 127.0.0.1:{port} --local-ip 127.0.0.2 \
         --rate 50 --calls 200 --t1-ms 500 --workers 1 --no-pin --quiet"
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    let calls = junction_load::io::run(&cli::parse(&argv).unwrap()).unwrap();
    let flooded = flooder.join().unwrap();

    let alive = junction.0.try_wait().unwrap().is_none();
    let ready = http_get(metrics, "/ready").is_some_and(|(status, _)| status.contains(" 200"));
    let after = http_get(metrics, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    let delta = |name: &str| metric(&after, name).saturating_sub(metric(&before, name));
    let counted = (
        delta("junction_core_rejected_unknown_source_total"),
        delta("junction_core_dropped_flood_total"),
        delta("junction_core_dropped_malformed_total"),
        delta("junction_datagrams_received_total"),
        delta("junction_socket_drops_total"),
    );
    let shed = delta("junction_core_rejected_overload_total");
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        shed,
        calls,
        flooded,
        counted,
        alive,
        ready,
    }
}

/// A flood of every kind from 16 unknown sources at 20000 datagrams/s. The assertions are
/// about behaviour, not capacity: every legitimate call completes (retransmissions allowed),
/// nothing goes back to the flood, junction counted it.
#[test]
fn legitimate_calls_complete_through_a_flood_from_unknown_sources() {
    let r = flood_run(
        "--rate 20000 --sources 127.77.0.0/16 --source-count 16 \
         --mix invite=50,junk=30,mutated=15,options=5 --seed 3",
    );
    let uac = r.calls.uac.as_ref().unwrap();
    assert_eq!(uac.started, 200);
    assert_eq!(
        uac.succeeded,
        200,
        "legitimate calls failed under the flood: {:?}; junction shed {} as overloaded",
        uac.failures(),
        r.shed
    );
    assert!(r.alive, "junction died under the flood");
    assert!(r.ready, "junction's /ready no longer answers 200");

    // Every kind went out, and nothing came back to the flood sources.
    let f = &r.flooded;
    assert!(f.sent > 0);
    assert!(f.by_kind.iter().all(|&n| n > 0), "{:?}", f.by_kind);
    assert_eq!(
        (f.replies, f.reply_bytes),
        (0, 0),
        "junction answered unknown sources: {:?}",
        f.by_code
    );

    // junction counted the flood. With unknown_source = "drop" most of it never reaches a shard: the kernel pre-filter
    // discards requests from unknown sources (junction_socket_drops_total); what passes
    // (responses, "SIP/" junk) the shards drop.
    let (unknown, guard, malformed, received, kernel) = r.counted;
    assert!(kernel > 0, "{:?}", r.counted);
    assert!(kernel + unknown + guard + malformed > 0, "{:?}", r.counted);
    assert!(received >= unknown + guard + malformed, "{:?}", r.counted);
}

/// An unpaced flood (as fast as the generator can send) from 256 unknown sources: junction
/// discards it before parsing, and its overload control must not mistake that backlog for
/// load its trunks cause (it once answered their INVITEs 503 because receive batches were
/// full). No legitimate call is shed.
#[test]
fn no_legitimate_call_is_shed_under_an_unpaced_flood() {
    let r = flood_run("--rate 0 --sources 127.78.0.0/16 --source-count 256 --seed 4");
    let uac = r.calls.uac.as_ref().unwrap();
    assert!(r.alive);
    assert_eq!(
        uac.succeeded,
        200,
        "{:?}; junction shed {} as overloaded",
        uac.failures(),
        r.shed
    );
}
