//! Configuration reload (issue 3 item 8): a broken file is refused with file, line and key
//! and changes nothing; a valid one is compiled off the shards and swapped into every shard
//! between batches, calls in progress keep the table they started with; and under SIPp load
//! (the binary, SIGHUP) no call is lost.
//!
//! No assertion depends on timing: waits poll for a condition and give up (failing, with
//! what they saw) only after a generous deadline.

use junction::config::{self, ConfigError};
use junction::shard::{self, Options, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One test with a server at a time: each server pins io_uring rings against an 8 MiB
/// RLIMIT_MEMLOCK, and the SIPp test's UAC (`-t un`) opens up to 2,000 ephemeral UDP
/// sockets, which took the port another test had just found free (`free_udp_port`) about
/// one full run in two ("server did not start").
static SERVERS: Mutex<()> = Mutex::new(());

fn one_server_at_a_time() -> MutexGuard<'static, ()> {
    SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const WAIT_MAX: Duration = Duration::from_secs(30);

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("junction-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replace a file the way an operator should: write a sibling, then rename over it (a
/// reload never reads half a file).
fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

/// The 1-based line of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(start))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{text}"))
}

fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(WAIT_MAX))
        .expect("read timeout");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn metrics(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one sample (`name` or `name{labels}`), if present.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == series).then(|| value.parse().ok())?
    })
}

/// Every sample of a per-shard family.
fn per_shard(metrics: &str, name: &str) -> Vec<u64> {
    let prefix = format!("{name}{{shard=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

/// Poll `/metrics` until `done`; fail with the last exposition after `WAIT_MAX`.
fn wait_metrics(addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let text = metrics(addr);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; last metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ in-process server

/// A configuration with a PBX on 127.0.0.2 and two gateways on 127.0.0.3 and 127.0.0.4;
/// every number goes to `route_to`.
fn routed_config(listen: u16, metrics: u16, gw_a: u16, gw_b: u16, route_to: &str) -> String {
    format!(
        r#"# reload test
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:{metrics}"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]

[[trunk]]
name = "gw-a"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:{gw_a}"

[[trunk]]
name = "gw-b"
peers = ["127.0.0.4"]
send_to = "127.0.0.4:{gw_b}"

[[route]]
name = "all"
prefixes = [""]
trunks = ["{route_to}"]
"#
    )
}

/// A UDP peer on a loopback address.
struct Peer {
    socket: UdpSocket,
    addr: SocketAddr,
}

impl Peer {
    fn bind(ip: &str) -> Peer {
        let socket = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("addr");
        Peer { socket, addr }
    }

    fn send(&self, to: SocketAddr, text: &str) {
        self.socket.send_to(text.as_bytes(), to).expect("send");
    }

    /// The next message whose first line starts with `first` and whose Call-ID is
    /// `call_id` (others, such as retransmissions and 100 Trying, are skipped).
    fn expect(&self, first: &str, call_id: &str) -> String {
        match self.wait_for(first, call_id, WAIT_MAX) {
            Ok(text) => text,
            Err(seen) => panic!(
                "{} never received {first:?} for {call_id}; it received:\n{}",
                self.addr,
                seen.join("\n----\n")
            ),
        }
    }

    /// Like `expect`; Err: everything else received until `wait` ran out.
    fn wait_for(&self, first: &str, call_id: &str, wait: Duration) -> Result<String, Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(first) && header(&text, "Call-ID") == Some(call_id) {
                return Ok(text);
            }
            seen.push(text);
        }
        Err(seen)
    }
}

/// The first value of a header (full name, as junction and these tests write it).
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    headers(text, name).into_iter().next()
}

fn headers<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A response of the gateway at `gw` to a request it received (Via and Record-Route copied,
/// a To tag added).
fn response(request: &str, status: &str, gw: SocketAddr) -> String {
    let mut text = format!("SIP/2.0 {status}\r\n");
    for via in headers(request, "Via") {
        text.push_str(&format!("Via: {via}\r\n"));
    }
    for rr in headers(request, "Record-Route") {
        text.push_str(&format!("Record-Route: {rr}\r\n"));
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {};tag=gw-1\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Contact: <sip:2125551234@{gw}>\r\nContent-Length: 0\r\n\r\n",
        header(request, "From").unwrap_or(""),
        header(request, "To").unwrap_or(""),
        header(request, "Call-ID").unwrap_or(""),
        header(request, "CSeq").unwrap_or(""),
    ));
    text
}

