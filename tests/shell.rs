//! The shard shell over real loopback sockets: start refusal, the Call-ID hand-off between
//! shards with exact counter arithmetic read from `/metrics` over HTTP, the HTTP endpoints,
//! IPv6 and dual-stack listening, and clean shutdown.
//!
//! No assertion depends on timing: waits poll `/metrics` until a condition holds and give up
//! (failing, with the last exposition) only after a generous deadline.

use junction::config::{Config, Server as ServerConfig};
use junction::routing::RoutingTable;
use junction::shard::{self, Options, Server};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Each server pins 3 io_uring rings per shard against an 8 MiB RLIMIT_MEMLOCK: run the
/// tests that start servers one at a time.
static SERVERS: Mutex<()> = Mutex::new(());

fn one_server_at_a_time() -> MutexGuard<'static, ()> {
    SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config(listen: &str, cores: usize) -> Config {
    let listen: SocketAddr = listen.parse().unwrap();
    Config {
        source: "<test>".to_string(),
        server: ServerConfig {
            cores,
            cpus: None,
            listen,
            advertise: listen,
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            // These tests count what the shards read from unknown test peers: "reject"
            // attaches no kernel pre-filter (with "drop" the kernel would discard them).
            unknown_source: junction::routing::UnknownSource::Reject,
            max_memory_mb: junction::limits::MEMORY_MB_DEFAULT,
            overload_feedback: true,
            retry_after_s: junction::limits::RETRY_AFTER_SECS,
            shard_ports: None,
        },
        routing: Default::default(),
        trunks: Vec::new(),
        routes: Vec::new(),
        cdr: None,
        log: Default::default(),
        flood: Default::default(),
        limits: Default::default(),
    }
}

fn options() -> Options {
    Options {
        // The routing table is irrelevant to the shell: an empty one, compiled from the
        // empty configuration.
        routing: Some(Arc::new(
            RoutingTable::compile(&config("127.0.0.1:0", 1)).expect("empty table compiles"),
        )),
        ..Options::default()
    }
}

fn start(listen: &str, cores: usize) -> Server {
    match shard::start_with(config(listen, cores), options()) {
        Ok(server) => server,
        Err(e) => panic!("server did not start: {e}"),
    }
}

fn options_request(call_id: &str) -> Vec<u8> {
    format!("OPTIONS sip:x SIP/2.0\r\nCall-ID: {call_id}\r\n\r\n").into_bytes()
}

/// One HTTP/1.1 exchange; returns (status, body).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => panic!("no end of head: {response:?}"),
    };
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

/// The whole-number samples of a Prometheus exposition: "name{labels}" -> value (the
/// fractional ones, ratios and process times, are not what these tests check).
fn parse_metrics(text: &str) -> BTreeMap<String, u64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        if value.fract() != 0.0 || value < 0.0 {
            continue;
        }
        let value = value as u64;
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate {series}"
        );
    }
    samples
}

struct Metrics {
    samples: BTreeMap<String, u64>,
    text: String,
}

impl Metrics {
    fn fetch(addr: SocketAddr) -> Metrics {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200, "{text}");
        Metrics {
            samples: parse_metrics(&text),
            text,
        }
    }

    fn shard(&self, name: &str, shard: usize) -> u64 {
        let series = format!("{name}{{shard=\"{shard}\"}}");
        match self.samples.get(&series) {
            Some(value) => *value,
            None => panic!("no {series} in\n{}", self.text),
        }
    }

    fn sum(&self, name: &str, shards: usize) -> u64 {
        (0..shards).map(|s| self.shard(name, s)).sum()
    }
}

