//! The routing decision: ingress trunk by source address, and the attempt list by called
//! number, compiled from configurations written as a user would write them.

use std::net::SocketAddr;
use std::time::Duration;

use junction::config::{self, Config, RouteConfig, RoutingSettings, Server, TrunkConfig};
use junction::routing::{
    Decision, Number, Probe, RoutingTable, TrunkId, UnknownSource, ATTEMPTS_MAX,
};

const SERVER: &str = "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:5060\"\n";

fn table(body: &str) -> RoutingTable {
    let text = format!("{SERVER}{body}");
    let config = match config::parse(&text, "test.toml") {
        Ok(c) => c,
        Err(errors) => panic!("{text}\n{errors:#?}"),
    };
    match RoutingTable::compile(&config) {
        Ok(t) => t,
        Err(errors) => panic!("{errors:#?}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("test address {s:?}: {e}"))
}

fn id(t: &RoutingTable, name: &str) -> TrunkId {
    t.trunk_id(name)
        .unwrap_or_else(|| panic!("no trunk {name}"))
}

/// The attempt list as trunk names, plus the route name, or the decision's kind.
fn decide(t: &RoutingTable, ingress: &str, called: &str) -> (String, Vec<String>) {
    decide_bytes(t, ingress, called.as_bytes())
}

fn decide_bytes(t: &RoutingTable, ingress: &str, called: &[u8]) -> (String, Vec<String>) {
    match t.route(id(t, ingress), called) {
        Decision::NoRoute => ("NoRoute".into(), vec![]),
        Decision::NoTrunk => ("NoTrunk".into(), vec![]),
        Decision::Reject { .. } => ("Reject".into(), vec![]),
        Decision::Route { route, attempts } => {
            assert!(!attempts.is_empty(), "a Route decision has attempts");
            let names = attempts
                .as_slice()
                .iter()
                .map(|a| t.trunk(*a).map_or("?".to_string(), |tr| tr.name.clone()))
                .collect();
            (t.route_name(route).unwrap_or("?").to_string(), names)
        }
    }
}

fn trunks(names: &[&str]) -> String {
    // One trunk per name, each on its own loopback address, each with a send_to.
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "[[trunk]]\nname = \"{n}\"\npeers = [\"127.0.1.{}\"]\nsend_to = \"127.0.1.{}:5060\"\n",
                i + 1,
                i + 1
            )
        })
        .collect()
}

#[test]
fn ingress_most_specific_entry_wins_whatever_the_file_order() {
    // Least specific first in the file, so file order cannot be what decides.
    let t = table(
        r#"
[[trunk]]
name = "wide"
peers = ["10.0.0.0/8", "2001:db8::/32"]
[[trunk]]
name = "net16"
peers = ["10.1.0.0/16", "2001:db8:1::/48"]
[[trunk]]
name = "net24"
peers = ["10.1.2.0/24"]
[[trunk]]
name = "host"
peers = ["10.1.2.3", "2001:db8:1::5"]
[[trunk]]
name = "hostport"
peers = ["10.1.2.3:5070", "[2001:db8:1::5]:5070"]
send_to = "10.1.2.3:5070"
"#,
    );
    let cases = [
        ("10.1.2.3:5070", Some("hostport")),
        ("10.1.2.3:5060", Some("host")),
        ("10.1.2.4:5070", Some("net24")),
        ("10.1.3.4:5060", Some("net16")),
        ("10.2.0.1:5060", Some("wide")),
        ("11.0.0.1:5060", None),
        ("[2001:db8:1::5]:5070", Some("hostport")),
        ("[2001:db8:1::5]:5071", Some("host")),
        ("[2001:db8:1::6]:5070", Some("net16")),
        ("[2001:db8:2::6]:5070", Some("wide")),
        ("[2001:db9::1]:5060", None),
        // IPv4-mapped IPv6 sources match the IPv4 entries.
        ("[::ffff:10.1.2.3]:5070", Some("hostport")),
        ("[::ffff:10.1.2.3]:5060", Some("host")),
        ("[::ffff:10.1.2.9]:5060", Some("net24")),
        ("[::ffff:11.0.0.1]:5060", None),
    ];
    for (src, want) in cases {
        let got = t
            .ingress(addr(src))
            .and_then(|i| t.trunk(i))
            .map(|tr| tr.name.as_str());
        assert_eq!(got, want, "source {src}");
    }
}

#[test]
fn ingress_unknown_source_is_none() {
    let t = table(&trunks(&["a"]));
    assert_eq!(t.ingress(addr("127.0.1.2:5060")), None);
    assert_eq!(t.ingress(addr("[::1]:5060")), None);
    assert!(t.ingress(addr("127.0.1.1:1234")).is_some());
}

#[test]
fn longest_prefix_comes_first_at_equal_priority() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "gw1", "gw2", "gw3"]),
        r#"
