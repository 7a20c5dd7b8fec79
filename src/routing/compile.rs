//! Building the routing table from a configuration.
//!
//! `config::parse` has already validated everything with exact lines and keys; this re-checks
//! what it relies on (so a `Config` built by hand cannot make a table that misbehaves) and
//! reports problems at the trunk's or route's line.

use std::collections::HashMap;

use super::pattern;
use super::peer::{PeerAddr, PeerIndex};
use super::prefix::{PrefixTrie, PREFIX_BYTES_MAX};
use super::rule::{Rule, RuleError};
use super::{Patterns, ResponseRule, Route, RoutingTable, Trunk, TrunkId};
use crate::config::{Config, ConfigError, RuleConfig, RuleNumbers};

/// Trunk ids are `u16`.
pub const TRUNKS_MAX: usize = u16::MAX as usize;
/// Route indices are `u16` (`Decision::Route::route`; `u16::MAX` is `NO_ROUTE`).
pub const ROUTES_MAX: usize = u16::MAX as usize;
/// Usage ids are `u16`.
pub const USAGES_MAX: usize = u16::MAX as usize;

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

        // Usage ids, in order of first mention (trunks, then routes).
        let mut usage_names: Vec<String> = Vec::new();
        let mut usage_ids: HashMap<String, u16> = HashMap::new();
        let mut usage_id = |name: &str, errors: &mut Errors<'_>, line: usize, key: String| {
            if let Some(&id) = usage_ids.get(name) {
                return Some(id);
            }
            if usage_names.len() >= USAGES_MAX {
                errors.add(line, key, format!("more than {USAGES_MAX} usages"));
                return None;
            }
            let id = usage_names.len() as u16;
            usage_names.push(name.to_string());
            usage_ids.insert(name.to_string(), id);
            Some(id)
        };
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
            let usages = t.usages.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(j, u)| {
                        usage_id(u, &mut errors, t.line, format!("trunk[{i}].usages[{j}]"))
                    })
                    .collect::<Vec<u16>>()
            });
            let mut rules = |list: &[RuleConfig], key: &str| -> Vec<(Rule, RuleNumbers)> {
                list.iter()
                    .enumerate()
                    .filter_map(|(j, r)| match Rule::compile(&r.pattern, &r.replace) {
                        Ok(rule) => Some((rule, r.numbers)),
                        Err(RuleError::Pattern(m)) => {
                            errors.add(r.line, format!("trunk[{i}].{key}[{j}].match"), m);
                            None
                        }
                        Err(RuleError::Replace(m)) => {
                            errors.add(r.line, format!("trunk[{i}].{key}[{j}].replace"), m);
                            None
                        }
                    })
                    .collect()
            };
            let inbound = rules(&t.inbound, "inbound")
                .into_iter()
                .map(|(rule, n)| {
                    let called = n != RuleNumbers::Calling;
                    let calling = n != RuleNumbers::Called;
                    (rule, called, calling)
                })
                .collect();
            let outbound_called = rules(&t.outbound_called, "outbound_called")
                .into_iter()
                .map(|(rule, _)| rule)
                .collect();
            let outbound_calling = rules(&t.outbound_calling, "outbound_calling")
                .into_iter()
                .map(|(rule, _)| rule)
                .collect();
            trunks.push(Trunk {
                name: t.name.clone(),
                send_to: t.send_to,
                remove_plus: t.remove_plus,
                forward_pai: t.forward_pai,
                overload_control: t.overload_control,
                progress_timeout: t.progress_timeout,
                max_calls: t.max_calls,
                max_cps: t.max_cps,
                max_early: t.max_early,
                max_calls_in: t.max_calls_in,
                max_cps_in: t.max_cps_in,
                refuse_in_code: t.refuse_in_code,
                down_after_failures: t.down_after_failures,
                max_duration: t.max_duration,
                probe: t.probe,
                trusted: t.trusted,
                identity: t.identity,
                diversion: t.diversion,
                history_info: t.history_info,
                route_on_rn: t.route_on_rn,
                usages,
                inbound,
                outbound_called,
                outbound_calling,
                response_codes: t
                    .response_codes
                    .iter()
                    .map(|r| ResponseRule {
                        code: r.code,
                        cause: r.cause,
                        to: r.to,
                    })
                    .collect(),
            });
        }

        let mut routes = Vec::with_capacity(config.routes.len());
        let prefixes_total: usize = config
            .routes
            .iter()
            .map(|r| r.prefixes.len() + r.prefix_file.as_ref().map_or(0, |f| f.len()))
            .sum();
        let mut prefix_pairs: Vec<(&[u8], u16)> = Vec::with_capacity(prefixes_total);
        let mut pattern_routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let index = i as u16;
            let mut egress = Vec::new();
            let mut weights = Vec::new();
            if r.reject.is_some() && !r.trunks.is_empty() {
                errors.add(
                    r.line,
                    format!("route[{i}].trunks"),
                    "a reject route has no trunks".into(),
                );
            }
            if let Some(code) = r.reject.as_ref().map(|x| x.code) {
                if !(400..=699).contains(&code) {
                    errors.add(
                        r.line,
                        format!("route[{i}].code"),
                        format!("{code} is not a final status from 400 to 699"),
                    );
                }
            }
            if !r.weights.is_empty() && r.weights.len() != r.trunks.len() {
                errors.add(
                    r.line,
                    format!("route[{i}].weights"),
                    format!("{} weights for {} trunks", r.weights.len(), r.trunks.len()),
                );
            }
            if r.weights.contains(&0) {
                errors.add(
                    r.line,
                    format!("route[{i}].weights"),
                    "a weight of 0 never starts a call; weights are at least 1".into(),
                );
            }
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
                            weights.push(r.weights.get(j).copied().unwrap_or(1));
                        }
                    }
                }
            }
            if egress.is_empty() && r.reject.is_none() {
                errors.add(
                    r.line,
                    format!("route[{i}].trunks"),
                    "no trunk of this route has a send_to, so it can never carry a call".into(),
                );
            }
            let sources = usize::from(r.pattern.is_some())
                + usize::from(!r.prefixes.is_empty())
                + usize::from(r.prefix_file.is_some());
            if sources != 1 {
                errors.add(
                    r.line,
                    format!("route[{i}]"),
                    "needs exactly one of pattern, prefixes and prefix_file".into(),
                );
            }
            if let Some(p) = &r.pattern {
                match pattern::compile(p) {
                    Ok(re) => pattern_routes.push((index, p.as_str(), re)),
                    Err(message) => errors.add(r.line, format!("route[{i}].pattern"), message),
                }
            }
            let listed = r.prefixes.iter().map(|p| p.as_bytes());
            let from_file = r.prefix_file.iter().flat_map(|f| f.iter());
            for (j, p) in listed.chain(from_file).enumerate() {
                if p.len() > PREFIX_BYTES_MAX {
                    errors.add(
                        r.line,
                        format!("route[{i}].prefixes[{j}]"),
                        format!("longer than {PREFIX_BYTES_MAX} bytes"),
                    );
                } else {
                    prefix_pairs.push((p, index));
                }
            }
            let route_usages = r
                .usages
                .iter()
                .enumerate()
                .filter_map(|(j, u)| {
                    usage_id(u, &mut errors, r.line, format!("route[{i}].usages[{j}]"))
                })
                .collect();
            let weighted = weights.iter().any(|&w| w != 1);
            routes.push(Route {
                name: std::sync::Arc::from(r.name.as_str()),
                priority: r.priority,
                trunks: egress,
                weight_total: if weighted {
                    weights.iter().map(|&w| u64::from(w)).sum()
                } else {
                    0
                },
                weights: if weighted { weights } else { Vec::new() },
                usages: route_usages,
                caller_id: r.caller_id.as_ref().map(|c| c.as_bytes().to_vec()),
                route_on_rn: r.route_on_rn,
                max_duration: r.max_duration,
                schedule: if r.when.is_empty() {
                    None
                } else {
                    match super::schedule::Schedule::new(
                        r.time_zone.as_deref().unwrap_or("UTC"),
                        &r.when,
                    ) {
                        Ok(s) => Some(Box::new(s)),
                        Err(message) => {
                            errors.add(r.line, format!("route[{i}].when"), message);
                            None
                        }
                    }
                },
                reject: r.reject.as_ref().map(|x| super::Reject {
                    code: x.code,
                    reason: x.reason.as_deref().map(Box::from),
                }),
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
            routes_on_rn: config.routes.iter().any(|r| r.route_on_rn),
            routes,
            usage_names,
            unknown_source: config.server.unknown_source,
            overload_feedback: config.server.overload_feedback,
            retry_after_s: config.server.retry_after_s,
            failover_after_provisional: config.routing.failover_after_provisional,
            flood: config.flood,
            input_limits: config.limits,
        })
    }
}
