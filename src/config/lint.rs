//! Warnings about a configuration that is valid but probably not what was meant: routes no
//! trunk can use, routes another route shadows completely (no number can reach them), and
//! routes that can send a call to a trunk that can itself use the route while other trunks
//! remain to loop through (hairpin risk). `junction check` prints them; they never stop junction from running.

use super::{Config, ConfigError, RouteConfig, TrunkConfig};

/// Whether calls from `trunk` may take `route` (the usage rule of the routing model).
pub fn can_use(trunk: &TrunkConfig, route: &RouteConfig) -> bool {
    match &trunk.usages {
        None => true,
        Some(usages) => route.usages.iter().any(|u| usages.contains(u)),
    }
}

/// Every warning, in file order.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut warn = |line: usize, key: String, message: String| {
        out.push(ConfigError {
            file: config.source.clone(),
            line: (line > 0).then_some(line),
            key,
            message,
        });
    };
    // Only trunks with peers send calls to junction.
    let senders: Vec<&TrunkConfig> = config
        .trunks
        .iter()
        .filter(|t| !t.peers.is_empty())
        .collect();
    for (i, route) in config.routes.iter().enumerate() {
        let users: Vec<&TrunkConfig> = senders
            .iter()
            .copied()
            .filter(|t| can_use(t, route))
            .collect();
        if users.is_empty() {
            let why = if senders.is_empty() {
                "no trunk has peers, so no call ever arrives".to_string()
            } else if route.usages.is_empty() {
                "it has no usages, which makes it usable only by trunks without usages, and \
                 every trunk that sends calls (has peers) lists usages; give it usages"
                    .to_string()
            } else {
                format!(
                    "no trunk that sends calls (has peers) lists any of its usages ({}) or \
                     goes without usages",
                    route.usages.join(", ")
                )
            };
            warn(
                route.line,
                format!("route[{i}]"),
                format!("route {:?} is unreachable: {why}", route.name),
            );
            continue;
        }
        for (j, egress) in route.trunks.iter().enumerate() {
            let Some(user) = users.iter().find(|t| &t.name == egress) else {
                continue;
            };
            // A call from `egress` is never sent back to it: with no other trunk on the
            // route, there is nothing to loop through.
            if route.trunks.iter().all(|t| t == egress) {
                continue;
            }
            let how = match &user.usages {
                None => "has no usages, so it may use every route".to_string(),
                Some(u) => format!(
                    "lists usage {}",
                    u.iter()
                        .find(|u| route.usages.contains(u))
                        .map_or_else(String::new, |u| format!("{u:?}"))
                ),
            };
            warn(
                route.line,
                format!("route[{i}].trunks[{j}]"),
                format!(
                    "hairpin risk: route {:?} sends calls to trunk {egress:?}, which can use \
                     this route itself ({how}). junction never sends a call back to the trunk \
                     it came from, but a call {egress:?} sends back can loop through this \
                     route's other trunks; give {egress:?} usages this route does not carry",
                    route.name
                ),
            );
        }
    }
    for (i, route) in config.routes.iter().enumerate() {
        if let Some((j, by)) = shadowed_by(config, i, route) {
            let why = if by.priority < route.priority {
                format!("priority {} before {}", by.priority, route.priority)
            } else {
                "the same priority, earlier in the file".to_string()
            };
            out.push(ConfigError {
                file: config.source.clone(),
                line: (route.line > 0).then_some(route.line),
                key: format!("route[{i}]"),
                message: format!(
                    "route {:?} is unreachable: route {:?} (route[{j}], line {}) matches every \
                     number it matches, first ({why}), for all its usages, and offers all its \
                     trunks, so no call ever takes this route; remove it, or give it a higher \
                     priority (a lower number) than {:?}",
                    route.name, by.name, by.line, by.name
                ),
            });
        }
    }
    out
}

/// Most (prefix of one route, prefix of another) pairs compared when looking for shadowed
/// routes: `check` stays fast on prefix files of a million lines.
const SHADOW_COMPARISONS_MAX: usize = 10_000_000;

/// The route (index and config) that shadows route `i`: one that comes first for every
/// number `i` matches (a prefix of each of its prefixes, with a lower priority number, or
/// the same priority and an equal-length prefix earlier in the file), carries all its
/// usages and offers all its trunks. Then the walk reaches `i` only to find its trunks
/// already tried: it never adds an attempt.
fn shadowed_by<'a>(
    config: &'a Config,
    i: usize,
    route: &RouteConfig,
) -> Option<(usize, &'a RouteConfig)> {
    if route.route_on_rn {
        return None;
    }
    let mine: Vec<&[u8]> = route
        .prefixes
        .iter()
        .map(|p| p.as_bytes())
        .chain(route.prefix_file.iter().flat_map(|f| f.iter()))
        .collect();
    config.routes.iter().enumerate().find(|&(j, by)| {
        if j == i
            || by.route_on_rn
            || by.priority > route.priority
            || (by.priority == route.priority && j > i)
            || !route.usages.iter().all(|u| by.usages.contains(u))
            || !route.trunks.iter().all(|t| by.trunks.contains(t))
            || by.trunks.is_empty()
        {
            return false;
        }
        let theirs: Vec<&[u8]> = by
            .prefixes
            .iter()
            .map(|p| p.as_bytes())
            .chain(by.prefix_file.iter().flat_map(|f| f.iter()))
            .collect();
        if theirs.is_empty() {
            return false;
        }
        let same_priority = by.priority == route.priority;
        // A pattern route is covered only by a catch-all prefix "" of a route before it.
        if route.pattern.is_some() {
            return theirs.contains(&&b""[..]);
        }
        if mine.is_empty() || mine.len().saturating_mul(theirs.len()) > SHADOW_COMPARISONS_MAX {
            return false;
        }
        mine.iter().all(|p| {
            theirs.iter().any(|q| {
                // Equal priority: the longer prefix goes first, so only an equal one
                // earlier in the file covers it.
                p.starts_with(q) && (!same_priority || q.len() == p.len())
            })
        })
    })
}
