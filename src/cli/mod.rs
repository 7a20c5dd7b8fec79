//! The commands of the `junction` binary besides running: `check`, `route-test`, `reload`,
//! `doctor`, `completions`, `man`; the command line itself in `args.rs`.

pub mod args;
pub mod check;
pub mod generate;
pub mod host;
pub mod reload;
pub mod route_test;
pub mod trunks;

use std::path::Path;

use junction::config::{self, Config, ConfigError};
use junction::routing::RoutingTable;

/// Load a file (or the embedded default) and its compiled routing table.
pub fn load(file: Option<&str>) -> Result<(Config, RoutingTable), Vec<ConfigError>> {
    match file {
        Some(f) => config::load_compiled(Path::new(f)),
        None => config::parse_compiled(config::EMBEDDED_DEFAULT, config::EMBEDDED_SOURCE),
    }
}

/// "1 trunk", "3 trunks", "2 peer entries", "1 prefix", "4 prefixes".
pub fn count(n: usize, what: &str) -> String {
    match (n, what.strip_suffix('y')) {
        (1, _) => format!("1 {what}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ if what.ends_with('x') => format!("{n} {what}es"),
        _ => format!("{n} {what}s"),
    }
}

/// A number as printed: in quotes, bytes that are not UTF-8 escaped.
pub fn shown(number: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(number))
}