fn invite(pbx: &Peer, junction: SocketAddr, call_id: &str) -> String {
    // A branch is a token: no '@'.
    let branch: String = call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "INVITE sip:2125551234@{junction} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {pbx};branch=z9hG4bK-{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:100@127.0.0.2>;tag=pbx-{branch}\r\n\
         To: <sip:2125551234@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:100@{pbx}>\r\n\
         Content-Length: 0\r\n\r\n",
        pbx = pbx.addr,
    )
}

/// Send an INVITE from the PBX; return it as the gateway `gw` received it.
fn call(pbx: &Peer, gw: &Peer, junction: SocketAddr, call_id: &str) -> String {
    pbx.send(junction, &invite(pbx, junction, call_id));
    let forwarded = match gw.wait_for("INVITE ", call_id, WAIT_MAX) {
        Ok(text) => text,
        Err(seen) => {
            let answers = pbx
                .wait_for("", "(nothing)", Duration::from_millis(300))
                .unwrap_err();
            panic!(
                "{} never received the INVITE {call_id}; it received:\n{}\n\
                 and the PBX received:\n{}",
                gw.addr,
                seen.join("\n----\n"),
                answers.join("\n----\n")
            )
        }
    };
    assert!(
        forwarded.starts_with(&format!("INVITE sip:2125551234@{} SIP/2.0\r\n", gw.addr)),
        "the Request-URI points at the gateway:\n{forwarded}"
    );
    forwarded
}

/// Call-IDs of which at least one is owned by each shard.
fn call_ids_on_every_shard(server: &Server, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut owners = vec![false; server.shards()];
    for i in 0.. {
        let id = format!("{tag}-{i}@reload.test");
        let owner = server.owner_of(id.as_bytes());
        if !owners[owner] {
            owners[owner] = true;
            ids.push(id);
        }
        if owners.iter().all(|o| *o) {
            return ids;
        }
    }
    unreachable!()
}

fn start(path: &Path) -> Server {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => panic!("test config: {errors:?}"),
    };
    match shard::start_with(config, Options::default()) {
        Ok(server) => server,
        Err(e) => panic!("server did not start: {e}"),
    }
}

fn expect_refused(result: Result<shard::ReloadSummary, Vec<ConfigError>>) -> Vec<ConfigError> {
    match result {
        Ok(summary) => panic!("a broken file was accepted: {summary:?}"),
        Err(errors) => errors,
    }
}

