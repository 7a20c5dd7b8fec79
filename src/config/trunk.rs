//! The `[[trunk]]` sections: names, peer addresses, where calls to the trunk go, the usages
//! its calls may take, its number and response rules, and its options (flags, progress
//! timer, admission limits, health probing).

use std::collections::HashMap;
use std::time::Duration;

use super::toml_doc::{Doc, Section};
use super::usages::UsageRef;
use super::{addr, names, rules, usages, HeaderPolicy, TrunkConfig};
use crate::routing::peer::PeerAddr;
use crate::routing::Probe;

const KEYS: &[&str] = &[
    "name",
    "peers",
    "send_to",
    "usages",
    "inbound",
    "outbound_called",
    "outbound_calling",
    "response_codes",
    "remove_plus",
    "forward_pai",
    "overload_control",
    "progress_timeout_s",
    "max_calls",
    "max_cps",
    "max_early",
    "probe",
    "trusted",
    "identity",
    "diversion",
    "history_info",
    "route_on",
    "max_calls_in",
    "max_cps_in",
    "refuse_in_code",
    "down_after_failures",
    "max_duration_s",
];
/// Trunk settings of the full inter-trunk model (docs/routing.md), not read by this version.
const LATER: &[&str] = &["transport", "allow_hairpin"];

/// The progress timer of a trunk that does not set `progress_timeout_s`.
pub const PROGRESS_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The longest progress timer: past Timer C (3 minutes) the transaction gives up anyway.
pub const PROGRESS_TIMEOUT_MAX: Duration = Duration::from_secs(180);
/// `probe = {}`: every key at its default.
pub const PROBE_DEFAULT: Probe = Probe {
    interval: Duration::from_secs(10),
    down_after: 3,
    up_after: 2,
};
const PROBE_KEYS: &[&str] = &["interval_s", "down_after", "up_after"];
const PROBE_INTERVAL_MAX_S: i64 = 3600;
const PROBE_COUNT_MAX: i64 = 100;

/// What `route.rs` and `usages.rs` need to know about the trunks.
pub struct TrunkInfo {
    pub name: String,
    pub index: usize,
    pub line: Option<usize>,
    pub has_send_to: bool,
    /// The usages it lists, where.
    pub usages: Vec<UsageRef>,
}

