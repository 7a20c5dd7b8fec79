//! The Grafana dashboard (deploy/grafana/junction-dashboard.json) and the Prometheus alerting
//! rules (deploy/prometheus/junction-alerts.yml) name only what junction exports: the real
//! binary is started and its /metrics read; every `junction_*` name in a query must be a
//! family it declares (`# TYPE`), or the `_bucket`/`_sum`/`_count` series of a histogram
//! family; every label matcher on such a name must match a series it exports. With promtool
//! on PATH (Debian `prometheus`, installed by .ci/run), the dashboard's queries must also
//! parse as PromQL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

const DASHBOARD: &str = "deploy/grafana/junction-dashboard.json";
const RULES: &str = "deploy/prometheus/junction-alerts.yml";

/// Labels Prometheus adds at scrape time, not junction's.
const SCRAPE_LABELS: &[&str] = &["instance", "job"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

struct Running(Child, PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// junction started on free ports with two trunks (one probed) and a CDR file; its /metrics.
fn exported_metrics() -> String {
    let dir = std::env::temp_dir().join(format!("junction-operator-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let listen = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let gateway = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("junction.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ncores = 2\nlisten = \"udp:127.0.0.1:{listen}\"\nmetrics = \"127.0.0.1:{metrics}\"\n\n\
             [[trunk]]\nname = \"gw\"\nsend_to = \"{gateway}\"\n\n\
             [[trunk]]\nname = \"pbx\"\npeers = [\"127.0.0.2\"]\n\n\
             [[route]]\nname = \"all\"\nprefixes = [\"\"]\ntrunks = [\"gw\"]\n\n\
             [cdr]\npath = \"cdr.jsonl\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start junction: {e}"));
    let mut running = Running(child, dir);
    // The residence histogram has a series per kind of message sent: have junction answer
    // an OPTIONS from the PBX trunk.
    let pbx = UdpSocket::bind("127.0.0.2:0").unwrap_or_else(|e| panic!("{e}"));
    let pbx_port = pbx.local_addr().map(|a| a.port()).unwrap_or_default();
    let options = format!(
        "OPTIONS sip:127.0.0.1:{listen} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:{pbx_port};branch=z9hG4bK-opfiles;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.2>;tag=a\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: operator-files@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let t0 = Instant::now();
    loop {
        if get(metrics, "/ready").is_some() {
            let _ = pbx.send_to(options.as_bytes(), ("127.0.0.1", listen));
            if let Some(text) = get(metrics, "/metrics") {
                // Every shard has published once, and the OPTIONS was answered.
                if text.matches("junction_shard_up{").count() == 2
                    && text.contains("junction_residence_seconds_bucket{")
                {
                    return text;
                }
            }
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("junction exited: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "junction never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The families junction declares (name -> type) and its series (name -> label sets).
struct Exposition {
    types: BTreeMap<String, String>,
    series: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

fn parse_exposition(text: &str) -> Exposition {
    let label = re(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#);
    let mut types = BTreeMap::new();
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels = match (line.find('{'), line.rfind('}')) {
            (Some(a), Some(b)) if a == name_end && b > a => label
                .captures_iter(&line[a + 1..b])
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect(),
            _ => BTreeMap::new(),
        };
        series.entry(name.to_string()).or_default().push(labels);
    }
    Exposition { types, series }
}

impl Exposition {
    /// Whether `name` is something a query can select: a declared family that is not a
    /// histogram, or a histogram's _bucket/_sum/_count.
    fn selectable(&self, name: &str) -> Result<(), String> {
        if let Some(kind) = self.types.get(name) {
            return if kind == "histogram" {
                Err(format!(
                    "{name} is a histogram: select {name}_bucket, _sum or _count"
                ))
            } else {
                Ok(())
            };
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if self.types.get(base).map(String::as_str) == Some("histogram") {
                    return Ok(());
                }
            }
        }
        Err(format!("{name} is not exported by junction"))
    }
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn dashboard_queries() -> Vec<String> {
    let text = read(DASHBOARD);
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: not JSON: {e}"));
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(&json, &mut out);
    out
}

/// The expressions of the rules file (`expr:` lines and the block scalars under them).
fn rule_queries() -> Vec<String> {
    let text = read(RULES);
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(expr) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let expr = expr.trim();
        if expr == "|" || expr == ">" {
            let indent = line.len() - line.trim_start().len();
            let mut block = Vec::new();
            while let Some(next) = lines.peek() {
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push(next.trim().to_string());
                lines.next();
            }
            out.push(block.join(" "));
        } else {
            out.push(expr.to_string());
        }
    }
    out
}

/// Grafana's variables replaced by what they stand for in PromQL.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "5m")
        .replace("$instance", ".*")
        .replace("$trunk", ".*")
}

/// Every problem with the names and matchers of `queries` against `exposition`.
fn problems(source: &str, queries: &[String], exposition: &Exposition) -> Vec<String> {
    let name = re(r"\bjunction_[a-z0-9_]+\b");
    let selector = re(r"\b(junction_[a-z0-9_]+)\{([^}]*)\}");
    let matcher = re(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)""#);
    let grouping = re(r"\b(?:by|without)\s*\(([^)]*)\)");
    let mut problems = Vec::new();
    for query in queries {
        let query = as_promql(query);
        for m in name.find_iter(&query) {
            if let Err(e) = exposition.selectable(m.as_str()) {
                problems.push(format!("{source}: {e}: {query}"));
            }
        }
        for s in selector.captures_iter(&query) {
            let metric = &s[1];
            let series = exposition.series.get(metric).cloned().unwrap_or_default();
            for m in matcher.captures_iter(&s[2]) {
                let (label, op, value) = (&m[1], &m[2], &m[3]);
                if SCRAPE_LABELS.contains(&label) {
                    continue;
                }
                let pattern = re(&format!("^(?:{value})$"));
                let matched = series.iter().any(|labels| match labels.get(label) {
                    None => false,
                    Some(v) => match op {
                        "=" => v == value,
                        "=~" => pattern.is_match(v),
                        _ => true,
                    },
                });
                if !matched {
                    problems.push(format!(
                        "{source}: no series {metric}{{{label}{op}\"{value}\"}} in junction's /metrics: {query}"
                    ));
                }
            }
        }
        // A grouping label must be on one of the series the query selects.
        let labels_here: BTreeSet<&str> = name
            .find_iter(&query)
            .filter_map(|m| exposition.series.get(m.as_str()))
            .flatten()
            .flat_map(|labels| labels.keys().map(String::as_str))
            .collect();
        for g in grouping.captures_iter(&query) {
            for label in g[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                if !SCRAPE_LABELS.contains(&label) && !labels_here.contains(label) {
                    problems.push(format!(
                        "{source}: grouping by {label:?}, a label none of the query's series has: {query}"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn the_dashboard_and_the_rules_name_only_what_junction_exports() {
    let exposition = parse_exposition(&exported_metrics());
    assert!(
        exposition.types.len() > 40,
        "too few families: {:?}",
        exposition.types
    );
    let dashboard = dashboard_queries();
    let rules = rule_queries();
    assert!(dashboard.len() >= 30, "{dashboard:#?}");
    assert_eq!(
        rules.len(),
        read(RULES).matches("- alert:").count(),
        "{rules:#?}"
    );

    let mut all = problems(DASHBOARD, &dashboard, &exposition);
    all.extend(problems(RULES, &rules, &exposition));
    assert!(all.is_empty(), "{}", all.join("\n"));

    // What the dashboard is for: each of these is drawn.
    let drawn = dashboard.join("\n");
    for family in [
        "junction_trunk_calls_total",
        "junction_trunk_answered_total",
        "junction_trunk_pdd_seconds_bucket",
        "junction_trunk_answer_seconds_bucket",
        "junction_trunk_up",
        "junction_trunk_admission_refused_total",
        "junction_core_rejected_overload_total",
        "junction_datagrams_dropped_total",
        "junction_udp_receive_buffer_errors_total",
        "junction_cdr_dropped_total",
        "junction_residence_seconds_bucket",
    ] {
        assert!(
            drawn.contains(family),
            "the dashboard does not draw {family}"
        );
    }
    let rules_text = read(RULES);
    for alert in [
        "JunctionTrunkDown",
        "JunctionTrunkAsrDrop",
        "JunctionShedding",
        "JunctionReceiveBufferLosses",
        "JunctionCdrDrops",
    ] {
        assert!(
            rules_text.contains(&format!("- alert: {alert}\n")),
            "no {alert}"
        );
    }
}

#[test]
fn the_checker_catches_a_wrong_name_a_wrong_label_value_and_a_bare_histogram() {
    let exposition = parse_exposition(
        "# TYPE junction_trunk_up gauge\njunction_trunk_up{trunk=\"gw\"} 1\n\
         # TYPE junction_trunk_pdd_seconds histogram\n\
         junction_trunk_pdd_seconds_bucket{trunk=\"gw\",le=\"+Inf\"} 0\n",
    );
    let q = |s: &str| problems("t", &[s.to_string()], &exposition);
    assert!(q("junction_trunk_up{trunk=~\"$trunk\"} == 0").is_empty());
    assert!(q("sum by (trunk, le) (rate(junction_trunk_pdd_seconds_bucket[5m]))").is_empty());
    assert_eq!(q("junction_trunk_upp == 0").len(), 1);
    assert_eq!(q("junction_trunk_up{trunk=\"gx\"}").len(), 1);
    assert_eq!(q("junction_trunk_up{direction=~\".*\"}").len(), 1);
    assert_eq!(q("rate(junction_trunk_pdd_seconds[5m])").len(), 1);
    assert_eq!(q("sum by (shard) (junction_trunk_up)").len(), 1);
    // "shard" is a label of junction_shard_up, but not of the series grouped here.
    let with_shard = parse_exposition(
        "# TYPE junction_shard_up gauge\njunction_shard_up{shard=\"0\"} 1\n\
         # TYPE junction_trunk_up gauge\njunction_trunk_up{trunk=\"gw\"} 1\n",
    );
    let grouped = problems(
        "t",
        &["sum by (shard) (junction_trunk_up)".to_string()],
        &with_shard,
    );
    assert_eq!(grouped.len(), 1, "{grouped:?}");
}

#[test]
fn the_dashboard_queries_parse_as_promql() {
    let Ok(version) = Command::new("promtool").arg("--version").output() else {
        eprintln!("promtool not installed (Debian package prometheus): PromQL syntax not checked");
        return;
    };
    assert!(version.status.success());
    let dir = std::env::temp_dir().join(format!("junction-promql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries().iter().enumerate() {
        if query.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let expr = serde_json::to_string(&as_promql(query)).unwrap_or_default();
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {expr}\n"
        ));
    }
    let file = dir.join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
