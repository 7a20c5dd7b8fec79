//! Configuration loading: what parses, and for what does not, that every problem is reported
//! with the file, the line and the dotted key a user needs to fix it. Also `junction check`
//! run as a user runs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use junction::config::{self, ConfigError, RuleNumbers, TrunkConfig};
use junction::routing::UnknownSource;

const SERVER: &str = "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:5060\"\n";

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("test address {s:?}: {e}"))
}

fn errors(text: &str) -> Vec<ConfigError> {
    match config::parse(text, "t.toml") {
        Ok(c) => panic!("accepted:\n{text}\n{c:#?}"),
        Err(e) => e,
    }
}

/// Exactly one error, at `line` with `key`, whose message contains `words`.
#[track_caller]
fn only_error(text: &str, line: usize, key: &str, words: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    has_error(&errs, line, key, words);
}

#[track_caller]
fn has_error(errs: &[ConfigError], line: usize, key: &str, words: &str) {
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

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_embedded_default_parses_and_says_what_the_docs_say() {
    let c = config::embedded_default();
    assert_eq!(c.source, config::EMBEDDED_SOURCE);
    assert_eq!(c.server.listen, addr("127.0.0.1:5060"));
    assert_eq!(c.server.advertise, addr("127.0.0.1:5060"));
    assert_eq!(c.server.metrics, Some(addr("127.0.0.1:9090")));
    let gateway = c.trunks.iter().find(|t| t.name == "gateway");
    assert_eq!(
        gateway.and_then(|t| t.send_to),
        Some(addr("127.0.0.1:5070"))
    );
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].prefixes, vec![String::new()]);
    assert_eq!(c.routes[0].trunks, vec!["gateway".to_string()]);
}

#[test]
fn the_reference_configuration_parses() {
    let path = manifest_path("tuning/junction.toml");
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.source, path.display().to_string());
    assert_eq!(c.server.cores, 2);
    assert_eq!(c.server.cpus, Some(vec![0, 1]));
    assert_eq!(c.server.listen, addr("0.0.0.0:5060"));
    assert_eq!(c.server.advertise, addr("192.0.2.10:5060"));
    let names: Vec<&str> = c.trunks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["pbx-nyc", "gw-a", "gw-b"]);
    // send_to without a port gets 5060.
    assert_eq!(c.trunks[2].send_to, Some(addr("203.0.113.20:5060")));
    assert_eq!(c.routes.len(), 5);
    // A route without priority gets the default.
    assert_eq!(c.routes[4].priority, config::PRIORITY_DEFAULT);
    assert_eq!(c.routes[0].priority, 0);
    // Lines point at the [[trunk]] / [[route]] headers.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let line_of = |n: usize| text.lines().nth(n - 1).unwrap_or("");
    assert_eq!(line_of(c.trunks[1].line), "[[trunk]]");
    assert_eq!(line_of(c.routes[3].line), "[[route]]");
    // The model's keys.
    assert_eq!(c.server.unknown_source, UnknownSource::Drop);
    assert!(!c.routing.failover_after_provisional);
    let usages = |t: &TrunkConfig| t.usages.clone().unwrap_or_default();
    assert_eq!(usages(&c.trunks[0]), ["local", "national", "international"]);
    assert_eq!(usages(&c.trunks[1]), ["dids"]);
    assert_eq!(c.trunks[0].inbound.len(), 5);
    assert_eq!(c.trunks[0].inbound[4].numbers, RuleNumbers::Calling);
    assert_eq!(c.trunks[1].inbound[0].numbers, RuleNumbers::Both);
    assert_eq!(c.trunks[1].response_codes.len(), 2);
    assert_eq!(c.trunks[1].response_codes[0].cause, Some(34));
    assert_eq!(c.trunks[1].probe, Some(config::PROBE_DEFAULT));
    assert!(c.trunks[2].remove_plus && !c.trunks[2].forward_pai);
    assert_eq!(c.trunks[2].progress_timeout, Duration::from_secs(6));
    assert_eq!(
        c.trunks[2]
            .probe
            .map(|p| (p.interval.as_secs(), p.down_after, p.up_after)),
        Some((30, 2, 2))
    );
    let file = c.routes[2].prefix_file.as_ref().map(|f| f.len());
    assert_eq!(file, Some(7));
    assert_eq!(c.routes[2].weights, [2, 1]);
    assert_eq!(c.routes[4].caller_id.as_deref(), Some("+12125550100"));
    // And no warnings: every route is reachable, none can hairpin.
    assert_eq!(config::warnings(&c), vec![]);
}

#[test]
fn defaults_apply() {
    let c = config::parse(
        "[server]\nlisten = \"127.0.0.1\"\n[[trunk]]\nname = \"a\"\nsend_to = \"127.0.0.2\"\n\
         [[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"a\"]\n",
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.server.cores, config::online_cpus());
    assert_eq!(c.server.cpus, None);
    assert_eq!(c.server.listen, addr("127.0.0.1:5060"));
    assert_eq!(c.server.advertise, c.server.listen);
    assert_eq!(c.server.metrics, None);
    assert!(c.trunks[0].peers.is_empty());
    assert_eq!(c.trunks[0].send_to, Some(addr("127.0.0.2:5060")));
    assert_eq!(c.routes[0].priority, 100);
    assert_eq!(c.server.unknown_source, UnknownSource::Drop);
    assert!(!c.routing.failover_after_provisional);
    let t = &c.trunks[0];
    assert_eq!(t.usages, None);
    assert!(t.inbound.is_empty() && t.outbound_called.is_empty());
    assert!(t.outbound_calling.is_empty() && t.response_codes.is_empty());
    assert!(!t.remove_plus && t.forward_pai && t.overload_control);
    assert_eq!(t.progress_timeout, Duration::from_secs(10));
    assert_eq!(
        (t.max_calls, t.max_cps, t.max_early, t.probe),
        (None, None, None, None)
    );
    let r = &c.routes[0];
    assert!(r.usages.is_empty() && r.weights.is_empty());
    assert!(r.caller_id.is_none() && r.prefix_file.is_none());
}

