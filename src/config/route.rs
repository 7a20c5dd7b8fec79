//! The `[[route]]` sections: which called numbers (a pattern, prefixes, or a prefix file),
//! the usages the route carries, which egress trunks with which weights, the priority among
//! routes, and the calling number it sets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::prefix_file::PrefixFile;
use super::toml_doc::{Doc, Element, Section};
use super::trunk::TrunkInfo;
use super::usages::{self, UsageRef};
use super::{names, RouteConfig};
use crate::routing::pattern;
use crate::routing::prefix::PREFIX_BYTES_MAX;

const KEYS: &[&str] = &[
    "name",
    "pattern",
    "prefixes",
    "prefix_file",
    "usages",
    "trunks",
    "weights",
    "priority",
    "caller_id",
    "route_on",
    "action",
    "code",
    "reason",
    "max_duration_s",
    "when",
    "time_zone",
];

/// Priority of a route that does not say (lower goes first).
pub const PRIORITY_DEFAULT: u32 = 100;

/// Largest round-robin weight of one trunk.
pub const WEIGHT_MAX: u32 = 10_000;

/// Longest `caller_id`.
const CALLER_ID_BYTES_MAX: usize = 64;

/// The status of a reject route that does not say.
pub const REJECT_CODE_DEFAULT: u16 = 403;

/// Longest `reason` of a reject route (it becomes the response's reason phrase).
pub const REJECT_REASON_BYTES_MAX: usize = 128;

/// The keys that say which numbers a route carries; a route has exactly one.
const NUMBER_KEYS: [&str; 3] = ["pattern", "prefixes", "prefix_file"];

/// Read every `[[route]]`, checking names, numbers and the trunks they refer to. `config`
/// is the configuration file's path: prefix files are found relative to its directory.
/// Also returns the usages each route lists (for `usages::check`).
pub fn read(
    doc: &mut Doc<'_>,
    root: &Section<'_>,
    trunks: &[TrunkInfo],
    config: &Path,
) -> (Vec<RouteConfig>, Vec<Vec<UsageRef>>) {
    let mut by_name: HashMap<&str, &TrunkInfo> = HashMap::new();
    for t in trunks {
        by_name.entry(t.name.as_str()).or_insert(t);
    }
    let trunk_names: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
    let mut names_seen: HashMap<String, (usize, Option<usize>)> = HashMap::new();

    let mut routes = Vec::new();
    let mut route_usages = Vec::new();
    for (i, section) in root.tables(doc, "route").into_iter().enumerate() {
        section.check_keys(doc, KEYS, &[]);

        let name = names::read(doc, &section, "route");
        if let Some(name) = &name {
            if let Some((first, line)) = names_seen.get(name) {
                let at = line.map_or(String::new(), |l| format!(", line {l}"));
                doc.error(
                    section.field(doc, "name").and_then(|f| f.line),
                    &format!("route[{i}].name"),
                    format!("route name {name:?} is already used by route[{first}]{at}; route names must be unique"),
                );
            } else {
                names_seen.insert(name.clone(), (i, section.line));
            }
        }

        let pattern = read_pattern(doc, &section);
        let prefixes = read_prefixes(doc, &section);
        let prefix_file = read_prefix_file(doc, &section, config);
        let written: Vec<_> = NUMBER_KEYS
            .iter()
            .filter_map(|k| section.field(doc, k))
            .collect();
        match written.as_slice() {
            [] => doc.error(
                section.line,
                &section.path,
                "needs the numbers it carries: pattern = '^\\+1\\d{10}$' (a regular \
                 expression on the whole called number), prefixes = [\"+1212\", \"+1646\"] \
                 (\"\" matches every number) or prefix_file = \"us.csv\"",
            ),
            [_] => {}
            [first, rest @ ..] => {
                for f in rest {
                    let at = first
                        .line
                        .map_or(String::new(), |l| format!(" on line {l}"));
                    doc.error(
                        f.line,
                        &f.key,
                        format!(
                            "a route has one of pattern, prefixes and prefix_file (this one \
                             already has {}{at}); split it into several routes",
                            first.key.rsplit('.').next().unwrap_or(&first.key)
                        ),
                    );
                }
            }
        }

        let usage_refs = usages::read(doc, &section, "route");
        let reject = read_action(doc, &section);
        let egress = if reject.is_some() {
            Vec::new()
        } else {
            read_trunks(doc, &section, &by_name, &trunk_names)
        };
        let weights = read_weights(doc, &section, egress.len());
        let caller_id = read_caller_id(doc, &section);
        let route_on_rn = super::trunk::read_route_on(doc, &section);
        let max_duration = super::trunk::read_max_duration(doc, &section);
        let (when, time_zone) = read_when(doc, &section);

        let priority = match section.field(doc, "priority") {
            None => PRIORITY_DEFAULT,
            Some(f) => {
                let n = f.integer(doc, "a whole number (lower goes first; default 100)");
                match n.map(u32::try_from) {
                    Some(Ok(p)) => p,
                    Some(Err(_)) => {
                        doc.error(
                            f.line,
                            &f.key,
                            format!("must be from 0 to {} (lower goes first)", u32::MAX),
                        );
                        PRIORITY_DEFAULT
                    }
                    None => PRIORITY_DEFAULT,
                }
            }
        };

        routes.push(RouteConfig {
            name: name.unwrap_or_default(),
            pattern,
            prefixes,
            prefix_file,
            usages: usage_refs.iter().map(|u| u.name.clone()).collect(),
            trunks: egress,
            weights,
            caller_id,
            priority,
            route_on_rn,
            reject,
            max_duration,
            when,
            time_zone,
            line: section.line.unwrap_or(0),
        });
        route_usages.push(usage_refs);
    }
    (routes, route_usages)
}

