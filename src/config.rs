//! Configuration: TOML, validated with errors that name file, line and key.
//!
//! `parse` reads the whole document and reports every problem it finds, each as a
//! `ConfigError` naming the file, the 1-based line and the dotted key (`trunk[1].send_to`).
//! A configuration that parses also compiles into a `RoutingTable` (parse checks that too).
//! The keys are documented one by one in `tuning/junction.toml`.
//!
//! - `toml_doc.rs`: walking the TOML document with lines and dotted keys.
//! - `server.rs`, `trunk.rs`, `route.rs`: one section each; `names.rs`, `addr.rs`: values
//!   they share.

mod addr;
mod names;
mod route;
mod server;
mod toml_doc;
mod trunk;

use std::net::SocketAddr;
use std::path::Path;

pub use route::PRIORITY_DEFAULT;
pub use server::{online_cpus, CORES_MAX};

/// The configuration junction runs with when started without `--config`: listens on
/// loopback and routes every number to a loopback trunk.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from: a path, or "<embedded default>".
    pub source: String,
    pub server: Server,
    pub trunks: Vec<TrunkConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug)]
pub struct Server {
    /// Number of shards (one pinned executor each), resolved ("auto" = online CPUs).
    pub cores: usize,
    /// CPUs to pin shard i to (`cpus[i]`); `None` = 0..cores.
    pub cpus: Option<Vec<usize>>,
    /// The UDP address every shard's socket binds.
    pub listen: SocketAddr,
    /// The address peers reach us at, put in our Via and Record-Route. Defaults to `listen`
    /// (required when `listen` is an unspecified address such as 0.0.0.0).
    pub advertise: SocketAddr,
    /// Metrics HTTP address; `None` disables the endpoint.
    pub metrics: Option<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct TrunkConfig {
    pub name: String,
    /// Source addresses that identify this trunk: ip, ip:port or cidr, as written.
    pub peers: Vec<String>,
    /// Where calls routed to this trunk are sent.
    pub send_to: Option<SocketAddr>,
    /// Line in the file (for messages).
    pub line: usize,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// Anchored regex on the called number, or...
    pub pattern: Option<String>,
    /// ...prefixes (longest wins).
    pub prefixes: Vec<String>,
    /// Egress trunk names, in order.
    pub trunks: Vec<String>,
    /// Lower goes first among matching routes (default `PRIORITY_DEFAULT`).
    pub priority: u32,
    pub line: usize,
}

/// A problem in a configuration file, precise enough to fix without guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `trunk[2].send_to`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the embedded default says it came from.
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// Parse and validate a configuration. `file` names it in error messages. Every problem is
/// reported, not only the first.
pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    let mut doc = toml_doc::Doc::new(file, text);
    let parsed = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            doc.syntax_error(&e);
            return Err(doc.errors);
        }
    };
    let root = toml_doc::Section::root(parsed.as_table());
    root.check_keys(&mut doc, &["server", "trunk", "route"], &[]);
    let server = server::read(&mut doc, &root);
    let (trunks, trunk_infos) = trunk::read(&mut doc, &root);
    let routes = route::read(&mut doc, &root, &trunk_infos);
    let (Some(server), true) = (server, doc.errors.is_empty()) else {
        // In file order (problems without a line last); the sort is stable.
        doc.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(doc.errors);
    };
    let config = Config {
        source: file.to_string(),
        server,
        trunks,
        routes,
    };
    // Whatever parses must compile; this also catches limits only the compiled form has.
    crate::routing::RoutingTable::compile(&config)?;
    Ok(config)
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(e) => Err(vec![ConfigError {
            file,
            line: None,
            key: "(file)".into(),
            message: format!("cannot read the configuration: {e}"),
        }]),
    }
}

/// The configuration in `EMBEDDED_DEFAULT`.
pub fn embedded_default() -> Config {
    match parse(EMBEDDED_DEFAULT, EMBEDDED_SOURCE) {
        Ok(config) => config,
        // Our own bug, caught by the test that parses it.
        Err(errors) => panic!(
            "the embedded default configuration is invalid: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
