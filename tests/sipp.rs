//! A real SIPp UAC and UAS (Debian package sip-tester) through the junction binary over
//! loopback, 2 shards: thousands of basic calls with Record-Route, with many source ports
//! (`-t un`) and with one 4-tuple (`-t u1`). CI installs SIPp; without it these tests fail.

mod common;
use common::free_udp_port_pair;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project's SIPp scenario files (tests/data/sipp).
fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp")
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

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

struct Junction {
    child: Child,
    metrics: u16,
    _dir: PathBuf,
}

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_junction(name: &str, port: u16, uas_port: u16, server_extra: &str) -> Junction {
    let metrics = free_tcp_port();
    let dir = std::env::temp_dir().join(format!("junction-sipp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let config = format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{port}"
metrics = "127.0.0.1:{metrics}"
{server_extra}
[[trunk]]
name = "sipp-uas"
peers = ["127.0.0.1:{uas_port}"]
send_to = "127.0.0.1:{uas_port}"

[[trunk]]
name = "sipp-uac"
peers = ["127.0.0.1"]

[[route]]
name = "all"
prefixes = [""]
trunks = ["sipp-uas"]
"#
    );
    let path = dir.join("junction.toml");
    std::fs::write(&path, config).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start junction");
    let j = Junction {
        child,
        metrics,
        _dir: dir,
    };
    // Ready when the metrics endpoint says so.
    let mut j = j;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = j.child.try_wait() {
            panic!("junction exited before it was ready: {status} (its stderr is above)");
        }
        if let Some(body) = http_get(metrics, "/ready") {
            if body.starts_with("HTTP/1.1 200") {
                return j;
            }
        }
        assert!(Instant::now() < deadline, "junction did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Sum of a metric's samples per shard label, from the Prometheus text.
fn per_shard(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, labels) = key.split_once('{').unwrap_or((key, ""));
            if metric != name {
                return None;
            }
            let shard = labels
                .split(',')
                .find_map(|kv| kv.trim_end_matches('}').strip_prefix("shard="))?
                .trim_matches('"')
                .to_string();
            Some((shard, value.parse().ok()?))
        })
        .collect()
}

/// The SIPp runs take turns: run side by side on two cores they starve each other (and
/// junction) of CPU, and free ports picked by one could be taken by the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_calls(name: &str, transport: &str, calls: u32, rate: u32, steering: bool) -> String {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let sipp = sipp();
    let dir = scenarios();
    let port = free_udp_port();
    let uas_port = free_udp_port();
    let uac_port = free_udp_port();
    let extra = if steering {
        format!("shard_ports = {}\n", free_udp_port_pair())
    } else {
        String::new()
    };
    let j = start_junction(name, port, uas_port, &extra);
    let mut uas = Command::new(sipp)
        .args(["-sf"])
        .arg(dir.join("uas-rr.xml"))
        .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
        .args(["-m", &calls.to_string(), "-nostdin", "-timeout", "240s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp uas");
    std::thread::sleep(Duration::from_millis(300));
    let uac = Command::new(sipp)
        .arg(format!("127.0.0.1:{port}"))
        .args(["-sf"])
        .arg(dir.join("uac-rr.xml"))
        .args([
            "-s",
            "2125551234",
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port.to_string(),
        ])
        .args(["-t", transport, "-d", "0", "-max_socket", "2000"])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-nostdin", "-timeout", "180s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run sipp uac");
    if !uac.status.success() {
        // Don't wait for the UAS's own timeout when the UAC already failed.
        let _ = uas.kill();
    }
    let uas_status = uas.wait().expect("uas exit");
    // Let the shards publish their last counters.
    std::thread::sleep(Duration::from_millis(500));
    let metrics = http_get(j.metrics, "/metrics").unwrap_or_default();
    assert!(
        uac.status.success(),
        "SIPp UAC ({transport}) failed: {:?}\n{}\n{metrics}",
        uac.status,
        String::from_utf8_lossy(&uac.stderr)
    );
    assert!(uas_status.success(), "SIPp UAS failed: {uas_status:?}");
    let created: f64 = per_shard(&metrics, "junction_core_calls_created_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        created as u32, calls,
        "every call was owned by one shard:\n{metrics}"
    );
    metrics
}

#[test]
fn sipp_basic_calls_many_source_ports() {
    run_calls("un", "un", 2000, 400, false);
}

#[test]
fn sipp_basic_calls_one_four_tuple_spread_over_both_shards() {
    let metrics = run_calls("u1", "u1", 2000, 400, false);
    let owned = per_shard(&metrics, "junction_core_calls_created_total");
    assert_eq!(owned.len(), 2, "two shards report: {owned:?}");
    for (shard, n) in &owned {
        assert!(
            *n > 0.0,
            "shard {shard} owned no call: one 4-tuple is spread by Call-ID"
        );
    }
    let handed: f64 = per_shard(&metrics, "junction_handoff_out_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert!(
        handed > 0.0,
        "datagrams were handed to their owning shard:\n{metrics}"
    );
}

/// With per-shard ports, SIPp on one 4-tuple still has its calls spread over both shards by
/// Call-ID, and the UAS's responses (sent to junction's Via) reach the owning shard directly:
/// none crosses. (SIPp sends every request to the address on its command line, ignoring the
/// route set, so its ACKs and BYEs still arrive on the shared port.)
#[test]
fn sipp_one_four_tuple_with_shard_ports_responses_reach_their_owner() {
    let metrics = run_calls("u1-steer", "u1", 2000, 400, true);
    let owned = per_shard(&metrics, "junction_core_calls_created_total");
    assert_eq!(owned.len(), 2, "two shards report: {owned:?}");
    assert!(
        owned.iter().all(|(_, n)| *n > 0.0),
        "both shards own calls: {owned:?}"
    );
    let responses: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("junction_handoff_kind_total{") && l.contains("kind=\"response\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(responses, 0.0, "responses crossed shards:\n{metrics}");
    let steered: f64 = per_shard(&metrics, "junction_datagrams_received_shard_port_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    // The UAS's 180, 200 and 200 to BYE for every call.
    assert!(
        steered >= 3.0 * 2000.0,
        "{steered} datagrams on shard ports:\n{metrics}"
    );
}
