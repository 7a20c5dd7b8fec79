//! The `[[trunk]]` sections: names, peer addresses, where calls to the trunk go.

use std::collections::HashMap;

use super::toml_doc::{Doc, Section};
use super::{addr, names, TrunkConfig};
use crate::routing::peer::PeerAddr;

const KEYS: &[&str] = &["name", "peers", "send_to"];
/// Trunk settings of the full inter-trunk model (ROUTING.md), not read by this version.
const LATER: &[&str] = &[
    "usages",
    "inbound",
    "outbound_called",
    "outbound_calling",
    "response_codes",
    "remove_plus",
    "forward_pai",
    "progress_timeout_s",
    "max_calls",
    "max_cps",
    "max_early",
    "probe",
    "transport",
];

/// What `route.rs` needs to know about the trunks it refers to.
pub struct TrunkInfo {
    pub name: String,
    pub index: usize,
    pub line: Option<usize>,
    pub has_send_to: bool,
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

        infos.push(TrunkInfo {
            name: name.clone().unwrap_or_default(),
            index: i,
            line: section.line,
            has_send_to,
        });
        trunks.push(TrunkConfig {
            name: name.unwrap_or_default(),
            peers,
            send_to,
            line: section.line.unwrap_or(0),
        });
    }
    (trunks, infos)
}
