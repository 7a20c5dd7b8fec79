//! `junction route-test` and `junction check` run as a user runs them: on the reference
//! configuration and on configurations written for the test.

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

const REFERENCE: &str = "tuning/junction.toml";

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("junction-route-test-{}-{name}", std::process::id()));
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

/// `needles` appear in `haystack` in this order.
#[track_caller]
fn in_order(haystack: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match haystack.get(at..).and_then(|rest| rest.find(n)) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} not found (in order) in:\n{haystack}"),
        }
    }
}

#[test]
fn a_pbx_call_on_the_reference_configuration_step_by_step() {
    let (code, out, err) = junction(&[
        "route-test",
        REFERENCE,
        "--from",
        "10.1.0.7",
        "--called",
        "912125550199",
        "--calling",
        "2001",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    in_order(
        &out,
        &[
            "from 10.1.0.7:5060: trunk \"pbx-nyc\"",
            "peer entry 10.1.0.0/24",
            "called \"912125550199\" -> \"+12125550199\": inbound[2] '91(\\d{10})' -> '+1${1}'",
            "calling \"2001\" -> \"+12125552001\": inbound[4]",
            "usages of pbx-nyc: \"local\", \"national\", \"international\"",
            "usage \"local\":",
            "route \"nyc-local\"",
            "prefix \"+1212\" (5 bytes, ",
            "nyc-local.csv:4), priority 20",
            "gw-a: attempt 1",
            "gw-b: attempt 2",
            "usage \"national\":",
            "route \"us-canada\"",
            "pattern '\\+1[2-9]\\d{2}[2-9]\\d{6}', priority 30",
            "gw-b: skipped: already an attempt",
            "usage \"international\":",
            "route \"international\"",
            "attempts (2):",
            "1. gw-a (198.51.100.10:5060) via route \"nyc-local\"",
            "called \"+12125550199\" -> \"2125550199\": outbound_called[0]",
            "calling \"+12125552001\" -> \"2125552001\": outbound_calling[0]",
            "progress timeout 10 s",
            "2. gw-b (203.0.113.20:5060) via route \"nyc-local\"",
            "called \"+12125550199\": no outbound_called rules",
            "remove_plus: sends called \"12125550199\", calling \"12125552001\"",
            "progress timeout 6 s",
        ],
    );
}

#[test]
fn weights_turn_the_rotation_on_the_reference_configuration() {
    // nyc-local has weights [2, 1]: rotations 0, 1 start on gw-a, rotation 2 on gw-b.
    let first = |rotation: &str| {
        let (code, out, err) = junction(&[
            "route-test",
            REFERENCE,
            "--from",
            "pbx-nyc",
            "--called",
            "912125550199",
            "--rotation",
            rotation,
        ]);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .find(|l| l.trim_start().starts_with("1. "))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    assert!(first("0").starts_with("1. gw-a"));
    assert!(first("1").starts_with("1. gw-a"));
    assert!(first("2").starts_with("1. gw-b"));
    assert!(first("3").starts_with("1. gw-a"));
}

#[test]
fn calls_from_the_pstn_reach_the_pbx_extension_and_international_gets_the_caller_id() {
    let (code, out, _) = junction(&[
        "route-test",
        REFERENCE,
        "--from",
        "[2001:db8:b::20]:5060",
        "--called",
        "2125554567",
        "--calling",
        "13105551234",
    ]);
    assert_eq!(code, 0, "{out}");
    in_order(
        &out,
        &[
            "trunk \"gw-b\"",
            "peer entry [2001:db8:b::20]:5060",
            "called \"2125554567\" -> \"+12125554567\"",
            "calling \"13105551234\" -> \"+13105551234\"",
            "usage \"dids\":",
            "route \"pbx-dids\"",
            "prefix \"+1212555\" (8 bytes), priority 10",
            "1. pbx-nyc (10.1.0.10:5060) via route \"pbx-dids\"",
            "called \"+12125554567\" -> \"4567\"",
        ],
    );
    let (_, out, _) = junction(&[
        "route-test",
        REFERENCE,
        "--from",
        "pbx-nyc",
        "--called",
        "9011442071234567",
        "--calling",
        "2001",
    ]);
    in_order(
        &out,
        &[
            "usage \"local\":",
            "no route of this usage matches",
            "usage \"national\":",
            "no route of this usage matches",
            "1. gw-b (203.0.113.20:5060) via route \"international\"",
            "calling set to \"+12125550100\" by the route's caller_id",
            "remove_plus: sends called \"442071234567\", calling \"12125550100\"",
        ],
    );
}

#[test]
fn final_answers_say_why() {
    let answer = |args: &[&str]| {
        let mut all = vec!["route-test", REFERENCE];
        all.extend_from_slice(args);
        let (code, out, err) = junction(&all);
        assert_eq!(code, 0, "{out}\n{err}");
        out.lines()
            .find(|l| l.starts_with("result:"))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        answer(&["--from", "192.0.2.99", "--called", "911"]),
        "result: no answer: dropped (unknown source; server.unknown_source = \"drop\")"
    );
    assert!(
        answer(&["--from", "pbx-nyc", "--called", "12345"]).starts_with("result: 404 Not Found")
    );
    // The gateways only carry calls to the PBX's DIDs.
    assert!(
        answer(&["--from", "gw-a", "--called", "3105550100"]).starts_with("result: 404 Not Found")
    );
    assert!(answer(&[
        "--from",
        "pbx-nyc",
        "--called",
        "9911",
        "--down",
        "gw-a,gw-b"
    ])
    .starts_with("result: 503 Service Unavailable"));
    // A call from the PBX to its own DID is never sent back to it.
    let (_, out, _) = junction(&[
        "route-test",
        REFERENCE,
        "--from",
        "gw-a",
        "--called",
        "2125554567",
        "--down",
        "pbx-nyc",
    ]);
    in_order(
        &out,
        &[
            "pbx-nyc: skipped: down or full",
            "result: 503 Service Unavailable",
        ],
    );
}

#[test]
fn a_file_of_calls_gives_one_line_each() {
    let dir = TempDir::new("calls");
    let calls = dir.file(
        "calls.csv",
        "# from,called,calling\n\
         pbx-nyc,912125550199,2001\n\
         pbx-nyc,912125550199,2001\n\
         pbx-nyc,912125550199,2001\n\
         \n\
         198.51.100.10,2125554567,3105551234\n\
         192.0.2.99,911\n\
         pbx-nyc,12345\n",
    );
    let (code, out, err) = junction(&["route-test", REFERENCE, "--file", &calls]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            // Successive calls turn the rotation: weights [2, 1] start gw-a, gw-a, gw-b.
            "pbx-nyc,912125550199,2001 => pbx-nyc +12125550199 +12125552001 => gw-a(2125550199,2125552001) gw-b(12125550199,12125552001)",
            "pbx-nyc,912125550199,2001 => pbx-nyc +12125550199 +12125552001 => gw-a(2125550199,2125552001) gw-b(12125550199,12125552001)",
            "pbx-nyc,912125550199,2001 => pbx-nyc +12125550199 +12125552001 => gw-b(12125550199,12125552001) gw-a(2125550199,2125552001)",
            "198.51.100.10,2125554567,3105551234 => gw-a +12125554567 +13105551234 => pbx-nyc(4567,+13105551234)",
            "192.0.2.99,911 => dropped: unknown source",
            "pbx-nyc,12345 => pbx-nyc 12345 - => 404 no route",
        ]
    );
    // A bad line is reported with its line and makes the exit code 2; the others still run.
    let bad = dir.file("bad.csv", "pbx-nyc,911\njust-one-field\nnosuch,1\n");
    let (code, out, err) = junction(&["route-test", REFERENCE, "--file", &bad]);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        err.contains(&format!("{bad}:2: expected from,called[,calling]")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{bad}:3: --from \"nosuch\"")),
        "{err}"
    );
}