#[test]
fn listen_forms() {
    let ok = |listen: &str| {
        config::parse(&format!("[server]\nlisten = {listen}\n"), "t.toml")
            .map(|c| c.server.listen)
            .map_err(|e| format!("{e:?}"))
    };
    assert_eq!(ok("\"udp:127.0.0.1:5062\""), Ok(addr("127.0.0.1:5062")));
    assert_eq!(ok("\"127.0.0.1:5062\""), Ok(addr("127.0.0.1:5062")));
    assert_eq!(ok("[\"udp:[::1]:5062\"]"), Ok(addr("[::1]:5062")));
    only_error(
        "[server]\nlisten = \"tcp:127.0.0.1:5060\"\n",
        2,
        "server.listen",
        "not supported yet",
    );
    only_error(
        "[server]\nlisten = \"tls:127.0.0.1:5061\"\n",
        2,
        "server.listen",
        "not supported yet",
    );
    only_error(
        "[server]\nlisten = [\n  \"udp:127.0.0.1:5060\",\n  \"udp:127.0.0.1:5062\",\n]\n",
        4,
        "server.listen[1]",
        "one address",
    );
    only_error("[server]\nlisten = []\n", 2, "server.listen", "empty");
    only_error(
        "[server]\nlisten = \"sip.example.net:5060\"\n",
        2,
        "server.listen",
        "host name",
    );
}

#[test]
fn advertise_is_required_when_listening_on_every_address() {
    only_error(
        "[server]\nlisten = \"udp:0.0.0.0:5060\"\n",
        2,
        "server.advertise",
        "required",
    );
    only_error(
        "[server]\nlisten = \"udp:[::]:5060\"\n",
        2,
        "server.advertise",
        "required",
    );
    let c = config::parse(
        "[server]\nlisten = \"udp:0.0.0.0:5062\"\nadvertise = \"192.0.2.1\"\n",
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    // Without a port, the port we listen on.
    assert_eq!(c.server.advertise, addr("192.0.2.1:5062"));
    only_error(
        "[server]\nlisten = \"udp:0.0.0.0:5060\"\nadvertise = \"0.0.0.0:5060\"\n",
        3,
        "server.advertise",
        "any address",
    );
}

#[test]
fn cores_and_cpus() {
    only_error(
        "[server]\ncores = 0\nlisten = \"127.0.0.1:5060\"\n",
        2,
        "server.cores",
        "at least 1",
    );
    only_error(
        "[server]\ncores = -3\nlisten = \"127.0.0.1:5060\"\n",
        2,
        "server.cores",
        "at least 1",
    );
    only_error(
        "[server]\ncores = \"two\"\nlisten = \"127.0.0.1:5060\"\n",
        2,
        "server.cores",
        "\"auto\"",
    );
    only_error(
        "[server]\ncores = 2\ncpus = [0, 1, 2]\nlisten = \"127.0.0.1:5060\"\n",
        3,
        "server.cpus",
        "lists 3 CPUs but cores = 2",
    );
    only_error(
        "[server]\ncores = 2\ncpus = [3, 3]\nlisten = \"127.0.0.1:5060\"\n",
        3,
        "server.cpus[1]",
        "twice",
    );
    only_error(
        "[server]\ncores = 1\ncpus = [-1]\nlisten = \"127.0.0.1:5060\"\n",
        3,
        "server.cpus[0]",
        "CPU number",
    );
    let auto = config::parse(
        "[server]\ncores = \"auto\"\nlisten = \"127.0.0.1\"\n",
        "t.toml",
    )
    .map(|c| c.server.cores);
    assert_eq!(auto, Ok(config::online_cpus()));
    let pinned = config::parse(
        "[server]\ncores = 2\ncpus = [1, 0]\nlisten = \"127.0.0.1\"\n",
        "t.toml",
    )
    .map(|c| c.server.cpus);
    assert_eq!(pinned, Ok(Some(vec![1, 0])));
}

#[test]
fn duplicate_names() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"gw\"
send_to = \"10.0.0.1\"
[[trunk]]
name = \"gw\"
send_to = \"10.0.0.2\"
[[route]]
name = \"r\"
prefixes = [\"1\"]
trunks = [\"gw\"]
[[route]]
name = \"r\"
prefixes = [\"2\"]
trunks = [\"gw\"]
"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    has_error(
        &errs,
        8,
        "trunk[1].name",
        "already used by trunk[0], line 4",
    );
    has_error(
        &errs,
        15,
        "route[1].name",
        "already used by route[0], line 10",
    );
}

#[test]
fn bad_names() {
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"gw a\"\nsend_to = \"10.0.0.1\"\n"),
        5,
        "trunk[0].name",
        "not a valid name",
    );
    only_error(
        &format!("{SERVER}[[trunk]]\nsend_to = \"10.0.0.1\"\n"),
        4,
        "trunk[0].name",
        "missing",
    );
}

#[test]
fn unknown_trunk_in_a_route() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"gw-a\"
send_to = \"10.0.0.1\"
[[route]]
name = \"r\"
prefixes = [\"+1\"]
trunks = [
  \"gw-a\",
  \"gw-b\",
]
"
    );
    only_error(&text, 12, "route[0].trunks[1]", "no trunk named \"gw-b\"");
    let typo = text.replace("\"gw-b\",", "\"gw_a\",");
    only_error(&typo, 12, "route[0].trunks[1]", "did you mean \"gw-a\"");
}