/// Read every `[[trunk]]`, checking each on its own and then across trunks (unique names,
/// no peer entry claimed by two trunks).
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>) -> (Vec<TrunkConfig>, Vec<TrunkInfo>) {
    let mut trunks = Vec::new();
    let mut infos = Vec::new();
    let mut names_seen: HashMap<String, (usize, Option<usize>)> = HashMap::new();
    // Canonical peer entry -> (trunk index, where it was written).
    let mut peers_seen: HashMap<PeerAddr, (usize, String, Option<usize>)> = HashMap::new();

    for (i, section) in root.tables(doc, "trunk").into_iter().enumerate() {
        section.check_keys(doc, KEYS, LATER);

        let name = names::read(doc, &section, "trunk");
        if let Some(name) = &name {
            if let Some((first, line)) = names_seen.get(name) {
                let at = line.map_or(String::new(), |l| format!(", line {l}"));
                doc.error(
                    section.field(doc, "name").and_then(|f| f.line),
                    &format!("trunk[{i}].name"),
                    format!("trunk name {name:?} is already used by trunk[{first}]{at}; trunk names must be unique"),
                );
            } else {
                names_seen.insert(name.clone(), (i, section.line));
            }
        }

        let mut peers = Vec::new();
        let mut peers_written = 0;
        if let Some(f) = section.field(doc, "peers") {
            let list = f
                .strings(
                    doc,
                    "a list of addresses in quotes, like [\"192.0.2.10\", \"198.51.100.0/24\"]",
                )
                .unwrap_or_default();
            peers_written = list.len();
            for e in list {
                let text = e.str();
                match PeerAddr::parse(text) {
                    Err(m) => doc.error(e.line, &e.key, m),
                    Ok(peer) => match peers_seen.get(&peer) {
                        Some((other, other_key, other_line)) => {
                            let at = other_line.map_or(String::new(), |l| format!(" on line {l}"));
                            let message = if *other == i {
                                format!(
                                    "{peer} is listed twice in this trunk (also {other_key}{at})"
                                )
                            } else {
                                let whose =
                                    trunks.get(*other).map_or(String::new(), |t: &TrunkConfig| {
                                        format!(" ({:?})", t.name)
                                    });
                                format!(
                                    "{peer} is also a peer of trunk[{other}]{whose} ({other_key}{at}): \
                                     a call from it could not be told apart; keep it in one trunk"
                                )
                            };
                            doc.error(e.line, &e.key, message);
                        }
                        None => {
                            peers_seen.insert(peer, (i, e.key.clone(), e.line));
                            peers.push(text.trim().to_string());
                        }
                    },
                }
            }
        }

        let send_to = section.field(doc, "send_to").and_then(|f| {
            let text = f.string(doc, "an address in quotes, like \"192.0.2.10:5060\"")?;
            match addr::destination(text, super::server::SIP_PORT) {
                Ok(a) => Some(a),
                Err(m) => {
                    doc.error(f.line, &f.key, m);
                    None
                }
            }
        });
        let has_send_to = section.field(doc, "send_to").is_some();
        if peers_written == 0 && !has_send_to {
            doc.error(
                section.line,
                &section.path,
                "has neither peers nor send_to, so it can neither send nor receive calls",
            );
        }

        let usage_refs = usages::read(doc, &section, "trunk");
        let usages = section
            .field(doc, "usages")
            .map(|_| usage_refs.iter().map(|u| u.name.clone()).collect());
        let inbound = rules::read_rules(doc, &section, "inbound", true);
        let outbound_called = rules::read_rules(doc, &section, "outbound_called", false);
        let outbound_calling = rules::read_rules(doc, &section, "outbound_calling", false);
        let response_codes = rules::read_response_codes(doc, &section);
        let flag = |doc: &mut Doc<'_>, key: &str, default: bool| {
            section
                .field(doc, key)
                .and_then(|f| f.boolean(doc))
                .unwrap_or(default)
        };
        let remove_plus = flag(doc, "remove_plus", false);
        let forward_pai = flag(doc, "forward_pai", true);
        let overload_control = flag(doc, "overload_control", true);
        let progress_timeout = section
            .field(doc, "progress_timeout_s")
            .and_then(|f| {
                let max = PROGRESS_TIMEOUT_MAX.as_secs() as i64;
                f.integer_in(
                    doc,
                    0,
                    max,
                    &format!("a whole number of seconds from 0 (no timer) to {max}"),
                )
            })
            .map_or(PROGRESS_TIMEOUT_DEFAULT, |s| Duration::from_secs(s as u64));
        let max_calls = read_limit(doc, &section, "max_calls", "concurrent calls");
        let max_cps = read_limit(doc, &section, "max_cps", "new calls per second");
        let max_early = read_limit(doc, &section, "max_early", "early dialogs");
        let probe = read_probe(doc, &section, has_send_to);
        let trusted = flag(doc, "trusted", false);
        let identity = read_policy(doc, &section, "identity");
        let diversion = read_policy(doc, &section, "diversion");
        let history_info = read_policy(doc, &section, "history_info");
        let route_on_rn = read_route_on(doc, &section);
        let (max_calls_in, max_cps_in, refuse_in_code) =
            read_ingress_limits(doc, &section, peers_written > 0);
        let down_after_failures = read_down_after_failures(doc, &section, probe.is_some());
        let max_duration = read_max_duration(doc, &section);

        infos.push(TrunkInfo {
            name: name.clone().unwrap_or_default(),
            index: i,
            line: section.line,
            has_send_to,
            usages: usage_refs,
        });
        trunks.push(TrunkConfig {
            name: name.unwrap_or_default(),
            peers,
            send_to,
            usages,
            inbound,
            outbound_called,
            outbound_calling,
            response_codes,
            remove_plus,
            forward_pai,
            overload_control,
            progress_timeout,
            max_calls,
            max_cps,
            max_early,
            probe,
            trusted,
            identity,
            diversion,
            history_info,
            route_on_rn,
            max_calls_in,
            max_cps_in,
            refuse_in_code,
            down_after_failures,
            max_duration,
            line: section.line.unwrap_or(0),
        });
    }
    (trunks, infos)
}

/// `identity`, `diversion`, `history_info`: "pass" (the default) or "remove".
fn read_policy(doc: &mut Doc<'_>, section: &Section<'_>, key: &str) -> HeaderPolicy {
    let Some(f) = section.field(doc, key) else {
        return HeaderPolicy::Pass;
    };
    const EXPECTED: &str = "\"pass\" or \"remove\"";
    match f.string(doc, EXPECTED) {
        Some("pass") => HeaderPolicy::Pass,
        Some("remove") => HeaderPolicy::Remove,
        Some(other) => {
            doc.error(f.line, &f.key, format!("{other:?}: must be {EXPECTED}"));
            HeaderPolicy::Pass
        }
        None => HeaderPolicy::Pass,
    }
}

/// `route_on` of a trunk or route: "called" (the default) or "rn"; true for "rn".
pub fn read_route_on(doc: &mut Doc<'_>, section: &Section<'_>) -> bool {
    let Some(f) = section.field(doc, "route_on") else {
        return false;
    };
    const EXPECTED: &str = "\"called\" (the called number) or \"rn\" (the Request-URI's \
                            number-portability routing number when it has one)";
    match f.string(doc, EXPECTED) {
        Some("called") => false,
        Some("rn") => true,
        Some(other) => {
            doc.error(f.line, &f.key, format!("{other:?}: must be {EXPECTED}"));
            false
        }
        None => false,
    }
}