#[test]
fn bad_arguments_and_bad_configurations_exit_2() {
    let (code, _, err) = junction(&["route-test", REFERENCE, "--from", "pbx-nyc"]);
    assert_eq!(code, 2);
    assert!(err.contains("--called"), "{err}");
    let (code, _, err) = junction(&["route-test", REFERENCE, "--from", "nosuch", "--called", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("no trunk has this name"), "{err}");
    let (code, _, err) = junction(&[
        "route-test",
        REFERENCE,
        "--from",
        "pbx-nyc",
        "--called",
        "1",
        "--down",
        "gw-z",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--down gw-z"), "{err}");
    let dir = TempDir::new("badconfig");
    let broken = dir.file(
        "broken.toml",
        "[server]\nlisten = \"127.0.0.1\"\n[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n\
         inbound = [{ match = '(\\d+)', replace = '$1x' }]\n",
    );
    let (code, out, err) = junction(&["route-test", &broken, "--from", "gw", "--called", "1"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(&format!("{broken}:6: trunk[0].inbound[0].replace: "))
            && err.contains("${1}x"),
        "{err}"
    );
}

#[test]
fn a_config_without_usages_routes_every_call_over_every_route() {
    let dir = TempDir::new("simple");
    let config = dir.file(
        "simple.toml",
        "[server]\nlisten = \"127.0.0.1\"\n\
         [[trunk]]\nname = \"pbx\"\npeers = [\"127.0.0.2\"]\nsend_to = \"127.0.0.2\"\n\
         [[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3\"\n\
         [[route]]\nname = \"all\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n",
    );
    let (code, out, _) = junction(&[
        "route-test",
        &config,
        "--from",
        "127.0.0.2:5099",
        "--called",
        "42",
    ]);
    assert_eq!(code, 0, "{out}");
    in_order(
        &out,
        &[
            "trunk \"pbx\"",
            "called \"42\": no inbound rules",
            "(usages of pbx: none: it may use every route)",
            "every route:",
            "route \"all\" (route[0], line 10): prefix \"\" (0 bytes), priority 100",
            "gw: attempt 1",
            "1. gw (127.0.0.3:5060) via route \"all\"",
        ],
    );
}

// ---- junction check -------------------------------------------------------------------------

#[test]
fn check_warns_about_unreachable_routes_and_hairpins_but_passes() {
    let dir = TempDir::new("warnings");
    let config = dir.file(
        "warn.toml",
        "[server]\nlisten = \"127.0.0.1\"\n\
         [[trunk]]\nname = \"pbx\"\npeers = [\"127.0.0.2\"]\nsend_to = \"127.0.0.2\"\nusages = [\"out\"]\n\
         [[trunk]]\nname = \"gw\"\npeers = [\"127.0.0.3\"]\nsend_to = \"127.0.0.3\"\nusages = [\"out\", \"in\"]\n\
         [[route]]\nname = \"out\"\nprefixes = [\"+\"]\nusages = [\"out\"]\ntrunks = [\"gw\"]\n\
         [[route]]\nname = \"in\"\nprefixes = [\"\"]\nusages = [\"in\"]\ntrunks = [\"pbx\"]\n\
         [[route]]\nname = \"orphan\"\npattern = '9\\d+'\ntrunks = [\"gw\"]\n",
    );
    let (code, out, err) = junction(&["check", &config]);
    assert_eq!(code, 0, "{out}\n{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    // gw may use route "out", whose only trunk it is: a call from gw is never sent back to
    // it, so nothing can loop and there is no hairpin warning (issue 19; tests/config.rs
    // has the warning for a route with another trunk).
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(!out.contains("hairpin"), "{out}");
    assert!(
        warnings[0].starts_with(&format!(
            "warning: {config}:23: route[2]: route \"orphan\" is unreachable"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{config}: ok, 1 warning")), "{out}");
    assert!(out.contains("usages: in, out"), "{out}");
}

#[test]
fn check_reports_unknown_usages_and_bad_prefix_file_lines() {
    let dir = TempDir::new("errors");
    dir.file("us.csv", "prefix\n+1212\n+1212\n+1 646\n");
    let config = dir.file(
        "errors.toml",
        "[server]\nlisten = \"127.0.0.1\"\n\
         [[trunk]]\nname = \"pbx\"\npeers = [\"127.0.0.2\"]\nusages = [\"nationl\"]\n\
         [[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3\"\n\
         [[route]]\nname = \"us\"\nprefix_file = \"us.csv\"\nusages = [\"national\"]\ntrunks = [\"gw\"]\n",
    );
    let csv = dir.0.join("us.csv").display().to_string();
    let (code, out, err) = junction(&["check", &config]);
    assert_eq!(code, 1, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{config}:6: trunk[0].usages[0]: unknown usage \"nationl\""
        )) && l.contains("did you mean \"national\"")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{config}:13: route[0].usages[0]: unknown usage \"national\""
        ))),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{csv}:3: route[0].prefix_file: prefix \"+1212\" is listed twice (also line 2)"
        ))),
        "{out}"
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with(&format!("{csv}:4: route[0].prefix_file: ")) && l.contains("space")
        ),
        "{out}"
    );
    assert!(err.contains("4 problems"), "{err}");
}