#[test]
fn a_route_needs_exactly_one_of_pattern_and_prefixes() {
    let trunk = "[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n";
    only_error(
        &format!(
            "{SERVER}{trunk}[[route]]\nname = \"r\"\npattern = '^1$'\nprefixes = [\"1\"]\ntrunks = [\"gw\"]\n"
        ),
        10,
        "route[0].prefixes",
        "one of pattern, prefixes and prefix_file (this one already has pattern on line 9)",
    );
    only_error(
        &format!("{SERVER}{trunk}[[route]]\nname = \"r\"\ntrunks = [\"gw\"]\n"),
        7,
        "route[0]",
        "pattern",
    );
    only_error(
        &format!("{SERVER}{trunk}[[route]]\nname = \"r\"\nprefixes = []\ntrunks = [\"gw\"]\n"),
        9,
        "route[0].prefixes",
        "no prefixes",
    );
}

#[test]
fn bad_patterns_say_what_regex_says() {
    let trunk = "[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n";
    let route = |pattern: &str| {
        format!(
            "{SERVER}{trunk}[[route]]\nname = \"r\"\npattern = '{pattern}'\ntrunks = [\"gw\"]\n"
        )
    };
    only_error(
        &route(r"^(?!1900)\d+$"),
        9,
        "route[0].pattern",
        "look-around",
    );
    only_error(
        &route(r"^(\d)\1$"),
        9,
        "route[0].pattern",
        "back-references",
    );
    only_error(&route(r"^(\d+$"), 9, "route[0].pattern", "unclosed group");
    // A pattern that is only valid once wrapped is still refused.
    only_error(
        &route(r"1)|(2"),
        9,
        "route[0].pattern",
        "invalid regular expression",
    );
}

#[test]
fn bad_addresses() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"a\"
peers = [\"10.1.0.5/24\", \"10.0.0.0/33\", \"pbx.example.net\", \"0.0.0.0/0\", \"10.0.0.1:0\"]
send_to = \"gw.example.net:5060\"
[[trunk]]
name = \"b\"
peers = [\"10.2.0.1\"]
send_to = \"10.2.0.1:99999\"
"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 7, "{errs:#?}");
    has_error(&errs, 6, "trunk[0].peers[0]", "did you mean 10.1.0.0/24");
    has_error(&errs, 6, "trunk[0].peers[1]", "prefix length");
    has_error(&errs, 6, "trunk[0].peers[2]", "host name");
    has_error(&errs, 6, "trunk[0].peers[3]", "every address");
    has_error(&errs, 6, "trunk[0].peers[4]", "port 0");
    has_error(&errs, 7, "trunk[0].send_to", "host name");
    has_error(&errs, 11, "trunk[1].send_to", "not an address");
}

#[test]
fn the_same_peer_in_two_trunks_is_ambiguous() {
    // Written differently, the same entries: 10.0.0.1/32 is 10.0.0.1, ::ffff:10.9.0.0/112 is
    // 10.9.0.0/16.
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"a\"
peers = [\"10.0.0.1\", \"10.9.0.0/16\", \"[::1]:5070\"]
send_to = \"10.0.0.1\"
[[trunk]]
name = \"b\"
peers = [
  \"10.0.0.1/32\",
  \"::ffff:10.9.0.0/112\",
  \"::1\",
  \"[::1]:5070\",
]
send_to = \"10.0.0.2\"
"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    has_error(
        &errs,
        11,
        "trunk[1].peers[0]",
        "10.0.0.1 is also a peer of trunk[0] (\"a\") (trunk[0].peers[0] on line 6)",
    );
    has_error(
        &errs,
        12,
        "trunk[1].peers[1]",
        "10.9.0.0/16 is also a peer of trunk[0]",
    );
    has_error(
        &errs,
        14,
        "trunk[1].peers[3]",
        "[::1]:5070 is also a peer of trunk[0]",
    );
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"a\"\npeers = [\"10.0.0.1\", \"10.0.0.1\"]\n"),
        6,
        "trunk[0].peers[1]",
        "listed twice",
    );
}