[[route]]
name = "nanp"
prefixes = ["+1"]
trunks = ["gw1"]
[[route]]
name = "nyc"
prefixes = ["+1212", "+1646"]
trunks = ["gw2"]
[[route]]
name = "nyc-exchange"
prefixes = ["+1212555"]
trunks = ["gw3"]
"#
    );
    let t = table(&body);
    assert_eq!(
        decide(&t, "pbx", "+12125551234"),
        (
            "nyc-exchange".into(),
            vec!["gw3".into(), "gw2".into(), "gw1".into()]
        )
    );
    assert_eq!(
        decide(&t, "pbx", "+12124441234"),
        ("nyc".into(), vec!["gw2".into(), "gw1".into()])
    );
    assert_eq!(
        decide(&t, "pbx", "+16465551234"),
        ("nyc".into(), vec!["gw2".into(), "gw1".into()])
    );
    assert_eq!(
        decide(&t, "pbx", "+13105551234"),
        ("nanp".into(), vec!["gw1".into()])
    );
    // A prefix longer than the number does not match it.
    assert_eq!(
        decide(&t, "pbx", "+1212"),
        ("nyc".into(), vec!["gw2".into(), "gw1".into()])
    );
    assert_eq!(decide(&t, "pbx", "+442071234567").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "").0, "NoRoute");
}

#[test]
fn priority_comes_before_prefix_length_and_file_order_breaks_ties() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "gw1", "gw2", "gw3", "gw4"]),
        r#"
[[route]]
name = "specific-but-late"
prefixes = ["+1212"]
trunks = ["gw1"]
priority = 50
[[route]]
name = "short-but-first"
prefixes = ["+1"]
trunks = ["gw2"]
priority = 10
[[route]]
name = "tie-a"
prefixes = ["+1"]
trunks = ["gw3"]
priority = 60
[[route]]
name = "tie-b"
prefixes = ["+1"]
trunks = ["gw4"]
priority = 60
"#
    );
    let t = table(&body);
    assert_eq!(
        decide(&t, "pbx", "+12125551234"),
        (
            "short-but-first".into(),
            vec!["gw2".into(), "gw1".into(), "gw3".into(), "gw4".into()]
        )
    );
}

#[test]
fn default_priority_is_100() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "gw1", "gw2"]),
        r#"
[[route]]
name = "default-priority"
prefixes = ["+1212"]
trunks = ["gw1"]
[[route]]
name = "p99"
prefixes = ["+1"]
trunks = ["gw2"]
priority = 99
"#
    );
    let t = table(&body);
    assert_eq!(
        decide(&t, "pbx", "+12125551234"),
        ("p99".into(), vec!["gw2".into(), "gw1".into()])
    );
}

#[test]
fn patterns_match_the_whole_number_only() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "gw1", "gw2", "gw3"]),
        r#"
[[route]]
name = "us"
pattern = '\+1\d{10}'
trunks = ["gw1"]
[[route]]
name = "one-or-two"
pattern = '1|2'
trunks = ["gw2"]
[[route]]
name = "already-anchored"
pattern = '^9\d\d$'
trunks = ["gw3"]
"#
    );
    let t = table(&body);
    assert_eq!(decide(&t, "pbx", "+12125551234").1, vec!["gw1"]);
    assert_eq!(decide(&t, "pbx", "+121255512345").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "x+12125551234").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "+1212555123").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "1").1, vec!["gw2"]);
    assert_eq!(decide(&t, "pbx", "2").1, vec!["gw2"]);
    assert_eq!(decide(&t, "pbx", "12").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "911").1, vec!["gw3"]);
    assert_eq!(decide(&t, "pbx", "9111").0, "NoRoute");
}

#[test]
fn a_pattern_ranks_like_the_empty_prefix() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "pat", "plus1", "any"]),
        r#"
[[route]]
name = "pattern-first-in-file"
pattern = '\+\d+'
trunks = ["pat"]
[[route]]
name = "prefix-plus1"
prefixes = ["+1"]
trunks = ["plus1"]
[[route]]
name = "catch-all"
prefixes = [""]
trunks = ["any"]
"#
    );
    let t = table(&body);
    // Same priority: the matching prefix "+1" (length 2) beats the pattern (length 0); the
    // pattern and "" tie on length and keep file order.
    assert_eq!(
        decide(&t, "pbx", "+12125551234"),
        (
            "prefix-plus1".into(),
            vec!["plus1".into(), "pat".into(), "any".into()]
        )
    );
    assert_eq!(
        decide(&t, "pbx", "+4420"),
        (
            "pattern-first-in-file".into(),
            vec!["pat".into(), "any".into()]
        )
    );
    assert_eq!(
        decide(&t, "pbx", "alice"),
        ("catch-all".into(), vec!["any".into()])
    );
}

#[test]
fn empty_and_non_numeric_called_numbers_are_routed() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "digits", "maybe-empty", "any"]),
        r#"
[[route]]
name = "digits"
pattern = '\d+'
trunks = ["digits"]
priority = 1
[[route]]
name = "maybe-empty"
pattern = '\d*'
trunks = ["maybe-empty"]
priority = 2
[[route]]
name = "catch-all"
prefixes = [""]
trunks = ["any"]
priority = 3
"#
    );
    let t = table(&body);
    assert_eq!(
        decide(&t, "pbx", "").1,
        vec!["maybe-empty".to_string(), "any".into()]
    );
    assert_eq!(
        decide(&t, "pbx", "123").1,
        vec!["digits".to_string(), "maybe-empty".into(), "any".into()]
    );
    assert_eq!(decide(&t, "pbx", "alice").1, vec!["any".to_string()]);
    // Bytes that are not UTF-8 are numbers like any other.
    assert_eq!(
        decide_bytes(&t, "pbx", b"\xff\xfe12").1,
        vec!["any".to_string()]
    );
}

