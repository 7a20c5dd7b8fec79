//! The configuration keys of the carrier routing controls (issue 20): what parses, what
//! `junction check` refuses (file:line: key: message), and what `junction route-test` shows.

use std::path::PathBuf;
use std::process::Command;

use junction::config::{self, ConfigError};
use junction::routing::{Decision, RoutingTable};

const SERVER: &str = "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:5060\"\n";

const TRUNKS: &str = r#"
[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:5060"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match config::parse(text, "t.toml") {
        Ok(c) => panic!("accepted:\n{text}\n{c:#?}"),
        Err(e) => e,
    }
}

/// An error at `line` with `key` whose message contains `words`.
#[track_caller]
fn has_error(text: &str, line: usize, key: &str, words: &str) {
    let errs = errors(text);
    let found = errs.iter().any(|e| {
        e.file == "t.toml" && e.line == Some(line) && e.key == key && e.message.contains(words)
    });
    assert!(
        found,
        "no error at line {line}, key {key}, containing {words:?}:\n{}",
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The configuration with `routes` appended after the server and the two trunks; the routes
/// begin on line 14.
fn with_routes(routes: &str) -> String {
    format!("{SERVER}{TRUNKS}{routes}")
}

const FIRST_ROUTE_LINE: usize = 14;

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

/// A configuration file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "junction-controls-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_layout_of_the_test_configuration_is_as_the_line_numbers_say() {
    let text = with_routes("[[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n");
    let line = text.lines().position(|l| l == "[[route]]").map(|i| i + 1);
    assert_eq!(line, Some(FIRST_ROUTE_LINE));
}

#[test]
fn reject_routes_parse_with_their_defaults() {
    let c = config::parse(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"reject\"\n\
             [[route]]\nname = \"b\"\nprefixes = [\"+1876\"]\naction = \"reject\"\ncode = 603\n\
             reason = \"Fraud destination\"\n\
             [[route]]\nname = \"c\"\nprefixes = [\"\"]\naction = \"route\"\ntrunks = [\"gw\"]\n",
        ),
        "t.toml",
    )
    .expect("parses");
    let a = c.routes[0].reject.as_ref().expect("a rejects");
    assert_eq!((a.code, a.reason.as_deref()), (403, None));
    let b = c.routes[1].reject.as_ref().expect("b rejects");
    assert_eq!(
        (b.code, b.reason.as_deref()),
        (603, Some("Fraud destination"))
    );
    assert!(c.routes[2].reject.is_none());
}

#[test]
fn check_refuses_bad_reject_routes() {
    let l = FIRST_ROUTE_LINE;
    // Trunks with a reject route.
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"reject\"\ntrunks = [\"gw\"]\n",
        ),
        l + 4,
        "route[0].trunks",
        "has no trunks",
    );
    // Weights and caller_id too.
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"reject\"\ncaller_id = \"+1\"\n",
        ),
        l + 4,
        "route[0].caller_id",
        "has no a caller_id",
    );
    // A code outside 400-699.
    for code in ["200", "399", "700", "\"403\""] {
        has_error(
            &with_routes(&format!(
                "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"reject\"\ncode = {code}\n"
            )),
            l + 4,
            "route[0].code",
            "400 to 699",
        );
    }
    // A code without action = "reject".
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\ntrunks = [\"gw\"]\ncode = 403\n",
        ),
        l + 4,
        "route[0].code",
        "only a route with action = \"reject\"",
    );
    // An unknown action.
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"drop\"\ntrunks = [\"gw\"]\n",
        ),
        l + 3,
        "route[0].action",
        "is not an action",
    );
    // A reason with a line break, or empty.
    for reason in ["\"a\\r\\nVia: x\"", "\"  \""] {
        has_error(
            &with_routes(&format!(
                "[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\naction = \"reject\"\nreason = {reason}\n"
            )),
            l + 4,
            "route[0].reason",
            "is not a reason phrase",
        );
    }
    // An ordinary route still needs its trunks.
    has_error(
        &with_routes("[[route]]\nname = \"a\"\nprefixes = [\"+1900\"]\n"),
        l,
        "route[0].trunks",
        "missing",
    );
}