/// `action`, and with `action = "reject"` its `code` and `reason`: a reject route answers
/// the calls it matches itself and has no trunks (nor weights or caller_id). `code` and
/// `reason` belong to reject routes only.
fn read_action(doc: &mut Doc<'_>, section: &Section<'_>) -> Option<super::RejectConfig> {
    let reject = match section.field(doc, "action") {
        None => false,
        Some(f) => match f.string(doc, "\"route\" (the default) or \"reject\"") {
            Some("route") => false,
            Some("reject") => true,
            Some(other) => {
                doc.error(
                    f.line,
                    &f.key,
                    format!(
                        "{other:?} is not an action: \"route\" (send the calls to the route's \
                         trunks, the default) or \"reject\" (answer them with `code`)"
                    ),
                );
                false
            }
            None => false,
        },
    };
    if !reject {
        for key in ["code", "reason"] {
            if let Some(f) = section.field(doc, key) {
                doc.error(
                    f.line,
                    &f.key,
                    "only a route with action = \"reject\" has a code and a reason; add \
                     action = \"reject\" or remove it",
                );
            }
        }
        return None;
    }
    for (key, what) in [
        ("trunks", "trunks"),
        ("weights", "weights"),
        ("caller_id", "a caller_id"),
        ("max_duration_s", "max_duration_s"),
    ] {
        if let Some(f) = section.field(doc, key) {
            doc.error(
                f.line,
                &f.key,
                format!(
                    "a route with action = \"reject\" answers its calls itself and has no \
                     {what}; remove it, or remove action = \"reject\""
                ),
            );
        }
    }
    let code = match section.field(doc, "code") {
        None => REJECT_CODE_DEFAULT,
        Some(f) => f
            .integer_in(
                doc,
                400,
                699,
                "a final status from 400 to 699 (the answer to the calls it matches; \
                 default 403)",
            )
            .map_or(REJECT_CODE_DEFAULT, |c| c as u16),
    };
    let reason = section.field(doc, "reason").and_then(|f| {
        let text = f.string(
            doc,
            "a reason phrase in quotes, like \"Premium rate blocked\"",
        )?;
        let ok = !text.trim().is_empty()
            && text.len() <= REJECT_REASON_BYTES_MAX
            && !text.chars().any(char::is_control);
        if !ok {
            doc.error(
                f.line,
                &f.key,
                format!(
                    "{text:?} is not a reason phrase: 1 to {REJECT_REASON_BYTES_MAX} bytes of \
                     text without control characters (no line breaks or tabs)"
                ),
            );
            return None;
        }
        Some(text.trim().to_string())
    });
    Some(super::RejectConfig { code, reason })
}