#[test]
fn the_ingress_trunk_is_skipped_and_repeats_collapse() {
    let body = format!(
        "{}{}",
        trunks(&["gw1", "gw2", "gw3"]),
        r#"
[[route]]
name = "primary"
prefixes = ["+1212"]
trunks = ["gw1", "gw2"]
[[route]]
name = "backup"
prefixes = ["+1"]
trunks = ["gw2", "gw1", "gw3"]
"#
    );
    let t = table(&body);
    assert_eq!(
        decide(&t, "gw1", "+12125551234"),
        ("primary".into(), vec!["gw2".into(), "gw3".into()])
    );
    assert_eq!(
        decide(&t, "gw3", "+12125551234"),
        ("primary".into(), vec!["gw1".into(), "gw2".into()])
    );
}

#[test]
fn no_route_and_no_trunk_are_different() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "gw1"]),
        r#"
[[route]]
name = "to-gw1"
prefixes = ["+1"]
trunks = ["gw1"]
"#
    );
    let t = table(&body);
    // Matched, but the only trunk is the one the call came from.
    assert_eq!(t.route(id(&t, "gw1"), b"+12125551234"), Decision::NoTrunk);
    // Nothing matched.
    assert_eq!(t.route(id(&t, "gw1"), b"+4420"), Decision::NoRoute);
    assert_eq!(t.route(id(&t, "pbx"), b"+4420"), Decision::NoRoute);
    assert!(matches!(
        t.route(id(&t, "pbx"), b"+12125551234"),
        Decision::Route { route: 0, .. }
    ));
}

#[test]
fn attempts_stop_at_attempts_max_in_order() {
    let names: Vec<String> = (0..12).map(|i| format!("gw{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut body = trunks(&refs);
    // Six trunks in each of two routes: 12 candidates, ATTEMPTS_MAX kept.
    body.push_str(&format!(
        "[[route]]\nname = \"first\"\nprefixes = [\"+1212\"]\ntrunks = {:?}\n",
        &refs[1..7]
    ));
    body.push_str(&format!(
        "[[route]]\nname = \"second\"\nprefixes = [\"+1\"]\ntrunks = {:?}\n",
        &refs[6..12]
    ));
    let t = table(&body);
    let (route, attempts) = decide(&t, "gw00", "+12125551234");
    assert_eq!(route, "first");
    assert_eq!(attempts.len(), ATTEMPTS_MAX);
    let want: Vec<String> = names[1..1 + ATTEMPTS_MAX].to_vec();
    assert_eq!(attempts, want);
}

fn hand_built(trunks: Vec<TrunkConfig>, routes: Vec<RouteConfig>) -> Config {
    Config {
        source: "hand-built".into(),
        server: Server {
            cores: 1,
            cpus: None,
            listen: addr("127.0.0.1:5060"),
            advertise: addr("127.0.0.1:5060"),
            metrics: None,
            unknown_source: UnknownSource::Reject,
            max_memory_mb: junction::limits::MEMORY_MB_DEFAULT,
            overload_feedback: true,
            retry_after_s: junction::limits::RETRY_AFTER_SECS,
            shard_ports: None,
        },
        routing: RoutingSettings::default(),
        trunks,
        routes,
        cdr: None,
        log: Default::default(),
        flood: Default::default(),
        limits: Default::default(),
    }
}

fn trunk(name: &str, peers: &[&str], send_to: Option<&str>) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        peers: peers.iter().map(|p| p.to_string()).collect(),
        send_to: send_to.map(addr),
        ..TrunkConfig::default()
    }
}

fn route(name: &str, prefixes: &[&str], trunks: &[&str]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        trunks: trunks.iter().map(|t| t.to_string()).collect(),
        ..RouteConfig::default()
    }
}

#[test]
fn trunks_without_send_to_are_skipped() {
    // config::parse refuses this; a hand-built Config must still route sensibly.
    let c = hand_built(
        vec![
            trunk("pbx", &["10.0.0.1"], None),
            trunk("gw", &[], Some("10.0.0.2:5060")),
        ],
        vec![route("r", &[""], &["pbx", "gw"])],
    );
    let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(decide(&t, "gw", "1"), ("NoTrunk".into(), vec![]));
    assert_eq!(t.route(id(&t, "gw"), b"1"), Decision::NoTrunk);
    assert_eq!(decide(&t, "pbx", "1").1, vec!["gw".to_string()]);
}

#[test]
fn compile_reports_errors_in_hand_built_configs() {
    let c = hand_built(
        vec![
            trunk("a", &["10.0.0.1", "not-an-ip"], Some("10.0.0.1:5060")),
            trunk("b", &["10.0.0.1/32"], Some("10.0.0.2:5060")),
        ],
        vec![
            route("r", &["+1"], &["a", "missing"]),
            RouteConfig {
                pattern: Some("(?=x)".into()),
                ..route("bad", &[], &["a"])
            },
        ],
    );
    let errors = match RoutingTable::compile(&c) {
        Ok(_) => panic!("compiled an invalid config"),
        Err(e) => e,
    };
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "trunk[0].peers[1]",
            "trunk[1].peers[0]",
            "route[0].trunks[1]",
            "route[1].pattern"
        ],
        "{errors:#?}"
    );
}

/// A small deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn digits(&mut self, max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| char::from(b'1' + self.below(3) as u8))
            .collect()
    }
}