#[test]
fn a_reject_route_of_higher_priority_wins_and_ends_the_walk() {
    let (_, table) = config::parse_compiled(
        &with_routes(
            "[[route]]\nname = \"all\"\nprefixes = [\"+1\"]\ntrunks = [\"gw\"]\n\
             [[route]]\nname = \"premium\"\nprefixes = [\"+1900\"]\naction = \"reject\"\npriority = 10\n\
             [[route]]\nname = \"late-reject\"\nprefixes = [\"+1\"]\naction = \"reject\"\npriority = 200\n\
             [[route]]\nname = \"after\"\nprefixes = [\"\"]\ntrunks = [\"pbx\"]\npriority = 300\n",
        ),
        "t.toml",
    )
    .expect("parses");
    let table: RoutingTable = table;
    let pbx = table.trunk_id("pbx").expect("pbx");
    let gw = table.trunk_id("gw").expect("gw");
    // +1900: the reject route comes first.
    match table.route(pbx, b"+19005551234") {
        Decision::Reject { route } => {
            assert_eq!(table.route_name(route), Some("premium"));
            assert_eq!(table.route_reject(route).map(|r| r.code), Some(403));
        }
        d => panic!("{d:?}"),
    }
    // +1212: the catch-all, and the walk stops at the late reject route (route "after"
    // is never offered).
    match table.route(gw, b"+12125551234") {
        Decision::Reject { route } => {
            assert_eq!(
                table.route_name(route),
                Some("late-reject"),
                "gw cannot hairpin"
            )
        }
        d => panic!("{d:?}"),
    }
    match table.route(pbx, b"+12125551234") {
        Decision::Route { attempts, .. } => assert_eq!(attempts.as_slice(), &[gw]),
        d => panic!("{d:?}"),
    }
    // Numbers the reject routes do not match go on to "after".
    match table.route(gw, b"+44207") {
        Decision::Route { attempts, .. } => assert_eq!(attempts.as_slice(), &[pbx]),
        d => panic!("{d:?}"),
    }
}

#[test]
fn route_test_shows_a_reject_route() {
    let f = TempFile::new(
        "reject",
        &with_routes(
            "[[route]]\nname = \"all\"\nprefixes = [\"+1\"]\ntrunks = [\"gw\"]\n\
             [[route]]\nname = \"premium\"\nprefixes = [\"+1900\"]\naction = \"reject\"\n\
             reason = \"Premium rate blocked\"\npriority = 10\n",
        ),
    );
    let (code, out, err) = junction(&[
        "route-test",
        f.path(),
        "--from",
        "pbx",
        "--called",
        "+19005551234",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("reject route: answers 403 Premium rate blocked, the walk stops here"),
        "{out}"
    );
    assert!(
        out.contains("result: 403 Premium rate blocked (reject route \"premium\")"),
        "{out}"
    );
    let (code, out, err) = junction(&[
        "route-test",
        f.path(),
        "--from",
        "pbx",
        "--called",
        "+12125551234",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("attempts (1):"), "{out}");
    let (code, out, err) = junction(&["check", f.path()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn ingress_limits_parse_and_check_refuses_bad_ones() {
    let trunk = |extra: &str| {
        format!(
            "{SERVER}[[trunk]]\nname = \"cust\"\npeers = [\"127.0.0.2\"]\n{extra}\n\
             [[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3:5060\"\n\
             [[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n"
        )
    };
    let c = config::parse(
        &trunk("max_calls_in = 20\nmax_cps_in = 5\nrefuse_in_code = 480"),
        "t.toml",
    )
    .expect("parses");
    assert_eq!(
        (
            c.trunks[0].max_calls_in,
            c.trunks[0].max_cps_in,
            c.trunks[0].refuse_in_code
        ),
        (Some(20), Some(5), 480)
    );
    let c = config::parse(&trunk(""), "t.toml").expect("parses");
    assert_eq!(
        (c.trunks[0].max_calls_in, c.trunks[0].refuse_in_code),
        (None, 503)
    );
    // Line 7 is the first line after peers.
    has_error(&trunk("max_cps_in = 0"), 7, "trunk[0].max_cps_in", "from 1");
    has_error(
        &trunk("max_calls_in = -3"),
        7,
        "trunk[0].max_calls_in",
        "from 1",
    );
    has_error(
        &trunk("refuse_in_code = 200"),
        7,
        "trunk[0].refuse_in_code",
        "400 to 699",
    );
    // A trunk without peers sends no calls to limit.
    has_error(
        &format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3:5060\"\nmax_cps_in = 5\n\
             [[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n"
        ),
        7,
        "trunk[0].max_cps_in",
        "has no peers",
    );
}

#[test]
fn down_after_failures_needs_probing() {
    let trunk = |extra: &str| {
        format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3:5060\"\n{extra}\n\
             [[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n"
        )
    };
    let c = config::parse(&trunk("down_after_failures = 3\nprobe = {}"), "t.toml").expect("ok");
    assert_eq!(c.trunks[0].down_after_failures, Some(3));
    let c = config::parse(&trunk(""), "t.toml").expect("ok");
    assert_eq!(c.trunks[0].down_after_failures, None);
    has_error(
        &trunk("down_after_failures = 3"),
        7,
        "trunk[0].down_after_failures",
        "has no probe",
    );
    has_error(
        &trunk("down_after_failures = 0\nprobe = {}"),
        7,
        "trunk[0].down_after_failures",
        "from 1 to 1000",
    );
}

#[test]
fn max_duration_s_on_trunks_and_routes() {
    let c = config::parse(
        &format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3:5060\"\nmax_duration_s = 7200\n\
             [[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\nmax_duration_s = 60\n"
        ),
        "t.toml",
    )
    .expect("parses");
    assert_eq!(
        c.trunks[0].max_duration,
        Some(std::time::Duration::from_secs(7200))
    );
    assert_eq!(
        c.routes[0].max_duration,
        Some(std::time::Duration::from_secs(60))
    );
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\nmax_duration_s = 0\n",
        ),
        FIRST_ROUTE_LINE + 4,
        "route[0].max_duration_s",
        "from 1 to 86400",
    );
    has_error(
        &with_routes(
            "[[route]]\nname = \"a\"\nprefixes = [\"\"]\naction = \"reject\"\nmax_duration_s = 10\n",
        ),
        FIRST_ROUTE_LINE + 4,
        "route[0].max_duration_s",
        "has no max_duration_s",
    );
    has_error(
        &format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"127.0.0.3:5060\"\nmax_duration_s = 90000\n"
        ),
        7,
        "trunk[0].max_duration_s",
        "from 1 to 86400",
    );
}

