//! Every RFC 4475 / RFC 5118 torture message through the proxy core gets the action its
//! INDEX.tsv names: forward, respond with a code, or drop.

mod common;

use common::*;
use junction::sip::scan::{self, Message};
use std::path::{Path, PathBuf};

/// The RFC 4475 / RFC 5118 messages and their expected actions (tests/data/README.md).
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[derive(Debug, PartialEq)]
enum Action {
    Forward,
    Respond(u16),
    Drop,
}

fn parse_action(s: &str) -> Action {
    match s {
        "forward" => Action::Forward,
        "drop" => Action::Drop,
        "respond 400" => Action::Respond(400),
        "respond 505" => Action::Respond(505),
        "respond 501" => Action::Respond(501),
        other => {
            // "respond 4xx other (416)"
            let code = other
                .split('(')
                .nth(1)
                .and_then(|r| r.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("unknown action {other}"));
            Action::Respond(code)
        }
    }
}

fn run_index(dir: &str) -> usize {
    let base = testdata().join(dir);
    let index = std::fs::read_to_string(base.join("INDEX.tsv")).expect("INDEX.tsv");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, action) = (cols[0], parse_action(cols[3]));
        let bytes = std::fs::read(base.join(file)).expect("fixture");
        let mut net = Net::new();
        let out = net.send_bytes(PBX, &bytes);
        let forwarded: Vec<&Sent> = out
            .iter()
            .filter(|s| s.to == addr(GW) && !s.first_line().starts_with("SIP/2.0 "))
            .collect();
        let responses: Vec<u16> = out
            .iter()
            .filter(|s| s.first_line().starts_with("SIP/2.0 "))
            .filter_map(|s| s.first_line().get(8..11)?.parse().ok())
            .collect();
        let ok = match action {
            Action::Forward => forwarded.len() == 1 && responses.iter().all(|&c| c == 100),
            Action::Respond(code) => forwarded.is_empty() && responses == vec![code],
            Action::Drop => out.is_empty(),
        };
        if !ok {
            failures.push(format!("{file}: expected {action:?}, got {out:#?}"));
        }
        // What we forward must itself scan cleanly, carry one more Via, keep the Call-ID.
        for f in forwarded {
            let mut m = Message::default();
            let bytes = f.text.as_bytes();
            if let Err(e) = scan::scan(bytes, &mut m) {
                failures.push(format!("{file}: forwarded message does not scan: {e:?}"));
                continue;
            }
            let mut orig = Message::default();
            let _ = scan::scan(&bytes_of(&base, file), &mut orig);
            if m.call_id.get(bytes) != orig.call_id.get(&bytes_of(&base, file)) {
                failures.push(format!("{file}: Call-ID changed"));
            }
            if m.via_count != orig.via_count + 1 {
                failures.push(format!(
                    "{file}: {} Vias, expected {}",
                    m.via_count,
                    orig.via_count + 1
                ));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    checked
}

fn bytes_of(base: &Path, file: &str) -> Vec<u8> {
    std::fs::read(base.join(file)).expect("fixture")
}

#[test]
fn rfc4475_torture_messages_get_their_index_action() {
    assert_eq!(run_index("rfc4475"), 49);
}

#[test]
fn rfc5118_ipv6_torture_messages_get_their_index_action() {
    assert_eq!(run_index("rfc5118"), 12);
}
