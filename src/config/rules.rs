//! A trunk's rule lists: number rules (`inbound`, `outbound_called`, `outbound_calling`) and
//! response-code rules (`response_codes`). Each rule is checked on its own (pattern,
//! replacement, codes) and against the rules before it (a rule that can never apply is an
//! error: it is always a mistake).

use super::toml_doc::{describe, Doc, Section};
use super::{ResponseCodeConfig, RuleConfig, RuleNumbers};
use crate::routing::rule::{Rule, RuleError};

const RULE_KEYS: &[&str] = &["match", "replace", "number"];
const RESPONSE_KEYS: &[&str] = &["code", "cause", "to"];

/// Lowest and highest final response codes a rule may name (2xx cannot be translated).
const CODE_MIN: i64 = 300;
const CODE_MAX: i64 = 699;
/// Q.850 cause values.
const CAUSE_MIN: i64 = 1;
const CAUSE_MAX: i64 = 127;

/// The elements of a list of inline tables `key = [{ ... }, ...]` (or `[[trunk.key]]`).
fn rule_tables<'t>(
    doc: &mut Doc<'_>,
    section: &Section<'t>,
    key: &str,
    example: &str,
) -> Vec<Section<'t>> {
    let Some(f) = section.field(doc, key) else {
        return Vec::new();
    };
    if !f.item.is_array() && !f.item.is_array_of_tables() {
        let found = describe(f.item);
        doc.error(
            f.line,
            &f.key,
            format!("must be a list of rules like {example}; found {found}"),
        );
        return Vec::new();
    }
    section.tables(doc, key)
}

/// Read a list of number rules. `inbound` lists may say which number each rule is for.
pub fn read_rules(
    doc: &mut Doc<'_>,
    section: &Section<'_>,
    key: &str,
    inbound: bool,
) -> Vec<RuleConfig> {
    let example = "[{ match = '^(\\d{4})$', replace = '+1212555${1}' }]";
    let mut out = Vec::new();
    for rule in rule_tables(doc, section, key, example) {
        rule.check_keys(doc, RULE_KEYS, &[]);
        let line = rule.line.unwrap_or(0);
        let text = |doc: &mut Doc<'_>, name: &str, what: &str| -> Option<(String, Option<usize>)> {
            match rule.field(doc, name) {
                Some(f) => f.string(doc, what).map(|s| (s.to_string(), f.line)),
                None => {
                    doc.error(
                        rule.line,
                        &format!("{}.{name}", rule.path),
                        format!("missing: every rule needs {name} = {what}"),
                    );
                    None
                }
            }
        };
        let pattern = text(
            doc,
            "match",
            "a regular expression in single quotes, like '^\\+1(\\d{10})$'",
        );
        let replace = text(
            doc,
            "replace",
            "the new number in single quotes, like '${1}'",
        );
        let numbers = read_numbers(doc, &rule, inbound);
        let (Some((pattern, pattern_line)), Some((replace, replace_line))) = (pattern, replace)
        else {
            continue;
        };
        match Rule::compile(&pattern, &replace) {
            Ok(_) => out.push(RuleConfig {
                pattern,
                replace,
                numbers,
                line,
            }),
            Err(RuleError::Pattern(m)) => {
                doc.error(pattern_line, &format!("{}.match", rule.path), m);
            }
            Err(RuleError::Replace(m)) => {
                doc.error(replace_line, &format!("{}.replace", rule.path), m);
            }
        }
    }
    out
}

fn read_numbers(doc: &mut Doc<'_>, rule: &Section<'_>, inbound: bool) -> RuleNumbers {
    let Some(f) = rule.field(doc, "number") else {
        return RuleNumbers::Both;
    };
    if !inbound {
        doc.error(
            f.line,
            &f.key,
            "only inbound rules say which number they are for: outbound_called rules \
             translate the called number, outbound_calling rules the calling number",
        );
        return RuleNumbers::Both;
    }
    const EXPECTED: &str = "\"called\", \"calling\" or \"both\" (the default)";
    match f.string(doc, EXPECTED) {
        Some("called") => RuleNumbers::Called,
        Some("calling") => RuleNumbers::Calling,
        Some("both") | None => RuleNumbers::Both,
        Some(other) => {
            doc.error(f.line, &f.key, format!("{other:?}: must be {EXPECTED}"));
            RuleNumbers::Both
        }
    }
}

/// Read `response_codes`.
pub fn read_response_codes(doc: &mut Doc<'_>, section: &Section<'_>) -> Vec<ResponseCodeConfig> {
    let example = "[{ code = 486, cause = 34, to = 503 }]";
    let mut out: Vec<(ResponseCodeConfig, String)> = Vec::new();
    for rule in rule_tables(doc, section, "response_codes", example) {
        rule.check_keys(doc, RESPONSE_KEYS, &[]);
        let code_range = format!("a final response code from {CODE_MIN} to {CODE_MAX}");
        let code = required_code(doc, &rule, "code", &code_range);
        let to = required_code(doc, &rule, "to", &code_range);
        let cause = rule.field(doc, "cause").and_then(|f| {
            f.integer_in(
                doc,
                CAUSE_MIN,
                CAUSE_MAX,
                &format!("a Q.850 cause from {CAUSE_MIN} to {CAUSE_MAX}"),
            )
            .and_then(|n| u16::try_from(n).ok())
        });
        let cause_written = rule.field(doc, "cause").is_some();
        let (Some(code), Some(to)) = (code, to) else {
            continue;
        };
        if cause_written && cause.is_none() {
            continue;
        }
        let line = rule.line.unwrap_or(0);
        if code == to && cause.is_none() {
            doc.error(
                rule.line,
                &rule.path,
                format!("translates {code} to itself; remove the rule"),
            );
            continue;
        }
        // A rule is never reached when an earlier rule matches every response it matches.
        let shadow = out.iter().find(|(earlier, _)| {
            earlier.code == code && (earlier.cause.is_none() || earlier.cause == cause)
        });
        if let Some((earlier, path)) = shadow {
            let what = match earlier.cause {
                Some(c) => format!("{code} with cause {c}"),
                None => format!("every {code}"),
            };
            doc.error(
                rule.line,
                &rule.path,
                format!(
                    "never applies: {path} (line {}) already translates {what}; put the rule \
                     with a cause first",
                    earlier.line
                ),
            );
            continue;
        }
        out.push((
            ResponseCodeConfig {
                code,
                cause,
                to,
                line,
            },
            rule.path.clone(),
        ));
    }
    out.into_iter().map(|(r, _)| r).collect()
}

fn required_code(doc: &mut Doc<'_>, rule: &Section<'_>, key: &str, expected: &str) -> Option<u16> {
    let Some(f) = rule.field(doc, key) else {
        doc.error(
            rule.line,
            &format!("{}.{key}", rule.path),
            format!("missing: {expected}, like {{ code = 486, cause = 34, to = 503 }}"),
        );
        return None;
    };
    f.integer_in(doc, CODE_MIN, CODE_MAX, expected)
        .and_then(|n| u16::try_from(n).ok())
}