/// Most windows one route may list.
const WINDOWS_MAX: usize = 64;

/// `when` (time-of-day windows) and `time_zone` (the zone they are in).
fn read_when(doc: &mut Doc<'_>, section: &Section<'_>) -> (Vec<String>, Option<String>) {
    let mut when = Vec::new();
    if let Some(f) = section.field(doc, "when") {
        let list = f
            .strings(
                doc,
                "a list of windows in quotes, like [\"Mon-Fri 08:00-18:00\", \"Sat 09:00-12:00\"]",
            )
            .unwrap_or_default();
        if list.is_empty() && f.item.as_array().is_some_and(|a| a.is_empty()) {
            doc.error(
                f.line,
                &f.key,
                "lists no windows, so the route would never be used; remove `when` for a route \
                 that is always used",
            );
        }
        if list.len() > WINDOWS_MAX {
            doc.error(f.line, &f.key, format!("at most {WINDOWS_MAX} windows"));
        }
        for e in &list {
            match crate::routing::schedule::check_window(e.str()) {
                Ok(()) => when.push(e.str().to_string()),
                Err(m) => doc.error(e.line, &e.key, m),
            }
        }
    }
    let time_zone = section.field(doc, "time_zone").and_then(|f| {
        let name = f.string(
            doc,
            "an IANA time zone name in quotes, like \"Europe/Paris\"",
        )?;
        if let Err(m) = crate::routing::schedule::zone(name) {
            doc.error(f.line, &f.key, m);
            return None;
        }
        if section.field(doc, "when").is_none() {
            doc.error(
                f.line,
                &f.key,
                "is the zone of the route's `when` windows, and it has none; add `when` or \
                 remove it",
            );
        }
        Some(name.to_string())
    });
    (when, time_zone)
}

fn read_prefix_file(
    doc: &mut Doc<'_>,
    section: &Section<'_>,
    config: &Path,
) -> Option<Arc<PrefixFile>> {
    let f = section.field(doc, "prefix_file")?;
    let written = f.string(
        doc,
        "a file name in quotes, like \"us.csv\" (relative to this file's directory)",
    )?;
    if written.trim().is_empty() {
        doc.error(f.line, &f.key, "empty; write a file name like \"us.csv\"");
        return None;
    }
    let path = match config.parent() {
        Some(dir) if Path::new(written).is_relative() => dir.join(written),
        _ => Path::new(written).to_path_buf(),
    };
    let shown = path.display().to_string();
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            doc.error(
                f.line,
                &f.key,
                format!("cannot read the prefix file {shown}: {e}"),
            );
            return None;
        }
    };
    match PrefixFile::parse(&shown, &f.key, &text) {
        Ok(file) => Some(Arc::new(file)),
        Err(errors) => {
            doc.errors.extend(errors);
            None
        }
    }
}

fn read_weights(doc: &mut Doc<'_>, section: &Section<'_>, trunks: usize) -> Vec<u32> {
    let Some(f) = section.field(doc, "weights") else {
        return Vec::new();
    };
    let expected = format!("a whole number from 1 to {WEIGHT_MAX}");
    let Some(list) = f.array(doc, "a list of whole numbers, one per trunk, like [2, 1]") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for e in &list {
        match e.value.as_integer() {
            Some(n) if (1..=i64::from(WEIGHT_MAX)).contains(&n) => out.push(n as u32),
            _ => doc.error(
                e.line,
                &e.key,
                format!(
                    "must be {expected} (a trunk's share of the calls that start on this \
                     route); found {}",
                    super::toml_doc::describe_value(e.value)
                ),
            ),
        }
    }
    let trunks_written = section
        .field(doc, "trunks")
        .and_then(|t| t.item.as_array().map(|a| a.len()));
    if let Some(n) = trunks_written {
        if list.len() != n {
            doc.error(
                f.line,
                &f.key,
                format!(
                    "{} weights for {n} trunks; give one weight per trunk, in the order of \
                     `trunks`",
                    list.len()
                ),
            );
        }
    }
    if out.len() != trunks {
        // Errors were reported; the route is not used.
        return Vec::new();
    }
    out
}

