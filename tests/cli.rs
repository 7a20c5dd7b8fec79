//! The `junction` command line as a user runs it: `--help` and `--version` on every command,
//! did-you-mean, completions and the man page from the same definitions, `junction reload`
//! against a server that accepts or refuses and against a running junction, and the startup
//! error for a low memlock limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COMMANDS: &[&str] = &[
    "check",
    "route-test",
    "reload",
    "doctor",
    "trunks",
    "completions",
    "man",
];

fn junction(args: &[&str]) -> (i32, String, String) {
    output(
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    )
}

fn output(command: &mut Command) -> (i32, String, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running junction: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("junction-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn help_and_version_on_every_command() {
    let version = env!("CARGO_PKG_VERSION");
    for flag in ["--help", "-h"] {
        let (code, out, err) = junction(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        for command in COMMANDS {
            assert!(
                out.contains(command),
                "{flag} does not list {command}:\n{out}"
            );
        }
    }
    let (code, out, _) = junction(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("junction {version}").as_str())
    );
    for command in COMMANDS {
        for flag in ["--help", "-h"] {
            let (code, out, err) = junction(&[command, flag]);
            assert_eq!(code, 0, "{command} {flag}: {err}");
            assert!(
                out.contains(&format!("Usage: junction {command}")),
                "{command} {flag}:\n{out}"
            );
        }
        let (code, out, err) = junction(&["help", command]);
        assert_eq!(code, 0, "help {command}: {err}");
        assert!(out.contains(&format!("Usage: junction {command}")), "{out}");
        let (code, out, err) = junction(&[command, "--version"]);
        assert_eq!(code, 0, "{command} --version: {err}");
        assert!(out.trim().ends_with(&version), "{command} --version: {out}");
    }
}

#[test]
fn check_help_is_help_even_with_a_file_named_help() {
    let dir = TempDir::new("helpfile");
    // A file literally named --help next to the working directory must not be read.
    let (code, out, err) = output(
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["check", "--help"])
            .current_dir(&dir.0),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Usage: junction check"), "{out}");
    assert!(!out.contains("cannot read"), "{out}");
    // A file named like a flag is still reachable after `--`.
    let path = dir.file(
        "--help",
        "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 1\n",
    );
    let (code, out, err) = output(
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["check", "--", "--help"])
            .current_dir(&dir.0),
    );
    assert_eq!(code, 0, "{path}: {out}{err}");
    assert!(out.starts_with("--help: ok"), "{out}");
}

