//! systemd notifications from the junction binary (`Type=notify` / `notify-reload`), with a
//! fake service manager: the test binds a unix datagram socket and starts junction with
//! `NOTIFY_SOCKET` pointing at it and `WATCHDOG_USEC` / `WATCHDOG_PID` set, as systemd does.
//!
//! junction must send `READY=1` (with a `STATUS=`) once it serves, `WATCHDOG=1` pings while
//! its shards run, `RELOADING=1` with `MONOTONIC_USEC=` then `READY=1` around a reload,
//! applied (SIGHUP) or refused (`POST /reload`, which answers 422 so a command can fail),
//! and `STOPPING=1` on SIGTERM.
//!
//! Logs: under the journal (`JOURNAL_STREAM` names stderr) every line starts with its
//! syslog priority (`<6>` info, `<4>` warn...); otherwise not.
//!
//! No assertion depends on timing: waits give up (failing, with what arrived) only after a
//! generous deadline.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT_MAX: Duration = Duration::from_secs(20);

/// The fake service manager: every notification junction sent, in order.
struct Manager {
    socket: UnixDatagram,
    received: Vec<String>,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Manager {
            socket,
            received: Vec::new(),
        }
    }

    /// Wait for a notification after the `from`-th one satisfying `want`; its index.
    fn wait_for(&mut self, from: usize, what: &str, want: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + WAIT_MAX;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = (from..self.received.len()).find(|i| want(&self.received[*i])) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} from junction; received {:?}",
                self.received
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.received
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

fn lines(message: &str) -> Vec<&str> {
    message.lines().collect()
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn config(listen: u16, metrics: u16, route_trunk: &str) -> String {
    format!(
        r#"
[server]
cores = 2
listen = "udp:127.0.0.1:{listen}"
metrics = "127.0.0.1:{metrics}"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"

[[route]]
name = "all"
prefixes = [""]
trunks = ["{route_trunk}"]
"#
    )
}

fn post_reload(metrics: u16) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", metrics)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"POST /reload HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
}

#[test]
fn readiness_watchdog_reload_and_stop_are_notified() {
    let dir = std::env::temp_dir().join(format!("junction-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut manager = Manager::bind(&dir.join("notify.sock"));
    let (listen, metrics) = (free_port(), free_tcp_port());
    let file = dir.join("junction.toml");
    std::fs::write(&file, config(listen, metrics, "gw")).expect("write config");

    // systemd sets WATCHDOG_PID to the service's pid: the shell sets it to its own, which
    // `exec` hands to junction.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_junction"))
        .arg(&file)
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start junction");

    let ready = manager.wait_for(0, "READY=1", |m| lines(m).contains(&"READY=1"));
    let status = manager.received[ready].clone();
    assert!(
        status.contains(&format!(
            "STATUS=serving udp:127.0.0.1:{listen} with 2 shards"
        )),
        "{status}"
    );
    // Pings every half WATCHDOG_USEC while the shards run: two of them.
    let first = manager.wait_for(ready, "WATCHDOG=1", |m| lines(m).contains(&"WATCHDOG=1"));
    let second = manager.wait_for(first + 1, "a second WATCHDOG=1", |m| {
        lines(m).contains(&"WATCHDOG=1")
    });

    // A refused reload: 422 for the command, RELOADING=1 then READY=1 with the refusal.
    std::fs::write(&file, config(listen, metrics, "nope")).expect("write config");
    let (code, body) = post_reload(metrics);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("reload refused"), "{body}");
    let reloading = manager.wait_for(second + 1, "RELOADING=1", |m| {
        lines(m).contains(&"RELOADING=1")
    });
    let message = manager.received[reloading].clone();
    assert!(
        lines(&message).iter().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|v| v > 0))),
        "RELOADING=1 needs MONOTONIC_USEC for Type=notify-reload: {message}"
    );
    let done = manager.wait_for(reloading + 1, "READY=1 after the reload", |m| {
        lines(m).contains(&"READY=1")
    });
    let refused = manager.received[done].clone();
    assert!(
        refused.contains("STATUS=reload refused") && refused.contains("previous configuration"),
        "{refused}"
    );

    // An applied reload (SIGHUP): RELOADING=1, then READY=1 with the report.
    std::fs::write(&file, config(listen, metrics, "gw")).expect("write config");
    signal(&child, libc::SIGHUP);
    let reloading = manager.wait_for(done + 1, "RELOADING=1 (SIGHUP)", |m| {
        lines(m).contains(&"RELOADING=1")
    });
    let done = manager.wait_for(reloading + 1, "READY=1 after SIGHUP", |m| {
        lines(m).contains(&"READY=1")
    });
    assert!(
        manager.received[done].contains("STATUS=reloaded "),
        "{}",
        manager.received[done]
    );

    signal(&child, libc::SIGTERM);
    manager.wait_for(done + 1, "STOPPING=1", |m| lines(m).contains(&"STOPPING=1"));
    let status = child.wait().expect("junction exits");
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start junction with stderr into `log` and, when `journal`, `JOURNAL_STREAM` naming that
/// file (as systemd names the journal's stream); wait until it serves.
fn start_logging(file: &Path, log: &Path, journal: bool) -> Child {
    let stderr = std::fs::File::create(log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_junction"));
    command
        .arg("--config")
        .arg(file)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null());
    if journal {
        use std::os::unix::fs::MetadataExt;
        let meta = stderr.metadata().expect("stat");
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        // Inherited from a parent whose stderr was the journal: names another file.
        command.env("JOURNAL_STREAM", "1:1");
    }
    let child = command.stderr(stderr).spawn().expect("start junction");
    let deadline = Instant::now() + WAIT_MAX;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("msg=\"junction started\"")
    {
        assert!(Instant::now() < deadline, "junction never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn log_lines_carry_syslog_priorities_under_the_journal_only() {
    let dir = std::env::temp_dir().join(format!("junction-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for journal in [true, false] {
        let (listen, metrics) = (free_port(), free_tcp_port());
        let file = dir.join("junction.toml");
        std::fs::write(&file, config(listen, metrics, "gw")).expect("write config");
        let log = dir.join(format!("stderr-{journal}.log"));
        let mut child = start_logging(&file, &log, journal);
        // A refused reload logs warnings.
        std::fs::write(&file, config(listen, metrics, "nope")).expect("write config");
        assert_eq!(post_reload(metrics).0, 422);
        signal(&child, libc::SIGTERM);
        assert!(child.wait().expect("exits").success());
        let text = std::fs::read_to_string(&log).expect("log");
        let started = text
            .lines()
            .find(|l| l.contains("msg=\"junction started\""))
            .expect("startup line");
        let refused = text
            .lines()
            .find(|l| l.contains("msg=\"reload refused\""))
            .unwrap_or_else(|| panic!("no refusal in\n{text}"));
        if journal {
            assert!(started.starts_with("<6>ts="), "{started}");
            assert!(refused.starts_with("<4>ts="), "{refused}");
            assert!(
                text.lines().all(|l| l.starts_with('<')),
                "every line has a priority:\n{text}"
            );
        } else {
            assert!(started.starts_with("ts="), "{started}");
            assert!(refused.starts_with("ts="), "{refused}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