/// The semantics written the obvious way: every route that matches, sorted by (priority,
/// longest matching prefix, file order), trunks joined, ingress and repeats skipped (trunks
/// without usages, rotation 0: each route's trunks in their configured order).
fn reference(c: &Config, ingress: usize, called: &str) -> (Option<usize>, Vec<usize>) {
    let mut candidates: Vec<(u32, std::cmp::Reverse<usize>, usize)> = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let len = match &r.pattern {
            Some(p) => regex::Regex::new(&format!("^(?:{p})$"))
                .is_ok_and(|re| re.is_match(called))
                .then_some(0),
            None => r
                .prefixes
                .iter()
                .filter(|p| called.starts_with(p.as_str()))
                .map(|p| p.len())
                .max(),
        };
        if let Some(len) = len {
            candidates.push((r.priority, std::cmp::Reverse(len), i));
        }
    }
    candidates.sort();
    let mut attempts = Vec::new();
    let mut first_route = None;
    for (_, _, i) in &candidates {
        for name in &c.routes[*i].trunks {
            let t = c
                .trunks
                .iter()
                .position(|t| &t.name == name)
                .unwrap_or(usize::MAX);
            if t != ingress && !attempts.contains(&t) && attempts.len() < ATTEMPTS_MAX {
                attempts.push(t);
                first_route.get_or_insert(*i);
            }
        }
    }
    // The decision names the route that offered the first attempt; with no attempt, the
    // first route that matched (NoTrunk).
    (first_route.or(candidates.first().map(|c| c.2)), attempts)
}

#[test]
fn route_agrees_with_the_obvious_sort_on_random_tables() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let patterns = ["1\\d*", "2+", "\\d{3}", "(12)+", "3?1", ""];
    for round in 0..200 {
        let trunk_count = 2 + rng.below(12);
        let trunks: Vec<TrunkConfig> = (0..trunk_count)
            .map(|i| {
                let peer = format!("10.0.{}.{}", round % 250, i + 1);
                let send = format!("10.0.{}.{}:5060", round % 250, i + 1);
                trunk(&format!("t{i}"), &[peer.as_str()], Some(send.as_str()))
            })
            .collect();
        let routes: Vec<RouteConfig> = (0..1 + rng.below(10))
            .map(|i| {
                let egress: Vec<String> = {
                    let mut v: Vec<String> = Vec::new();
                    for _ in 0..1 + rng.below(4) {
                        let name = format!("t{}", rng.below(trunk_count));
                        if !v.contains(&name) {
                            v.push(name);
                        }
                    }
                    v
                };
                let egress_refs: Vec<&str> = egress.iter().map(String::as_str).collect();
                let mut r = if rng.below(4) == 0 {
                    RouteConfig {
                        pattern: Some(patterns[rng.below(patterns.len())].to_string()),
                        ..route(&format!("r{i}"), &[], &egress_refs)
                    }
                } else {
                    let mut prefixes: Vec<String> = Vec::new();
                    for _ in 0..1 + rng.below(3) {
                        let p = rng.digits(4);
                        if !prefixes.contains(&p) {
                            prefixes.push(p);
                        }
                    }
                    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
                    route(&format!("r{i}"), &refs, &egress_refs)
                };
                r.priority = rng.below(3) as u32;
                r
            })
            .collect();
        let c = hand_built(trunks, routes);
        let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
        for _ in 0..50 {
            let called = rng.digits(6);
            let ingress = rng.below(trunk_count);
            let (want_route, want) = reference(&c, ingress, &called);
            let got = t.route(TrunkId(ingress as u16), called.as_bytes());
            let (got_route, got_attempts) = match got {
                Decision::NoRoute => (None, vec![]),
                Decision::Reject { .. } => panic!("{called}: no reject routes here"),
                Decision::NoTrunk => {
                    assert!(want_route.is_some() && want.is_empty(), "{called}: NoTrunk");
                    (want_route, vec![])
                }
                Decision::Route { route, attempts } => (
                    Some(route as usize),
                    attempts.as_slice().iter().map(|a| a.0 as usize).collect(),
                ),
            };
            assert_eq!(
                (got_route, got_attempts),
                (want_route, want),
                "round {round}, called {called:?}, ingress t{ingress}\n{:#?}",
                c.routes
            );
        }
    }
}

#[test]
fn large_prefix_tables_match_longest_first() {
    // 20,000 five-digit area prefixes in one route, 2,000 longer exchange prefixes in a
    // second: every lookup must land on the longest one listed.
    let mut body = trunks(&["pbx", "area", "exchange"]);
    let areas: Vec<String> = (0..20_000).map(|i| format!("+{}", 10_000 + i)).collect();
    let exchanges: Vec<String> = (0..2_000)
        .map(|i| format!("+{}555", 10_000 + i * 10))
        .collect();
    body.push_str(&format!(
        "[[route]]\nname = \"areas\"\nprefixes = {areas:?}\ntrunks = [\"area\"]\n"
    ));
    body.push_str(&format!(
        "[[route]]\nname = \"exchanges\"\nprefixes = {exchanges:?}\ntrunks = [\"exchange\"]\n"
    ));
    let t = table(&body);
    assert_eq!(t.prefixes_len(), 22_000);
    assert_eq!(
        decide(&t, "pbx", "+100205551234").1,
        vec!["exchange".to_string(), "area".into()]
    );
    assert_eq!(
        decide(&t, "pbx", "+100215551234").1,
        vec!["area".to_string()]
    );
    assert_eq!(
        decide(&t, "pbx", "+299995551234").1,
        vec!["area".to_string()]
    );
    assert_eq!(decide(&t, "pbx", "+300005551234").0, "NoRoute");
    assert_eq!(decide(&t, "pbx", "+1000").0, "NoRoute");
}

