//! The `[[route]]` sections: which called numbers (a pattern or prefixes), which egress trunks
//! in which order, and the priority among routes.

use std::collections::HashMap;

use super::toml_doc::{Doc, Element, Section};
use super::trunk::TrunkInfo;
use super::{names, RouteConfig};
use crate::routing::pattern;
use crate::routing::prefix::PREFIX_BYTES_MAX;

const KEYS: &[&str] = &["name", "pattern", "prefixes", "trunks", "priority"];
/// Route settings of the full inter-trunk model (ROUTING.md), not read by this version.
const LATER: &[&str] = &["usages", "prefix_file", "caller_id", "weights"];

/// Priority of a route that does not say (lower goes first).
pub const PRIORITY_DEFAULT: u32 = 100;

/// Read every `[[route]]`, checking names, numbers and the trunks they refer to.
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>, trunks: &[TrunkInfo]) -> Vec<RouteConfig> {
    let mut by_name: HashMap<&str, &TrunkInfo> = HashMap::new();
    for t in trunks {
        by_name.entry(t.name.as_str()).or_insert(t);
    }
    let trunk_names: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
    let mut names_seen: HashMap<String, (usize, Option<usize>)> = HashMap::new();

    let mut routes = Vec::new();
    for (i, section) in root.tables(doc, "route").into_iter().enumerate() {
        section.check_keys(doc, KEYS, LATER);

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
        let pattern_field = section.field(doc, "pattern");
        let prefixes_field = section.field(doc, "prefixes");
        match (&pattern_field, &prefixes_field) {
            (Some(p), Some(f)) => {
                let at = p.line.map_or(String::new(), |l| format!(" on line {l}"));
                doc.error(
                    f.line,
                    &f.key,
                    format!(
                        "a route has a pattern or prefixes, not both (its pattern is{at}); \
                         split it into two routes"
                    ),
                );
            }
            (None, None) => doc.error(
                section.line,
                &section.path,
                "needs the numbers it carries: pattern = '^\\+1\\d{10}$' (a regular \
                 expression on the whole called number) or prefixes = [\"+1212\", \"+1646\"] \
                 (\"\" matches every number)",
            ),
            _ => {}
        }

        let egress = read_trunks(doc, &section, &by_name, &trunk_names);

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
            trunks: egress,
            priority,
            line: section.line.unwrap_or(0),
        });
    }
    routes
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
