//! Building the routing table from a configuration.
//!
//! `config::parse` has already validated everything with exact lines and keys; this re-checks
//! what it relies on (so a `Config` built by hand cannot make a table that misbehaves) and
//! reports problems at the trunk's or route's line.

use std::collections::HashMap;
use std::time::Duration;

use super::pattern;
use super::peer::{PeerAddr, PeerIndex};
use super::prefix::{PrefixTrie, PREFIX_BYTES_MAX};
use super::{Patterns, Route, RoutingTable, Trunk, TrunkId};
use crate::config::{Config, ConfigError};

/// Trunk ids are `u16`.
pub const TRUNKS_MAX: usize = u16::MAX as usize;
/// Route indices are `u16` (`Decision::Route::route`).
pub const ROUTES_MAX: usize = u16::MAX as usize;

struct Errors<'a> {
    file: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn add(&mut self, line: usize, key: String, message: String) {
        self.list.push(ConfigError {
            file: self.file.to_string(),
            line: (line > 0).then_some(line),
            key,
            message,
        });
    }
}

impl RoutingTable {
    /// Compile a validated configuration.
    pub fn compile(config: &Config) -> Result<RoutingTable, Vec<ConfigError>> {
        let mut errors = Errors {
            file: &config.source,
            list: Vec::new(),
        };
        if config.trunks.len() > TRUNKS_MAX {
            errors.add(
                0,
                "trunk".into(),
                format!("{} trunks; at most {TRUNKS_MAX}", config.trunks.len()),
            );
        }
        if config.routes.len() > ROUTES_MAX {
            errors.add(
                0,
                "route".into(),
                format!("{} routes; at most {ROUTES_MAX}", config.routes.len()),
            );
        }
        if !errors.list.is_empty() {
            return Err(errors.list);
        }

        let mut trunks = Vec::with_capacity(config.trunks.len());
        let mut by_name: HashMap<&str, TrunkId> = HashMap::new();
        let mut peers = PeerIndex::default();
        for (i, t) in config.trunks.iter().enumerate() {
            let id = TrunkId(i as u16);
            if by_name.insert(&t.name, id).is_some() {
                errors.add(
                    t.line,
                    format!("trunk[{i}].name"),
                    format!("trunk name {:?} is used twice", t.name),
                );
            }
            for (j, text) in t.peers.iter().enumerate() {
                match PeerAddr::parse(text) {
                    Ok(addr) => match peers.insert(addr, id) {
                        Err(other) if other != id => errors.add(
                            t.line,
                            format!("trunk[{i}].peers[{j}]"),
                            format!(
                                "{addr} is also a peer of trunk {:?}",
                                config.trunks.get(other.0 as usize).map_or("?", |o| &o.name)
                            ),
                        ),
                        _ => {}
                    },
                    Err(message) => errors.add(t.line, format!("trunk[{i}].peers[{j}]"), message),
                }
            }
            trunks.push(Trunk {
                name: t.name.clone(),
                send_to: t.send_to,
                remove_plus: false,
                forward_pai: true,
                progress_timeout: Duration::from_secs(10),
                max_calls: None,
                max_cps: None,
                max_early: None,
                probe: None,
            });
        }

        let mut routes = Vec::with_capacity(config.routes.len());
        let mut prefix_pairs = Vec::new();
        let mut pattern_routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let index = i as u16;
            let mut egress = Vec::new();
            for (j, name) in r.trunks.iter().enumerate() {
                match by_name.get(name.as_str()) {
                    None => errors.add(
                        r.line,
                        format!("route[{i}].trunks[{j}]"),
                        format!("no trunk is named {name:?}"),
                    ),
                    Some(&id) => {
                        let usable = trunks
                            .get(id.0 as usize)
                            .is_some_and(|t| t.send_to.is_some());
                        if usable && !egress.contains(&id) {
                            egress.push(id);
                        }
                    }
                }
            }
            if egress.is_empty() {
                errors.add(
                    r.line,
                    format!("route[{i}].trunks"),
                    "no trunk of this route has a send_to, so it can never carry a call".into(),
                );
            }
            match (&r.pattern, r.prefixes.is_empty()) {
                (Some(_), false) => errors.add(
                    r.line,
                    format!("route[{i}]"),
                    "has both pattern and prefixes; use one".into(),
                ),
                (None, true) => errors.add(
                    r.line,
                    format!("route[{i}]"),
                    "has neither pattern nor prefixes".into(),
                ),
                (Some(p), true) => match pattern::compile(p) {
                    Ok(re) => pattern_routes.push((index, p.as_str(), re)),
                    Err(message) => errors.add(r.line, format!("route[{i}].pattern"), message),
                },
                (None, false) => {
                    for (j, p) in r.prefixes.iter().enumerate() {
                        if p.len() > PREFIX_BYTES_MAX {
                            errors.add(
                                r.line,
                                format!("route[{i}].prefixes[{j}]"),
                                format!("longer than {PREFIX_BYTES_MAX} bytes"),
                            );
                        } else {
                            prefix_pairs.push((p.as_bytes().to_vec(), index));
                        }
                    }
                }
            }
            routes.push(Route {
                name: r.name.clone(),
                priority: r.priority,
                trunks: egress,
            });
        }

        // Ties in priority keep file order: rank = (priority, index).
        let rank = |route: u16| -> u64 {
            let priority = routes.get(route as usize).map_or(u32::MAX, |r| r.priority);
            (u64::from(priority) << 16) | u64::from(route)
        };
        pattern_routes.sort_by_key(|(route, _, _)| rank(*route));
        let any = if pattern_routes.is_empty() {
            None
        } else {
            match pattern::compile_set(pattern_routes.iter().map(|(_, p, _)| *p)) {
                Ok(set) => Some(set),
                Err(message) => {
                    errors.add(
                        0,
                        "route".into(),
                        format!("the pattern routes together cannot be compiled: {message}"),
                    );
                    None
                }
            }
        };
        let prefixes = match PrefixTrie::build(prefix_pairs, rank) {
            Ok(trie) => trie,
            Err(message) => {
                errors.add(0, "route".into(), message);
                PrefixTrie::empty()
            }
        };

        if !errors.list.is_empty() {
            return Err(errors.list);
        }
        Ok(RoutingTable {
            trunks,
            peers,
            prefixes,
            patterns: Patterns {
                any,
                ordered: pattern_routes
                    .into_iter()
                    .map(|(route, _, re)| (route, re))
                    .collect(),
            },
            routes,
        })
    }
}