#[test]
fn a_broken_file_changes_nothing_and_a_valid_one_reroutes_new_calls_only() {
    let _guard = one_server_at_a_time();
    let dir = temp_dir("inproc");
    let path = dir.join("junction.toml");
    let file = path.display().to_string();
    let pbx = Peer::bind("127.0.0.2");
    let gw_a = Peer::bind("127.0.0.3");
    let gw_b = Peer::bind("127.0.0.4");
    let (listen, metrics_port) = (free_udp_port(), free_tcp_port());
    let config = |route_to: &str| {
        routed_config(
            listen,
            metrics_port,
            gw_a.addr.port(),
            gw_b.addr.port(),
            route_to,
        )
    };
    write_file(&path, &config("gw-a"));
    let server = start(&path);
    let junction = server.local_addr();
    let metrics_addr = server.metrics_addr().expect("metrics enabled");
    let ids = call_ids_on_every_shard(&server, "before");

    // Generation 0 routes to gw-a.
    for id in &ids {
        call(&pbx, &gw_a, junction, id);
    }
    // A call in progress across the reloads below: routed to gw-a now, ringing (which stops
    // the trunk's progress timer), answered after the reloads.
    let long_call = "long-call@reload.test";
    let long_invite = call(&pbx, &gw_a, junction, long_call);
    gw_a.send(junction, &response(&long_invite, "180 Ringing", gw_a.addr));
    pbx.expect("SIP/2.0 180 ", long_call);

    // A broken file: a route naming a trunk that does not exist.
    let broken = config("gw-z");
    write_file(&path, &broken);
    let errors = expect_refused(server.reload());
    let line = line_of(&broken, "trunks = [\"gw-z\"]");
    assert!(
        errors.iter().any(|e| e.to_string().starts_with(&format!(
            "{file}:{line}: route[0].trunks[0]: there is no trunk named \"gw-z\""
        ))),
        "the error names file, line and key: {errors:?}"
    );
    // A file that is not TOML.
    let garbage = config("gw-b").replace("[[route]]", "[[route]");
    write_file(&path, &garbage);
    let errors = expect_refused(server.reload());
    let line = line_of(&garbage, "[[route]");
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().starts_with(&format!("{file}:{line}: "))),
        "the syntax error names file and line: {errors:?}"
    );
    // No file at all.
    std::fs::remove_file(&path).expect("remove config");
    let errors = expect_refused(server.reload());
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{file}: (file): cannot read")),
        "{errors:?}"
    );
    let m = metrics(metrics_addr);
    assert_eq!(
        sample(&m, "junction_config_reload_failures_total"),
        Some(3),
        "{m}"
    );
    assert_eq!(
        per_shard(&m, "junction_config_reloads_total"),
        [0, 0],
        "{m}"
    );
    // ...and the old routing still routes, on every shard.
    let ids = call_ids_on_every_shard(&server, "refused");
    for id in &ids {
        call(&pbx, &gw_a, junction, id);
    }

    // A valid file sending everything to gw-b.
    write_file(&path, &config("gw-b"));
    let summary = match server.reload() {
        Ok(summary) => summary,
        Err(errors) => panic!("a valid file was refused: {errors:?}"),
    };
    assert!(summary.applied);
    assert_eq!((summary.trunks, summary.routes), (3, 1));
    assert_eq!(summary.generation, 1);
    assert!(summary.restart_needed.is_empty(), "{summary:?}");
    assert!(summary.lagging_shards.is_empty(), "{summary:?}");
    assert_eq!(
        summary.lines(),
        [format!("reloaded {file}: 3 trunks, 1 route")]
    );
    // Every shard switched before reload returned: new calls go to gw-b on every shard.
    let ids = call_ids_on_every_shard(&server, "after");
    for id in &ids {
        call(&pbx, &gw_b, junction, id);
    }
    let m = wait_metrics(metrics_addr, "the shards to publish the reload", |m| {
        per_shard(m, "junction_config_reloads_total") == [1, 1]
    });
    assert_eq!(per_shard(&m, "junction_config_generation"), [1, 1], "{m}");

    // The call that started before the reload still completes through gw-a.
    assert!(
        !headers(&long_invite, "Record-Route").is_empty(),
        "{long_invite}"
    );
    gw_a.send(junction, &response(&long_invite, "200 OK", gw_a.addr));
    let answered = pbx.expect("SIP/2.0 200 ", long_call);
    let route: Vec<&str> = headers(&answered, "Record-Route");
    let in_dialog = |method: &str, cseq: u32| {
        let mut request = format!(
            "{method} sip:2125551234@{gw} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {pbx};branch=z9hG4bK-{method}-long;rport\r\n\
             Max-Forwards: 70\r\n",
            gw = gw_a.addr,
            pbx = pbx.addr,
        );
        for r in &route {
            request.push_str(&format!("Route: {r}\r\n"));
        }
        request.push_str(&format!(
            "From: {}\r\nTo: {}\r\nCall-ID: {long_call}\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            header(&answered, "From").unwrap_or(""),
            header(&answered, "To").unwrap_or(""),
        ));
        request
    };
    pbx.send(junction, &in_dialog("ACK", 1));
    gw_a.expect("ACK ", long_call);
    pbx.send(junction, &in_dialog("BYE", 2));
    gw_a.expect("BYE ", long_call);

    // POST /reload does the same: refused (422, the problem in the body), then accepted.
    write_file(&path, &broken);
    let post = "POST /reload HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    let (status, body) = http(metrics_addr, post);
    assert_eq!(status, 422, "{body}");
    let line = line_of(&broken, "trunks = [\"gw-z\"]");
    assert!(
        body.contains(&format!(
            "reload refused: {file}:{line}: route[0].trunks[0]: "
        )),
        "{body}"
    );
    write_file(&path, &config("gw-a"));
    let (status, body) = http(metrics_addr, post);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("reloaded {file}: 3 trunks, 1 route\n"));
    let ids = call_ids_on_every_shard(&server, "http");
    for id in &ids {
        call(&pbx, &gw_a, junction, id);
    }

    // [server] changes are not applied live: named, and the rest is applied.
    let moved = config("gw-b").replace(
        &format!("listen = \"udp:127.0.0.1:{listen}\""),
        &format!("listen = \"udp:127.0.0.1:{}\"", free_udp_port()),
    );
    write_file(&path, &moved);
    let summary = match server.reload() {
        Ok(summary) => summary,
        Err(errors) => panic!("refused: {errors:?}"),
    };
    // (advertise follows listen when not set)
    assert_eq!(
        summary.restart_needed,
        ["server.listen", "server.advertise"]
    );
    assert_eq!(summary.generation, 3);
    assert!(
        summary.lines()[1].starts_with("warning: server.listen, server.advertise changed in "),
        "{:?}",
        summary.lines()
    );
    assert_eq!(
        server.local_addr(),
        junction,
        "still listening where it was"
    );
    let ids = call_ids_on_every_shard(&server, "moved");
    for id in &ids {
        call(&pbx, &gw_b, junction, id);
    }
    let m = wait_metrics(metrics_addr, "the shards to publish the reloads", |m| {
        per_shard(m, "junction_config_generation") == [3, 3]
    });
    assert_eq!(per_shard(&m, "junction_config_reloads_total"), [3, 3]);
    assert_eq!(sample(&m, "junction_config_reload_failures_total"), Some(4));

    server.shutdown().expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reloading_the_embedded_default_is_a_no_op() {
    let _guard = one_server_at_a_time();
    let mut config = config::embedded_default();
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    config.server.listen = listen;
    config.server.advertise = listen;
    config.server.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    config.server.cores = 1;
    config.server.cpus = None;
    let server = match shard::start_with(config, Options::default()) {
        Ok(server) => server,
        Err(e) => panic!("server did not start: {e}"),
    };
    let summary = match server.reload() {
        Ok(summary) => summary,
        Err(errors) => panic!("{errors:?}"),
    };
    assert!(!summary.applied, "{summary:?}");
    assert_eq!(summary.generation, 0);
    assert_eq!(
        summary.lines(),
        ["reload: running the embedded default (no --config file): nothing to reload"]
    );
    let m = metrics(server.metrics_addr().expect("metrics"));
    assert_eq!(per_shard(&m, "junction_config_reloads_total"), [0], "{m}");
    assert_eq!(sample(&m, "junction_config_reload_failures_total"), Some(0));
    server.shutdown().expect("clean shutdown");
}