/// Poll `/metrics` until `done` holds; fail with the last exposition after 30 s.
fn wait_for(addr: SocketAddr, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = Metrics::fetch(addr);
        if done(&metrics) {
            return metrics;
        }
        if Instant::now() > deadline {
            panic!(
                "gave up waiting for {what}; last metrics:\n{}",
                metrics.text
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_a_port_another_process_holds() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    match shard::start_with(config(&addr.to_string(), 2), options()) {
        Ok(server) => {
            let _ = server.shutdown();
            panic!("started on a port held by another socket");
        }
        Err(e) => assert_eq!(
            e,
            format!("udp:{addr} is already in use by another process")
        ),
    }
    // And it does start once the port is free (the refusal was about the holder).
    drop(holder);
    let _guard = one_server_at_a_time();
    let server = match shard::start_with(config(&addr.to_string(), 2), options()) {
        Ok(server) => server,
        Err(e) => panic!("did not start on the freed port: {e}"),
    };
    assert_eq!(server.local_addr(), addr);
    server.shutdown().unwrap();
}

#[test]
fn one_peer_many_call_ids_are_spread_over_shards_by_owner() {
    let _guard = one_server_at_a_time();
    let server = start("127.0.0.1:0", 2);
    let shards = server.shards();
    let metrics_addr = server.metrics_addr().unwrap();
    let target = server.local_addr();
    assert_ne!(target.port(), 0);

    let call_ids: Vec<String> = (0..3000)
        .map(|i| format!("{i:x}-a84b4c76e66710@client.test"))
        .collect();
    let mut expected = vec![0u64; shards];
    for id in &call_ids {
        expected[shard::owner(id.as_bytes(), shards)] += 1;
        assert_eq!(
            shard::owner(id.as_bytes(), shards),
            server.owner_of(id.as_bytes())
        );
    }
    assert!(
        expected.iter().all(|n| *n > 1000),
        "the ids do not exercise both shards: {expected:?}"
    );

    // ONE client socket: the kernel puts this 4-tuple on one shard's socket, so the other
    // shard only sees its calls through the hand-off. Send in chunks and let each chunk be
    // received before the next, so a small kernel receive buffer cannot drop any.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    for chunk in call_ids.chunks(100) {
        for id in chunk {
            client.send_to(&options_request(id), target).unwrap();
        }
        sent += chunk.len() as u64;
        wait_for(metrics_addr, "the chunk to be received", |m| {
            m.sum("junction_datagrams_received_total", shards) >= sent
        });
    }
    let total = call_ids.len() as u64;
    let m = wait_for(metrics_addr, "every datagram to be processed", |m| {
        m.sum("junction_datagrams_processed_total", shards) >= total
    });

    // Exact arithmetic.
    assert_eq!(
        m.sum("junction_datagrams_received_total", shards),
        total,
        "{}",
        m.text
    );
    let receiver = (0..shards)
        .find(|s| m.shard("junction_datagrams_received_total", *s) == total)
        .unwrap_or_else(|| panic!("one 4-tuple was spread over sockets:\n{}", m.text));
    for (shard, owned) in expected.iter().copied().enumerate() {
        assert_eq!(
            m.shard("junction_datagrams_processed_total", shard),
            owned,
            "shard {shard} processed a different set than it owns:\n{}",
            m.text
        );
        let handed_in = m.shard("junction_handoff_in_total", shard);
        if shard == receiver {
            assert_eq!(handed_in, 0);
            assert_eq!(m.shard("junction_handoff_out_total", shard), total - owned);
        } else {
            assert_eq!(handed_in, owned, "{}", m.text);
            assert_eq!(m.shard("junction_handoff_out_total", shard), 0);
        }
        assert_eq!(
            m.shard("junction_datagrams_without_call_id_total", shard),
            0
        );
    }
    assert_eq!(
        m.sum("junction_handoff_out_total", shards),
        m.sum("junction_handoff_in_total", shards)
    );
    let dropped: u64 = m
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with("junction_datagrams_dropped_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(dropped, 0, "{}", m.text);

    // A datagram without a Call-ID is processed where it arrived.
    client
        .send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", target)
        .unwrap();
    let m = wait_for(metrics_addr, "the datagram without Call-ID", |m| {
        m.sum("junction_datagrams_processed_total", shards) == total + 1
    });
    assert_eq!(
        m.shard("junction_datagrams_without_call_id_total", receiver),
        1
    );
    assert_eq!(
        m.shard("junction_datagrams_processed_total", receiver),
        expected[receiver] + 1
    );

    server.shutdown().unwrap();
}

#[test]
fn an_unpaced_burst_from_many_peers_is_fully_accounted_for() {
    // Several client sockets blast datagrams as fast as they can: the kernel may drop some
    // (socket buffers) and the shell may drop hand-offs when an owner falls behind, but every
    // datagram a shard received must end up processed by its owner or counted as dropped,
    // and every batch handed off must be taken in. A shard that stops taking hand-offs
    // (as glommio's parking with a runnable task once made it, see shard/run.rs) never
    // satisfies this.
    let _guard = one_server_at_a_time();
    let server = start("127.0.0.1:0", 2);
    let shards = server.shards();
    let metrics_addr = server.metrics_addr().unwrap();
    let target = server.local_addr();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                for i in 0..25_000u32 {
                    let _ =
                        socket.send_to(&options_request(&format!("{c}-{i}@burst.test")), target);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let m = wait_for(
        metrics_addr,
        "every received datagram to be accounted for",
        |m| {
            let dropped: u64 = m
                .samples
                .iter()
                .filter(|(k, _)| k.starts_with("junction_datagrams_dropped_total{"))
                .map(|(_, v)| v)
                .sum();
            m.sum("junction_handoff_out_total", shards)
                == m.sum("junction_handoff_in_total", shards)
                && m.sum("junction_datagrams_received_total", shards) > 0
                && m.sum("junction_datagrams_processed_total", shards) + dropped
                    == m.sum("junction_datagrams_received_total", shards)
        },
    );
    assert!(m.sum("junction_handoff_in_total", shards) > 0, "{}", m.text);
    server.shutdown().unwrap();
}

#[test]
fn http_endpoints() {
    let _guard = one_server_at_a_time();
    let server = start("127.0.0.1:0", 2);
    let addr = server.metrics_addr().unwrap();

    assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(
        get(addr, "/ready").0,
        200,
        "start returns only once every shard serves"
    );
    assert_eq!(get(addr, "/nothing-here").0, 404);
    assert_eq!(get(addr, "/").0, 404);

    let m = Metrics::fetch(addr);
    assert_eq!(m.samples.get("junction_shards"), Some(&2));
    for shard in 0..2 {
        let cpu = server.cpus()[shard];
        let up = format!("junction_shard_up{{shard=\"{shard}\",cpu=\"{cpu}\"}}");
        assert_eq!(m.samples.get(&up), Some(&1), "{}", m.text);
        // The core's counters are exported per shard too.
        m.shard("junction_core_requests_in_total", shard);
        m.shard("junction_calls_active", shard);
    }

    // A request head larger than HTTP_REQUEST_BYTES_MAX is refused.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() <= junction::limits::HTTP_REQUEST_BYTES_MAX {
        big.extend_from_slice(b"X-Padding: 0123456789abcdef0123456789abcdef\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let (status, _) = http(addr, &big);
    assert_eq!(status, 431);
    // The endpoint still serves afterwards.
    assert_eq!(get(addr, "/healthz").0, 200);

    server.shutdown().unwrap();
}

#[test]
fn ipv6_and_dual_stack_listening() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this host");
        return;
    }
    let _guard = one_server_at_a_time();
    let server = start("[::]:0", 2);
    let shards = server.shards();
    let port = server.local_addr().port();
    let metrics_addr = server.metrics_addr().unwrap();
    let v6 = UdpSocket::bind("[::1]:0").unwrap();
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20 {
        let id = format!("v6-{i}@example.net");
        v6.send_to(
            &options_request(&id),
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)),
        )
        .unwrap();
        let id = format!("v4-{i}@example.net");
        v4.send_to(
            &options_request(&id),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .unwrap();
    }
    let m = wait_for(metrics_addr, "40 datagrams", |m| {
        m.sum("junction_datagrams_processed_total", shards) >= 40
    });
    assert_eq!(
        m.sum("junction_datagrams_received_total", shards),
        40,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum("junction_datagrams_processed_total", shards),
        40,
        "{}",
        m.text
    );
    let bad = m
        .samples
        .iter()
        .filter(|(k, _)| k.contains("reason=\"bad_source\""))
        .map(|(_, v)| v)
        .sum::<u64>();
    assert_eq!(bad, 0);
    server.shutdown().unwrap();
}

#[test]
fn shutdown_releases_the_port_and_the_metrics_endpoint() {
    let _guard = one_server_at_a_time();
    let server = start("127.0.0.1:0", 2);
    let udp = server.local_addr();
    let http_addr = server.metrics_addr().unwrap();
    assert!(server
        .startup_line()
        .contains(&format!("listening on udp:{udp}, 2 shards on CPUs")));
    assert!(server
        .startup_line()
        .contains(&format!("metrics at http://{http_addr}/metrics")));
    assert_eq!(server.stopped_shard(), None);
    server.shutdown().unwrap();
    // Every shard socket is closed: a socket WITHOUT SO_REUSEPORT can take the port.
    UdpSocket::bind(udp).expect("the UDP port is still held after shutdown");
    assert!(
        TcpStream::connect(http_addr).is_err(),
        "metrics endpoint still accepting"
    );
}

#[test]
fn run_serves_until_sigterm_then_stops_cleanly() {
    let _guard = one_server_at_a_time();
    // `run` hands out no Server, so give it fixed ports: free ones from the kernel.
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = config(&udp.to_string(), 2);
    config.server.metrics = Some(http_addr);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        shard::run_with(config, options())
    });
    let tid = tid_rx.recv().unwrap();

    // Serving: /ready answers 200, and a datagram is processed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if runner.is_finished() {
            panic!("run ended before serving: {:?}", runner.join());
        }
        if TcpStream::connect(http_addr).is_ok() && get(http_addr, "/ready").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "run never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(&options_request("run-1@client.test"), udp)
        .unwrap();
    wait_for(http_addr, "the datagram", |m| {
        m.sum("junction_datagrams_processed_total", 2) == 1
    });

    // SIGTERM to the thread running `run` only (the test harness's threads do not block it,
    // so a process-wide signal would kill the test binary).
    // SAFETY: plain syscall; the thread is alive (it is blocked in sigtimedwait).
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runner.is_finished() {
        assert!(Instant::now() < deadline, "run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(runner.join().unwrap(), Ok(()));
    UdpSocket::bind(udp).expect("the UDP port is still held after run returned");
}

#[test]
fn a_shard_that_cannot_start_fails_start_cleanly() {
    let _guard = one_server_at_a_time();
    // Shard 1 gets a CPU that does not exist. Shard 0 is already running by then and waits
    // for its hand-off channels to shards 1 and 2: start must release it, stop it and
    // report the error, not hang. Run it on a thread so a hang fails the test.
    let mut config = config("127.0.0.1:0", 3);
    config.server.cpus = Some(vec![0, 100_000, 0]);
    let starter = std::thread::spawn(move || match shard::start_with(config, options()) {
        Ok(server) => Err(server.shutdown()),
        Err(e) => Ok(e),
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !starter.is_finished() {
        assert!(Instant::now() < deadline, "start hung after a shard failed");
        std::thread::sleep(Duration::from_millis(10));
    }
    match starter.join().unwrap() {
        Ok(error) => assert!(
            error.starts_with("shard 1: cannot start an executor on CPU 100000"),
            "{error}"
        ),
        Err(stopped) => panic!("started with an impossible CPU (shutdown: {stopped:?})"),
    }
}