#[test]
fn the_embedded_default_routes_loopback_calls_to_the_gateway() {
    let c = config::embedded_default();
    let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
    let pbx = t.ingress(addr("127.0.0.1:40000"));
    let gw = t.ingress(addr("127.0.0.1:5070"));
    assert_eq!(pbx, t.trunk_id("pbx"));
    assert_eq!(gw, t.trunk_id("gateway"));
    let Some(pbx) = pbx else { panic!("no pbx") };
    match t.route(pbx, b"+12125551234") {
        Decision::Route { attempts, .. } => {
            assert_eq!(attempts.len(), 1);
            let sent = attempts
                .first()
                .and_then(|a| t.trunk(a))
                .and_then(|tr| tr.send_to);
            assert_eq!(sent, Some(addr("127.0.0.1:5070")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.route(pbx, b""), t.route(pbx, b"alice"));
    assert!(matches!(t.route(pbx, b""), Decision::Route { .. }));
}

// ---- the inter-trunk model: usages, rotation, availability, rules ------------------------

/// The attempt list of `route_with` as trunk names, with the route names that offered them.
fn walk(
    t: &RoutingTable,
    ingress: &str,
    called: &str,
    rotation: u64,
    down: &[&str],
) -> (String, Vec<(String, String)>) {
    let down: Vec<TrunkId> = down.iter().map(|n| id(t, n)).collect();
    let usable = |x: TrunkId| !down.contains(&x);
    match t.route_with(id(t, ingress), called.as_bytes(), rotation, &usable) {
        Decision::NoRoute => ("NoRoute".into(), vec![]),
        Decision::NoTrunk => ("NoTrunk".into(), vec![]),
        Decision::Reject { .. } => ("Reject".into(), vec![]),
        Decision::Route { route, attempts } => {
            let list = (0..attempts.len())
                .map(|i| {
                    let trunk = attempts
                        .get(i)
                        .and_then(|a| t.trunk(a))
                        .map(|x| x.name.clone());
                    let via = attempts.route(i).and_then(|r| t.route_name(r));
                    (trunk.unwrap_or_default(), via.unwrap_or("?").to_string())
                })
                .collect();
            (t.route_name(route).unwrap_or("?").to_string(), list)
        }
    }
}

/// Just the trunk names of `walk`.
fn order(
    t: &RoutingTable,
    ingress: &str,
    called: &str,
    rotation: u64,
    down: &[&str],
) -> Vec<String> {
    walk(t, ingress, called, rotation, down)
        .1
        .into_iter()
        .map(|(trunk, _)| trunk)
        .collect()
}

/// A trunk on its own loopback address with a send_to and extra keys.
fn trunk_with(n: usize, name: &str, extra: &str) -> String {
    format!(
        "[[trunk]]\nname = \"{name}\"\npeers = [\"127.0.2.{n}\"]\nsend_to = \"127.0.2.{n}:5060\"\n{extra}\n"
    )
}

#[test]
fn usages_are_walked_in_the_trunk_s_order_before_priority() {
    let body = format!(
        "{}{}{}{}{}",
        trunk_with(
            1,
            "pbx",
            "usages = [\"local\", \"national\", \"international\"]"
        ),
        trunk_with(2, "gw-local", "usages = [\"in\"]"),
        trunk_with(3, "gw-national", "usages = [\"in\"]"),
        trunk_with(4, "gw-intl", "usages = [\"in\"]"),
        r#"
[[route]]
name = "intl"
prefixes = ["+"]
usages = ["international"]
trunks = ["gw-intl"]
priority = 0
[[route]]
name = "national"
prefixes = ["+1"]
usages = ["national"]
trunks = ["gw-national"]
priority = 5
[[route]]
name = "local"
prefixes = ["+1212"]
usages = ["local"]
trunks = ["gw-local"]
priority = 50
[[route]]
name = "back-in"
prefixes = [""]
usages = ["in"]
trunks = ["pbx"]
"#
    );
    let t = table(&body);
    // Usage order (local, national, international) wins over priority (0, 5, 50) and
    // over prefix length.
    assert_eq!(
        walk(&t, "pbx", "+12125550100", 0, &[]),
        (
            "local".into(),
            vec![
                ("gw-local".into(), "local".into()),
                ("gw-national".into(), "national".into()),
                ("gw-intl".into(), "intl".into()),
            ]
        )
    );
    assert_eq!(
        order(&t, "pbx", "+13105550100", 0, &[]),
        vec!["gw-national", "gw-intl"]
    );
    assert_eq!(order(&t, "pbx", "+442071234567", 0, &[]), vec!["gw-intl"]);
    // The pbx does not carry usage "in": the catch-all route back to it is not its own.
    assert_eq!(walk(&t, "pbx", "12345", 0, &[]).0, "NoRoute");
    // The gateways only reach the pbx, whatever the number.
    assert_eq!(order(&t, "gw-local", "+12125550100", 0, &[]), vec!["pbx"]);
}

#[test]
fn trunks_without_usages_use_every_route_and_routes_without_usages_serve_only_them() {
    let body = format!(
        "{}{}{}{}{}",
        trunk_with(1, "legacy", ""),
        trunk_with(2, "modern", "usages = [\"u\"]"),
        trunk_with(3, "gw1", ""),
        trunk_with(4, "gw2", ""),
        r#"
[[route]]
name = "plain"
prefixes = ["1"]
trunks = ["gw1"]
priority = 1
[[route]]
name = "tagged"
prefixes = ["12"]
usages = ["u"]
trunks = ["gw2"]
priority = 2
"#
    );
    let t = table(&body);
    // No usages: every route, in (priority, longest prefix, file order).
    assert_eq!(order(&t, "legacy", "123", 0, &[]), vec!["gw1", "gw2"]);
    // Usages: only the routes carrying them; the route without usages is not one.
    assert_eq!(order(&t, "modern", "123", 0, &[]), vec!["gw2"]);
    assert_eq!(walk(&t, "modern", "13", 0, &[]).0, "NoRoute");
}

#[test]
fn within_a_usage_priority_then_longest_prefix_then_file_order() {
    let body = format!(
        "{}{}{}{}{}{}",
        trunk_with(1, "pbx", "usages = [\"out\"]"),
        trunk_with(2, "a", ""),
        trunk_with(3, "b", ""),
        trunk_with(4, "c", ""),
        trunk_with(5, "d", ""),
        r#"
[[route]]
name = "short-first-priority"
prefixes = ["+1"]
usages = ["out"]
trunks = ["a"]
priority = 10
[[route]]
name = "long"
prefixes = ["+1212"]
usages = ["out"]
trunks = ["b"]
priority = 20
[[route]]
name = "pattern"
pattern = '\+1\d{10}'
usages = ["out"]
trunks = ["c"]
priority = 20
[[route]]
name = "longer"
prefixes = ["+1212555"]
usages = ["out"]
trunks = ["d"]
priority = 20
"#
    );
    let t = table(&body);
    // Priority 10 first, then at priority 20: +1212555 (8) before +1212 (5) before the
    // pattern (length 0).
    assert_eq!(
        order(&t, "pbx", "+12125550100", 0, &[]),
        vec!["a", "d", "b", "c"]
    );
}

#[test]
fn a_route_met_under_two_usages_is_walked_once() {
    let body = format!(
        "{}{}{}{}",
        trunk_with(1, "pbx", "usages = [\"x\", \"y\"]"),
        trunk_with(2, "a", ""),
        trunk_with(3, "b", ""),
        r#"
[[route]]
name = "both"
prefixes = ["1"]
usages = ["y", "x"]
trunks = ["a"]
priority = 5
[[route]]
name = "only-x"
prefixes = ["1"]
usages = ["x"]
trunks = ["b"]
"#
    );
    let t = table(&body);
    assert_eq!(
        walk(&t, "pbx", "1", 0, &[]).1,
        vec![
            ("a".to_string(), "both".to_string()),
            ("b".into(), "only-x".into())
        ]
    );
}

#[test]
fn round_robin_rotates_each_route_s_trunks_by_weight() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "a", "b", "c"]),
        r#"
[[route]]
name = "weighted"
prefixes = ["1"]
trunks = ["a", "b"]
weights = [2, 1]
[[route]]
name = "plain"
prefixes = ["2"]
trunks = ["a", "b", "c"]
[[route]]
name = "backup"
prefixes = [""]
trunks = ["c"]
priority = 200
"#
    );
    let t = table(&body);
    // Weights [2, 1]: calls start on a, a, b, a, a, b...; every call keeps both trunks,
    // and the other routes' trunks follow.
    let firsts: Vec<String> = (0..6)
        .map(|r| order(&t, "pbx", "1", r, &[])[0].clone())
        .collect();
    assert_eq!(firsts, vec!["a", "a", "b", "a", "a", "b"]);
    assert_eq!(order(&t, "pbx", "1", 2, &[]), vec!["b", "a", "c"]);
    assert_eq!(order(&t, "pbx", "1", 3, &[]), vec!["a", "b", "c"]);
    // No weights: plain round robin, rotated.
    assert_eq!(order(&t, "pbx", "2", 0, &[]), vec!["a", "b", "c"]);
    assert_eq!(order(&t, "pbx", "2", 1, &[]), vec!["b", "c", "a"]);
    assert_eq!(order(&t, "pbx", "2", 2, &[]), vec!["c", "a", "b"]);
    assert_eq!(order(&t, "pbx", "2", 3, &[]), vec!["a", "b", "c"]);
    // Large counters wrap like small ones.
    assert_eq!(
        order(&t, "pbx", "2", u64::MAX, &[]),
        order(&t, "pbx", "2", 0, &[])
    );
    // Over many calls the shares follow the weights.
    let mut a = 0;
    for r in 0..3000 {
        if order(&t, "pbx", "1", r, &[])[0] == "a" {
            a += 1;
        }
    }
    assert_eq!(a, 2000);
    // The ingress trunk is skipped wherever the rotation puts it.
    assert_eq!(order(&t, "a", "2", 0, &[]), vec!["b", "c"]);
    assert_eq!(order(&t, "a", "2", 2, &[]), vec!["c", "b"]);
}