#[test]
fn time_of_day_keys_are_checked() {
    let route = |extra: &str| {
        with_routes(&format!(
            "[[route]]\nname = \"night\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n{extra}\n"
        ))
    };
    let c = config::parse(
        &route("when = [\"Mon-Fri 20:00-08:00\", \"Sat,Sun 00:00-24:00\"]\ntime_zone = \"Europe/Paris\""),
        "t.toml",
    )
    .expect("parses");
    assert_eq!(c.routes[0].when.len(), 2);
    assert_eq!(c.routes[0].time_zone.as_deref(), Some("Europe/Paris"));
    let l = FIRST_ROUTE_LINE + 4;
    has_error(
        &route("when = [\"Mon-Fri 08:00-18:00\"]\ntime_zone = \"Europe/Nowhere\""),
        l + 1,
        "route[0].time_zone",
        "is not a time zone",
    );
    has_error(
        &route("when = [\"Mon-Fry 08:00-18:00\"]"),
        l,
        "route[0].when[0]",
        "is not a day",
    );
    has_error(
        &route("when = [\"Mon-Fri 8-18\"]"),
        l,
        "route[0].when[0]",
        "not a time",
    );
    has_error(&route("when = []"), l, "route[0].when", "lists no windows");
    has_error(
        &route("time_zone = \"UTC\""),
        l,
        "route[0].time_zone",
        "has none",
    );
}

#[test]
fn route_test_routes_by_the_time_given() {
    let f = TempFile::new(
        "tod",
        &with_routes(
            "[[route]]\nname = \"night\"\nprefixes = [\"+1\"]\ntrunks = [\"pbx\"]\n\
             when = [\"Mon-Fri 20:00-08:00\"]\ntime_zone = \"Europe/Paris\"\npriority = 10\n\
             [[route]]\nname = \"day\"\nprefixes = [\"+1\"]\ntrunks = [\"gw\"]\npriority = 20\n",
        ),
    );
    let test = |at: &str| {
        let (code, out, err) = junction(&[
            "route-test",
            f.path(),
            "--from",
            "gw",
            "--called",
            "+12125551234",
            "--at",
            at,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    // 2026-12-24T20:00 is UTC: 21:00 in Paris, a Thursday night.
    let night = test("2026-12-24T20:00");
    assert!(night.contains("route \"night\""), "{night}");
    assert!(night.contains("1. pbx"), "{night}");
    // 10:00 in Paris: the night route is shown skipped; the day route's only trunk is the
    // caller's own (no hairpin), so nothing is left.
    let day = test("2026-12-23T10:00[Europe/Paris]");
    assert!(
        day.contains("matches, but skipped: outside its windows (Mon-Fri 20:00-08:00) at wed 2026-12-23 10:00 Europe/Paris"),
        "{day}"
    );
    let (code, _, err) = junction(&[
        "route-test",
        f.path(),
        "--from",
        "gw",
        "--called",
        "+1",
        "--at",
        "christmas",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--at \"christmas\": not a time"), "{err}");
}
