//! Warnings about a configuration that is valid but probably not what was meant: routes no
//! trunk can use, and routes that can send a call to a trunk that can itself use the route
//! (hairpin risk). `junction check` prints them; they never stop junction from running.

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
    out
}
