//! XML text to a checked `Scenario`. Every element and attribute is on an allow-list; the
//! error for anything else names it and gives its line.

use super::template::Template;
use super::{Expect, Optional, Role, Scenario, Step};
use crate::limits::{DELAY_MS_MAX, SCENARIO_FILE_MAX, SCENARIO_STEPS_MAX};
use crate::time::{Micros, MS};
use roxmltree::{Document, Node};
use std::collections::HashMap;

/// Attributes that only feed SIPp's own statistics or screen: accepted and ignored.
const DISPLAY_ONLY: &[&str] = &["rtd", "start_rtd", "repeat_rtd", "crlf", "display", "hide"];

fn allowed(elem: &str) -> Option<&'static [&'static str]> {
    Some(match elem {
        "send" => &["retrans", "next"],
        "recv" => &[
            "request",
            "response",
            "optional",
            "rrs",
            "advance_state",
            "timeout",
            "ontimeout",
            "next",
        ],
        "pause" => &["milliseconds", "next"],
        "nop" => &["next"],
        "label" => &["id"],
        "timewait" => &["milliseconds"],
        "ResponseTimeRepartition" | "CallLengthRepartition" => &["value"],
        _ => return None,
    })
}

fn line_of(doc: &Document, n: Node) -> u32 {
    doc.text_pos_at(n.range().start).row
}

fn err(doc: &Document, n: Node, msg: String) -> String {
    format!("line {}: <{}>: {msg}", line_of(doc, n), n.tag_name().name())
}

fn ms_attr(doc: &Document, n: Node, name: &str) -> Result<Option<Micros>, String> {
    match n.attribute(name) {
        None => Ok(None),
        Some(v) => {
            let ms: u64 = v.trim().parse().map_err(|_| {
                err(
                    doc,
                    n,
                    format!("{name}=\"{v}\" is not a number of milliseconds"),
                )
            })?;
            if ms > DELAY_MS_MAX {
                return Err(err(doc, n, format!("{name}: at most {DELAY_MS_MAX} ms")));
            }
            Ok(Some(ms * MS))
        }
    }
}

fn bool_attr(doc: &Document, n: Node, name: &str) -> Result<bool, String> {
    match n.attribute(name) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(err(
            doc,
            n,
            format!("{name}=\"{v}\": expected true or false"),
        )),
    }
}

/// Decode the file: UTF-8, or ISO-8859-1 as SIPp scenarios usually declare.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

pub fn parse(bytes: &[u8]) -> Result<Scenario, String> {
    if bytes.len() > SCENARIO_FILE_MAX {
        return Err(format!("larger than {SCENARIO_FILE_MAX} bytes"));
    }
    let text = text_of(bytes);
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = Document::parse_with_options(&text, opts)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "scenario" {
        return Err(err(
            &doc,
            root,
            "the root element must be <scenario>".into(),
        ));
    }
    let name = root.attribute("name").unwrap_or("").to_string();
    // First pass: check every element, note labels (a label names the next step).
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut count = 0usize;
    for n in root.children().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        let Some(attrs) = allowed(tag) else {
            return Err(err(&doc, n, "element not supported by junction-load (the SIPp subset is send, recv, pause, nop, label, timewait)".into()));
        };
        for a in n.attributes() {
            if !attrs.contains(&a.name()) && !DISPLAY_ONLY.contains(&a.name()) {
                return Err(err(
                    &doc,
                    n,
                    format!("attribute {}=\"{}\" not supported", a.name(), a.value()),
                ));
            }
        }
        if let Some(child) = n.children().find(|c| c.is_element()) {
            return Err(err(
                &doc,
                child,
                format!("not supported inside <{tag}> (line {})", line_of(&doc, n)),
            ));
        }
        match tag {
            "label" => {
                let id = n
                    .attribute("id")
                    .ok_or_else(|| err(&doc, n, "id is required".into()))?;
                if labels.insert(id.to_string(), count).is_some() {
                    return Err(err(&doc, n, format!("label \"{id}\" defined twice")));
                }
            }
            "ResponseTimeRepartition" | "CallLengthRepartition" => {}
            _ => count += 1,
        }
    }
    if count == 0 {
        return Err("the scenario has no steps".into());
    }
    if count > SCENARIO_STEPS_MAX {
        return Err(format!("more than {SCENARIO_STEPS_MAX} steps"));
    }
    let jump = |n: Node, attr: &str| -> Result<Option<usize>, String> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(l) => labels
                .get(l)
                .copied()
                .map(Some)
                .ok_or_else(|| err(&doc, n, format!("{attr}=\"{l}\": no such label"))),
        }
    };
    let mut steps = Vec::with_capacity(count);
    for n in root.children().filter(|n| n.is_element()) {
        let step = match n.tag_name().name() {
            "send" => {
                let body: String = n
                    .children()
                    .filter(|c| c.is_text())
                    .filter_map(|c| c.text())
                    .collect();
                let msg = Template::compile(&body).map_err(|e| err(&doc, n, e))?;
                Step::Send {
                    msg,
                    retrans: ms_attr(&doc, n, "retrans")?,
                    next: jump(n, "next")?,
                }
            }
            "recv" => {
                let expect = match (n.attribute("request"), n.attribute("response")) {
                    (Some(m), None) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => Expect::Request(m.as_bytes().to_vec()),
                    (None, Some(c)) => {
                        let code: u16 = c.trim().parse().map_err(|_| err(&doc, n, format!("response=\"{c}\" is not a status code")))?;
                        if !(100..700).contains(&code) {
                            return Err(err(&doc, n, format!("response=\"{c}\" is not a status code")));
                        }
                        Expect::Response(code)
                    }
                    (Some(m), None) => return Err(err(&doc, n, format!("request=\"{m}\" is not a method name (regular expressions are not supported)"))),
                    _ => return Err(err(&doc, n, "exactly one of request and response is required".into())),
                };
                let optional = match n.attribute("optional") {
                    None | Some("false") => Optional::No,
                    Some("true") => Optional::Yes,
                    Some("global") => Optional::Global,
                    Some(v) => {
                        return Err(err(
                            &doc,
                            n,
                            format!("optional=\"{v}\": expected true, false or global"),
                        ))
                    }
                };
                let advance = match n.attribute("advance_state") {
                    None => true,
                    Some(_) => bool_attr(&doc, n, "advance_state")?,
                };
                Step::Recv {
                    expect,
                    optional,
                    rrs: bool_attr(&doc, n, "rrs")?,
                    advance,
                    timeout: ms_attr(&doc, n, "timeout")?,
                    on_timeout: jump(n, "ontimeout")?,
                    next: jump(n, "next")?,
                }
            }
            "pause" => Step::Pause {
                ms: ms_attr(&doc, n, "milliseconds")?,
                next: jump(n, "next")?,
            },
            "nop" => Step::Nop {
                next: jump(n, "next")?,
            },
            "timewait" => Step::Timewait {
                ms: ms_attr(&doc, n, "milliseconds")?.unwrap_or(0),
            },
            _ => continue,
        };
        steps.push(step);
    }
    let role = match steps.first() {
        Some(Step::Send { .. }) => Role::Uac,
        Some(Step::Recv {
            optional: Optional::No,
            ..
        }) => Role::Uas,
        _ => return Err(
            "the first step must be <send> (a UAC scenario) or a mandatory <recv> (a UAS scenario)"
                .into(),
        ),
    };
    Ok(Scenario { name, steps, role })
}