// ------------------------------------------------------------- the binary under SIPp load

/// The project's SIPp scenario files (tests/data/sipp).
fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp")
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

/// Kill a child on drop (a failed assertion must not leave processes behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two trunks reach the SIPp UAS; valid versions of the file alternate the route between
/// them (and add a route), so new calls change trunk while earlier ones are in progress.
fn sipp_config(listen: u16, metrics: u16, uas: u16, version: usize) -> String {
    let (trunk, extra) = if version % 2 == 0 {
        ("uas-1", "")
    } else {
        (
            "uas-2",
            "\n[[route]]\nname = \"unused\"\nprefixes = [\"999\"]\ntrunks = [\"uas-1\"]\n",
        )
    };
    format!(
        r#"[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:{metrics}"

[[trunk]]
name = "uas-1"
peers = ["127.0.0.1:{uas}"]
send_to = "127.0.0.1:{uas}"

[[trunk]]
name = "uas-2"
send_to = "127.0.0.1:{uas}"

[[trunk]]
name = "uac"
peers = ["127.0.0.1"]

[[route]]
name = "all"
prefixes = [""]
trunks = ["{trunk}"]
{extra}"#
    )
}

/// Broken versions, each with the (line start, key) its first problem must name.
fn broken_config(good: &str, which: usize) -> (String, &'static str, &'static str) {
    match which % 3 {
        0 => (
            good.replacen("send_to = \"127.0.0.1:", "send_to = \"127.0.0.999:", 1),
            "send_to = \"127.0.0.999:",
            "trunk[0].send_to",
        ),
        1 => (
            good.replace("trunks = [\"uas-", "trunks = [\"nope-"),
            "trunks = [\"nope-",
            "route[0].trunks[0]",
        ),
        _ => (
            good.replace("name = \"uac\"", "name = \"uac\"\nmax_calls = \"lots\""),
            "max_calls = ",
            "trunk[2].max_calls",
        ),
    }
}

/// Lines junction printed on stderr, collected by a thread.
fn collect_lines(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else {
                return;
            };
            sink.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(line);
        }
    });
    lines
}