/// An optional admission limit: a positive whole number.
fn read_limit(doc: &mut Doc<'_>, section: &Section<'_>, key: &str, what: &str) -> Option<u32> {
    let f = section.field(doc, key)?;
    let max = i64::from(u32::MAX);
    let n = f.integer_in(
        doc,
        1,
        max,
        &format!("a whole number of {what} from 1 to {max} (omit it for no limit)"),
    )?;
    u32::try_from(n).ok()
}

/// The status of a call refused for the ingress limits when `refuse_in_code` is not set.
pub const REFUSE_IN_CODE_DEFAULT: u16 = 503;

/// `max_calls_in`, `max_cps_in` (limits on the calls the trunk sends junction) and
/// `refuse_in_code` (what a call over them gets). Only a trunk with peers sends calls.
fn read_ingress_limits(
    doc: &mut Doc<'_>,
    section: &Section<'_>,
    has_peers: bool,
) -> (Option<u32>, Option<u32>, u16) {
    let max_calls_in = read_limit(doc, section, "max_calls_in", "concurrent calls");
    let max_cps_in = read_limit(doc, section, "max_cps_in", "new calls per second");
    let code = section
        .field(doc, "refuse_in_code")
        .and_then(|f| {
            f.integer_in(
                doc,
                400,
                699,
                "a final status from 400 to 699 (default 503, with Retry-After)",
            )
        })
        .map_or(REFUSE_IN_CODE_DEFAULT, |c| c as u16);
    if !has_peers {
        for key in ["max_calls_in", "max_cps_in", "refuse_in_code"] {
            if let Some(f) = section.field(doc, key) {
                doc.error(
                    f.line,
                    &f.key,
                    "limits the calls this trunk sends junction, and it has no peers, so it \
                     sends none; give it peers or remove it",
                );
            }
        }
    }
    (max_calls_in, max_cps_in, code)
}

/// The longest `max_duration_s`: a day (calls idle past `limits::CALL_IDLE_MAX` expire
/// anyway).
pub const MAX_DURATION_MAX_S: i64 = 86_400;

/// `max_duration_s` of a trunk or a route: the longest an answered call may last.
pub fn read_max_duration(doc: &mut Doc<'_>, section: &Section<'_>) -> Option<Duration> {
    let f = section.field(doc, "max_duration_s")?;
    let s = f.integer_in(
        doc,
        1,
        MAX_DURATION_MAX_S,
        &format!("a whole number of seconds from 1 to {MAX_DURATION_MAX_S}"),
    )?;
    Some(Duration::from_secs(s as u64))
}

/// Most attempts in a row `down_after_failures` may ask for.
const DOWN_AFTER_FAILURES_MAX: i64 = 1000;

/// `down_after_failures`: passive health. Only probing brings a trunk back up, so it needs
/// `probe`.
fn read_down_after_failures(doc: &mut Doc<'_>, section: &Section<'_>, probed: bool) -> Option<u32> {
    let f = section.field(doc, "down_after_failures")?;
    let n = f.integer_in(
        doc,
        1,
        DOWN_AFTER_FAILURES_MAX,
        &format!("a number of attempts in a row from 1 to {DOWN_AFTER_FAILURES_MAX}"),
    )?;
    if !probed {
        doc.error(
            f.line,
            &f.key,
            "a trunk marked down by its failed attempts comes back only when OPTIONS probes \
             succeed, and this trunk has no probe; add probe = {} (or remove this key)",
        );
        return None;
    }
    Some(n as u32)
}

fn read_probe(doc: &mut Doc<'_>, section: &Section<'_>, has_send_to: bool) -> Option<Probe> {
    let f = section.field(doc, "probe")?;
    let probe = section.table(doc, "probe")?;
    probe.check_keys(doc, PROBE_KEYS, &[]);
    if !has_send_to {
        doc.error(
            f.line,
            &f.key,
            "probes are OPTIONS requests sent to send_to, and this trunk has none",
        );
        return None;
    }
    let mut out = PROBE_DEFAULT;
    if let Some(f) = probe.field(doc, "interval_s") {
        let expected = format!("a whole number of seconds from 1 to {PROBE_INTERVAL_MAX_S}");
        if let Some(s) = f.integer_in(doc, 1, PROBE_INTERVAL_MAX_S, &expected) {
            out.interval = Duration::from_secs(s as u64);
        }
    }
    for (key, slot) in [
        ("down_after", &mut out.down_after),
        ("up_after", &mut out.up_after),
    ] {
        if let Some(f) = probe.field(doc, key) {
            let expected = format!("a number of probes in a row from 1 to {PROBE_COUNT_MAX}");
            if let Some(n) = f.integer_in(doc, 1, PROBE_COUNT_MAX, &expected) {
                *slot = n as u32;
            }
        }
    }
    Some(out)
}
