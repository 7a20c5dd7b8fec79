//! Usages: the labels that join trunks to routes. A trunk lists the usages its calls walk, in
//! order; a route lists the usages it carries. A label is only a name, so a misspelt one
//! would silently route nothing: every usage a trunk lists must be carried by some route,
//! and every usage a route carries must be listed by some trunk.

use std::collections::BTreeSet;

use super::names;
use super::toml_doc::{closest, Doc, Section};
use super::trunk::TrunkInfo;

/// One usage named in a trunk's or route's `usages`, and where.
#[derive(Clone, Debug)]
pub struct UsageRef {
    pub name: String,
    pub line: Option<usize>,
    pub key: String,
}

/// Read `usages` of a trunk or route (`what`): a non-empty list of distinct names.
pub fn read(doc: &mut Doc<'_>, section: &Section<'_>, what: &str) -> Vec<UsageRef> {
    let Some(f) = section.field(doc, "usages") else {
        return Vec::new();
    };
    let Some(list) = f.strings(doc, "a list of usage names, like [\"local\", \"national\"]") else {
        return Vec::new();
    };
    if f.item.as_array().is_some_and(|a| a.is_empty()) {
        let meaning = if what == "trunk" {
            "a trunk without `usages` may use every route"
        } else {
            "a route without `usages` serves the trunks that have none"
        };
        doc.error(
            f.line,
            &f.key,
            format!("lists no usages; omit the key instead ({meaning})"),
        );
    }
    let mut out: Vec<UsageRef> = Vec::with_capacity(list.len());
    for e in list {
        let name = e.str();
        if !names::is_valid(name) {
            doc.error(
                e.line,
                &e.key,
                format!(
                    "{name:?} is not a valid usage name: use 1 to {} letters, digits, '_', '.' \
                     or '-'",
                    names::NAME_BYTES_MAX
                ),
            );
        } else if let Some(first) = out.iter().find(|u| u.name == name) {
            doc.error(
                e.line,
                &e.key,
                format!("usage {name:?} is listed twice (also {})", first.key),
            );
        } else {
            out.push(UsageRef {
                name: name.to_string(),
                line: e.line,
                key: e.key,
            });
        }
    }
    out
}

/// Every usage of a trunk must be carried by a route, and every usage of a route listed by a
/// trunk.
pub fn check(doc: &mut Doc<'_>, trunks: &[TrunkInfo], routes: &[Vec<UsageRef>]) {
    let carried: BTreeSet<&str> = routes.iter().flatten().map(|u| u.name.as_str()).collect();
    let listed: BTreeSet<&str> = trunks
        .iter()
        .flat_map(|t| &t.usages)
        .map(|u| u.name.as_str())
        .collect();
    let mut errors = Vec::new();
    for u in trunks.iter().flat_map(|t| &t.usages) {
        if !carried.contains(u.name.as_str()) {
            errors.push((
                u,
                unknown(&u.name, "route carries", "routes carry", &carried),
            ));
        }
    }
    for u in routes.iter().flatten() {
        if !listed.contains(u.name.as_str()) {
            errors.push((u, unknown(&u.name, "trunk lists", "trunks list", &listed)));
        }
    }
    for (u, message) in errors {
        doc.error(u.line, &u.key, message);
    }
}

fn unknown(name: &str, one: &str, all: &str, known: &BTreeSet<&str>) -> String {
    let mut m = format!("unknown usage {name:?}: no {one} it");
    if known.is_empty() {
        m.push_str(&format!(" (no {all} any usage)"));
        return m;
    }
    let list: Vec<&str> = known.iter().copied().collect();
    m.push_str(&format!(
        " (the {all}: {})",
        list.iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(near) = closest(name, &list) {
        m.push_str(&format!("; did you mean {near:?}?"));
    }
    m
}
