//! Configuration: TOML, validated with errors that name file, line and key.
//! (The config helper implements this file; the types below are the agreed interface.)

use std::net::SocketAddr;

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