#[test]
fn unusable_trunks_are_skipped_and_none_left_is_no_trunk() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "a", "b", "c"]),
        r#"
[[route]]
name = "main"
prefixes = ["+1"]
trunks = ["a", "b"]
[[route]]
name = "backup"
prefixes = ["+"]
trunks = ["c"]
"#
    );
    let t = table(&body);
    assert_eq!(order(&t, "pbx", "+1555", 0, &["a"]), vec!["b", "c"]);
    // The first attempt comes from the backup route: the decision names it.
    assert_eq!(
        walk(&t, "pbx", "+1555", 0, &["a", "b"]),
        ("backup".into(), vec![("c".into(), "backup".into())])
    );
    assert_eq!(walk(&t, "pbx", "+1555", 0, &["a", "b", "c"]).0, "NoTrunk");
    // Nothing matching stays NoRoute, whatever is down.
    assert_eq!(walk(&t, "pbx", "44", 0, &["a", "b", "c"]).0, "NoRoute");
}

const RULES: &str = r#"
[[trunk]]
name = "pbx"
peers = ["127.0.3.1"]
send_to = "127.0.3.1:5060"
inbound = [
  { match = '9(\d{10})', replace = '+1${1}', number = "called" },
  { match = '(\d{4})', replace = '+1212555${1}', number = "calling" },
  { match = '0(?P<rest>\d+)', replace = '+${rest}' },
]
outbound_called = [{ match = '\+1212555(\d{4})', replace = '${1}' }]
[[trunk]]
name = "gw"
peers = ["127.0.3.2"]
send_to = "127.0.3.2:5060"
outbound_called = [
  { match = '\+1(\d{10})', replace = '${1}' },
  { match = '\+(\d+)', replace = '011${1}' },
]
outbound_calling = [{ match = '\+1(\d{10})', replace = '1${1}' }]
response_codes = [
  { code = 486, cause = 34, to = 503 },
  { code = 480, to = 503 },
  { code = 486, cause = 17, to = 486 },
]
[[trunk]]
name = "gw-noplus"
peers = ["127.0.3.3"]
send_to = "127.0.3.3:5060"
remove_plus = true
outbound_calling = [{ match = '\+1(\d{10})', replace = '+${1}' }]
[[route]]
name = "all"
prefixes = [""]
trunks = ["gw", "gw-noplus"]
caller_id = "+12125550100"
"#;