fn read_caller_id(doc: &mut Doc<'_>, section: &Section<'_>) -> Option<String> {
    let f = section.field(doc, "caller_id")?;
    let text = f.string(doc, "a calling number in quotes, like \"+12125550100\"")?;
    let ok =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'*' | b'#' | b'.' | b'_' | b'-');
    if text.is_empty() || text.len() > CALLER_ID_BYTES_MAX || !text.bytes().all(ok) {
        doc.error(
            f.line,
            &f.key,
            format!(
                "{text:?} is not a calling number: use 1 to {CALLER_ID_BYTES_MAX} digits, \
                 letters or + * # . _ -"
            ),
        );
        return None;
    }
    Some(text.to_string())
}

fn read_pattern(doc: &mut Doc<'_>, section: &Section<'_>) -> Option<String> {
    let f = section.field(doc, "pattern")?;
    let text = f.string(
        doc,
        "a regular expression in single quotes, like '^\\+1\\d{10}$'",
    )?;
    match pattern::compile(text) {
        Ok(_) => Some(text.to_string()),
        Err(m) => {
            doc.error(f.line, &f.key, m);
            None
        }
    }
}

fn read_prefixes(doc: &mut Doc<'_>, section: &Section<'_>) -> Vec<String> {
    let Some(f) = section.field(doc, "prefixes") else {
        return Vec::new();
    };
    let Some(list) = f.strings(
        doc,
        "a list of prefixes in quotes, like [\"+1212\", \"+1646\"]",
    ) else {
        return Vec::new();
    };
    if list.is_empty() && f.item.as_array().is_some_and(|a| a.is_empty()) {
        doc.error(
            f.line,
            &f.key,
            "lists no prefixes; write [\"\"] to match every number",
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    let mut seen: HashMap<&str, &Element<'_>> = HashMap::new();
    for e in &list {
        let p = e.str();
        if p.len() > PREFIX_BYTES_MAX {
            doc.error(
                e.line,
                &e.key,
                format!(
                    "{} bytes long; a prefix has at most {PREFIX_BYTES_MAX}",
                    p.len()
                ),
            );
        } else if p
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            doc.error(
                e.line,
                &e.key,
                format!(
                    "{p:?} contains a space or control character, which a called number never has"
                ),
            );
        } else if let Some(first) = seen.get(p) {
            doc.error(
                e.line,
                &e.key,
                format!("{p:?} is listed twice in this route (also {})", first.key),
            );
        } else {
            seen.insert(p, e);
            out.push(p.to_string());
        }
    }
    out
}

fn read_trunks(
    doc: &mut Doc<'_>,
    section: &Section<'_>,
    by_name: &HashMap<&str, &TrunkInfo>,
    trunk_names: &[&str],
) -> Vec<String> {
    let Some(f) = section.field(doc, "trunks") else {
        doc.error(
            section.line,
            &format!("{}.trunks", section.path),
            "missing: the egress trunks, in order, like trunks = [\"gw-a\", \"gw-b\"]",
        );
        return Vec::new();
    };
    let list = f
        .strings(doc, "a list of trunk names, like [\"gw-a\", \"gw-b\"]")
        .unwrap_or_default();
    if list.is_empty() && f.item.as_array().is_some_and(|a| a.is_empty()) {
        doc.error(
            f.line,
            &f.key,
            "lists no trunks; a route needs at least one trunk to send calls to",
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for e in &list {
        let name = e.str();
        match by_name.get(name) {
            None => {
                let mut m = format!("there is no trunk named {name:?}");
                if let Some(near) = super::toml_doc::closest(name, trunk_names) {
                    m.push_str(&format!("; did you mean {near:?}?"));
                }
                doc.error(e.line, &e.key, m);
            }
            Some(_) if out.iter().any(|o| o == name) => doc.error(
                e.line,
                &e.key,
                format!("trunk {name:?} is listed twice in this route"),
            ),
            Some(t) if !t.has_send_to => {
                let at = t.line.map_or(String::new(), |l| format!(", line {l}"));
                doc.error(
                    e.line,
                    &e.key,
                    format!(
                        "trunk {name:?} (trunk[{}]{at}) has no send_to, so calls can never be \
                         sent to it; give it a send_to or remove it from this route",
                        t.index
                    ),
                );
            }
            Some(_) => out.push(name.to_string()),
        }
    }
    out
}