#[test]
fn mistyped_flags_and_commands_get_a_suggestion_and_exit_2() {
    let (code, _, err) = junction(&["check", "--no-hots", "tuning/junction.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--no-host'"), "{err}");
    let (code, _, err) = junction(&["--confg", "x.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--config'"), "{err}");
    let (code, _, err) = junction(&["chek", "x.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("'check'"), "{err}");
    let (code, _, err) = junction(&[
        "route-test",
        "tuning/junction.toml",
        "--from",
        "pbx-nyc",
        "--caled",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("'--called'"), "{err}");
}

#[test]
fn completions_and_man_pages_come_from_the_same_definitions() {
    let (code, bash, err) = junction(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(bash.contains("_junction()"), "{bash}");
    for word in [
        "route-test",
        "--no-host",
        "--called",
        "--metrics",
        "--strict",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let (code, text, err) = junction(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(text.contains("route-test"), "{shell}: {text}");
    }
    let (code, _, err) = junction(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("bash"), "{err}");

    let (code, man, err) = junction(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(man.contains(".TH junction 1"), "{man}");
    assert!(man.contains("route\\-test"), "{man}");
    let dir = TempDir::new("man");
    let out_dir = dir.0.join("man1");
    let (code, _, err) = junction(&["man", "--out-dir", &out_dir.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    for command in COMMANDS {
        let page = std::fs::read_to_string(out_dir.join(format!("junction-{command}.1")))
            .unwrap_or_else(|e| panic!("junction-{command}.1: {e}"));
        assert!(
            page.contains(&format!(".TH junction-{command} 1")),
            "{page}"
        );
    }
    let main = std::fs::read_to_string(out_dir.join("junction.1")).unwrap_or_default();
    assert_eq!(main, man);
}

// ---- junction reload ----------------------------------------------------------------------

/// A one-shot HTTP server: answers the first request with `status` and `body`, returns the
/// request it got.
fn answer_once(
    status: &'static str,
    body: &'static str,
) -> (SocketAddr, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
        // Keep the connection open (as a keep-alive server might) until the client closes
        // it: the client must stop at Content-Length, not wait for the end of the stream.
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let _ = stream.read(&mut buf);
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, handle)
}

#[test]
fn reload_exits_0_when_accepted_and_1_with_the_reason_when_refused() {
    let (addr, server) = answer_once("200 OK", "reloaded x.toml: 2 trunks, 1 route\n");
    let (code, out, err) = junction(&["reload", "--metrics", &addr.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "reloaded x.toml: 2 trunks, 1 route\n");
    let request = server.join().unwrap_or_default();
    assert!(
        request.starts_with("POST /reload HTTP/1.1\r\n"),
        "{request}"
    );

    for status in ["422 Unprocessable Entity", "500 Internal Server Error"] {
        let (addr, server) = answer_once(status, "x.toml:7: trunk[0].send_to: not an address\n");
        let (code, out, err) = junction(&["reload", "--metrics", &addr.to_string()]);
        assert_eq!(code, 1, "{status}: {out}{err}");
        assert!(err.contains("refused"), "{err}");
        assert!(err.contains(&status[..3]), "{err}");
        assert!(
            err.contains("x.toml:7: trunk[0].send_to: not an address"),
            "{err}"
        );
        let _ = server.join();
    }

    // Nothing listening: 2, and it says so.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, _, err) = junction(&["reload", "--metrics", &closed.to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot ask"), "{err}");
    // A configuration without a management address: 2, with what to do.
    let dir = TempDir::new("nometrics");
    let file = dir.file(
        "j.toml",
        "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 1\n",
    );
    let (code, _, err) = junction(&["reload", "--config", &file]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.metrics: not set"), "{err}");
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ready(metrics: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", metrics)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.starts_with("HTTP/1.1 200")
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config_text(listen: u16, metrics: u16, gateway: &str) -> String {
    format!(
        "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:{listen}\"\nmetrics = \"127.0.0.1:{metrics}\"\n\n\
         [[trunk]]\nname = \"gw\"\nsend_to = \"{gateway}\"\n\n\
         [[route]]\nname = \"all\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n"
    )
}

#[test]
fn reload_against_a_running_junction() {
    let dir = TempDir::new("reload");
    let (listen, metrics) = (free_udp_port(), free_tcp_port());
    let file = dir.file(
        "junction.toml",
        &config_text(listen, metrics, "127.0.0.1:5099"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["--config", &file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start junction: {e}"));
    let mut running = Running(child);
    let t0 = Instant::now();
    while !ready(metrics) {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("junction exited: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "junction never became ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // The address comes from the configuration file.
    let (code, out, err) = junction(&["reload", "--config", &file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.is_empty(), "no report: {err}");

    // The file broken after the start: the server refuses, and so does the command, saying
    // why. (--metrics, since the command would otherwise stop at the broken file itself.)
    std::fs::write(&file, config_text(listen, metrics, "gateway.invalid"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = junction(&["reload", "--metrics", &format!("127.0.0.1:{metrics}")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("trunk[0].send_to"), "{err}");
    let (code, _, err) = junction(&["reload", "--config", &file]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{file}:")), "{err}");
    assert!(err.contains("trunk[0].send_to"), "{err}");
}

// ---- startup errors that name a limit -------------------------------------------------------

fn with_memlock(command: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe; only the child's (soft and hard) limit changes.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_low_memlock_limit_is_named_with_the_fix() {
    let dir = TempDir::new("memlock");
    let file = dir.file(
        "junction.toml",
        &config_text(free_udp_port(), free_tcp_port(), "127.0.0.1:5099"),
    );
    let mut run = Command::new(env!("CARGO_BIN_EXE_junction"));
    run.args(["--config", &file]);
    let (code, _, err) = output(with_memlock(&mut run, 64 << 10));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("RLIMIT_MEMLOCK"), "{err}");
    assert!(err.contains("64 KiB"), "{err}");
    assert!(
        err.contains("ulimit -l") && err.contains("LimitMEMLOCK="),
        "{err}"
    );

    let mut doctor = Command::new(env!("CARGO_BIN_EXE_junction"));
    doctor.args(["doctor", "--config", &file]);
    let (code, out, err) = output(with_memlock(&mut doctor, 64 << 10));
    assert_eq!(code, 1, "{out}{err}");
    let line = out
        .lines()
        .position(|l| l.starts_with("FAIL  memlock limit"))
        .unwrap_or_else(|| panic!("no memlock failure:\n{out}"));
    let fix = out.lines().nth(line + 1).unwrap_or_default();
    assert!(
        fix.contains("fix:") && fix.contains("LimitMEMLOCK=64M"),
        "{out}"
    );
}