fn rewrite(
    f: impl Fn(&RoutingTable, TrunkId, Number, &[u8], &mut Vec<u8>) -> Option<usize>,
    t: &RoutingTable,
    trunk: &str,
    which: Number,
    number: &str,
) -> (String, Option<usize>) {
    let mut out = b"stale".to_vec();
    let rule = f(t, id(t, trunk), which, number.as_bytes(), &mut out);
    (String::from_utf8_lossy(&out).into_owned(), rule)
}

#[test]
fn inbound_rules_normalize_called_and_calling_numbers() {
    let t = table(RULES);
    let n = |which, number| rewrite(RoutingTable::normalize, &t, "pbx", which, number);
    assert_eq!(
        n(Number::Called, "92125550100"),
        ("+12125550100".into(), Some(0))
    );
    // A called-only rule does not touch the calling number, and the reverse.
    assert_eq!(
        n(Number::Calling, "92125550100"),
        ("92125550100".into(), None)
    );
    assert_eq!(n(Number::Calling, "2001"), ("+12125552001".into(), Some(1)));
    assert_eq!(n(Number::Called, "2001"), ("2001".into(), None));
    // A rule for both numbers, with a named group.
    assert_eq!(
        n(Number::Called, "0442071234567"),
        ("+442071234567".into(), Some(2))
    );
    assert_eq!(
        n(Number::Calling, "0442071234567"),
        ("+442071234567".into(), Some(2))
    );
    // Anchored: partial matches do not apply.
    assert_eq!(
        n(Number::Called, "x92125550100"),
        ("x92125550100".into(), None)
    );
    assert_eq!(
        n(Number::Called, "921255501001"),
        ("921255501001".into(), None)
    );
    // A trunk without rules changes nothing.
    assert_eq!(
        rewrite(RoutingTable::normalize, &t, "gw", Number::Called, "5551234"),
        ("5551234".into(), None)
    );
}

#[test]
fn outbound_rules_then_remove_plus() {
    let t = table(RULES);
    let tr = |trunk, which, number| rewrite(RoutingTable::translate, &t, trunk, which, number);
    assert_eq!(
        tr("gw", Number::Called, "+12125550100"),
        ("2125550100".into(), Some(0))
    );
    // First matching rule wins: +1... never reaches the 011 rule.
    assert_eq!(
        tr("gw", Number::Called, "+442071234567"),
        ("011442071234567".into(), Some(1))
    );
    assert_eq!(tr("gw", Number::Called, "911"), ("911".into(), None));
    assert_eq!(
        tr("gw", Number::Calling, "+12125550100"),
        ("12125550100".into(), Some(0))
    );
    // remove_plus strips after the rules, whether a rule applied or not, and only a
    // leading '+'.
    assert_eq!(
        tr("gw-noplus", Number::Called, "+442071234567"),
        ("442071234567".into(), None)
    );
    assert_eq!(
        tr("gw-noplus", Number::Calling, "+12125550100"),
        ("2125550100".into(), Some(0))
    );
    assert_eq!(tr("gw-noplus", Number::Called, "1+2"), ("1+2".into(), None));
    assert_eq!(tr("gw-noplus", Number::Called, ""), ("".into(), None));
    // translate_rules is the same without remove_plus.
    assert_eq!(
        rewrite(
            RoutingTable::translate_rules,
            &t,
            "gw-noplus",
            Number::Calling,
            "+12125550100"
        ),
        ("+2125550100".into(), Some(0))
    );
}