#[test]
fn route_trunks_need_send_to() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"pbx\"
peers = [\"10.0.0.1\"]
[[route]]
name = \"to-pbx\"
prefixes = [\"+1212555\"]
trunks = [\"pbx\"]
"
    );
    only_error(&text, 10, "route[0].trunks[0]", "has no send_to");
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"x\"\n"),
        4,
        "trunk[0]",
        "neither peers nor send_to",
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let text = format!(
        "{SERVER}metrix = \"127.0.0.1:9090\"\n\
[[trunk]]
name = \"gw\"
sendto = \"10.0.0.1\"
transport = \"tls\"
[[route]]
name = \"r\"
prefixes = [\"\"]
trunks = [\"gw\"]
prefix_fille = \"us.csv\"
[extra]
x = 1
"
    );
    let errs = errors(&text);
    has_error(&errs, 4, "server.metrix", "did you mean `metrics`");
    has_error(&errs, 7, "trunk[0].sendto", "did you mean `send_to`");
    has_error(
        &errs,
        8,
        "trunk[0].transport",
        "not supported by this version",
    );
    has_error(
        &errs,
        13,
        "route[0].prefix_fille",
        "did you mean `prefix_file`",
    );
    has_error(&errs, 14, "extra", "unknown key `extra`");
    // And without its (misspelt) send_to the trunk is useless, which is said too.
    has_error(&errs, 5, "trunk[0]", "neither peers nor send_to");
    has_error(&errs, 12, "route[0].trunks[0]", "has no send_to");
    assert_eq!(errs.len(), 7, "{errs:#?}");
}

#[test]
fn keys_in_dotted_and_inline_tables_have_lines_too() {
    only_error(
        "server.listen = \"127.0.0.1:5060\"\nserver.cors = 2\n",
        2,
        "server.cors",
        "did you mean `cores`",
    );
    only_error(
        "server = { listen = \"127.0.0.1:5060\", cores = 0 }\n",
        1,
        "server.cores",
        "at least 1",
    );
    // Keys before the first [header] belong to the root.
    only_error(
        &format!("trunk = [\n  {{ name = \"a\", peers = [\"10.0.0.1\"] }},\n  {{ name = \"b\", peers = [\"10.0.0.300\"] }},\n]\n{SERVER}"),
        3,
        "trunk[1].peers[0]",
        "not an address",
    );
    only_error(
        &format!("{SERVER}[trunk]\nname = \"a\"\n"),
        4,
        "trunk",
        "[[trunk]]",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"a\"\npeers = \"10.0.0.1\"\nsend_to = \"10.0.0.1\"\n"),
        6,
        "trunk[0].peers",
        "found the text \"10.0.0.1\"",
    );
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"a\"\nsend_to = 5060\n"),
        6,
        "trunk[0].send_to",
        "found the number 5060",
    );
    only_error(
        &format!(
            "{SERVER}[[trunk]]\nname = \"a\"\nsend_to = \"10.0.0.1\"\n[[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"a\"]\npriority = \"high\"\n"
        ),
        11,
        "route[0].priority",
        "whole number",
    );
}

#[test]
fn several_errors_are_reported_at_once_in_file_order() {
    let text = "\
[server]
cores = 0
listen = \"tcp:127.0.0.1:5060\"

[[trunk]]
name = \"pbx\"
peers = [\"10.1.0.5/24\"]

[[route]]
name = \"r\"
pattern = '(?<=1)2'
trunks = [\"pbx\", \"nowhere\"]
";
    let errs = errors(text);
    let got: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(2), "server.cores"),
            (Some(3), "server.listen"),
            (Some(7), "trunk[0].peers[0]"),
            (Some(11), "route[0].pattern"),
            (Some(12), "route[0].trunks[0]"),
            (Some(12), "route[0].trunks[1]"),
        ],
        "{errs:#?}"
    );
}

#[test]
fn toml_syntax_errors_have_a_line() {
    only_error(
        "[server]\nlisten = \"127.0.0.1:5060\"\ncores = \n",
        3,
        "(syntax)",
        "not valid TOML",
    );
    only_error(
        "[server]\nlisten = \"127.0.0.1:5060\"\nlisten = \"127.0.0.1:5061\"\n",
        3,
        "(syntax)",
        "duplicate key",
    );
}

#[test]
fn missing_server_or_listen() {
    let errs = errors("");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "server");
    only_error("[server]\ncores = 1\n", 1, "server.listen", "missing");
}

#[test]
fn load_names_the_file_it_cannot_read() {
    let path = std::env::temp_dir().join("junction-test-no-such-file.toml");
    let errs = match config::load(&path) {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => e,
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].file, path.display().to_string());
    assert!(errs[0].message.contains("cannot read"), "{errs:?}");
    assert!(errs[0].to_string().starts_with(&path.display().to_string()));
}

#[test]
fn errors_display_as_file_line_key_message() {
    let e = ConfigError {
        file: "a.toml".into(),
        line: Some(3),
        key: "trunk[1].send_to".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "a.toml:3: trunk[1].send_to: bad");
}

