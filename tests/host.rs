//! `junction check` against this host's CPUs, and `junction doctor`, run as a user runs them.
//! The CPUs allowed are read here from /proc/self/status (Cpus_allowed_list), independently
//! of the sched_getaffinity call junction makes.

use std::path::PathBuf;
use std::process::Command;

fn junction(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running junction: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CPUs this process may run on, from "0-3,6".
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in /proc/self/status"));
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (usize, usize) = (
            first.parse().unwrap_or_else(|e| panic!("{part}: {e}")),
            last.parse().unwrap_or_else(|e| panic!("{part}: {e}")),
        );
        cpus.extend(first..=last);
    }
    cpus
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("junction-host-{}-{name}", std::process::id()));
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

const TRUNK: &str = "\n[[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.1:5070\"\n";

#[test]
fn more_shards_than_cpus_is_a_warning_naming_the_shared_cpus() {
    let allowed = allowed_cpus();
    let shards = allowed.len() + 1;
    let dir = TempDir::new("share");
    let file = dir.file(
        "j.toml",
        &format!("[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = {shards}\n{TRUNK}"),
    );
    let (code, out, err) = junction(&["check", &file]);
    assert_eq!(code, 0, "{out}{err}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("server.cores"))
        .unwrap_or_else(|| panic!("no warning:\n{out}"));
    assert!(
        warning.starts_with(&format!(
            "warning: {file}:3: server.cores: {shards} shards on {} CPU",
            allowed.len()
        )),
        "{warning}"
    );
    assert!(
        warning.contains(&format!(
            "shards 0, {} on CPU {}",
            allowed.len(),
            allowed[0]
        )),
        "{warning}"
    );
    assert!(out.contains(&format!("{file}: ok, 1 warning")), "{out}");
    // As many shards as CPUs: nothing to say.
    let fits = dir.file(
        "fits.toml",
        &format!(
            "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = {}\n{TRUNK}",
            allowed.len()
        ),
    );
    let (code, out, _) = junction(&["check", &fits]);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("{fits}: ok\n")), "{out}");
}

#[test]
fn a_cpu_this_process_may_not_use_is_an_error_at_its_line() {
    let allowed = allowed_cpus();
    let missing = allowed.iter().max().map_or(0, |m| m + 1);
    let dir = TempDir::new("cpus");
    let file = dir.file(
        "j.toml",
        &format!(
            "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 2\ncpus = [{}, {missing}]\n{TRUNK}",
            allowed[0]
        ),
    );
    let (code, out, err) = junction(&["check", &file]);
    assert_eq!(code, 1, "{out}{err}");
    let prefix =
        format!("{file}:4: server.cpus[1]: CPU {missing} is not one this process may run on");
    assert!(out.starts_with(&prefix), "{out}");
    assert!(err.contains("1 problem found"), "{err}");
    // The same file is fine for another machine.
    let (code, out, err) = junction(&["check", "--no-host", &file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("{file}: ok")), "{out}");
}

const CHECKS: &[&str] = &[
    "CPUs",
    "memlock limit (ulimit -l)",
    "open-file limit (ulimit -n)",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "io_uring",
    "transparent huge pages",
    "CPU governor",
];

/// The doctor's lines: (tag, check name), and whether every non-ok line is followed by a fix.
fn findings(out: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = out.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((tag, rest)) = line.split_once("  ") else {
            continue;
        };
        if !["ok", "WARN", "FAIL"].contains(&tag.trim()) {
            continue;
        }
        let name = rest
            .trim_start()
            .split(": ")
            .next()
            .unwrap_or_default()
            .to_string();
        if tag != "ok" {
            let fix = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                fix.trim_start().starts_with("fix: "),
                "{name} has no fix:\n{out}"
            );
        }
        found.push((tag.trim().to_string(), name));
    }
    found
}

#[test]
fn doctor_reports_every_check_and_its_exit_status_says_whether_anything_is_wrong() {
    let (code, out, err) = junction(&["doctor"]);
    let found = findings(&out);
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, CHECKS, "{out}{err}");
    let any = |tag: &str| found.iter().any(|(t, _)| t == tag);
    assert_eq!(code, if any("FAIL") { 1 } else { 0 }, "{out}");
    let (strict, _, _) = junction(&["doctor", "--strict"]);
    assert_eq!(
        strict,
        if any("FAIL") || any("WARN") { 1 } else { 0 },
        "{out}"
    );
    assert!(
        out.starts_with("junction doctor: this host for <embedded default>"),
        "{out}"
    );

    // check --host: the check, then the same report.
    let (code, out, err) = junction(&["check", "--host", "src/default.toml"]);
    assert!(out.contains("src/default.toml: ok"), "{out}{err}");
    let names: Vec<String> = findings(&out).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, CHECKS, "{out}");
    assert_eq!(code, if out.contains("\nFAIL  ") { 1 } else { 0 }, "{out}");
}

#[test]
fn doctor_fails_a_configuration_whose_cpus_are_not_here() {
    let missing = allowed_cpus().iter().max().map_or(0, |m| m + 1);
    let dir = TempDir::new("doctor");
    let file = dir.file(
        "j.toml",
        &format!(
            "[server]\nlisten = \"udp:127.0.0.1:5060\"\ncores = 1\ncpus = [{missing}]\n{TRUNK}"
        ),
    );
    let (code, out, err) = junction(&["doctor", "--config", &file]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "FAIL  CPUs: {file}:4: server.cpus[0]: CPU {missing}"
        )),
        "{out}"
    );
    let (code, _, err) = junction(&["doctor", "--config", "no/such.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such.toml"), "{err}");
}