#[test]
fn response_codes_match_code_and_cause() {
    let t = table(RULES);
    let gw = id(&t, "gw");
    assert_eq!(t.translate_response(gw, 486, Some(34)), 503);
    // A rule with a cause needs that cause.
    assert_eq!(t.translate_response(gw, 486, None), 486);
    assert_eq!(t.translate_response(gw, 486, Some(17)), 486);
    assert_eq!(t.translate_response(gw, 486, Some(21)), 486);
    // A rule without a cause matches any cause, and none.
    assert_eq!(t.translate_response(gw, 480, None), 503);
    assert_eq!(t.translate_response(gw, 480, Some(18)), 503);
    assert_eq!(t.translate_response(gw, 404, Some(1)), 404);
    // Other trunks' rules do not apply.
    assert_eq!(t.translate_response(id(&t, "pbx"), 486, Some(34)), 486);
}

#[test]
fn caller_id_belongs_to_the_route_that_offered_the_attempt() {
    let body = format!(
        "{}{}",
        trunks(&["pbx", "a", "b"]),
        r#"
[[route]]
name = "main"
prefixes = ["+1"]
trunks = ["a"]
[[route]]
name = "backup"
prefixes = ["+"]
trunks = ["b"]
caller_id = "+12125550100"
"#
    );
    let t = table(&body);
    let Decision::Route { attempts, .. } = t.route(id(&t, "pbx"), b"+15551234") else {
        panic!("no route");
    };
    let caller_ids: Vec<Option<&[u8]>> = (0..attempts.len())
        .map(|i| attempts.route(i).and_then(|r| t.route_caller_id(r)))
        .collect();
    assert_eq!(caller_ids, vec![None, Some(&b"+12125550100"[..])]);
    assert_eq!(attempts.route(attempts.len()), None);
}

#[test]
fn trunk_options_and_table_settings_are_compiled() {
    let t = table(&format!(
        "{}\n[routing]\nfailover_after_provisional = true\n",
        r#"
[[trunk]]
name = "tuned"
peers = ["127.0.4.1"]
send_to = "127.0.4.1:5060"
remove_plus = true
forward_pai = false
progress_timeout_s = 0
max_calls = 10
max_cps = 2
max_early = 3
probe = { interval_s = 5, up_after = 4 }
[[trunk]]
name = "plain"
send_to = "127.0.4.2:5060"
"#
    ));
    let tuned = t.trunk(id(&t, "tuned")).unwrap_or_else(|| panic!("tuned"));
    assert!(tuned.remove_plus && !tuned.forward_pai);
    assert_eq!(tuned.progress_timeout, Duration::ZERO);
    assert_eq!(
        (tuned.max_calls, tuned.max_cps, tuned.max_early),
        (Some(10), Some(2), Some(3))
    );
    assert_eq!(
        tuned.probe,
        Some(Probe {
            interval: Duration::from_secs(5),
            down_after: 3,
            up_after: 4
        })
    );
    let plain = t.trunk(id(&t, "plain")).unwrap_or_else(|| panic!("plain"));
    assert!(!plain.remove_plus && plain.forward_pai);
    assert_eq!(plain.progress_timeout, Duration::from_secs(10));
    assert_eq!(
        (plain.max_calls, plain.max_cps, plain.max_early, plain.probe),
        (None, None, None, None)
    );
    assert!(t.failover_after_provisional());
    assert_eq!(t.unknown_source(), UnknownSource::Drop);

    let reject = format!(
        "[server]\nlisten = \"127.0.0.1:5060\"\nunknown_source = \"reject\"\n{}",
        trunks(&["x"])
    );
    let c = config::parse(&reject, "t.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(t.unknown_source(), UnknownSource::Reject);
    assert!(!t.failover_after_provisional());
}

#[test]
fn a_million_prefixes_from_a_file_route_longest_first() {
    // 1,000,000 distinct 9-digit prefixes "+1" + 7 digits, one route; plus a shorter
    // prefix in a second route. Every number must find its own prefix.
    let dir = std::env::temp_dir().join(format!("junction-routing-1m-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut csv = String::with_capacity(12_000_000);
    csv.push_str("prefix,comment\n");
    for i in 0..1_000_000u32 {
        csv.push_str(&format!("+1{:07}\n", i * 7 % 10_000_000));
    }
    std::fs::write(dir.join("big.csv"), &csv).unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{SERVER}{}[[route]]\nname = \"big\"\nprefix_file = \"big.csv\"\ntrunks = [\"big\"]\n\
         [[route]]\nname = \"nanp\"\nprefixes = [\"+1\"]\ntrunks = [\"nanp\"]\n",
        trunks(&["pbx", "big", "nanp"])
    );
    let path = dir.join("big.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e:#?}"));
    let t = RoutingTable::compile(&c).unwrap_or_else(|e| panic!("{e:#?}"));
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(t.prefixes_len(), 1_000_001);
    // Generous for a debug build on a busy machine; the release figure is in the bench.
    assert!(took < Duration::from_secs(60), "{took:?}");
    // 7 * i mod 10^7 for i < 10^6 hits every 7th block of the space.
    assert_eq!(
        order(&t, "pbx", "+10000000555", 0, &[]),
        vec!["big", "nanp"]
    );
    assert_eq!(
        order(&t, "pbx", "+10000007555", 0, &[]),
        vec!["big", "nanp"]
    );
    assert_eq!(order(&t, "pbx", "+10000001555", 0, &[]), vec!["nanp"]);
    assert_eq!(order(&t, "pbx", "+16999993", 0, &[]), vec!["big", "nanp"]);
    assert_eq!(order(&t, "pbx", "+1699999", 0, &[]), vec!["nanp"]);
}