// ---- junction check, run as a user runs it ----------------------------------------------

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

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!(
            "junction-config-test-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn check_accepts_the_reference_configuration() {
    let (code, out, err) = junction(&["check", "tuning/junction.toml"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.starts_with("tuning/junction.toml: ok"), "{out}");
    assert!(out.contains("trunks: 3"), "{out}");
    assert!(out.contains("routes: 5"), "{out}");
}

#[test]
fn check_prints_every_problem_as_file_line_key() {
    let broken = TempFile::new(
        "broken.toml",
        "[server]\nlisten = \"udp:127.0.0.1:5060\"\n\n[[trunk]]\nname = \"gw\"\nsend_to = \"gw.example.net\"\n\n[[route]]\nname = \"r\"\nprefixes = [\"+1\"]\ntrunks = [\"gw\", \"missing\"]\n",
    );
    let file = broken.0.display().to_string();
    let (code, out, err) = junction(&["check", &file]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    // The route's use of "gw" is not reported again: its send_to is wrong, not missing.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("{file}:6: trunk[0].send_to: ")),
        "{out}"
    );
    assert!(lines[0].contains("host name"), "{out}");
    assert!(
        lines[1].starts_with(&format!("{file}:11: route[0].trunks[1]: ")),
        "{out}"
    );
    assert!(lines[1].contains("\"missing\""), "{out}");
    assert!(err.contains("2 problems"), "{err}");
}

#[test]
fn running_with_a_broken_config_exits_2_without_starting() {
    let broken = TempFile::new("run.toml", "[server]\ncores = 0\nlisten = \"127.0.0.1\"\n");
    let file = broken.0.display().to_string();
    let (code, _, err) = junction(&["--config", &file]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{file}:2: server.cores: ")), "{err}");
}

#[test]
fn command_line_usage() {
    let (code, out, _) = junction(&["--version"]);
    assert_eq!((code, out.trim()), (0, "junction 0.1.0"));
    let (code, out, _) = junction(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("junction check FILE"), "{out}");
    let (code, _, err) = junction(&["check"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage"), "{err}");
    let (code, _, err) = junction(&["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unexpected"), "{err}");
    let (code, out, _) = junction(&["check", "no/such/file.toml"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("no/such/file.toml: (file): cannot read"),
        "{out}"
    );
}

// ---- the inter-trunk model's keys ----------------------------------------------------------

/// A trunk "gw" with a send_to, then `extra` lines (the trunk's keys start on line 7).
fn gw(extra: &str) -> String {
    format!("{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n{extra}")
}

#[test]
fn rules_with_ambiguous_groups_are_refused_with_the_fix() {
    only_error(
        &gw("inbound = [\n  { match = '(\\d{4})', replace = '+1212555$1a' },\n]\n"),
        8,
        "trunk[0].inbound[0].replace",
        "write ${1}a",
    );
    only_error(
        &gw("outbound_called = [{ match = '\\+1(\\d+)', replace = '$2' }]\n"),
        7,
        "trunk[0].outbound_called[0].replace",
        "no group 2",
    );
    only_error(
        &gw("outbound_calling = [{ match = '(?P<n>\\d+)', replace = '${m}' }]\n"),
        7,
        "trunk[0].outbound_calling[0].replace",
        "no group named \"m\"",
    );
    only_error(
        &gw("inbound = [{ match = '1', replace = 'US$' }]\n"),
        7,
        "trunk[0].inbound[0].replace",
        "$$",
    );
    // Valid forms.
    let ok = gw("inbound = [{ match = '(?P<n>\\d+)(x)?', replace = '${n}$2$$${0}' }]\n");
    assert!(config::parse(&ok, "t.toml").is_ok());
}

#[test]
fn rule_patterns_say_what_regex_says() {
    only_error(
        &gw("inbound = [{ match = '(?!1900)\\d+', replace = '${0}' }]\n"),
        7,
        "trunk[0].inbound[0].match",
        "look-around",
    );
    only_error(
        &gw("inbound = [{ match = '(\\d)\\1', replace = '${1}' }]\n"),
        7,
        "trunk[0].inbound[0].match",
        "back-references",
    );
    only_error(
        &gw("inbound = [{ match = '(\\d+', replace = '${1}' }]\n"),
        7,
        "trunk[0].inbound[0].match",
        "unclosed",
    );
}

#[test]
fn rule_shapes() {
    only_error(
        &gw("outbound_called = [{ match = '1', replace = '2', number = \"called\" }]\n"),
        7,
        "trunk[0].outbound_called[0].number",
        "only inbound rules",
    );
    only_error(
        &gw("inbound = [{ match = '1', replace = '2', number = \"callee\" }]\n"),
        7,
        "trunk[0].inbound[0].number",
        "\"called\", \"calling\" or \"both\"",
    );
    only_error(
        &gw("inbound = [{ match = '1' }]\n"),
        7,
        "trunk[0].inbound[0].replace",
        "missing",
    );
    only_error(
        &gw("inbound = [{ match = '1', replace = '2', priority = 1 }]\n"),
        7,
        "trunk[0].inbound[0].priority",
        "unknown key",
    );
    only_error(
        &gw("inbound = '1'\n"),
        7,
        "trunk[0].inbound",
        "list of rules",
    );
}

#[test]
fn response_code_rules() {
    only_error(
        &gw("response_codes = [{ code = 200, to = 503 }]\n"),
        7,
        "trunk[0].response_codes[0].code",
        "from 300 to 699",
    );
    only_error(
        &gw("response_codes = [{ code = 486, cause = 128, to = 503 }]\n"),
        7,
        "trunk[0].response_codes[0].cause",
        "from 1 to 127",
    );
    only_error(
        &gw("response_codes = [{ code = 486, cause = 34 }]\n"),
        7,
        "trunk[0].response_codes[0].to",
        "missing",
    );
    // A rule that can never apply is a mistake.
    only_error(
        &gw("response_codes = [\n  { code = 486, to = 503 },\n  { code = 486, cause = 34, to = 503 },\n]\n"),
        9,
        "trunk[0].response_codes[1]",
        "never applies",
    );
    only_error(
        &gw("response_codes = [{ code = 486, to = 486 }]\n"),
        7,
        "trunk[0].response_codes[0]",
        "to itself",
    );
    // A cause rule before the general one is fine; so is keeping a code for one cause.
    let ok = gw("response_codes = [\n  { code = 486, cause = 17, to = 486 },\n  { code = 486, to = 503 },\n]\n");
    let c = config::parse(&ok, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.trunks[0].response_codes.len(), 2);
}

/// Issue 19's trunk and route keys: read, defaulted, and refused with the allowed values.
#[test]
fn caller_identity_keys_are_read_and_checked() {
    let c = config::parse(
        &gw("trusted = true\nidentity = \"remove\"\ndiversion = \"remove\"\nhistory_info = \"pass\"\nroute_on = \"rn\"\n"),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let t = &c.trunks[0];
    assert!(t.trusted && t.route_on_rn);
    assert_eq!(t.identity, config::HeaderPolicy::Remove);
    assert_eq!(t.diversion, config::HeaderPolicy::Remove);
    assert_eq!(t.history_info, config::HeaderPolicy::Pass);
    let d = config::parse(&gw(""), "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    let t = &d.trunks[0];
    assert!(
        !t.trusted && !t.route_on_rn,
        "untrusted and routing on the called number by default"
    );
    assert_eq!(t.identity, config::HeaderPolicy::Pass);
    only_error(
        &gw("trusted = \"yes\"\n"),
        7,
        "trunk[0].trusted",
        "true or false",
    );
    only_error(
        &gw("identity = \"strip\"\n"),
        7,
        "trunk[0].identity",
        "\"pass\" or \"remove\"",
    );
    only_error(
        &gw("history_info = true\n"),
        7,
        "trunk[0].history_info",
        "\"pass\" or \"remove\"",
    );
    only_error(
        &gw("route_on = \"lrn\"\n"),
        7,
        "trunk[0].route_on",
        "\"rn\"",
    );
    let route =
        gw("[[route]]\nname = \"r\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\nroute_on = \"npdi\"\n");
    only_error(&route, 11, "route[0].route_on", "\"called\"");
}

#[test]
fn trunk_options_are_range_checked() {
    only_error(
        &gw("remove_plus = \"yes\"\n"),
        7,
        "trunk[0].remove_plus",
        "true or false",
    );
    only_error(
        &gw("forward_pai = 1\n"),
        7,
        "trunk[0].forward_pai",
        "true or false",
    );
    only_error(
        &gw("overload_control = \"off\"\n"),
        7,
        "trunk[0].overload_control",
        "true or false",
    );
    let off = config::parse(&gw("overload_control = false\n"), "t.toml")
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(!off.trunks[0].overload_control);
    only_error(
        &gw("progress_timeout_s = 181\n"),
        7,
        "trunk[0].progress_timeout_s",
        "from 0 (no timer) to 180",
    );
    only_error(&gw("max_calls = 0\n"), 7, "trunk[0].max_calls", "from 1");
    only_error(&gw("max_cps = -5\n"), 7, "trunk[0].max_cps", "from 1");
    only_error(
        &gw("max_early = 4294967296\n"),
        7,
        "trunk[0].max_early",
        "4294967295",
    );
    only_error(
        &gw("probe = { interval_s = 0 }\n"),
        7,
        "trunk[0].probe.interval_s",
        "from 1 to 3600",
    );
    only_error(
        &gw("probe = { down_after = 3, upafter = 2 }\n"),
        7,
        "trunk[0].probe.upafter",
        "did you mean `up_after`",
    );
    only_error(&gw("probe = 10\n"), 7, "trunk[0].probe", "must be a table");
    only_error(
        &format!("{SERVER}[[trunk]]\nname = \"pbx\"\npeers = [\"10.0.0.9\"]\nprobe = {{}}\n"),
        7,
        "trunk[0].probe",
        "this trunk has none",
    );
    let c = config::parse(&gw("probe = {}\nprogress_timeout_s = 0\n"), "t.toml")
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.trunks[0].probe, Some(config::PROBE_DEFAULT));
    assert_eq!(c.trunks[0].progress_timeout, Duration::ZERO);
}

#[test]
fn server_and_routing_settings() {
    let text = format!("{SERVER}unknown_source = \"ignore\"\n");
    only_error(&text, 4, "server.unknown_source", "\"reject\"");
    let text = format!(
        "{SERVER}unknown_source = \"drop\"\n[routing]\nfailover_after_provisional = true\n"
    );
    let c = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.server.unknown_source, UnknownSource::Drop);
    assert!(c.routing.failover_after_provisional);
    only_error(
        &format!("{SERVER}[routing]\nfailover_after_provisional = \"no\"\n"),
        5,
        "routing.failover_after_provisional",
        "true or false",
    );
    only_error(
        &format!("{SERVER}[routing]\nfailover_after_provisionl = true\n"),
        5,
        "routing.failover_after_provisionl",
        "did you mean `failover_after_provisional`",
    );
}

/// Two trunks and a route, with `usages` lines for each (`""` for none).
fn usage_config(pbx: &str, gw: &str, route: &str) -> String {
    format!(
        "{SERVER}[[trunk]]\nname = \"pbx\"\npeers = [\"10.0.0.2\"]\nsend_to = \"10.0.0.2\"\n{pbx}\n\
         [[trunk]]\nname = \"gw\"\npeers = [\"10.0.0.3\"]\nsend_to = \"10.0.0.3\"\n{gw}\n\
         [[route]]\nname = \"out\"\nprefixes = [\"+\"]\ntrunks = [\"gw\"]\n{route}\n"
    )
}

#[test]
fn usages_must_be_known_on_both_sides() {
    // Line 8: the pbx's usages; line 13: the gateway's; line 18: the route's. A typo is
    // unknown on both sides.
    let errs = errors(&usage_config(
        "usages = [\"local\", \"nationl\"]",
        "",
        "usages = [\"local\", \"national\"]",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    has_error(
        &errs,
        8,
        "trunk[0].usages[1]",
        "unknown usage \"nationl\": no route carries it (the routes carry: \"local\", \"national\"); did you mean \"national\"?",
    );
    has_error(
        &errs,
        18,
        "route[0].usages[1]",
        "unknown usage \"national\": no trunk lists it",
    );
    only_error(
        &usage_config(
            "usages = [\"local\"]",
            "",
            "usages = [\"local\", \"premium\"]",
        ),
        18,
        "route[0].usages[1]",
        "unknown usage \"premium\": no trunk lists it",
    );
    only_error(
        &usage_config("usages = []", "", ""),
        8,
        "trunk[0].usages",
        "omit the key",
    );
    only_error(
        &usage_config("usages = [\"a\", \"a\"]", "", "usages = [\"a\"]"),
        8,
        "trunk[0].usages[1]",
        "listed twice",
    );
    only_error(
        &usage_config("usages = [\"a\", \"a b\"]", "", "usages = [\"a\"]"),
        8,
        "trunk[0].usages[1]",
        "not a valid usage name",
    );
    assert!(config::parse(
        &usage_config("usages = [\"out\"]", "", "usages = [\"out\"]"),
        "t.toml"
    )
    .is_ok());
}

#[test]
fn route_weights_and_caller_id() {
    let route = |extra: &str| {
        format!(
            "{SERVER}[[trunk]]\nname = \"a\"\nsend_to = \"10.0.0.1\"\n[[trunk]]\nname = \"b\"\n\
             send_to = \"10.0.0.2\"\n[[route]]\nname = \"r\"\nprefixes = [\"\"]\n\
             trunks = [\"a\", \"b\"]\n{extra}\n"
        )
    };
    only_error(
        &route("weights = [1]"),
        14,
        "route[0].weights",
        "1 weights for 2 trunks",
    );
    only_error(
        &route("weights = [1, 0]"),
        14,
        "route[0].weights[1]",
        "from 1 to 10000",
    );
    only_error(
        &route("weights = [1, \"x\"]"),
        14,
        "route[0].weights[1]",
        "from 1 to 10000",
    );
    only_error(
        &route("caller_id = \"\""),
        14,
        "route[0].caller_id",
        "not a calling number",
    );
    only_error(
        &route("caller_id = \"+1 212\""),
        14,
        "route[0].caller_id",
        "not a calling number",
    );
    let c = config::parse(
        &route("weights = [3, 1]\ncaller_id = \"+12125550100\""),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.routes[0].weights, [3, 1]);
    assert_eq!(c.routes[0].caller_id.as_deref(), Some("+12125550100"));
}

#[test]
fn prefix_files_report_their_own_lines() {
    let dir = TempFile::new(
        "routes.csv",
        "prefix,carrier\n# US\n+1212,a\n+1 646,b\n\n+1212,c\n,d\n\"+44\n+33,e\n",
    );
    let csv = dir.0.display().to_string();
    let toml = dir.0.with_file_name("prefix.toml");
    std::fs::write(
        &toml,
        format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n[[route]]\nname = \"r\"\n\
             prefix_file = \"routes.csv\"\ntrunks = [\"gw\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let errs = match config::load(&toml) {
        Ok(c) => panic!("accepted {c:#?}"),
        Err(e) => e,
    };
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert!(
        shown[0].starts_with(&format!("{csv}:4: route[0].prefix_file: ")),
        "{shown:#?}"
    );
    assert!(shown[0].contains("space"), "{shown:#?}");
    assert!(shown[1].starts_with(&format!("{csv}:6: ")) && shown[1].contains("also line 3"));
    assert!(shown[2].starts_with(&format!("{csv}:7: ")) && shown[2].contains("no prefix"));
    assert!(shown[3].starts_with(&format!("{csv}:8: ")) && shown[3].contains("closing quote"));

    // Fixed, the file loads, relative to the configuration's directory.
    std::fs::write(&dir.0, "prefix\n+1212\n+1646,x\n\"#31#\"\n").unwrap_or_else(|e| panic!("{e}"));
    let c = config::load(&toml).unwrap_or_else(|e| panic!("{e:#?}"));
    let file = c.routes[0]
        .prefix_file
        .clone()
        .unwrap_or_else(|| panic!("no file"));
    let prefixes: Vec<&[u8]> = file.iter().collect();
    assert_eq!(prefixes, [&b"#31#"[..], b"+1212", b"+1646"]);
    assert_eq!(file.line_of(b"#31#"), Some(4));

    // A missing file is reported at the key's line.
    std::fs::remove_file(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let errs = config::load(&toml).err().unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, Some(9));
    assert_eq!(errs[0].key, "route[0].prefix_file");
    assert!(
        errs[0].message.contains("cannot read the prefix file"),
        "{errs:#?}"
    );
    // One source of numbers per route.
    has_error(
        &errors(&format!(
            "{SERVER}[[trunk]]\nname = \"gw\"\nsend_to = \"10.0.0.1\"\n[[route]]\nname = \"r\"\n\
                  pattern = '1'\nprefix_file = \"x.csv\"\ntrunks = [\"gw\"]\n"
        )),
        10,
        "route[0].prefix_file",
        "one of pattern, prefixes and prefix_file",
    );
}

#[test]
fn warnings_name_unreachable_routes_and_hairpin_risks() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"pbx\"
peers = [\"10.0.0.2\"]
send_to = \"10.0.0.2\"
usages = [\"out\"]
[[trunk]]
name = \"gw\"
peers = [\"10.0.0.3\"]
send_to = \"10.0.0.3\"
usages = [\"in\", \"out\"]
[[trunk]]
name = \"receive-only\"
send_to = \"10.0.0.4\"
usages = [\"dead\"]
[[route]]
name = \"out\"
prefixes = [\"+\"]
usages = [\"out\"]
trunks = [\"gw\", \"receive-only\"]
[[route]]
name = \"in\"
prefixes = [\"\"]
usages = [\"in\"]
trunks = [\"pbx\"]
[[route]]
name = \"no-usages\"
prefixes = [\"9\"]
trunks = [\"gw\"]
[[route]]
name = \"dead\"
prefixes = [\"8\"]
usages = [\"dead\"]
trunks = [\"gw\"]
"
    );
    let c = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    let w: Vec<String> = config::warnings(&c)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    // gw lists "out" and is the trunk of route "out".
    assert!(
        w[0].starts_with("t.toml:18: route[0].trunks[0]: hairpin risk"),
        "{w:#?}"
    );
    assert!(w[0].contains("\"gw\""), "{w:#?}");
    assert!(
        w[1].starts_with("t.toml:28: route[2]: route \"no-usages\" is unreachable"),
        "{w:#?}"
    );
    assert!(w[1].contains("no usages"), "{w:#?}");
    assert!(
        w[2].starts_with("t.toml:32: route[3]: route \"dead\" is unreachable"),
        "{w:#?}"
    );
    assert!(w[2].contains("(dead)"), "{w:#?}");
}

/// Issue 19: a route whose only trunk is the one that may use it cannot loop (a call is
/// never sent back where it came from): no hairpin warning, as for the README's minimal
/// example. A route every number of which a route before it takes, with the same usages
/// and trunks, is named with the route that shadows it.
#[test]
fn single_trunk_routes_do_not_warn_and_shadowed_routes_do() {
    let text = format!(
        "{SERVER}\
[[trunk]]
name = \"pbx\"
peers = [\"10.0.0.2\"]
send_to = \"10.0.0.2\"
[[trunk]]
name = \"gw\"
peers = [\"10.0.0.3\"]
send_to = \"10.0.0.3\"
[[route]]
name = \"national\"
prefixes = [\"+1\"]
trunks = [\"gw\"]
priority = 10
[[route]]
name = \"nyc\"
prefixes = [\"+1212\", \"+1646\"]
trunks = [\"gw\"]
priority = 20
[[route]]
name = \"nyc-first\"
prefixes = [\"+1718\"]
trunks = [\"gw\"]
priority = 5
[[route]]
name = \"same-priority-longer\"
prefixes = [\"+1310\"]
trunks = [\"gw\"]
priority = 10
[[route]]
name = \"other-trunk\"
prefixes = [\"+1415\"]
trunks = [\"pbx\"]
priority = 20
"
    );
    let c = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    let w: Vec<String> = config::warnings(&c)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(!w.iter().any(|w| w.contains("hairpin")), "{w:#?}");
    // Only "nyc" is shadowed: "nyc-first" comes before "national", the longer prefix of
    // "same-priority-longer" goes first at equal priority, "other-trunk" offers another
    // trunk.
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with("t.toml:17: route[1]: route \"nyc\" is unreachable: route \"national\""),
        "{w:#?}"
    );
}

#[test]
fn input_limits_are_read_and_checked() {
    let c = config::parse(
        &format!("{SERVER}\n[limits]\nmax_headers = 40\nmax_uri_bytes = 256\n"),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.limits.max_headers, 40);
    assert_eq!(c.limits.max_uri_bytes, 256);
    assert_eq!(
        c.limits.max_message_bytes,
        junction::limits::MESSAGE_BYTES_MAX
    );
    // Line 7 is `max_headers = 500`: beyond what the scanner indexes.
    only_error(
        &format!("{SERVER}\n[limits]\nmax_vias = 10\nmax_headers = 500\n"),
        7,
        "limits.max_headers",
        "from 16 to 128",
    );
    only_error(
        &format!("{SERVER}\n[limits]\nmax_size = 10\n"),
        6,
        "limits.max_size",
        "",
    );
    only_error(
        &format!("{SERVER}max_memory_mb = 8\n"),
        4,
        "server.max_memory_mb",
        "from 64",
    );
    let c = config::parse(&format!("{SERVER}max_memory_mb = 512\n"), "t.toml")
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.server.max_memory_mb, 512);
    assert_eq!(c.server.retry_after_s, junction::limits::RETRY_AFTER_SECS);
    for (value, words) in [
        ("3601", "from 0 (no Retry-After) to 3600"),
        ("-1", ""),
        ("\"5\"", ""),
    ] {
        let text = format!("{SERVER}retry_after_s = {value}\n");
        only_error(&text, 4, "server.retry_after_s", words);
    }
    for value in [0, 30] {
        let text = format!("{SERVER}retry_after_s = {value}\n");
        let c = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(c.server.retry_after_s, value);
    }
}

#[test]
fn shard_ports_is_the_first_of_one_port_per_shard() {
    // SERVER: cores = 1, listen on 5060.
    let c = config::parse(&format!("{SERVER}shard_ports = 5100\n"), "t.toml")
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.server.shard_ports, Some(5100));
    let c = config::parse(SERVER, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.server.shard_ports, None, "off unless set");
    for (value, words) in [
        ("80", "from 1024 to 65535"),
        ("70000", "from 1024 to 65535"),
        ("\"5100\"", ""),
        // The shared listen port is not a shard's own.
        ("5060", "include the listen port 5060"),
    ] {
        let text = format!("{SERVER}shard_ports = {value}\n");
        only_error(&text, 4, "server.shard_ports", words);
    }
    // Four shards from 65533 would need 65536.
    let text = "[server]\ncores = 4\nlisten = \"udp:127.0.0.1:5060\"\nshard_ports = 65533\n";
    only_error(
        text,
        4,
        "server.shard_ports",
        "4 shards need ports 65533-65536",
    );
    // Nor the advertised port.
    let text = "[server]\ncores = 2\nlisten = \"udp:127.0.0.1:5060\"\n\
                advertise = \"192.0.2.1:5101\"\nshard_ports = 5100\n";
    only_error(
        text,
        5,
        "server.shard_ports",
        "include the advertise port 5101",
    );
}