/// The last line junction prints for a reload, accepted or refused.
fn reload_reported(line: &str) -> bool {
    line.contains(" msg=\"config reloaded\" ")
        || line.contains(" msg=\"reload refused: still running the previous configuration\" ")
}

fn snapshot(lines: &Mutex<Vec<String>>) -> Vec<String> {
    lines
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

#[test]
fn reload_under_sipp_load_loses_no_call() {
    let _guard = one_server_at_a_time();
    let sipp = sipp();
    let scenarios = scenarios();
    let dir = temp_dir("sipp");
    let path = dir.join("junction.toml");
    let file = path.display().to_string();
    let (listen, metrics_port) = (free_udp_port(), free_tcp_port());
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    write_file(&path, &sipp_config(listen, metrics_port, uas_port, 0));
    let mut junction = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start junction");
    let stderr = junction.stderr.take().expect("stderr piped");
    let junction = Reaped(junction);
    let lines = collect_lines(stderr);
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let ready = TcpStream::connect(metrics_addr).is_ok()
            && http(metrics_addr, "GET /ready HTTP/1.1\r\n\r\n").0 == 200;
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "junction did not become ready: {:?}",
            snapshot(&lines)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    const CALLS: u32 = 3000;
    const RATE: u32 = 300;
    let uas = Command::new(sipp)
        .arg("-sf")
        .arg(scenarios.join("uas-rr.xml"))
        .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
        .args(["-m", &CALLS.to_string(), "-nostdin", "-timeout", "150s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp uas");
    let mut uas = Reaped(uas);
    std::thread::sleep(Duration::from_millis(300));
    // Calls last a second (-d 1000): about RATE calls are established at any moment, so
    // every reload happens with calls in progress on both shards.
    let uac = Command::new(sipp)
        .arg(format!("127.0.0.1:{listen}"))
        .arg("-sf")
        .arg(scenarios.join("uac-rr.xml"))
        .args(["-s", "2125551234", "-i", "127.0.0.1"])
        .args(["-p", &uac_port.to_string()])
        .args(["-t", "un", "-d", "1000", "-max_socket", "2000"])
        .args(["-r", &RATE.to_string(), "-m", &CALLS.to_string()])
        .args(["-nostdin", "-timeout", "120s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipp uac");
    let mut uac = Reaped(uac);
    let uac_stderr = collect_lines(uac.0.stderr.take().expect("uac stderr"));

    // While the UAC runs: SIGHUP with a valid changed file, then with a broken one, three
    // times each. Each signal's outcome is awaited in junction's log before the file is
    // written again (signals sent while one is pending would merge).
    const RELOADS: usize = 6;
    let mut accepted = 0;
    let mut refused = 0;
    let mut expected_refusals = Vec::new();
    for round in 0..RELOADS {
        std::thread::sleep(Duration::from_millis(700));
        let good = sipp_config(listen, metrics_port, uas_port, accepted + 1);
        let expect_ok = round % 2 == 0;
        if expect_ok {
            write_file(&path, &good);
        } else {
            let (broken, at, key) = broken_config(&good, refused);
            expected_refusals.push(format!(
                " msg=\"reload refused\" problem=\"{file}:{}: {key}: ",
                line_of(&broken, at)
            ));
            write_file(&path, &broken);
        }
        let done_before = snapshot(&lines)
            .iter()
            .filter(|l| reload_reported(l))
            .count();
        // SAFETY: plain syscall; the pid is our running child.
        let rc = unsafe { libc::kill(junction.0.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "SIGHUP could not be sent");
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let done = snapshot(&lines)
                .iter()
                .filter(|l| reload_reported(l))
                .count();
            if done > done_before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "junction did not report reload {round}: {:?}",
                snapshot(&lines)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        if expect_ok {
            accepted += 1;
        } else {
            refused += 1;
        }
        assert!(
            uac.0.try_wait().ok().flatten().is_none(),
            "the UAC finished before reload {round}: the reloads were not under load \
             (raise CALLS)"
        );
    }

    let uac_status = uac.0.wait().expect("uac exit");
    if !uac_status.success() {
        let _ = uas.0.kill();
    }
    let uas_status = uas.0.wait().expect("uas exit");
    let log = snapshot(&lines);
    assert!(
        uac_status.success(),
        "SIPp UAC reports failed calls ({uac_status:?}):\n{}\njunction:\n{}\n{}",
        snapshot(&uac_stderr).join("\n"),
        log.join("\n"),
        metrics(metrics_addr)
    );
    assert!(uas_status.success(), "SIPp UAS failed: {uas_status:?}");
    // The shards publish their last counters within 100 ms of their last datagram.
    let m = wait_metrics(metrics_addr, "every call to be counted", |m| {
        per_shard(m, "junction_core_calls_created_total")
            .iter()
            .sum::<u64>()
            >= u64::from(CALLS)
    });
    assert_eq!(
        per_shard(&m, "junction_core_calls_created_total")
            .iter()
            .sum::<u64>(),
        u64::from(CALLS),
        "{m}"
    );

    // Every reload was applied by both shards or refused, and said so precisely.
    assert_eq!(
        per_shard(&m, "junction_config_reloads_total"),
        [accepted as u64, accepted as u64],
        "{m}"
    );
    assert_eq!(
        per_shard(&m, "junction_config_generation"),
        [accepted as u64, accepted as u64],
        "{m}"
    );
    assert_eq!(
        sample(&m, "junction_config_reload_failures_total"),
        Some(refused as u64),
        "{m}"
    );
    let reloaded: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" msg=\"config reloaded\" "))
        .collect();
    assert_eq!(reloaded.len(), accepted, "{log:#?}");
    assert!(
        reloaded
            .iter()
            .all(|l| l.contains(&format!(" source={file} ")) && l.contains(" trunks=3 ")),
        "{log:#?}"
    );
    for expected in &expected_refusals {
        assert!(
            log.iter().any(|l| l.contains(expected.as_str())),
            "no line starting {expected:?} in {log:#?}"
        );
    }
    assert_eq!(
        log.iter()
            .filter(|l| l.contains(&format!(
                " msg=\"reload refused: still running the previous configuration\" source={file} "
            )))
            .count(),
        refused,
        "one summary line per refused reload: {log:#?}"
    );
    drop(junction);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel pre-filter follows the trunks: an address that is no trunk peer is discarded
/// by the kernel (counted in junction_socket_drops_total, never read by a shard); once a
/// reload makes it a trunk peer, its calls are routed on every shard.
#[test]
fn a_reload_that_adds_a_trunk_peer_opens_the_kernel_filter_to_it() {
    let _guard = one_server_at_a_time();
    let dir = temp_dir("filter");
    let path = dir.join("junction.toml");
    let newcomer = Peer::bind("127.0.0.5");
    let gw_a = Peer::bind("127.0.0.3");
    let gw_b = Peer::bind("127.0.0.4");
    let (listen, metrics_port) = (free_udp_port(), free_tcp_port());
    let base = routed_config(
        listen,
        metrics_port,
        gw_a.addr.port(),
        gw_b.addr.port(),
        "gw-a",
    );
    write_file(&path, &base);
    let server = start(&path);
    let junction = server.local_addr();
    let metrics_addr = server.metrics_addr().expect("metrics enabled");
    let drops = |m: &str| {
        per_shard(m, "junction_socket_drops_total")
            .iter()
            .sum::<u64>()
    };
    let before = drops(&metrics(metrics_addr));
    let ids = call_ids_on_every_shard(&server, "filtered");
    for id in &ids {
        newcomer.send(junction, &invite(&newcomer, junction, id));
    }
    let m = wait_metrics(metrics_addr, "the kernel dropping the stranger", |m| {
        drops(m) >= before + ids.len() as u64
    });
    assert_eq!(
        per_shard(&m, "junction_core_requests_in_total")
            .iter()
            .sum::<u64>(),
        0,
        "no shard read the stranger's INVITEs"
    );
    assert!(gw_a
        .wait_for("INVITE ", &ids[0], Duration::from_millis(300))
        .is_err());

    // The newcomer becomes a trunk.
    let with_newcomer = base.replace(
        "[[trunk]]\nname = \"pbx\"",
        "[[trunk]]\nname = \"newcomer\"\npeers = [\"127.0.0.5\"]\n\n[[trunk]]\nname = \"pbx\"",
    );
    assert_ne!(with_newcomer, base);
    write_file(&path, &with_newcomer);
    if let Err(errors) = server.reload() {
        panic!("reload refused: {errors:?}");
    }
    for id in call_ids_on_every_shard(&server, "admitted") {
        call(&newcomer, &gw_a, junction, &id);
    }
    server.shutdown().expect("clean shutdown");
}
